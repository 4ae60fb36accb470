// Tensor-aware chunking: every region boundary (header/data, each tensor's begin and end) is a
// forced cut, and strata::Chunker places content-defined cuts inside each region, restarted at the
// region's first byte. A changed tensor therefore changes only the chunks inside its own range,
// and identical tensors at different offsets (re-packaging, frozen layers in a fine-tune) give
// identical chunks (shared/specs/models.md §0.3). A cut plan (TensorAwareChunker::CutPlan) replaces
// the content-defined cuts of the tensors it names with given offsets; those pieces are buffered
// here (one piece, at most the max chunk size) since the content-defined chunker does not see them.
#include "core/chunk/tensor_chunking.h"

#include <algorithm>
#include <string>

namespace strata {

Result<std::vector<ModelRegion>> split_model_regions(const ModelLayout& layout) {
  std::vector<std::size_t> order(layout.tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return layout.tensors[a].begin < layout.tensors[b].begin;
  });
  std::vector<ModelRegion> regions;
  std::uint64_t covered = 0;
  const auto add_gap = [&](std::uint64_t until) {
    if (until > covered) regions.push_back(ModelRegion{covered, until, -1, 0});
    covered = std::max(covered, until);
  };
  if (layout.data_begin > layout.file_size) {
    return make_error(ErrorCode::kInvalidArgument, "model layout: data begins past the file end");
  }
  add_gap(layout.data_begin);
  for (const std::size_t index : order) {
    const TensorInfo& tensor = layout.tensors[index];
    if (tensor.begin < covered || tensor.end < tensor.begin || tensor.end > layout.file_size) {
      return make_error(ErrorCode::kInvalidArgument,
                        "model layout: tensor \"" + tensor.name +
                            "\" overlaps another region or runs past the file");
    }
    add_gap(tensor.begin);
    if (tensor.end > tensor.begin) {
      regions.push_back(ModelRegion{tensor.begin, tensor.end, static_cast<std::int64_t>(index),
                                    byte_group_width(tensor.dtype)});
    }
    covered = tensor.end;
  }
  add_gap(layout.file_size);
  return regions;
}

struct TensorAwareChunker::State {
  std::vector<ModelRegion> regions;
  std::vector<std::uint64_t> tensor_begins;  // per tensor index, for the element phase
  Chunker chunker;
  std::size_t region = 0;      // index of the region being fed
  std::uint64_t position = 0;  // bytes of the file fed so far
  std::uint64_t file_size = 0;
  std::uint32_t max_size = 0;
  CutPlan plan;
  // The current region's planned cuts (absolute offsets, ending with the region's end), when
  // planned; the next one to reach, and the bytes since the last cut.
  std::optional<std::vector<std::uint64_t>> cuts;
  std::size_t next_cut = 0;
  std::vector<std::uint8_t> piece;

  explicit State(Chunker&& region_chunker) : chunker(std::move(region_chunker)) {}

  // Called when feeding reaches the first byte of `region`.
  void start_region() {
    cuts.reset();
    next_cut = 0;
    const ModelRegion& current = regions[region];
    if (!plan || current.tensor < 0) return;
    auto planned = plan(static_cast<std::size_t>(current.tensor));
    if (!planned) return;
    cuts.emplace();
    std::uint64_t last = current.begin;
    const auto add_until = [&](std::uint64_t cut) {
      while (cut - last > max_size) {
        last += max_size;
        cuts->push_back(last);
      }
      cuts->push_back(cut);
      last = cut;
    };
    for (const std::uint64_t offset : *planned) {
      if (offset == 0 || offset >= current.end - current.begin) continue;
      if (current.begin + offset <= last) continue;
      add_until(current.begin + offset);
    }
    add_until(current.end);
  }

  // Feeds `bytes` (all inside the current, planned region) and emits each finished piece.
  void feed_planned(ByteSpan bytes, const Sink& sink) {
    std::uint64_t at = position;
    while (!bytes.empty()) {
      const std::uint64_t cut = (*cuts)[next_cut];
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(cut - at, bytes.size()));
      piece.insert(piece.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
      bytes = bytes.subspan(take);
      at += take;
      if (at == cut) {
        Chunk chunk;
        chunk.offset = at - piece.size() - regions[region].begin;
        chunk.length = static_cast<std::uint32_t>(piece.size());
        emit_region_chunk(chunk, ByteSpan(piece.data(), piece.size()), sink);
        piece.clear();
        ++next_cut;
      }
    }
  }

