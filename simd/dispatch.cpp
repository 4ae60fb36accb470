// The kernel table and the process-wide choice. Modelled on simdjson's implementation list: a
// constant table, a check of each entry against the detected CPU, and an environment override
// (STRATA_KERNEL=<name>). The default is picked by measurement, once per process: every usable
// kernel chunks the same 256 KiB of pseudo-random bytes (FastCDC v2020, default sizes) in three
// interleaved rounds and the best round of each counts. Every kernel is exact, so the pick changes
// speed only, never output; no CPU model is hard-coded.
//
// Why each kernel is in the table (bench/bench_chunker fastcdc2020, ratio to scalar in the same
// run; "SPR" = Sapphire Rapids Xeon with AVX-512 VBMI/FP16, 2 shared vCPUs; "Zen 4" = EPYC, KVM):
// - scalar: the reference, and Zen 4's fastest fastcdc2020 kernel before avx512_seq_* existed
//   (interleaved 0.81-1.02x, avx512 0.80-0.82x, avx2 0.30-0.49x there).
// - interleaved: three scalar strips; SPR 2.0-2.2x cold, 1.5x warm; Zen 4 1.00-1.27x fastcdc2016
//   and 1.09-1.34x xet.
// - avx512 (eight strips, byte-plane lookups): SPR 1.7x cold. avx2 (four strips, gathers): SPR
//   1.1x cold. Neither wins a row measured so far; kept until Zen 4 is measured again.
// - avx512_seq_gather (consecutive positions, simd/gear_scan_avx512_seq.cpp, vpgatherqq): SPR
//   2.3x cold and file, 1.5-1.6x warm, the fastest there. A zmm gather costs 3.1 cycles (load
//   ports) plus ~5 vector-port uops on SPR, so lookups and arithmetic share ports 0 and 5. Since
//   the gathers read pre-shifted tables (gear << s, 16 KiB per thread; masks below bit 57), the
//   run sums and hashes take 12 fewer port-0/5 uops per 64 bytes (68 instead of 80): SPR, same
//   process, 5 repetitions, medians vs the unshifted gathers: warm 6.11 vs 5.39 GB/s (1.97x vs
//   1.73x scalar), cold 5.14 vs 5.04 (2.60x vs 2.55x), file 5.03 vs 4.83 (2.53x vs 2.44x); the cut
//   step of an ingest (warm data in the tar reader's buffer) 1.9x less scan CPU than scalar, was
//   1.7-1.8x. Cold rows sit near a ~5 GB/s single-core streaming limit there, where scalar's
//   latency-bound loop loses more (1.98 GB/s cold vs 3.1 warm): so cold ratios exceed warm ones.
//   Prefetch: one prefetcht0 2 KiB or 1 KiB ahead measured within noise of 4 KiB (5.45/5.30,
//   5.20/5.15 vs 5.13/4.99 GB/s cold/file), 8 KiB lost (4.73/4.61); a prefetcht1 16 KiB ahead plus
//   a prefetcht0 2 KiB ahead won twice in a row (5.28/5.03 vs 4.86/4.96, 5.33/5.33 vs 5.19/4.87)
//   and is kept. Against main's binary back to back: fastcdc2020 warm/cold/file 1.97x/2.78x/2.74x
//   scalar (was 1.63x/2.46x/2.50x); xet 2.30x/3.21x/2.92x (was 2.53x/3.12x/2.91x; xet's top-bit
//   mask keeps the unshifted tables).
//   The cut step of an ingest is this kernel's warm rate (simdcut2, SPR, 2 busy vCPUs): the 311 MB
//   v1 of bench/ingest_compare.sh is 463 files of 16 KiB+, 4069 scans of ~60 KB (no short scans);
//   perf puts 99 % of the step in find_in_blocks, ~1 % in per-scan setup (the 2 KiB table compare,
//   now gone: the chunker builds the shifted tables once, GearScanRequest::gear_shifts), ~0.3 % in
//   the thread clock. An in-process replay (1 MiB copies, per-file Chunker) gives 1.87-1.93x
//   scalar, the ingest 1.91-1.95x (6 alternating runs each: scalar 0.325, gather 0.166-0.170 s/GB),
//   bench/ingest_compare.sh's 1 GiB v1 1.90x (5 runs each: 0.310 vs 0.163 s/GB).
//   The kernel is bound on ports 0/5 and the load ports together (long warm scans, medians of 7-9
//   rounds, variants that break the output for diagnosis): the lookups alone run 7.2 GB/s, all but
//   the gathers 8.5-9.0, the kernel 5.2; 6 gathers instead of 8 +15 %; four more uops per block
//   cost 3-7 % whichever port (shuffles -4 %, shifts -6 %, loads -7 %, adds -3 %). Tried and lost
//   (long-scan GB/s vs 5.2): a scalar strip hashing the next KiB on the idle scalar ports, 8/16/24
//   bytes per block (4.6/4.4/4.2; without its bookkeeping +12 %, so the bookkeeping eats it);
//   next block's gathers issued before this block's arithmetic, 4 shuffle controls (4.8-5.0);
//   gather indices by shift+and instead of vpshufb (5.1); near prefetch only (4.6), far prefetch
//   every other block or at page starts only (-3..-12 %), near distance 512..4096 or two near
//   prefetches (noise), no prefetch (1 MiB windows 3.3 vs 5.9); prefetching the 16 KiB of tables
//   at each scan (cut step 0.161 vs 0.159 s/GB). avx512_seq_planes in the same ingest: 0.231 s/GB.
// - avx512_seq_planes (the same with vpermi2b byte planes): SPR 1.8x cold: vpermi2b zmm is two
//   port-5 uops there, and the unpack transpose adds 22 more per 64 bytes. Zen 4 runs vpermi2b in
//   one uop and gathers slowly (shared/specs/chunking.md §8), so this is the candidate there; not
//   measured on Zen 4 yet.
// Tried and dropped (SPR, same runs): strips with gathers instead of planes (256/512/1024-byte
// strips, 1.24-1.27x warm, 1.74-1.81x cold); vpmadd52luq for the shift-adds of the consecutive
// kernel (1.21x warm, 1.79x cold: port 0 only, latency 4); recomputing the hashes by the add
// recurrence from the carry instead of carry shifts (1.42x vs 1.47x warm); a 1 KiB software
// prefetch distance (2.16x cold vs 2.31x at 4 KiB); 128-byte blocks for avx512_seq_gather (eight
// 16-byte runs, so the lane prefix needs two steps and the carry reaches three lanes: ~7% fewer
// port 0/5 uops on paper) measured equal to 64-byte blocks (9 alternating rounds in one process,
// medians 2.48x/2.42x cold, 2.37x/2.39x file, spread ±0.1x on the shared machine), and sixteen
// live hash registers spilled until the hit test moved to a scalar rescan of the hit block.
#include "simd/dispatch.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>

