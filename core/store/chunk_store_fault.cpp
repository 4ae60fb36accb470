// Countdown counters behind the store's fault-injection points (core/store/chunk_store_fault.h).
// Atomic, because pack writes and fsyncs may run on several threads of one process.
#include "core/store/chunk_store_fault.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace strata::store_fault {
namespace {

std::atomic<int> fsync_countdown{0};
std::atomic<int> write_countdown{0};

std::atomic<int>& countdown_for(FaultPoint point) noexcept {
  return point == FaultPoint::kFsync ? fsync_countdown : write_countdown;
}

// STRATA_FAULT=<fsync_fail|write_fail>:<N>; anything else is ignored (a test knob, not an API).
void arm_from_environment() noexcept {
  const char* spec = std::getenv("STRATA_FAULT");
  if (spec == nullptr) return;
  const char* colon = std::strchr(spec, ':');
  if (colon == nullptr) return;
  const int nth = std::atoi(colon + 1);
  const std::size_t name_length = static_cast<std::size_t>(colon - spec);
  if (name_length == 10 && std::strncmp(spec, "fsync_fail", name_length) == 0) {
    arm_fault(FaultPoint::kFsync, nth);
  } else if (name_length == 10 && std::strncmp(spec, "write_fail", name_length) == 0) {
    arm_fault(FaultPoint::kPackWrite, nth);
  }
}

}  // namespace

void arm_fault(FaultPoint point, int nth) noexcept {
  countdown_for(point).store(nth < 0 ? 0 : nth, std::memory_order_relaxed);
}

void disarm_faults() noexcept {
  fsync_countdown.store(0, std::memory_order_relaxed);
  write_countdown.store(0, std::memory_order_relaxed);
}

bool should_fail(FaultPoint point) noexcept {
  static std::once_flag environment_read;
  std::call_once(environment_read, arm_from_environment);
  std::atomic<int>& countdown = countdown_for(point);
  int current = countdown.load(std::memory_order_relaxed);
  while (current > 0) {
    if (countdown.compare_exchange_weak(current, current - 1, std::memory_order_relaxed)) {
      return current == 1;
    }
  }
  return false;
}

}  // namespace strata::store_fault
