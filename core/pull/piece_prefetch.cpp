// The pipeline ahead of a chunked-layer rebuild (piece_prefetch.h): fetch in order, decode and
// check chunks in parallel, hand over in order through a bounded queue. Rests on
// oneTBB's parallel_pipeline (as core/ingest does), libzstd's frame header queries and the
// store's codecs. Facts: shared/specs/layer-formats.md §1.1, §1.5/§1.6, §2; RFC 8878 §3.1.1.1.
#include "core/pull/piece_prefetch.h"

#include <tbb/info.h>
#include <tbb/parallel_pipeline.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "core/pull/chunked_pull_checks.h"

namespace strata::fastpull::detail {
namespace {

// Prepared chunk bytes waiting in the queue: the pipeline stalls beyond this (or kQueueUnits).
constexpr std::uint64_t kQueueRawBytes = std::uint64_t{64} << 20U;
constexpr std::size_t kQueueUnits = 64;
// A waiting rebuild is woken once this many units (or raw bytes) are queued, not for each one,
// and a producer waiting for room once the queue is down to half: each side sleeps and wakes a
// few hundred times per layer instead of once per chunk (thousands of futex calls and context
// switches on the rebuild's critical path otherwise).
constexpr std::size_t kWakeUnits = 8;
constexpr std::uint64_t kWakeRawBytes = std::uint64_t{1} << 20U;
// The pipeline's token: consecutive pieces up to this many (or this many chunk bytes, one piece at
// least). Their chunks' SHA-256s are computed together (sha256_of_each interleaves two messages
// where the CPU has SHA-NI), and TBB passes a few hundred tokens per layer, not one per chunk.
constexpr std::size_t kGroupPieces = 16;
constexpr std::uint64_t kGroupRawBytes = std::uint64_t{1} << 20U;
// A chunk this pipeline decodes and checks: one that is the whole of its piece, no delta, no
// repeat of an earlier piece (docs/DELTA.md), and small enough to hold (zeros and chunks the
// store holds included).
bool prepared_ahead(const BlobPiece& piece) {
  return piece.is_chunk && !piece.chunk_prefix && !piece.delta && !piece.repeat &&
         piece.chunk_size <= kMaxPreparedChunkBytes;
}

std::string chunk_error(const BlobPiece& piece, const std::string& what) {
  return "chunk of '" + piece.name + "' at chunkOffset " + std::to_string(piece.chunk_offset) +
         " " + what;
}

// Gives `unit` a buffer of `size` bytes for its decoded chunk, not zero-filled: the decoder writes
// every byte. `size` is at most kMaxPreparedChunkBytes (prepared_ahead).
void allocate_raw(PreparedPiece& unit, std::uint64_t size) {
  unit.raw = std::make_shared_for_overwrite<std::uint8_t[]>(static_cast<std::size_t>(size));
  unit.raw_size = static_cast<std::size_t>(size);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

struct PiecePrefetch::State {
  State(const ChunkStore& store_in, const ChunkedLayerToc& layer_in, const PullPlan& plan_in,
        std::vector<std::size_t> order_in, HeldBytesSource bytes_of_in)
      : store(store_in),
        layer(layer_in),
        plan(plan_in),
        order(std::move(order_in)),
        bytes_of(std::move(bytes_of_in)) {}

  const ChunkStore& store;
  const ChunkedLayerToc& layer;
  const PullPlan& plan;
  const std::vector<std::size_t> order;
  const HeldBytesSource bytes_of;
  std::thread thread;

  // Stage 1 (serial): the next of `order` to take.
  std::size_t next_in_order = 0;
  std::atomic<bool> failed{false};  // a unit carries an error: stop taking pieces
  std::atomic<std::uint64_t> prepare_nanoseconds{0};

  // The queue to the rebuild.
  std::mutex mutex;
  std::condition_variable filled;   // the rebuild waits on it
  std::condition_variable drained;  // the pipeline's last stage waits on it for room
  std::deque<std::unique_ptr<PreparedPiece>> queue;
  // Units (and their raw bytes) handed over and not yet used: those in `queue` and those the
  // rebuild moved to `taken_units` (it reports what it used when it next takes the lock).
  std::size_t held_units = 0;
  std::uint64_t queued_raw = 0;
  bool finished = false;   // the pipeline has ended: nothing more comes
  bool cancelled = false;  // the rebuild has stopped: drop everything
  std::size_t taken = 0;   // units the rebuild has used
  bool rebuild_waiting = false;
  // The rebuild's own (no lock): units it took from the queue, and what it used of them since.
  std::deque<std::unique_ptr<PreparedPiece>> taken_units;
  std::uint64_t used_raw = 0;
  std::size_t used_units = 0;
  bool pipeline_waiting = false;
  std::uint64_t waiting_raw = 0;  // the raw bytes of the unit the pipeline waits to queue

  // Under `mutex`: whether a waiting rebuild should run now.
  // (Asked when the rebuild has used every unit it took: `queued_raw` is then the queue's.)
  [[nodiscard]] bool worth_waking_rebuild() const {
    return finished || cancelled || pipeline_waiting || queue.size() >= kWakeUnits ||
           queued_raw >= kWakeRawBytes || (!queue.empty() && queue.size() >= order.size() - taken);
  }
  // Under `mutex`: whether a unit of `raw` bytes may be queued now, and, once the pipeline had to
  // wait, whether enough room was made for it to go on.
  [[nodiscard]] bool room_for(std::uint64_t raw) const {
    return cancelled || held_units == 0 ||
           (held_units < kQueueUnits && queued_raw + raw <= kQueueRawBytes);
  }
  [[nodiscard]] bool room_made() const {
    return cancelled || held_units == 0 ||
           (held_units <= kQueueUnits / 2 && queued_raw + waiting_raw <= kQueueRawBytes &&
            queued_raw <= kQueueRawBytes / 2);
  }

  using Group = std::vector<std::unique_ptr<PreparedPiece>>;

  void run();
  std::unique_ptr<PreparedPiece> take_next();
  Group* take_group();
  void prepare_group(Group& group) const;
  // Decodes one piece that is not a chunk the store holds (zeros are ready as they are). A chunk
  // whose SHA-256 is still to be checked is added to `unchecked` (ready, its digest compared by
  // check_digests).
  void prepare(PreparedPiece& unit, std::vector<PreparedPiece*>& unchecked) const;
  void prepare_fetched(PreparedPiece& unit, const BlobPiece& piece,
                       std::vector<PreparedPiece*>& unchecked) const;
  // Decodes a chunk the store holds from its stored form (or reports why it could not be read).
  void prepare_held(PreparedPiece& unit, Result<StoredChunkView> stored) const;
  void check_digests(std::span<PreparedPiece* const> unchecked) const;
  bool push(std::unique_ptr<PreparedPiece> unit);
  void add_time(std::chrono::steady_clock::time_point start) {
    prepare_nanoseconds.fetch_add(static_cast<std::uint64_t>(seconds_since(start) * 1e9));
  }
};

std::unique_ptr<PreparedPiece> PiecePrefetch::State::take_next() {
  auto unit = std::make_unique<PreparedPiece>();
  unit->index = order[next_in_order++];
  const BlobPiece& piece = plan.pieces[unit->index];
  if (!piece.local && !piece.delta && !piece.repeat) {  // those fetch nothing from the blob
    auto held = bytes_of(piece.offset, piece.end);
    if (held) {
      unit->fetched = std::move(*held);
    } else {
      unit->error = std::move(held).error();
      failed.store(true);
    }
  }
  return unit;
}

PiecePrefetch::State::Group* PiecePrefetch::State::take_group() {
  auto group = std::make_unique<Group>();
  std::uint64_t raw = 0;
  do {
    auto unit = take_next();
    const BlobPiece& piece = plan.pieces[unit->index];
    if (prepared_ahead(piece)) raw += piece.chunk_size;
    group->push_back(std::move(unit));
  } while (group->size() < kGroupPieces && raw < kGroupRawBytes && next_in_order < order.size() &&
           !failed.load());
  return group.release();
}

void PiecePrefetch::State::prepare_group(Group& group) const {
  // The group's chunks the store holds are read together (ChunkStore::read_stored_chunks).
  std::vector<Digest> held;
  std::vector<const PreparedPiece*> held_pieces;
  for (const auto& unit : group) {
    const BlobPiece& piece = plan.pieces[unit->index];
    if (!unit->error && prepared_ahead(piece) && piece.local && !piece.zeros) {
      held.push_back(piece.digest);
      held_pieces.push_back(unit.get());
    }
  }
  auto stored = store.read_stored_chunks(held);
  std::vector<PreparedPiece*> unchecked;
  unchecked.reserve(group.size());
  std::size_t next_held = 0;
  for (const auto& unit : group) {
    if (next_held < held_pieces.size() && held_pieces[next_held] == unit.get()) {
      prepare_held(*unit, std::move(stored[next_held++]));
    } else {
      prepare(*unit, unchecked);
    }
  }
  check_digests(unchecked);
}

void PiecePrefetch::State::check_digests(std::span<PreparedPiece* const> unchecked) const {
  std::vector<ByteSpan> chunks;
  chunks.reserve(unchecked.size());
  for (const PreparedPiece* unit : unchecked) chunks.push_back(unit->raw_bytes());
  std::vector<Digest> digests(unchecked.size());
  sha256_of_each(chunks, digests);
  for (std::size_t i = 0; i < unchecked.size(); ++i) {
    PreparedPiece& unit = *unchecked[i];
    const BlobPiece& piece = plan.pieces[unit.index];
    if (digests[i] == piece.digest) continue;
    unit.ready = false;
    unit.raw.reset();
    unit.error =
        make_error(ErrorCode::kDigestMismatch,
                   chunk_error(piece, "does not match its digest " + piece.digest.to_string()));
  }
}

void PiecePrefetch::State::prepare(PreparedPiece& unit,
                                   std::vector<PreparedPiece*>& unchecked) const {
  const BlobPiece& piece = plan.pieces[unit.index];
  if (unit.error || !prepared_ahead(piece)) return;
  if (piece.local && piece.zeros) {
    unit.ready = true;
  } else if (!piece.local) {
    prepare_fetched(unit, piece, unchecked);
  }
  // (Other chunks the store holds are read and decoded by prepare_group, with their group.)
}

// The store's record checksum is checked, not the SHA-256: the store checked that when the chunk
// was put, and the tar's SHA-256 (the diff_id) covers these bytes again.
void PiecePrefetch::State::prepare_held(PreparedPiece& unit, Result<StoredChunkView> stored) const {
  const BlobPiece& piece = plan.pieces[unit.index];
  if (!stored) {
    unit.error = std::move(stored).error();
    return;
  }
  Result<void> decoded =
      make_error(ErrorCode::kCorruptInput,
                 "its record holds " + std::to_string(stored->raw_length) + " bytes");
  if (stored->raw_length == piece.chunk_size) {
    allocate_raw(unit, piece.chunk_size);
    decoded = decompress_chunk_into(stored->codec, stored->bytes, unit.raw_span());
  }
  if (!decoded) {
    unit.raw.reset();
    unit.error = make_error(ErrorCode::kCorruptInput,
                            "stored chunk " + piece.digest.to_string() + " of '" + piece.name +
                                "' does not decode to its " + std::to_string(piece.chunk_size) +
                                " bytes: " + decoded.error().message);
    return;
  }
  unit.ready = true;
}

// The first frame is the chunk's own when it declares the chunk's size (or gets it inserted): it
// is decoded in one call, checked, and kept to be stored as fetched; anything after it must decode
// to nothing. Otherwise the piece is decoded as a whole (zstd frames or gzip members) and its
// chunk compressed by the rebuild.
void PiecePrefetch::State::prepare_fetched(PreparedPiece& unit, const BlobPiece& piece,
                                           std::vector<PreparedPiece*>& unchecked) const {
  const ByteSpan bytes = unit.fetched.bytes;
  const auto fail = [&](ErrorCode code, const std::string& what) {
    unit.error = make_error(code, chunk_error(piece, what));
  };
  if (layer.format != ChunkedFormat::kEstargz) {
    const std::size_t frame = ZSTD_findFrameCompressedSize(bytes.data(), bytes.size());
    const unsigned long long declared = ZSTD_getFrameContentSize(bytes.data(), bytes.size());
    const bool sized = declared == piece.chunk_size;
    if (ZSTD_isError(frame) == 0U &&
        (sized || (declared == ZSTD_CONTENTSIZE_UNKNOWN &&
                   with_content_size(bytes.first(frame), piece.chunk_size, unit.sized_frame)))) {
      const ByteSpan whole = sized ? bytes.first(frame) : ByteSpan(unit.sized_frame);
      allocate_raw(unit, piece.chunk_size);
      auto raw = decompress_chunk_into(Codec::kZstd, whole, unit.raw_span());
      if (raw) {
        auto rest = decode_blob_piece(layer.format, bytes.subspan(frame), 0, piece.offset + frame,
                                      [](ByteSpan) { return Result<void>{}; });
        if (!rest) {
          unit.error = std::move(rest).error();
          return;
        }
        unit.frame = whole;
        unit.ready = true;
        unchecked.push_back(&unit);
        return;
      }
      unit.raw.reset();
      if (sized) {
        unit.error = make_error(raw.error().code, "chunk of '" + piece.name + "' at chunkOffset " +
                                                      std::to_string(piece.chunk_offset) + ": " +
                                                      raw.error().message);
        return;
      }
    }
  }
  unit.sized_frame.clear();
  allocate_raw(unit, piece.chunk_size);
  std::uint64_t written = 0;
  auto decoded = decode_blob_piece(
      layer.format, bytes, piece.chunk_size, piece.offset, [&](ByteSpan out) -> Result<void> {
        if (out.size() > piece.chunk_size - written) {
          return make_error(ErrorCode::kCorruptInput,
                            chunk_error(piece, "decompresses to more than " +
                                                   std::to_string(piece.chunk_size) + " bytes"));
        }
        std::copy(out.begin(), out.end(), unit.raw.get() + written);
        written += out.size();
        return {};
      });
  if (!decoded) {
    unit.raw.reset();
    unit.error = std::move(decoded).error();
    return;
  }
  if (written != piece.chunk_size) {
    unit.raw.reset();
    return fail(ErrorCode::kCorruptInput, "decompresses to " + std::to_string(written) +
                                              " bytes, not " + std::to_string(piece.chunk_size));
  }
  unit.ready = true;
  unchecked.push_back(&unit);
}

bool PiecePrefetch::State::push(std::unique_ptr<PreparedPiece> unit) {
  if (unit->error) failed.store(true);
  std::unique_lock lock(mutex);
  if (!room_for(unit->raw_size)) {
    pipeline_waiting = true;
    waiting_raw = unit->raw_size;
    if (rebuild_waiting) filled.notify_one();
    drained.wait(lock, [&] { return room_made(); });
    pipeline_waiting = false;
  }
  if (cancelled) return false;
  queued_raw += unit->raw_size;
  ++held_units;
  queue.push_back(std::move(unit));
  if (rebuild_waiting && worth_waking_rebuild()) filled.notify_one();
  return true;
}

void PiecePrefetch::State::run() {
  const auto threads = static_cast<std::size_t>(std::max(1, tbb::info::default_concurrency()));
  try {
    tbb::parallel_pipeline(
        2 * threads + 2,
        tbb::make_filter<void, Group*>(tbb::filter_mode::serial_in_order,
                                       [&](tbb::flow_control& control) -> Group* {
                                         bool stop = failed.load() || next_in_order >= order.size();
                                         if (!stop) {
                                           std::lock_guard lock(mutex);
                                           stop = cancelled;
                                         }
                                         if (stop) {
                                           control.stop();
                                           return nullptr;
                                         }
                                         return take_group();
                                       }) &
            tbb::make_filter<Group*, Group*>(tbb::filter_mode::parallel,
                                             [&](Group* group) {
                                               const auto start = std::chrono::steady_clock::now();
                                               prepare_group(*group);
                                               add_time(start);
                                               return group;
                                             }) &
            tbb::make_filter<Group*, void>(tbb::filter_mode::serial_in_order, [&](Group* group) {
              const std::unique_ptr<Group> owned(group);
              for (auto& unit : *owned) {
                if (!push(std::move(unit))) break;
              }
            }));
  } catch (const std::exception& caught) {
    auto unit = std::make_unique<PreparedPiece>();
    unit->index = order.size();
    unit->error = make_error(ErrorCode::kInternal, std::string("pull pipeline: ") + caught.what());
    std::lock_guard lock(mutex);
    queue.push_back(std::move(unit));
  }
  std::lock_guard lock(mutex);
  finished = true;
  filled.notify_all();
}

PiecePrefetch::PiecePrefetch(const ChunkStore& store, const ChunkedLayerToc& layer,
                             const PullPlan& plan, std::vector<std::size_t> order,
                             HeldBytesSource bytes_of)
    : state_(std::make_unique<State>(store, layer, plan, std::move(order), std::move(bytes_of))) {
  state_->thread = std::thread([state = state_.get()] { state->run(); });
}

PiecePrefetch::~PiecePrefetch() {
  {
    std::lock_guard lock(state_->mutex);
    state_->cancelled = true;
    state_->drained.notify_all();
    state_->filled.notify_all();
  }
  state_->thread.join();
}

Result<std::unique_ptr<PreparedPiece>> PiecePrefetch::next(std::size_t index) {
  State& state = *state_;
  if (state.taken_units.empty()) {
    // Everything taken last time is used: report it, and take what the queue holds now (one lock
    // for several units, so the pipeline's pushes rarely find the lock held).
    std::unique_lock lock(state.mutex);
    state.queued_raw -= state.used_raw;
    state.held_units -= state.used_units;
    state.taken += state.used_units;
    state.used_raw = 0;
    state.used_units = 0;
    if (state.pipeline_waiting && state.room_made()) state.drained.notify_one();
    if (state.queue.empty() || !state.worth_waking_rebuild()) {
      state.rebuild_waiting = true;
      state.filled.wait(lock, [&] {
        return (!state.queue.empty() && state.worth_waking_rebuild()) || state.finished;
      });
      state.rebuild_waiting = false;
    }
    if (state.queue.empty()) {
      return make_error(ErrorCode::kInternal, "pull pipeline ended before piece " +
                                                  std::to_string(index) + " of the plan");
    }
    state.taken_units.swap(state.queue);
  }
  std::unique_ptr<PreparedPiece> unit = std::move(state.taken_units.front());
  state.taken_units.pop_front();
  state.used_raw += unit->raw_size;
  ++state.used_units;
  if (unit->error) return std::move(*unit->error);
  if (unit->index != index) {
    return make_error(ErrorCode::kInternal, "pull pipeline gave piece " +
                                                std::to_string(unit->index) + " for piece " +
                                                std::to_string(index));
  }
  return unit;
}

double PiecePrefetch::prepare_seconds() const {
  return static_cast<double>(state_->prepare_nanoseconds.load()) / 1e9;
}

// The store's zstd codec wants the content size in the frame header; streaming encoders (c/storage,
// ctr-remote) leave it out. RFC 8878 §3.1.1.1: the header is magic, descriptor, window descriptor
// (present when Single_Segment_flag is 0, as it is without a content size), dictionary id, then
// Frame_Content_Size (2 bytes holding size - 256, 4 or 8, as FCS_Field_Size says). Inserting it
// leaves the blocks as they were fetched: no recompression.
bool with_content_size(ByteSpan frame, std::uint64_t size, std::vector<std::uint8_t>& out) {
  constexpr std::size_t kMagicBytes = 4;
  if (frame.size() < kMagicBytes + 2) return false;
  const std::uint8_t descriptor = frame[kMagicBytes];
  const bool single_segment = (descriptor & 0x20U) != 0;
  const unsigned size_flag = descriptor >> 6U;
  const unsigned dictionary_flag = descriptor & 0x03U;
  if (single_segment || size_flag != 0 || dictionary_flag != 0 || (descriptor & 0x08U) != 0) {
    return false;
  }
  unsigned new_flag = 3;
  std::size_t field_bytes = 8;
  std::uint64_t value = size;
  if (size >= 256 && size <= 65535 + 256) {
    new_flag = 1;
    field_bytes = 2;
    value = size - 256;
  } else if (size <= 0xFFFFFFFFU) {
    new_flag = 2;
    field_bytes = 4;
  }
  const std::size_t header = kMagicBytes + 2;  // magic, descriptor, window descriptor
  out.assign(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(header));
  out[kMagicBytes] = static_cast<std::uint8_t>(descriptor | (new_flag << 6U));
  for (std::size_t i = 0; i < field_bytes; ++i) {
    out.push_back(static_cast<std::uint8_t>(value >> (8U * i)));
  }
  out.insert(out.end(), frame.begin() + static_cast<std::ptrdiff_t>(header), frame.end());
  return true;
}

}  // namespace strata::fastpull::detail