#include "core/chunk/fastcdc_tables.h"
#include "simd/cpu_features.h"

namespace strata::simd {
namespace {

constexpr std::array kKernels = {
    GearKernel{"scalar", 0U, &scan_gear_scalar, &scan_gear_pairs_scalar},
    GearKernel{"interleaved", 0U, &scan_gear_interleaved, &scan_gear_pairs_interleaved},
    GearKernel{"avx512", kCpuAvx512F | kCpuAvx512Bw | kCpuAvx512Vbmi, &scan_gear_avx512,
               &scan_gear_pairs_avx512},
    GearKernel{"avx2", kCpuAvx2, &scan_gear_avx2, &scan_gear_pairs_avx2},
    GearKernel{"avx512_seq_gather", kCpuAvx512F | kCpuAvx512Bw | kCpuAvx512Vbmi,
               &scan_gear_avx512_seq_gather, &scan_gear_pairs_avx512_seq_gather},
    GearKernel{"avx512_seq_planes", kCpuAvx512F | kCpuAvx512Bw | kCpuAvx512Vbmi,
               &scan_gear_avx512_seq_planes, &scan_gear_pairs_avx512_seq_planes},
};

struct Selection {
  std::atomic<const GearKernel*> active{nullptr};
  std::atomic<Choice> choice{Choice::kMeasured};
  OverrideStatus status = OverrideStatus::kNone;
  std::string requested;
};

Selection& selection() noexcept {
  static Selection instance;
  return instance;
}

// The probe: FastCDC v2020 with the default sizes (16/64/256 KiB, level 1), the chunker's own
// loop, over a buffer larger than L1 so the rate includes streaming from L2.
constexpr std::size_t kProbeBytes = std::size_t{256} << 10U;
constexpr std::size_t kProbeMin = std::size_t{16} << 10U;
constexpr std::size_t kProbeAvg = std::size_t{64} << 10U;
constexpr std::size_t kProbeMax = std::size_t{256} << 10U;
constexpr int kProbeRounds = 3;

struct Measurements {
  std::array<double, kKernels.size()> rates{};
  const GearKernel* fastest = kKernels.data();
};

// Seconds for one pass of `kernel` over the probe buffer, chunk by chunk as Chunker::cut does
// (with its tables: `gear_tables` from shift_gear_tables).
double time_probe(const GearKernel& kernel, const std::uint8_t* data,
                  const std::uint64_t* gear_tables) {
  GearScanRequest request;
  request.mask_small = fastcdc::kMasks[17];
  request.mask_large = fastcdc::kMasks[15];
  request.gear = gear_tables;
  request.gear_shifted = gear_tables + 256;
  request.gear_shifts = gear_tables;
  const auto start = std::chrono::steady_clock::now();
  std::size_t position = 0;
  while (kProbeBytes - position > kProbeMin) {
    const std::size_t remaining = kProbeBytes - position;
    request.data = data + position;
    request.begin = kProbeMin;
    request.center = std::min(kProbeAvg, remaining);
    request.limit = std::min(kProbeMax, remaining);
    position += std::max<std::size_t>(kernel.scan_pairs(request).position, 1);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Measurements measure_kernels() noexcept {
  Measurements result;
  const std::unique_ptr<std::uint8_t[]> data(new (std::nothrow) std::uint8_t[kProbeBytes]);
  if (data == nullptr) return result;  // no memory to measure with: the scalar reference
  std::uint64_t state = 0x5EED5EED5EED5EEDULL;
  for (std::size_t at = 0; at < kProbeBytes; ++at) {  // splitmix64, one byte per output
    state += 0x9E3779B97F4A7C15ULL;
    std::uint64_t mixed = state;
    mixed = (mixed ^ (mixed >> 30U)) * 0xBF58476D1CE4E5B9ULL;
    mixed = (mixed ^ (mixed >> 27U)) * 0x94D049BB133111EBULL;
    data[at] = static_cast<std::uint8_t>(mixed ^ (mixed >> 31U));
  }
  std::array<std::uint64_t, kGearShiftsSize> gear_tables{};
  shift_gear_tables(fastcdc::kGearTable.data(), gear_tables.data());
  std::array<double, kKernels.size()> best{};
  // Rounds run every kernel once each, so a burst of load from other processes hits all of them.
  for (int round = 0; round < kProbeRounds; ++round) {
    for (std::size_t k = 0; k < kKernels.size(); ++k) {
      if (!kernel_usable(kKernels[k])) continue;
      const double seconds = time_probe(kKernels[k], data.get(), gear_tables.data());
      if (seconds > 0 && (best[k] == 0 || seconds < best[k])) best[k] = seconds;
    }
  }
  double fastest_rate = 0;
  for (std::size_t k = 0; k < kKernels.size(); ++k) {
    if (best[k] <= 0) continue;
    result.rates[k] = static_cast<double>(kProbeBytes) / best[k];
    if (result.rates[k] > fastest_rate) {
      fastest_rate = result.rates[k];
      result.fastest = &kKernels[k];
    }
  }
  return result;
}

const Measurements& measurements() noexcept {
  static const Measurements instance = measure_kernels();
  return instance;
}

const GearKernel* choose_default() noexcept {
  return measurements().fastest;
}

const GearKernel* initial_choice() noexcept {
  Selection& state = selection();
  const char* forced = std::getenv("STRATA_KERNEL");
  if (forced == nullptr || *forced == '\0') return choose_default();
  state.requested = forced;
  const GearKernel* kernel = find_kernel(state.requested);
  if (kernel == nullptr) {
    state.status = OverrideStatus::kUnknownName;
    return choose_default();
  }
  if (!kernel_usable(*kernel)) {
    state.status = OverrideStatus::kNotUsable;
    return choose_default();
  }
  state.status = OverrideStatus::kHonoured;
  state.choice.store(Choice::kEnvironment, std::memory_order_relaxed);
  return kernel;
}

}  // namespace

std::span<const GearKernel> built_kernels() noexcept {
  return kKernels;
}

std::span<const double> measured_rates() noexcept {
  return measurements().rates;
}

const GearKernel& measured_fastest() noexcept {
  return *measurements().fastest;
}

const GearKernel* find_kernel(std::string_view name) noexcept {
  for (const GearKernel& kernel : kKernels) {
    if (name == kernel.name) return &kernel;
  }
  return nullptr;
}

bool kernel_usable(const GearKernel& kernel) noexcept {
  static const unsigned features = detect_cpu_features();
  return (kernel.required_features & features) == kernel.required_features;
}

const GearKernel& active_kernel() noexcept {
  Selection& state = selection();
  const GearKernel* kernel = state.active.load(std::memory_order_acquire);
  if (kernel == nullptr) {
    static const GearKernel* const first = initial_choice();
    const GearKernel* expected = nullptr;
    state.active.compare_exchange_strong(expected, first, std::memory_order_acq_rel);
    kernel = state.active.load(std::memory_order_acquire);
  }
  return *kernel;
}

void set_active_kernel(const GearKernel& kernel) noexcept {
  (void)active_kernel();  // settle the initial choice first so it cannot overwrite this one
  selection().choice.store(Choice::kSelected, std::memory_order_relaxed);
  selection().active.store(&kernel, std::memory_order_release);
}

Choice active_choice() noexcept {
  (void)active_kernel();
  return selection().choice.load(std::memory_order_relaxed);
}

OverrideStatus override_status() noexcept {
  (void)active_kernel();
  return selection().status;
}

std::string_view override_name() noexcept {
  (void)active_kernel();
  return selection().requested;
}

}  // namespace strata::simd
