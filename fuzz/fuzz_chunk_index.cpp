// Chunk index target (include/strata/model_artifact.h §2). Parsing arbitrary bytes must end in a
// value or an error, never a crash or an allocation beyond the input; a parsed index tiles its blob
// exactly and serializes back to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "strata/model_artifact.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const strata::ByteSpan input(data, size);
  auto index = strata::model::parse_chunk_index(input);
  if (!index.ok()) return 0;
  std::uint64_t covered = 0;
  for (const auto& chunk : index->chunks) {
    check(chunk.offset == covered && chunk.length > 0);
    covered += chunk.length;
  }
  check(covered == index->blob_size);
  const std::vector<std::uint8_t> again = strata::model::serialize_chunk_index(*index);
  check(again == std::vector<std::uint8_t>(input.begin(), input.end()));
  return 0;
}
