// Base tensors of stored weight files (core/model/model_delta_base.h). The header of a base file is
// read back through the store from its first chunks (a growing prefix, as ingest reads it from
// disk) and parsed; no tensor byte is read here. Chunks are mapped to tensors by their offsets in
// the recipe: a chunk lying inside one tensor belongs to it (tensor-aware chunking never cuts
// across a tensor boundary, shared/specs/models.md §3), one inside the header to the header.
#include "core/model/model_delta_base.h"

#include <algorithm>

#include "strata/recipe.h"

namespace strata::model {
namespace {

constexpr std::size_t kFirstHeaderBytes = std::size_t{1} << 20U;
// The same ceiling ingest reads a header prefix up to (core/model/model_weight_ingest.cpp).
constexpr std::size_t kMaxHeaderBytes = std::size_t{256} << 20U;

Error base_error(const Digest& file, ErrorCode code, const std::string& message) {
  return Error{code, "delta base " + file.to_string() + ": " + message};
}

// The header of the weight file `recipe` rebuilds, read chunk by chunk from the store.
Result<ModelLayout> read_base_header(const ChunkStore& store, const Recipe& recipe,
                                     const Digest& file) {
  std::vector<std::uint8_t> prefix;
  std::size_t want = kFirstHeaderBytes;
  std::size_t next = 0;
  const auto& segments = recipe.segments();
  while (true) {
    while (prefix.size() < want && next < segments.size()) {
      auto chunk = store.read_chunk(segments[next].digest);
      if (!chunk.ok()) return base_error(file, chunk.error().code, chunk.error().message);
      prefix.insert(prefix.end(), chunk->begin(), chunk->end());
      ++next;
    }
    auto layout = parse_model_layout(prefix, recipe.total_size());
    if (layout.ok()) return layout;
    // kInvalidArgument: the header goes on past the prefix.
    if (layout.error().code != ErrorCode::kInvalidArgument || next == segments.size() ||
        want >= kMaxHeaderBytes) {
      return base_error(file, ErrorCode::kInvalidArgument,
                        "not a weight file strata can parse (" + layout.error().message + ")");
    }
    want = std::min(want * 4, kMaxHeaderBytes);
  }
}

}  // namespace

Result<ModelDeltaBase> ModelDeltaBase::build(const ChunkStore& store,
                                             std::span<const Digest> files) {
  ModelDeltaBase base;
  for (const Digest& file : files) STRATA_TRY(base.add_file(store, file));
  return base;
}

Result<void> ModelDeltaBase::add_file(const ChunkStore& store, const Digest& file) {
  auto record = store.find_layer(file);
  if (!record.ok()) return base_error(file, record.error().code, record.error().message);
  auto recipe = parse_recipe(record->recipe);
  if (!recipe.ok()) return base_error(file, recipe.error().code, recipe.error().message);
  for (const RecipeSegment& segment : recipe->segments()) {
    if (segment.kind != RecipeSegmentKind::kChunk) {
      return base_error(file, ErrorCode::kInvalidArgument,
                        "a layer with inline bytes, not a weight file stored by `model package "
                        "--store` or `model pull`");
    }
  }
  auto layout = read_base_header(store, *recipe, file);
  if (!layout.ok()) return std::move(layout).error();

  // Tensors by first byte, and which of them this file contributes (a name taken from an earlier
  // file stays with that file).
  std::vector<std::size_t> order(layout->tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return layout->tensors[a].begin < layout->tensors[b].begin;
  });
  std::vector<Tensor*> contributes(layout->tensors.size(), nullptr);
  for (const std::size_t index : order) {
    const TensorInfo& info = layout->tensors[index];
    const auto [entry, added] = tensors_.try_emplace(info.name);
    if (!added) continue;
    entry->second.dtype = info.dtype;
    entry->second.file.size = info.end - info.begin;
    contributes[index] = &entry->second;
  }
  DeltaBaseIndex::File header{layout->data_begin, {}};
  std::size_t at = 0;  // into order
  std::uint64_t offset = 0;
  for (const RecipeSegment& segment : recipe->segments()) {
    const std::uint64_t begin = offset;
    const std::uint64_t end = offset + segment.length;
    offset = end;
    if (end <= layout->data_begin) {
      header.chunks.push_back({begin, segment.length, segment.digest});
      continue;
    }
    while (at < order.size() && layout->tensors[order[at]].end <= begin) ++at;
    if (at == order.size()) continue;
    const TensorInfo& info = layout->tensors[order[at]];
    Tensor* tensor = contributes[order[at]];
    if (tensor != nullptr && info.begin <= begin && end <= info.end) {
      tensor->file.chunks.push_back({begin - info.begin, segment.length, segment.digest});
    }
  }
  const bool has_header = std::any_of(headers_.begin(), headers_.end(), [&](const auto& entry) {
    return entry.first == layout->format;
  });
  if (!has_header) headers_.emplace_back(layout->format, std::move(header));
  files_.push_back(file);
  return {};
}

Result<std::vector<Digest>> ModelDeltaBase::newest_weight_files(const ChunkStore& store,
                                                                std::size_t max) {
  auto layers = store.list_layers();
  if (!layers.ok()) return std::move(layers).error();
  std::vector<Digest> files;
  for (auto layer = layers->rbegin(); layer != layers->rend() && files.size() < max; ++layer) {
    if (layer->size > 0 && is_weight_media_type(layer->media_type)) {
      files.push_back(layer->diff_id);
    }
  }
  return files;
}

const ModelDeltaBase::Tensor* ModelDeltaBase::find(const TensorInfo& tensor) const {
  const auto found = tensors_.find(tensor.name);
  if (found == tensors_.end() || found->second.dtype != tensor.dtype) return nullptr;
  return &found->second;
}

const DeltaBaseIndex::File* ModelDeltaBase::header(ModelFormat format) const {
  for (const auto& [header_format, file] : headers_) {
    if (header_format == format) return &file;
  }
  return nullptr;
}

std::vector<std::uint64_t> ModelDeltaBase::cuts_within(const Tensor& base, std::uint64_t length) {
  std::vector<std::uint64_t> cuts;
  for (const DeltaBaseIndex::FileChunk& chunk : base.file.chunks) {
    if (chunk.offset >= length) break;
    if (chunk.offset > 0) cuts.push_back(chunk.offset);
  }
  return cuts;
}

}  // namespace strata::model
