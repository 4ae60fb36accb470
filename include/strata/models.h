// Model-weight files (safetensors, GGUF): recognising them, parsing their header into a tensor
// layout, and cutting them into chunks whose boundaries include every tensor boundary, so a changed
// tensor never dirties its neighbours' chunks. Staged: detect and parse (simple; declared in
// strata/model_formats.h, which this header includes), then the streaming TensorAwareChunker
// (feed / finish). Byte layouts: shared/specs/models.md §3.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/buffer.h"
#include "strata/chunker.h"
#include "strata/model_formats.h"
#include "strata/result.h"

namespace strata {

// A chunk of a model file, with what the store codec needs to know about its bytes.
struct TensorChunk {
  Chunk chunk;                      // offset from the start of the file
  std::int64_t tensor = -1;         // index into ModelLayout::tensors, -1 for header/padding bytes
  std::uint32_t element_width = 0;  // byte_group_width of the tensor's dtype (0: keep plain)
  std::uint32_t element_phase = 0;  // bytes before the first whole element of the chunk
};

// Chunks a model file with every tensor boundary (and the header/data boundary) as a forced cut,
// and content-defined cuts (strata::Chunker) inside each region. Feeding the file in any pieces
// gives the same chunks as feeding it at once.
class TensorAwareChunker {
 public:
  using Sink = std::function<void(const TensorChunk& chunk, ByteSpan bytes)>;
  // Cuts the caller chooses inside tensor `tensor` (an index into ModelLayout::tensors) instead of
  // content-defined ones: offsets from the tensor's first byte, increasing, inside (0, length);
  // others are skipped, and a piece longer than the chunker's max size is cut at the max. nullopt
  // keeps content-defined cuts. A fine-tune cut where its base model was cut gives every chunk one
  // base chunk at the same offset of the same tensor, to XOR with (core/model/model_delta_base.h).
  using CutPlan = std::function<std::optional<std::vector<std::uint64_t>>(std::size_t tensor)>;

  static Result<TensorAwareChunker> create(const ModelLayout& layout, const ChunkerOptions& options,
                                           CutPlan plan = {});

  TensorAwareChunker(TensorAwareChunker&&) noexcept;
  TensorAwareChunker& operator=(TensorAwareChunker&&) noexcept;
  ~TensorAwareChunker();

  // Errors (kInvalidArgument) when more bytes arrive than the layout's file size.
  Result<void> feed(ByteSpan piece, const Sink& sink);
  // Errors (kInvalidArgument) when fewer bytes arrived than the layout's file size.
  Result<void> finish(const Sink& sink);

  // Thread CPU time the content-defined cuts inside regions spent scanning
  // (Chunker::scan_cpu_seconds()).
  [[nodiscard]] double scan_cpu_seconds() const noexcept;

 private:
  struct State;
  explicit TensorAwareChunker(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Simple API: all chunks of a whole model file held in memory.
Result<std::vector<TensorChunk>> chunk_model_file(ByteSpan file, const ModelLayout& layout,
                                                  const ChunkerOptions& options);

}  // namespace strata
