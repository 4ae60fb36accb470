// Entry content to chunks (core/chunk/entry_content_chunker.h). A file that may be a model is held
// back until one of three things happens: its first 16 bytes are neither safetensors nor GGUF
// (plain), its header parses (tensor-aware), or the parser refuses it or it outgrows the cap
// (plain). The held bytes are then fed to the chosen chunker at once; since both chunkers give the
// same cuts for any split of their input (DESIGN.md §3 "Chunker exactness"), holding back changes
// no cut.
#include "core/chunk/entry_content_chunker.h"

#include <algorithm>
#include <optional>

namespace strata {
namespace {

// detect_model_format() decides from this many bytes.
constexpr std::size_t kSniffBytes = 16;
// First header parse once this much is held (most headers are smaller); each failed "need more"
// attempt doubles it, so a large GGUF vocabulary is parsed a logarithmic number of times.
constexpr std::uint64_t kFirstParseBytes = 64U << 10U;
// Held bytes beyond this are released once the decision is made.
constexpr std::size_t kKeptHoldCapacity = 4U << 20U;

enum class Mode : std::uint8_t { kPlain, kSniffing, kModel };

}  // namespace

struct EntryContentChunker::State {
  EntryChunkingOptions options;
  ModelParseLimits limits;
  Chunker plain;
  Mode mode = Mode::kPlain;
  std::vector<std::uint8_t> held;
  std::uint64_t entry_size = 0;
  std::uint64_t next_attempt = 0;
  std::optional<TensorAwareChunker> model;
  std::uint64_t model_files = 0;
  double dropped_model_scan_seconds = 0;  // of the tensor-aware chunkers already dropped

  State(const EntryChunkingOptions& chosen, Chunker&& chunker)
      : options(chosen), plain(std::move(chunker)) {
    limits.max_header_bytes = chosen.max_model_header_bytes;
  }

  // A first piece that shows the file is no model decides at once: nothing is held back.
  void sniff_first_piece(ByteSpan piece) {
    if (mode == Mode::kSniffing && held.empty() && piece.size() >= kSniffBytes &&
        detect_model_format(piece) == ModelFormat::kUnknown) {
      mode = Mode::kPlain;
    }
  }

  void drop_model() {
    if (model) dropped_model_scan_seconds += model->scan_cpu_seconds();
    model.reset();
  }

  [[nodiscard]] std::uint64_t hold_cap() const {
    return options.max_model_header_bytes + 8;  // + the safetensors length prefix
  }

  Result<void> feed_chosen(ByteSpan bytes, const EntryChunkSink& sink) {
    if (mode == Mode::kModel) {
      return model->feed(bytes, [&sink](const TensorChunk& chunk, ByteSpan chunk_bytes) {
        sink(chunk_bytes, chunk.element_width, chunk.element_phase);
      });
    }
    plain.feed(bytes, [&sink](const Chunk&, ByteSpan chunk_bytes) { sink(chunk_bytes, 0, 0); });
    return {};
  }

  // Leaves kSniffing for `chosen` and feeds it what was held.
  Result<void> release_held(Mode chosen, const EntryChunkSink& sink) {
    mode = chosen;
    const Result<void> fed = feed_chosen(held, sink);
    held.clear();
    if (held.capacity() > kKeptHoldCapacity) held.shrink_to_fit();
    return fed;
  }

