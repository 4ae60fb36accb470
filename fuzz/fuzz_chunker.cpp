// Chunker differential target: the input's last 12 bytes choose the parameters (algorithm,
// min/avg/max, level, seed bits, piece size, thread count, a raw scan's begin/center/mask), the
// rest is data. Every usable kernel must give the scalar reference's chunks for every algorithm
// (FastCDC v2016/v2020, xet, casync), streaming in input-chosen pieces and parallel chunking must
// equal one call, chunks must tile the data within min/max, and each kernel's raw gear scans must
// equal the scalar scans for input-chosen masks and hash_in. Any disagreement aborts (that is how
// libFuzzer reports a finding).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/chunk/fastcdc_tables.h"
#include "simd/dispatch.h"
#include "strata/strata.h"

namespace {

constexpr std::size_t kTailSize = 12;

struct Parameters {
  strata::ChunkerOptions options;
  std::size_t piece = 1;
  unsigned threads = 2;
};

Parameters parameters_from_tail(const std::uint8_t* tail) {
  Parameters parameters;
  strata::ChunkerOptions& options = parameters.options;
  constexpr strata::ChunkAlgorithm kAlgorithms[] = {
      strata::ChunkAlgorithm::kFastCdc2016, strata::ChunkAlgorithm::kFastCdc2020,
      strata::ChunkAlgorithm::kXet, strata::ChunkAlgorithm::kCasync};
  options.algorithm = kAlgorithms[tail[0] % 4U];
  const unsigned avg_shift = 7 + (tail[1] % 8U);  // 128 B .. 16 KiB
  options.avg_size = 1U << avg_shift;
  options.min_size = std::max(64U, options.avg_size >> (1 + tail[2] % 3U));
  options.max_size = options.avg_size << (1 + tail[3] % 3U);
  options.level = tail[4] % 4U;
  while (options.level > 0 && !strata::validate(options).ok()) --options.level;
  options.seed = (tail[5] & 1U) != 0 ? 0x9E3779B97F4A7C15ULL * tail[6] : 0;
  parameters.piece = 1 + tail[7] * 37U;
  parameters.threads = 1 + tail[8] % 4U;
  return parameters;
}

void check(bool condition) {
  if (!condition) std::abort();
}

// Raw kernel scans over the whole input: begin, center and mask from the tail, hash_in from data;
// each kernel runs with and without the owner-built shifted tables (GearScanRequest::gear_shifts).
void check_raw_scans(const strata::ByteSpan input, const std::uint8_t* tail) {
  if (input.empty()) return;
  std::vector<std::uint64_t> gear(strata::fastcdc::kGearTable.begin(),
                                  strata::fastcdc::kGearTable.end());
  std::vector<std::uint64_t> gear_shifted(256);
  for (std::size_t i = 0; i < 256; ++i) gear_shifted[i] = gear[i] << 1U;
  std::vector<std::uint64_t> gear_tables(strata::simd::kGearShiftsSize);
  strata::simd::shift_gear_tables(gear.data(), gear_tables.data());
  strata::simd::GearScanRequest request;
  request.data = input.data();
  request.begin = (tail[9] * 131U) % input.size();
  request.center = request.begin + tail[10] * 97U;
  request.limit = input.size();
  const unsigned bits = 1 + tail[11] % 24U;
  // Bit 7 of the last tail byte picks a top-bits mask like xet's, else FastCDC's padded masks.
  const bool top_bits = (tail[11] & 0x80U) != 0;
  request.mask_small = top_bits ? ~std::uint64_t{0} << (64U - bits)
                                : strata::fastcdc::kMasks[std::min(25U, bits + 1)];
  request.mask_large = top_bits ? ~std::uint64_t{0} << (64U - std::max(1U, bits - 1))
                                : strata::fastcdc::kMasks[std::max(5U, bits)];
  std::memcpy(&request.hash, input.data(), std::min<std::size_t>(8, input.size()));
  request.gear = gear.data();
  request.gear_shifted = gear_shifted.data();
  const auto expected = strata::simd::scan_gear_scalar(request);
  const auto expected_pairs = strata::simd::scan_gear_pairs_scalar(request);
  for (const strata::simd::GearKernel& kernel : strata::simd::built_kernels()) {
    if (!strata::simd::kernel_usable(kernel)) continue;
    for (const std::uint64_t* shifts : {static_cast<const std::uint64_t*>(nullptr),
                                        static_cast<const std::uint64_t*>(gear_tables.data())}) {
      request.gear_shifts = shifts;
      const auto got = kernel.scan(request);
      check(got.position == expected.position && got.hash == expected.hash);
      const auto got_pairs = kernel.scan_pairs(request);
      check(got_pairs.position == expected_pairs.position && got_pairs.hash == expected_pairs.hash);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < kTailSize) return 0;
  const std::uint8_t* const tail = data + size - kTailSize;
  const Parameters parameters = parameters_from_tail(tail);
  const strata::ByteSpan input(data, size - kTailSize);
  check_raw_scans(input, tail);
  if (!strata::validate(parameters.options).ok()) return 0;

  check(strata::select_kernel("scalar").ok());
  auto reference = strata::chunk_buffer(input, parameters.options);
  check(reference.ok());
  std::uint64_t covered = 0;
  for (std::size_t i = 0; i < reference->size(); ++i) {
    const strata::Chunk& chunk = (*reference)[i];
    check(chunk.offset == covered);
    check(chunk.length > 0 && chunk.length <= parameters.options.max_size);
    check(i + 1 == reference->size() || chunk.length >= parameters.options.min_size);
    covered += chunk.length;
  }
  check(covered == input.size());

  for (const strata::KernelInfo& kernel : strata::list_kernels()) {
    if (!kernel.usable) continue;
    check(strata::select_kernel(kernel.name).ok());
    auto chunks = strata::chunk_buffer(input, parameters.options);
    check(chunks.ok() && *chunks == *reference);

    auto chunker = strata::Chunker::create(parameters.options);
    check(chunker.ok());
    std::vector<strata::Chunk> streamed;
    const auto sink = [&](const strata::Chunk& chunk, strata::ByteSpan bytes) {
      check(bytes.size() == chunk.length);
      check(std::memcmp(bytes.data(), input.data() + chunk.offset, chunk.length) == 0);
      streamed.push_back(chunk);
    };
    for (std::size_t at = 0; at < input.size(); at += parameters.piece) {
      chunker->feed(input.subspan(at, std::min(parameters.piece, input.size() - at)), sink);
    }
    chunker->finish(sink);
    check(streamed == *reference);
  }
  auto parallel = strata::chunk_buffer_parallel(input, parameters.options, parameters.threads);
  check(parallel.ok() && *parallel == *reference);
  return 0;
}