  void emit_region_chunk(const Chunk& chunk, ByteSpan bytes, const Sink& sink) const {
    const ModelRegion& current = regions[region];
    TensorChunk out;
    out.chunk = chunk;
    out.chunk.offset += current.begin;
    out.tensor = current.tensor;
    out.element_width = current.element_width;
    if (current.element_width != 0) {
      const std::uint64_t into_tensor = out.chunk.offset - current.begin;
      const std::uint64_t misalignment = into_tensor % current.element_width;
      out.element_phase = static_cast<std::uint32_t>((current.element_width - misalignment) %
                                                     current.element_width);
    }
    sink(out, bytes);
  }
};

TensorAwareChunker::TensorAwareChunker(std::unique_ptr<State> state) : state_(std::move(state)) {}
TensorAwareChunker::TensorAwareChunker(TensorAwareChunker&&) noexcept = default;
TensorAwareChunker& TensorAwareChunker::operator=(TensorAwareChunker&&) noexcept = default;
TensorAwareChunker::~TensorAwareChunker() = default;

Result<TensorAwareChunker> TensorAwareChunker::create(const ModelLayout& layout,
                                                      const ChunkerOptions& options, CutPlan plan) {
  auto regions = split_model_regions(layout);
  if (!regions.ok()) return std::move(regions).error();
  auto chunker = Chunker::create(options);
  if (!chunker.ok()) return std::move(chunker).error();
  auto state = std::make_unique<State>(std::move(chunker).value());
  state->regions = std::move(regions).value();
  state->file_size = layout.file_size;
  state->max_size = options.max_size;
  state->plan = std::move(plan);
  if (!state->regions.empty()) state->start_region();
  return TensorAwareChunker(std::move(state));
}

Result<void> TensorAwareChunker::feed(ByteSpan piece, const Sink& sink) {
  State& state = *state_;
  if (piece.size() > state.file_size - state.position) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tensor-aware chunking: more bytes than the layout's " +
                          std::to_string(state.file_size) + "-byte file");
  }
  const Chunker::Sink forward = [&](const Chunk& chunk, ByteSpan bytes) {
    state.emit_region_chunk(chunk, bytes, sink);
  };
  while (!piece.empty()) {
    const ModelRegion& current = state.regions[state.region];
    const std::uint64_t room = current.end - state.position;
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(room, piece.size()));
    const bool region_ends = take == room;
    if (state.cuts) {
      state.feed_planned(piece.first(take), sink);
    } else if (region_ends) {
      state.chunker.finish(piece.first(take), forward);  // the forced cut at the region's end
      state.chunker.reset();
    } else {
      state.chunker.feed(piece.first(take), forward);
    }
    state.position += take;
    piece = piece.subspan(take);
    if (region_ends) {
      ++state.region;
      if (state.region < state.regions.size()) state.start_region();
    }
  }
  return {};
}

double TensorAwareChunker::scan_cpu_seconds() const noexcept {
  return state_->chunker.scan_cpu_seconds();
}

Result<void> TensorAwareChunker::finish(const Sink& /*sink*/) {
  const State& state = *state_;
  if (state.position != state.file_size) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tensor-aware chunking: file ended after " + std::to_string(state.position) +
                          " of the layout's " + std::to_string(state.file_size) + " bytes");
  }
  return {};
}

Result<std::vector<TensorChunk>> chunk_model_file(ByteSpan file, const ModelLayout& layout,
                                                  const ChunkerOptions& options) {
  if (file.size() != layout.file_size) {
    return make_error(ErrorCode::kInvalidArgument,
                      "chunk_model_file: buffer of " + std::to_string(file.size()) +
                          " bytes, layout describes " + std::to_string(layout.file_size));
  }
  auto chunker = TensorAwareChunker::create(layout, options);
  if (!chunker.ok()) return std::move(chunker).error();
  std::vector<TensorChunk> chunks;
  const TensorAwareChunker::Sink collect = [&](const TensorChunk& chunk, ByteSpan /*bytes*/) {
    chunks.push_back(chunk);
  };
  STRATA_TRY(chunker->feed(file, collect));
  STRATA_TRY(chunker->finish(collect));
  return chunks;
}

}  // namespace strata