  // Decides plain or model once enough is held; `at_end`: no more bytes will come.
  Result<void> try_decide(bool at_end, const EntryChunkSink& sink) {
    if (held.size() < kSniffBytes && !at_end) return {};
    if (detect_model_format(held) == ModelFormat::kUnknown) return release_held(Mode::kPlain, sink);
    const bool complete = held.size() >= entry_size;
    if (!at_end && !complete && held.size() < next_attempt) return {};
    auto layout = parse_model_layout(held, entry_size, limits);
    if (layout.ok()) {
      auto chunker = TensorAwareChunker::create(*layout, options.chunker);
      if (!chunker.ok()) return release_held(Mode::kPlain, sink);
      model.emplace(std::move(chunker).value());
      ++model_files;
      return release_held(Mode::kModel, sink);
    }
    // kInvalidArgument: the header goes on past what is held.
    const bool wants_more = layout.error().code == ErrorCode::kInvalidArgument;
    if (wants_more && !at_end && !complete && held.size() < hold_cap()) {
      next_attempt = std::min<std::uint64_t>(2 * held.size(), hold_cap());
      return {};
    }
    return release_held(Mode::kPlain, sink);
  }
};

EntryContentChunker::EntryContentChunker(std::unique_ptr<State> state) : state_(std::move(state)) {}
EntryContentChunker::EntryContentChunker(EntryContentChunker&&) noexcept = default;
EntryContentChunker& EntryContentChunker::operator=(EntryContentChunker&&) noexcept = default;
EntryContentChunker::~EntryContentChunker() = default;

Result<EntryContentChunker> EntryContentChunker::create(const EntryChunkingOptions& options) {
  auto chunker = Chunker::create(options.chunker);
  if (!chunker.ok()) return std::move(chunker).error();
  return EntryContentChunker(std::make_unique<State>(options, std::move(chunker).value()));
}

void EntryContentChunker::begin_entry(std::uint64_t size, bool regular_file) {
  State& state = *state_;
  state.entry_size = size;
  state.held.clear();
  state.drop_model();
  const bool may_be_model = state.options.model_aware && regular_file && size >= kSniffBytes;
  state.mode = may_be_model ? Mode::kSniffing : Mode::kPlain;
  state.next_attempt = std::min(size, kFirstParseBytes);
}

void EntryContentChunker::begin_plain_stream() {
  begin_entry(0, false);
}

Result<void> EntryContentChunker::feed(ByteSpan piece, const EntryChunkSink& sink) {
  State& state = *state_;
  state.sniff_first_piece(piece);
  if (state.mode != Mode::kSniffing) return state.feed_chosen(piece, sink);
  state.held.insert(state.held.end(), piece.begin(), piece.end());
  return state.try_decide(false, sink);
}

Result<std::size_t> EntryContentChunker::feed_certain(ByteSpan piece, const EntryChunkSink& sink) {
  State& state = *state_;
  state.sniff_first_piece(piece);
  if (state.mode != Mode::kPlain) {
    STRATA_TRY(feed(piece, sink));
    return piece.size();
  }
  return state.plain.feed_certain(piece,
                                  [&sink](const Chunk&, ByteSpan bytes) { sink(bytes, 0, 0); });
}

Result<void> EntryContentChunker::finish(ByteSpan last_piece, const EntryChunkSink& sink) {
  State& state = *state_;
  state.sniff_first_piece(last_piece);
  if (state.mode != Mode::kPlain) {
    STRATA_TRY(feed(last_piece, sink));
    return finish(sink);
  }
  state.plain.finish(last_piece, [&sink](const Chunk&, ByteSpan bytes) { sink(bytes, 0, 0); });
  state.plain.reset();
  return {};
}

Result<void> EntryContentChunker::finish(const EntryChunkSink& sink) {
  State& state = *state_;
  if (state.mode == Mode::kSniffing) STRATA_TRY(state.try_decide(true, sink));
  Result<void> finished;
  if (state.mode == Mode::kModel) {
    finished = state.model->finish([&sink](const TensorChunk& chunk, ByteSpan bytes) {
      sink(bytes, chunk.element_width, chunk.element_phase);
    });
    state.drop_model();
  } else {
    state.plain.finish([&sink](const Chunk&, ByteSpan bytes) { sink(bytes, 0, 0); });
    state.plain.reset();
  }
  state.mode = Mode::kPlain;
  return finished;
}

double EntryContentChunker::scan_cpu_seconds() const noexcept {
  const State& state = *state_;
  const double model = state.model ? state.model->scan_cpu_seconds() : 0;
  return state.plain.scan_cpu_seconds() + state.dropped_model_scan_seconds + model;
}

std::uint64_t EntryContentChunker::model_files() const noexcept {
  return state_->model_files;
}

}  // namespace strata
