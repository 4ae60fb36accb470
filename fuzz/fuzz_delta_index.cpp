// Delta referrer index target (docs/DELTA.md, fastpull::parse_delta_index). Any bytes must end in
// an index or an error, never a crash, a hang or an allocation beyond the JSON's own size. An
// accepted index must satisfy every rule the parser promises (each chunk once and sorted, no
// chunk its own base, no base that is itself a chunk of the index, every range inside the frames
// blob, 0 < length <= raw_length <= kMaxStoredChunkBytes), and writing it out and parsing it
// again must give the same entries. Applying it to a small plan must only mark chunk pieces.
#include <cstdint>
#include <cstdlib>

#include "strata/fastpull.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace strata;
  fastpull::DeltaIndexLimits limits;
  limits.max_json_bytes = std::size_t{1} << 20U;
  limits.max_entries = 4096;
  auto index = fastpull::parse_delta_index(ByteSpan(data, size), limits);
  if (!index.ok()) return 0;
  for (std::size_t i = 0; i < index->entries.size(); ++i) {
    const fastpull::DeltaEntry& entry = index->entries[i];
    check(i == 0 || index->entries[i - 1].chunk < entry.chunk);
    check(entry.base != entry.chunk);
    check(index->find(entry.base) == nullptr);
    check(index->find(entry.chunk) == &entry);
    check(entry.length != 0 && entry.length <= entry.raw_length);
    check(entry.raw_length <= kMaxStoredChunkBytes);
    check(entry.offset <= index->frames_size && entry.length <= index->frames_size - entry.offset);
    check(is_delta_codec(entry.codec));
  }
  const std::string written = fastpull::write_delta_index(*index);
  auto again = fastpull::parse_delta_index(
      ByteSpan(reinterpret_cast<const std::uint8_t*>(written.data()), written.size()), limits);
  check(again.ok());
  check(again->entries.size() == index->entries.size());
  for (std::size_t i = 0; i < again->entries.size(); ++i) {
    const auto& a = again->entries[i];
    const auto& b = index->entries[i];
    check(a.chunk == b.chunk && a.base == b.base && a.codec == b.codec && a.offset == b.offset &&
          a.length == b.length && a.raw_length == b.raw_length && a.prefix == b.prefix);
  }
  // A plan whose pieces are the index's chunks, each piece larger than its delta, every base held.
  fastpull::PullPlan plan;
  std::uint64_t at = 0;
  for (const auto& entry : index->entries) {
    fastpull::BlobPiece piece;
    piece.offset = at;
    piece.end = at + entry.length + 1;
    piece.is_chunk = true;
    piece.digest = entry.chunk;
    piece.chunk_size = entry.raw_length;
    at = piece.end;
    plan.pieces.push_back(piece);
  }
  auto applied = fastpull::apply_delta_index(plan, *index, [](const Digest&) { return true; });
  check(applied.ok());
  check(plan.delta_chunks == index->entries.size());
  check(plan.fetch_bytes == 0);
  return 0;
}
