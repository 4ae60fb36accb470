// Cuts the content of one tar entry into chunks, the same way for the engine's pipeline and the
// single-threaded reference path (so their recipes stay equal). Plain content gets content-defined
// cuts (strata::Chunker). With model awareness on, a regular file whose first bytes look like
// safetensors or GGUF (shared/specs/models.md §3) is held back until its header parses, then cut by
// TensorAwareChunker: every tensor boundary is a forced cut and each chunk carries the element
// width the byte-grouped store codec needs. A header that never parses (malformed, or larger than
// the parse cap) sends the file down the plain path: looking like a model never fails an ingest.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "strata/chunker.h"
#include "strata/models.h"
#include "strata/result.h"

namespace strata {

struct EntryChunkingOptions {
  ChunkerOptions chunker;
  bool model_aware = true;
  // Header bytes buffered before giving up on a file that looks like a model. Also bounds the
  // parser (ModelParseLimits::max_header_bytes).
  std::uint64_t max_model_header_bytes = 100'000'000;
};

// One chunk of entry content. element_width is 2 (F16/BF16) or 4 (F32) for chunks of float
// tensors, 0 for everything to be kept plain; element_phase is the number of leading bytes that
// finish an element begun before the chunk.
using EntryChunkSink =
    std::function<void(ByteSpan bytes, std::uint32_t element_width, std::uint32_t element_phase)>;

class EntryContentChunker {
 public:
  static Result<EntryContentChunker> create(const EntryChunkingOptions& options);

  EntryContentChunker(EntryContentChunker&&) noexcept;
  EntryContentChunker& operator=(EntryContentChunker&&) noexcept;
  ~EntryContentChunker();

  // Starts an entry whose content is `size` bytes. Only a `regular_file` may be taken for a model.
  void begin_entry(std::uint64_t size, bool regular_file);
  // Starts a stream of unknown length that is always chunked plainly (trailing bytes of a tar).
  void begin_plain_stream();
  // Content bytes in order, in any pieces; the chunks come out the same for any split.
  Result<void> feed(ByteSpan piece, const EntryChunkSink& sink);
  // feed(), except that a plain entry's piece is cut in place only up to its last certain cut
  // (Chunker::feed_certain): returns the bytes consumed, and the caller brings the rest back at
  // the front of its next piece. Returns piece.size() where it buffers as feed() does (a file
  // that may be a model, a tensor-aware one, bytes already buffered).
  Result<std::size_t> feed_certain(ByteSpan piece, const EntryChunkSink& sink);
  // Ends the entry (or stream): emits the last chunks.
  Result<void> finish(const EntryChunkSink& sink);
  // feed(last_piece) then finish(), cutting a plain entry's last piece in place (no copy).
  Result<void> finish(ByteSpan last_piece, const EntryChunkSink& sink);

  // Thread CPU time the content-defined scans took, over every entry so far (plain and
  // tensor-aware; Chunker::scan_cpu_seconds()).
  [[nodiscard]] double scan_cpu_seconds() const noexcept;

  // Files chunked tensor-aware so far.
  [[nodiscard]] std::uint64_t model_files() const noexcept;

 private:
  struct State;
  explicit EntryContentChunker(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace strata
