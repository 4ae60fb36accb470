// Finding bases for a fine-tune's chunks by tensor name (DESIGN.md §7 "Finding a base": models
// know tensor names). A base is a weight file the store holds as a layer whose recipe is the
// file's chunk list (model package --store, model pull). Its header is read back from its first
// chunks and parsed (shared/specs/models.md §3); the recipe's chunk offsets then give, for every
// tensor, the chunks lying inside it with their offsets from the tensor's first byte. The new file
// is cut where its base tensors were cut (TensorAwareChunker::CutPlan), so each new chunk has one
// base chunk at the same offset of the same tensor: the XOR with it is aligned element by
// element, which is what makes a fine-tune's deltas small (every weight moved by a few ulps).
// Coding itself is core/ingest/delta_base.h's DeltaCoder, the one used for layers.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ingest/delta_base.h"
#include "strata/model_formats.h"
#include "strata/model_package.h"

namespace strata::model {

class ModelDeltaBase {
 public:
  struct Tensor {
    TensorDtype dtype = TensorDtype::kU8;
    DeltaBaseIndex::File file;  // size: the tensor's bytes; chunks: offsets from its first byte
  };

  // Base tensors from the stored weight files `files` (SHA-256 of each file); a name several
  // files hold comes from the first listed. kNotFound for a digest the store does not hold,
  // kInvalidArgument for a stored layer that is not one parsable weight file.
  static Result<ModelDeltaBase> build(const ChunkStore& store, std::span<const Digest> files);
  // The newest weight files of the store (by weight media type), newest first, at most `max`.
  static Result<std::vector<Digest>> newest_weight_files(const ChunkStore& store, std::size_t max);

  // The base tensor for `tensor` of a new file: the same name and dtype, or nullptr.
  [[nodiscard]] const Tensor* find(const TensorInfo& tensor) const;
  // The header (bytes before the first tensor) of the first base file of `format`, or nullptr.
  [[nodiscard]] const DeltaBaseIndex::File* header(ModelFormat format) const;
  // The files it was built from, in order.
  [[nodiscard]] const std::vector<Digest>& files() const noexcept { return files_; }
  [[nodiscard]] std::size_t tensors() const noexcept { return tensors_.size(); }

  // The cuts of `base` below `length` (a new tensor of that many bytes): where to cut the new
  // tensor so its chunks line up with the base's. Never more than `length` entries.
  static std::vector<std::uint64_t> cuts_within(const Tensor& base, std::uint64_t length);

 private:
  Result<void> add_file(const ChunkStore& store, const Digest& file);

  std::vector<Digest> files_;
  std::unordered_map<std::string, Tensor> tensors_;
  std::vector<std::pair<ModelFormat, DeltaBaseIndex::File>> headers_;
};

}  // namespace strata::model
