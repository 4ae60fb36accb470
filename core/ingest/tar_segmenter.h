// The one tar segmenter: it turns a layer's tar stream into the segments of its recipe, in stream
// order. The tar reader splits the stream into header groups, content, padding, end blocks and
// trailing bytes; entry content is cut per entry by EntryContentChunker (content-defined cuts, plus
// forced cuts at tensor boundaries in model files), so headers and padding never shift a boundary
// (DESIGN.md §1.2). Everything that is not content stays inline; trailing bytes past a bound are
// chunked like content, so a tar padded with gigabytes (CVE-2017-14992) costs bounded memory. The
// segments concatenate to the input exactly: a recipe of them replays the tar byte for byte.
// Both the ingest pipeline's reader stage and build_recipe_from_tar pull from it. Where the
// caller lends the tar reader its buffers (TarReadBuffers), content is cut in place up to its last
// certain cut and the rest goes back to the reader (TarReader::give_back), which hands it out again
// joined to the bytes that follow: plain content is then never buffered by the chunker.
#pragma once

#include <cstdint>
#include <vector>

#include "core/base/byte_source.h"
#include "core/chunk/entry_content_chunker.h"
#include "formats/tar/tar_reader.h"
#include "strata/result.h"

namespace strata {

struct LayerRecipeLimits {
  TarLimits tar;
  // Inline bytes a recipe may hold (headers, padding, end blocks): entry-count bombs stop here.
  std::uint64_t max_raw_bytes = 256ULL << 20U;
  // Trailing bytes after the end blocks up to this size stay inline; past it they are chunked
  // like content, so gigabytes of padding (CVE-2017-14992) cost bounded memory.
  std::size_t max_inline_trailing_bytes = 1U << 20U;
};

// One chunk of the stream and where it sits.
struct TarChunk {
  ByteSpan bytes;
  std::uint32_t element_width = 0;  // float tensor element size (2, 4) or 0: plain
  std::uint32_t element_phase = 0;  // leading bytes that finish an element begun before the chunk
  // The entry whose content this chunk is (valid during the call); null for trailing bytes.
  const TarEntry* entry = nullptr;
  std::uint64_t file_offset = 0;  // of the chunk in the entry's content (or the trailing bytes)
  std::uint64_t file_size = 0;    // the entry's content size; 0 for trailing bytes
};

// Receives the segments in stream order. Spans are valid during the call only, except those that
// lie in a buffer lent through TarReadBuffers: those stay as they are while the caller keeps it.
class TarSegmentSink {
 public:
  TarSegmentSink() = default;
  TarSegmentSink(const TarSegmentSink&) = delete;
  TarSegmentSink& operator=(const TarSegmentSink&) = delete;
  virtual ~TarSegmentSink() = default;

  // An entry begins: its header group follows through add_raw.
  virtual void begin_entry(const TarEntry& entry) { static_cast<void>(entry); }
  // Inline bytes: header groups, padding, end blocks, trailing bytes kept inline.
  virtual Result<void> add_raw(ByteSpan bytes) = 0;
  // A chunk; an error stops the segmenter (it is returned from next()).
  virtual Result<void> add_chunk(const TarChunk& chunk) = 0;
};

class TarSegmenter {
 public:
  // `buffers`: where the tar reader reads (TarReadBuffers); null: a buffer of the reader's own.
  TarSegmenter(ByteSource& tar, EntryContentChunker chunker, const LayerRecipeLimits& limits,
               TarReadBuffers* buffers = nullptr);
  TarSegmenter(const TarSegmenter&) = delete;
  TarSegmenter& operator=(const TarSegmenter&) = delete;

  // Reads the next tar event and hands its segments to `sink`. Returns false once the stream is
  // finished (its last segments handed out; later calls hand out nothing), true while there is
  // more to read.
  Result<bool> next(TarSegmentSink& sink);

  // Tar entries so far (pax 'g' headers included).
  [[nodiscard]] std::uint64_t entries() const noexcept { return entries_; }
  // Entries chunked tensor-aware so far.
  [[nodiscard]] std::uint64_t model_files() const noexcept { return chunker_.model_files(); }
  // Wall-clock time of the calls that cut entry content: the scans, the chunker's buffering and
  // the sink's add_chunk calls (in the ingest pipeline, listing chunks in their batches).
  [[nodiscard]] double cut_wall_seconds() const noexcept;
  // Thread CPU time of the content-defined scans alone (EntryContentChunker::scan_cpu_seconds()).
  [[nodiscard]] double cut_scan_cpu_seconds() const noexcept;

 private:
  Result<void> add_raw(ByteSpan bytes);
  Result<void> add_content(ByteSpan bytes);
  Result<void> add_trailing(ByteSpan bytes);
  Result<void> finish_trailing();
  void emit_chunk(ByteSpan bytes, std::uint32_t element_width, std::uint32_t element_phase);

  TarReader reader_;
  EntryContentChunker chunker_;
  LayerRecipeLimits limits_;
  EntryChunkSink chunk_sink_;
  TarSegmentSink* sink_ = nullptr;  // the sink of the current next() call
  Result<void> sink_error_;         // the first add_chunk error of the current call
  const TarEntry* entry_ = nullptr;
  std::uint64_t file_offset_ = 0;
  std::uint64_t content_size_ = 0;
  std::uint64_t content_left_ = 0;
  std::uint64_t raw_bytes_ = 0;
  std::uint64_t entries_ = 0;
  std::uint64_t cut_nanoseconds_ = 0;
  std::vector<std::uint8_t> trailing_;
  bool trailing_chunked_ = false;
  bool done_ = false;
};

}  // namespace strata
