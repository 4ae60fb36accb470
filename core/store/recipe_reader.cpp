// The one recipe reader (core/store/recipe_reader.h): cuts a recipe's segments into batches,
// fetches and checks each batch's chunks (on the caller's thread, or read ahead on worker threads),
// and hands the batches' bytes out in recipe order. A batch is handed out only once all of it is
// fetched, so the bytes given out before an error are those of the whole batches before it. Rests
// on the recipe invariant of DESIGN.md §3 (the pieces in order are the tar) and on the store's
// record checks (shared/specs/reliability.md): what the store does not check, the fetch here does.
#include "core/store/recipe_reader.h"

#include <tbb/info.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace strata {
namespace {

Result<void> check_length(const RecipeSegment& segment, std::size_t size) {
  if (size == segment.length) return {};
  return make_error(ErrorCode::kCorruptInput,
                    "chunk " + segment.digest.to_string() + " has " + std::to_string(size) +
                        " bytes, the recipe expects " + std::to_string(segment.length));
}

}  // namespace

Result<RecipeChunk> fetch_store_chunk(const ChunkStore& store, const RecipeSegment& segment,
                                      StoreChunkCheck check) {
  RecipeChunk chunk;
  if (check == StoreChunkCheck::kFull) {
    auto bytes = store.read_chunk(segment.digest);
    if (!bytes.ok()) return std::move(bytes).error();
    STRATA_TRY(check_length(segment, bytes->size()));
    chunk.owned = std::move(bytes).value();
    return chunk;
  }
  auto stored = store.read_stored_chunk(segment.digest);
  if (!stored) return std::move(stored).error();
  auto raw = decompress_chunk(stored->codec, stored->bytes, segment.length);
  if (!raw || raw->size() != segment.length) {
    return make_error(ErrorCode::kCorruptInput,
                      "chunk " + segment.digest.to_string() + " does not decode to the " +
                          std::to_string(segment.length) + " bytes the recipe expects" +
                          (raw ? std::string() : ": " + raw.error().message));
  }
  chunk.owned = std::move(*raw);
  if (stored->codec == Codec::kZstd) chunk.frame = std::move(stored->bytes);
  return chunk;
}

RecipeChunkFetch store_chunks(const ChunkStore& store, StoreChunkCheck check) {
  return [&store, check](const RecipeSegment& segment) {
    return fetch_store_chunk(store, segment, check);
  };
}

RecipeChunkFetch provided_chunks(const ChunkProvider& provider) {
  return [&provider](const RecipeSegment& segment) -> Result<RecipeChunk> {
    auto bytes = provider(segment.digest, segment.length);
    if (!bytes.ok()) return std::move(bytes).error();
    STRATA_TRY(check_length(segment, bytes->size()));
    const Digest actual = sha256_of(*bytes);
    if (actual != segment.digest) {
      return make_error(ErrorCode::kDigestMismatch,
                        "chunk " + segment.digest.to_string() + " hashes to " + actual.to_string());
    }
    RecipeChunk chunk;
    chunk.borrowed = *bytes;
    return chunk;
  };
}

RecipeReader::RecipeReader(const Recipe& recipe, RecipeChunkFetch fetch,
                           RecipeReaderOptions options)
    : recipe_(recipe), fetch_(std::move(fetch)), options_(options) {
  if (options_.read_ahead == 0) return;
  unsigned workers =
      options_.fetch_threads != 0 ? options_.fetch_threads : std::max(1U, options_.read_ahead - 1);
  // TBB lends at most default_concurrency - 1 workers (the caller's core is the last one); asking
  // for more only makes TBB warn on stderr.
  const int lendable = tbb::info::default_concurrency() - 1;
  workers = std::min(workers, static_cast<unsigned>(std::max(1, lendable)));
  // No slot reserved for the caller: it never joins the arena; it fetches batches no worker has
  // claimed yet while it waits (take_batch), so with one worker both cores still fetch.
  arena_ = std::make_unique<tbb::task_arena>(static_cast<int>(workers), 0);
}

