// Fault injection for the chunk store's durability paths (shared/specs/reliability.md §5.3 F1-F4):
// the Nth fsync or pack write from now fails, so tests can show that a failed fsync or a torn pack
// write is detected, reported (kIo) and never made visible. Armed by tests through arm_fault(), or
// for whole-process runs by the environment: STRATA_FAULT=fsync_fail:N or STRATA_FAULT=write_fail:N
// (N counts from 1, read once at the first check).
#pragma once

namespace strata::store_fault {

enum class FaultPoint { kFsync, kPackWrite };

// The `nth` call (1 = the next one) of `point` fails; 0 disarms it.
void arm_fault(FaultPoint point, int nth) noexcept;
void disarm_faults() noexcept;

// Called by the store before each fsync / pack write: true when this call must fail.
[[nodiscard]] bool should_fail(FaultPoint point) noexcept;

}  // namespace strata::store_fault
