// safetensors parser target: any bytes, parsed both as a whole file and as a prefix of a longer
// file, must give a layout or an error, never a crash. A layout it accepts must be self-consistent
// (shared/specs/models.md §3: tensors tile [data_begin, file_size) exactly), and tensor-aware
// chunking of an accepted file must tile the file.
#include <cstdint>
#include <cstdlib>

#include "strata/models.h"
#include "strata/strata.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const strata::ByteSpan input(data, size);
  (void)strata::parse_safetensors(input, size + 4096);
  auto layout = strata::parse_safetensors(input, size);
  if (!layout.ok()) return 0;
  check(layout->data_begin <= size);
  std::uint64_t tensor_bytes = 0;
  for (const strata::TensorInfo& tensor : layout->tensors) {
    check(tensor.begin >= layout->data_begin && tensor.begin <= tensor.end && tensor.end <= size);
    tensor_bytes += tensor.end - tensor.begin;
  }
  check(tensor_bytes == size - layout->data_begin);
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