RecipeReader::~RecipeReader() {
  drain();
  while (tasks_running_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

void RecipeReader::drain() {
  for (auto& pending : pending_) {
    if (!pending->claimed.exchange(true)) {
      pending->done.set_value();
    } else {
      pending->finished.wait();
    }
  }
  pending_.clear();
}

Result<ByteSpan> RecipeReader::next() {
  const auto& segments = recipe_.segments();
  for (;;) {
    if (!failure_.ok()) return failure_.error();
    if (current_batch_ && segment_ == current_batch_->end_segment) {
      retired_.push_back(std::move(current_batch_));
      if (retired_.size() > 2) retired_.pop_front();
    }
    if (!current_batch_) {
      current_batch_ = take_batch();
      if (!current_batch_) return ByteSpan();
      if (!current_batch_->status.ok()) {
        failure_ = current_batch_->status.error();  // every later call fails the same way
        current_batch_.reset();
        drain();
        return failure_.error();
      }
      segment_ = current_batch_->first_segment;
    }
    const RecipeSegment& segment = segments[segment_];
    const ByteSpan piece =
        segment.kind == RecipeSegmentKind::kRaw
            ? recipe_.raw_of(segment)
            : current_batch_->chunks[segment_ - current_batch_->first_segment].bytes();
    ++segment_;
    if (!piece.empty()) return piece;
  }
}

Result<std::size_t> RecipeReader::read(MutableByteSpan out) {
  if (current_.empty()) {
    auto piece = next();
    if (!piece) return std::move(piece).error();
    current_ = *piece;
  }
  const std::size_t n = std::min(out.size(), current_.size());
  std::copy_n(current_.begin(), n, out.begin());
  current_ = current_.subspan(n);
  return n;
}

Result<void> RecipeReader::write_to(const ByteSink& sink) {
  for (;;) {
    auto piece = next();
    if (!piece) return std::move(piece).error();
    if (piece->empty()) return {};
    STRATA_TRY(sink(*piece));
  }
}

std::vector<std::uint8_t> RecipeReader::frame_of(const Digest& digest) const {
  const auto search = [&](const Batch& batch) -> const std::vector<std::uint8_t>* {
    for (std::size_t i = batch.first_segment; i < batch.end_segment; ++i) {
      const RecipeSegment& segment = recipe_.segments()[i];
      if (segment.kind == RecipeSegmentKind::kChunk && segment.digest == digest) {
        return &batch.chunks[i - batch.first_segment].frame;
      }
    }
    return nullptr;
  };
  if (current_batch_) {
    if (const auto* frame = search(*current_batch_)) return *frame;
  }
  for (auto batch = retired_.rbegin(); batch != retired_.rend(); ++batch) {
    if (const auto* frame = search(**batch)) return *frame;
  }
  return {};
}

std::unique_ptr<RecipeReader::Batch> RecipeReader::cut_batch() {
  const auto& segments = recipe_.segments();
  if (next_segment_ >= segments.size()) return nullptr;
  auto batch = std::make_unique<Batch>();
  batch->first_segment = next_segment_;
  std::uint64_t bytes = 0;
  do {
    bytes += segments[next_segment_].length;
    ++next_segment_;
  } while (next_segment_ < segments.size() && bytes < options_.batch_bytes);
  batch->end_segment = next_segment_;
  return batch;
}

void RecipeReader::fetch_batch(Batch& batch) const {
  batch.chunks.resize(batch.end_segment - batch.first_segment);
  for (std::size_t i = batch.first_segment; i < batch.end_segment; ++i) {
    const RecipeSegment& segment = recipe_.segments()[i];
    if (segment.kind != RecipeSegmentKind::kChunk) continue;
    auto chunk = fetch_(segment);
    if (!chunk) {
      batch.status = std::move(chunk).error();
      return;
    }
    batch.chunks[i - batch.first_segment] = std::move(chunk).value();
  }
}

bool RecipeReader::claim_and_fetch(const RecipeReader* reader, Pending& pending) {
  if (pending.claimed.exchange(true)) return false;
  reader->fetch_batch(*pending.batch);  // the reader is alive: drain() had not claimed this one
  pending.done.set_value();
  return true;
}

void RecipeReader::fill_pipeline() {
  while (pending_.size() < options_.read_ahead) {
    auto batch = cut_batch();
    if (!batch) return;
    auto pending = std::make_shared<Pending>();
    pending->batch = std::move(batch);
    pending->finished = pending->done.get_future().share();
    pending_.push_back(pending);
    // A task that loses the claim touches only `pending` (which it shares), never the reader:
    // drain() claims every batch no thread has started before the reader goes away.
    tasks_running_.fetch_add(1, std::memory_order_relaxed);
    arena_->enqueue([this, pending] {
      claim_and_fetch(this, *pending);
      tasks_running_.fetch_sub(1, std::memory_order_release);  // the reader waits for this
    });
  }
}

std::unique_ptr<RecipeReader::Batch> RecipeReader::take_batch() {
  if (options_.read_ahead == 0) {
    auto batch = cut_batch();
    if (batch) fetch_batch(*batch);
    return batch;
  }
  fill_pipeline();
  if (pending_.empty()) return nullptr;
  const std::shared_ptr<Pending> front = pending_.front();
  while (front->finished.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    // Help instead of waiting: the first batch no worker has started (the front one included).
    const auto unclaimed = std::find_if(pending_.begin(), pending_.end(), [](const auto& pending) {
      return !pending->claimed.load(std::memory_order_relaxed);
    });
    if (unclaimed == pending_.end()) {
      front->finished.wait();
    } else {
      claim_and_fetch(this, **unclaimed);  // a worker may win the claim: then look again
    }
  }
  pending_.pop_front();
  fill_pipeline();
  return std::move(front->batch);
}

Result<StoredLayerReplay> replay_stored_layer(const ChunkStore& store, const Digest& layer,
                                              const ByteSink& sink, unsigned read_ahead) {
  auto record = store.find_layer(layer);
  if (!record.ok()) return std::move(record).error();
  auto parsed = parse_recipe(record->recipe);
  if (!parsed.ok()) {
    return make_error(parsed.error().code, "recipe of layer " + record->diff_id.to_string() + ": " +
                                               parsed.error().message);
  }
  RecipeReaderOptions options;
  options.read_ahead = read_ahead;
  RecipeReader reader(*parsed, store_chunks(store, StoreChunkCheck::kFull), options);
  Sha256 hasher;
  StoredLayerReplay replay;
  STRATA_TRY(reader.write_to([&](ByteSpan bytes) -> Result<void> {
    hasher.update(bytes);
    replay.tar_bytes += bytes.size();
    return sink(bytes);
  }));
  replay.diff_id = hasher.finish();
  if (replay.diff_id != record->diff_id) {
    return make_error(ErrorCode::kDigestMismatch, "exported tar of layer " +
                                                      record->diff_id.to_string() + " hashes to " +
                                                      replay.diff_id.to_string());
  }
  return replay;
}

}  // namespace strata
