// Chunker differential target: the input's last 8 bytes choose the parameters (variant,
// min/avg/max, level, seed bits), the rest is data. Every usable kernel must give the same chunks
// as the scalar reference, streaming in input-chosen pieces must equal one call, and chunks must
// tile the data within min/max. Any disagreement aborts (that is how libFuzzer reports a finding).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "strata/strata.h"

namespace {

struct Parameters {
  strata::ChunkerOptions options;
  std::size_t piece = 1;
};

Parameters parameters_from_tail(const std::uint8_t* tail) {
  Parameters parameters;
  strata::ChunkerOptions& options = parameters.options;
  options.algorithm = (tail[0] & 1U) != 0 ? strata::ChunkAlgorithm::kFastCdc2020
                                          : strata::ChunkAlgorithm::kFastCdc2016;
  const unsigned avg_shift = 7 + (tail[1] % 8U);  // 128 B .. 16 KiB
  options.avg_size = 1U << avg_shift;
  options.min_size = std::max(64U, options.avg_size >> (1 + tail[2] % 3U));
  options.max_size = options.avg_size << (1 + tail[3] % 3U);
  options.level = tail[4] % 4U;
  while (options.level > 0 && !strata::validate(options).ok()) --options.level;
  options.seed = (tail[5] & 1U) != 0 ? 0x9E3779B97F4A7C15ULL * tail[6] : 0;
  parameters.piece = 1 + tail[7] * 37U;
  return parameters;
}

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  const Parameters parameters = parameters_from_tail(data + size - 8);
  const strata::ByteSpan input(data, size - 8);
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
  return 0;
}
