// Regions of a model file that tensor-aware chunking never cuts across: the header, each tensor,
// and any padding between or after tensors (shared/specs/models.md §3: GGUF pads tensors to
// general.alignment; safetensors tensors tile the buffer). The chunker itself is
// strata::TensorAwareChunker in include/strata/models.h.
#pragma once

#include <cstdint>
#include <vector>

#include "strata/models.h"

namespace strata {

struct ModelRegion {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::int64_t tensor = -1;  // index into ModelLayout::tensors, -1 for header/padding
  std::uint32_t element_width = 0;
};

// Non-empty regions tiling [0, layout.file_size) in file order. kInvalidArgument when tensors
// overlap or run past the file (a layout the parsers would have refused).
Result<std::vector<ModelRegion>> split_model_regions(const ModelLayout& layout);

}  // namespace strata
