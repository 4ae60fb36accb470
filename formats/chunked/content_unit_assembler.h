// Cuts the content of each regular file of a streamed tar into the units a chunked-layer writer
// turns into frames (zstd:chunked) or gzip members (eStargz), shared/specs/layer-formats.md §1.2
// and §2: the caller's chunks (a recipe's cut points) where they lie inside the file and are at
// most kMaxContentUnitBytes long, and runs of at most kMaxContentUnitBytes of content they do not
// cover. A unit is handed out whole, copied only when its bytes arrive in pieces, so a writer's
// memory is bounded by the unit size whatever the layer size.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "strata/chunked_layer.h"

namespace strata::fastpull::detail {

inline constexpr std::uint64_t kMaxContentUnitBytes = std::uint64_t{8} << 20U;

struct ContentUnit {
  ByteSpan raw;                    // valid during the handler call only
  std::uint64_t file_offset = 0;   // where `raw` starts within the file
  const Digest* digest = nullptr;  // the caller's chunk digest; nullptr for uncovered content
  bool last = false;               // the file's last unit
};
using ContentUnitHandler = std::function<Result<void>(const ContentUnit&)>;

class ContentUnitAssembler {
 public:
  // `chunks` sorted by tar_offset; chunks that overlap, cross a file's end or are too long are
  // ignored (their bytes become uncovered content).
  explicit ContentUnitAssembler(std::span<const TarChunk> chunks);
  // The same chunks, looked up as the tar streams in.
  explicit ContentUnitAssembler(TarChunkLookup chunks) : chunks_(std::move(chunks)) {}

  // Starts a regular file whose `size` (> 0) content bytes begin at `tar_offset`.
  void begin_file(std::uint64_t tar_offset, std::uint64_t size);
  // Takes the next piece of the file's content; calls `handler` for every completed unit.
  Result<void> add(ByteSpan content, const ContentUnitHandler& handler);

 private:
  void plan_unit();
  Result<void> hand_out(ByteSpan raw, const ContentUnitHandler& handler);

  TarChunkLookup chunks_;
  std::size_t next_chunk_ = 0;
  std::uint64_t file_start_ = 0;
  std::uint64_t file_size_ = 0;
  std::uint64_t done_ = 0;  // file bytes handed out
  std::uint64_t unit_length_ = 0;
  const Digest* unit_digest_ = nullptr;
  std::vector<std::uint8_t> buffer_;
};

}  // namespace strata::fastpull::detail
