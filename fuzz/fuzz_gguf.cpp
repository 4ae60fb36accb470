// GGUF parser target: any bytes, parsed as a whole file and as a prefix of a longer file, must give
// a layout or an error, never a crash, hang or runaway allocation. An accepted layout keeps every
// tensor aligned, inside the file and disjoint (shared/specs/models.md §3), and tensor-aware
// chunking of it tiles the file.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "strata/models.h"
#include "strata/strata.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const strata::ByteSpan input(data, size);
  (void)strata::parse_gguf(input, size + 4096);
  auto layout = strata::parse_gguf(input, size);
  if (!layout.ok()) return 0;
  check(layout->data_begin <= size);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const strata::TensorInfo& tensor : layout->tensors) {
    check(tensor.begin >= layout->data_begin && tensor.begin <= tensor.end && tensor.end <= size);
    check((tensor.begin - layout->data_begin) % layout->alignment == 0);
    ranges.emplace_back(tensor.begin, tensor.end);
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) check(ranges[i].first >= ranges[i - 1].second);
  strata::ChunkerOptions options;
  options.min_size = 64;
  options.avg_size = 256;
  options.max_size = 1024;
  auto chunks = strata::chunk_model_file(input, *layout, options);
  check(chunks.ok());
  std::uint64_t covered = 0;
  for (const strata::TensorChunk& chunk : *chunks) {
    check(chunk.chunk.offset == covered);
    covered += chunk.chunk.length;
  }
  check(covered == size);
  return 0;
}
