// The fetched bytes of a chunked-layer pull, batch by batch (batched_blob.h). Requests run on
// std::async threads; one mutex guards which batches are held and how far each streamed batch has
// arrived, and one condition variable wakes the asker when bytes arrive or a request ends. A
// streamed batch's buffer is allocated whole when its request starts (its limit bounds it) and
// filled front to back by the streamer's sink, so the asker reads only below the arrived mark
// while the sink writes above it. Rests on strata/store_pull.h and the standard library.
#include "core/pull/batched_blob.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

namespace strata::fastpull::detail {

// Buffers for streamed units, used again, and the bound on them. A unit's buffer comes back when
// the last piece pinning it is dropped, so later units are written into pages already mapped
// (fresh memory costs a page fault per 4 KiB: ~12 K faults, tens of ms of CPU, for a 48 MiB
// layer). At most kMaxStreamedUnits are out at once: the stream's writer waits in take() for one to
// come back, so a streamed request may be long (few requests) while memory stays a few MiB. That
// cannot deadlock: every unit out is the asker's current one, the one being written, or pinned by
// pieces ahead of the asker in the pipeline, which the rebuild stores without new bytes. Capacities
// are rounded up to kGrain so units of different sizes share buffers. (Without threads, where the
// asker writes a batch before it reads any of it, there is no bound: the batch's limit is one.)
class BatchedBlob::BufferPool {
 public:
  explicit BufferPool(std::size_t max_live) : max_live_(max_live) {}

  struct Buffer {
    std::unique_ptr<std::uint8_t[]> bytes;
    std::uint64_t capacity = 0;
  };

  // A buffer of at least `size` bytes once fewer than max_live_ are out; empty once closed.
  Buffer take(std::uint64_t size) {
    std::unique_lock lock(mutex_);
    returned_.wait(lock, [&] { return closed_ || live_ < max_live_; });
    if (closed_) return {};
    ++live_;
    const auto fits = std::find_if(kept_.begin(), kept_.end(),
                                   [&](const Buffer& kept) { return kept.capacity >= size; });
    if (fits != kept_.end()) {
      Buffer taken = std::move(*fits);
      kept_.erase(fits);
      return taken;
    }
    lock.unlock();
    const std::uint64_t capacity = (size + kGrain - 1) / kGrain * kGrain;
    return Buffer{std::make_unique_for_overwrite<std::uint8_t[]>(capacity), capacity};
  }

  void give(Buffer buffer) {
    {
      std::lock_guard lock(mutex_);
      --live_;
      if (kept_.size() < kMaxKept) kept_.push_back(std::move(buffer));
    }
    returned_.notify_one();
  }

  // Wakes a waiting take() for good: the pull is stopping.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    returned_.notify_all();
  }

 private:
  static constexpr std::uint64_t kGrain = std::uint64_t{1} << 20U;
  static constexpr std::size_t kMaxKept = kMaxStreamedUnits;
  const std::size_t max_live_;
  std::mutex mutex_;
  std::condition_variable returned_;
  std::size_t live_ = 0;
  bool closed_ = false;
  std::vector<Buffer> kept_;
};

namespace {

// One unit of a streamed batch: its bytes, given back to the pool when the last owner goes.
struct StreamedUnit {
  StreamedUnit(BatchedBlob::BufferPool::Buffer taken,
               std::shared_ptr<BatchedBlob::BufferPool> owner)
      : buffer(std::move(taken)), pool(std::move(owner)) {}
  ~StreamedUnit() { pool->give(std::move(buffer)); }
  StreamedUnit(const StreamedUnit&) = delete;
  StreamedUnit& operator=(const StreamedUnit&) = delete;

  BatchedBlob::BufferPool::Buffer buffer;
  std::shared_ptr<BatchedBlob::BufferPool> pool;
};

}  // namespace

struct BatchedBlob::Fetched {
  std::vector<std::vector<std::uint8_t>> whole;  // a whole batch: its ranges, once done
  // Guarded by BatchedBlob::mutex_.
  // A streamed batch: its units' buffers, each set when its first byte is written, dropped once
  // the asker has moved past it (pieces handed out keep theirs).
  std::vector<std::shared_ptr<const StreamedUnit>> units;
  std::uint64_t arrived = 0;  // bytes of a streamed batch's range in
  bool done = false;
  std::optional<Error> error;
};

namespace {

// The plan's ranges cut at piece boundaries into units of about `first` bytes (a piece never
// spans two units); each unit knows whether its range is streamed.
struct Unit {
  ByteRange range;
  bool streamed = false;
};

std::vector<Unit> units_of(const PullPlan& plan, std::uint64_t first, bool stream,
                           bool stream_every_range) {
  std::vector<Unit> units;
  std::size_t next_piece = 0;
  for (const ByteRange& range : plan.ranges) {
    const bool streamed = stream && (stream_every_range || range.length >= first);
    const std::uint64_t range_end = range.offset + range.length;
    while (next_piece < plan.pieces.size() && plan.pieces[next_piece].end <= range.offset) {
      ++next_piece;
    }
    std::uint64_t start = range.offset;
    std::uint64_t cut = range.offset;
    while (cut < range_end) {
      while (next_piece < plan.pieces.size() && plan.pieces[next_piece].end <= cut) ++next_piece;
      const std::uint64_t piece_end = next_piece < plan.pieces.size()
                                          ? std::min(plan.pieces[next_piece].end, range_end)
                                          : range_end;
      if (piece_end - start > first && cut > start) {
        units.push_back(Unit{ByteRange{start, cut - start}, streamed});
        start = cut;
      }
      cut = piece_end;
    }
    units.push_back(Unit{ByteRange{start, range_end - start}, streamed});
  }
  return units;
}

}  // namespace

Result<std::vector<FetchBatch>> batches_of(const PullPlan& plan, const StorePullOptions& options) {
  const std::uint64_t limit = std::max<std::uint64_t>(options.batch_bytes, 1);
  const std::uint64_t first = std::clamp<std::uint64_t>(options.first_batch_bytes, 1, limit);
  const std::uint64_t stream_limit = std::max<std::uint64_t>(options.stream_batch_bytes, 1);
  const std::vector<Unit> units =
      units_of(plan, first, static_cast<bool>(options.stream), options.stream_every_range);
  std::uint64_t left = 0;
  for (const Unit& unit : units) {
    if (unit.range.length > kMaxPieceBytes) {
      return make_error(ErrorCode::kUnsupported, "blob piece at offset " +
                                                     std::to_string(unit.range.offset) + " is " +
                                                     std::to_string(unit.range.length) +
                                                     " bytes, more than a pull holds at once");
    }
    left += unit.range.length;
  }
  std::vector<FetchBatch> batches;
  std::uint64_t batch_bytes = 0;
  std::uint64_t batch_limit = 0;
  std::uint64_t ramp = first;
  const std::size_t max_ranges = std::max<std::size_t>(options.max_ranges_per_batch, 1);
  for (const Unit& unit : units) {
    const bool same_kind = !batches.empty() && batches.back().streamed == unit.streamed;
    const std::uint64_t fits = unit.streamed ? stream_limit : batch_limit;
    const bool joins = same_kind && batch_bytes + unit.range.length <= fits;
    ByteRange* last = batches.empty() ? nullptr : &batches.back().ranges.back();
    if (joins && last->offset + last->length == unit.range.offset) {
      last->length += unit.range.length;  // touches the last range: one range
      if (unit.streamed) batches.back().unit_ends.push_back(last->length);
    } else if (joins && !unit.streamed && batches.back().ranges.size() < max_ranges) {
      batches.back().ranges.push_back(unit.range);
    } else {
      if (!unit.streamed) {
        batch_limit = std::min({limit, ramp, std::max(first, left / 4)});
        ramp = std::min(limit, ramp * 2);
      }
      batches.push_back(FetchBatch{{unit.range}, unit.streamed, {}});
      if (unit.streamed) batches.back().unit_ends.push_back(unit.range.length);
      batch_bytes = 0;
    }
    batch_bytes += unit.range.length;
    left -= unit.range.length;
  }
  return batches;
}

Result<void> check_fetched_ranges(std::span<const ByteRange> units,
                                  const std::vector<std::vector<std::uint8_t>>& fetched,
                                  const char* what) {
  if (fetched.size() != units.size()) {
    return make_error(ErrorCode::kInternal, "range fetcher returned a different range count");
  }
  for (std::size_t i = 0; i < units.size(); ++i) {
    if (fetched[i].size() != units[i].length) {
      return make_error(ErrorCode::kIo, std::string(what) + " at " +
                                            std::to_string(units[i].offset) + ": fetched " +
                                            std::to_string(fetched[i].size()) + " of " +
                                            std::to_string(units[i].length) + " bytes");
    }
  }
  return {};
}

BatchedBlob::BatchedBlob(const RangeBatchFetcher& fetch, const RangeStreamer& stream,
                         std::vector<FetchBatch> batches, std::uint64_t blob_size,
                         std::size_t in_flight, StorePullReport& report)
    : fetch_(fetch),
      stream_(stream),
      batches_(std::move(batches)),
      blob_size_(blob_size),
      in_flight_(in_flight),
      report_(report),
      pool_(std::make_shared<BufferPool>(in_flight == 0 ? SIZE_MAX : kMaxStreamedUnits)),
      fetched_(batches_.size()) {}

BatchedBlob::~BatchedBlob() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;  // no request starts after this; streams end at their next bytes
  }
  pool_->close();
  for (auto& request : requests_) request.wait();
}

double BatchedBlob::fetch_seconds() const {
  return static_cast<double>(fetch_nanoseconds_.load()) / 1e9;
}

void BatchedBlob::start() {
  std::unique_lock lock(mutex_);
  launch_ready(lock);
}

HeldBytesSource BatchedBlob::source() {
  return [this](std::uint64_t offset, std::uint64_t end) { return bytes_of(offset, end); };
}

void BatchedBlob::launch_ready(std::unique_lock<std::mutex>& lock) {
  (void)lock;  // held by the caller
  while (in_flight_ != 0 && !stopping_ && next_launch_ < batches_.size() && running_ < in_flight_ &&
         !stream_running_ && next_launch_ <= current_ + in_flight_) {
    const bool streamed = batches_[next_launch_].streamed;
    if (streamed && running_ != 0) break;  // a stream starts once the requests before it end
    // One streamed batch ahead of the one being decoded keeps the link busy (each is large).
    if (streamed && next_launch_ > current_ + 1) break;
    const std::size_t index = next_launch_++;
    auto held = std::make_shared<Fetched>();
    fetched_[index] = held;
    ++running_;
    stream_running_ = streamed;
    requests_.push_back(std::async(std::launch::async, [this, index, held] { run(index, held); }));
  }
}

void BatchedBlob::run(std::size_t index, const std::shared_ptr<Fetched>& held) {
  const FetchBatch& batch = batches_[index];
  const auto start = std::chrono::steady_clock::now();
  std::optional<Error> failure;
  for (const ByteRange& range : batch.ranges) {
    if (range.offset > blob_size_ || range.length > blob_size_ - range.offset) {
      failure = make_error(ErrorCode::kInvalidArgument, "plan range outside the blob");
    }
  }
  if (!failure && batch.streamed && !stream_) {
    failure = make_error(ErrorCode::kInternal, "streamed batch without a streamer");
  }
  if (!failure && batch.streamed) {
    const ByteRange range = batch.ranges.front();
    {
      std::lock_guard lock(mutex_);
      held->units.resize(batch.unit_ends.size());
    }
    std::uint64_t received = 0;
    std::size_t unit = 0;
    std::shared_ptr<StreamedUnit> filling;  // the unit being written
    std::uint64_t unit_start = 0;
    auto streamed = stream_(range, [&](ByteSpan bytes) -> Result<void> {
      if (stopping_.load(std::memory_order_relaxed)) {
        return make_error(ErrorCode::kIo, "pull stopped");
      }
      if (bytes.size() > range.length - received) {
        return make_error(ErrorCode::kIo, "range at " + std::to_string(range.offset) +
                                              ": more than its " + std::to_string(range.length) +
                                              " bytes arrived");
      }
      while (!bytes.empty()) {
        const std::uint64_t unit_end = batch.unit_ends[unit];
        if (!filling) {
          BufferPool::Buffer buffer = pool_->take(unit_end - unit_start);
          if (!buffer.bytes) return make_error(ErrorCode::kIo, "pull stopped");
          filling = std::make_shared<StreamedUnit>(std::move(buffer), pool_);
          std::lock_guard lock(mutex_);
          held->units[unit] = filling;
        }
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), unit_end - received));
        std::memcpy(filling->buffer.bytes.get() + (received - unit_start), bytes.data(), n);
        received += n;
        bytes = bytes.subspan(n);
        if (received == unit_end) {
          filling.reset();
          unit_start = unit_end;
          ++unit;
        }
      }
      {
        std::lock_guard lock(mutex_);
        held->arrived = received;
      }
      changed_.notify_all();
      return {};
    });
    if (!streamed) {
      failure = std::move(streamed).error();
    } else if (received != range.length) {
      failure = make_error(ErrorCode::kIo, "range at " + std::to_string(range.offset) +
                                               ": fetched " + std::to_string(received) + " of " +
                                               std::to_string(range.length) + " bytes");
    }
  } else if (!failure) {
    auto fetched = fetch_(batch.ranges);
    if (!fetched) {
      failure = std::move(fetched).error();
    } else if (auto checked = check_fetched_ranges(batch.ranges, *fetched, "range"); !checked) {
      failure = std::move(checked).error();
    } else {
      held->whole = std::move(*fetched);
    }
  }
  fetch_nanoseconds_.fetch_add(static_cast<std::uint64_t>(
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count()));
  std::unique_lock lock(mutex_);
  held->done = true;
  held->error = std::move(failure);
  if (in_flight_ != 0) {
    --running_;
    if (batch.streamed) stream_running_ = false;
    launch_ready(lock);
  }
  changed_.notify_all();
}

Result<void> BatchedBlob::move_past_current(std::unique_lock<std::mutex>& lock) {
  const std::shared_ptr<Fetched> held = fetched_[current_];
  if (held) {
    changed_.wait(lock, [&] { return held->done; });
    if (held->error) return *held->error;
  }
  fetched_[current_].reset();
  ++current_;
  current_counted_ = false;
  launch_ready(lock);
  return {};
}

Result<HeldBytes> BatchedBlob::bytes_of(std::uint64_t offset, std::uint64_t end) {
  std::unique_lock lock(mutex_);
  while (current_ < batches_.size()) {
    const FetchBatch& batch = batches_[current_];
    const std::vector<ByteRange>& ranges = batch.ranges;
    const auto found = std::upper_bound(
        ranges.begin(), ranges.end(), offset,
        [](std::uint64_t at, const ByteRange& range) { return at < range.offset; });
    if (found != ranges.begin() && end <= std::prev(found)->offset + std::prev(found)->length) {
      const auto unit = static_cast<std::size_t>(found - ranges.begin()) - 1;
      const std::uint64_t from = offset - ranges[unit].offset;
      if (!fetched_[current_] && in_flight_ == 0) {  // fetched here, on the asking thread
        auto held = std::make_shared<Fetched>();
        fetched_[current_] = held;
        lock.unlock();
        run(current_, held);
        lock.lock();
      }
      const std::size_t index = current_;
      if (!fetched_[index]) launch_ready(lock);
      if (!fetched_[index]) {
        return make_error(ErrorCode::kInternal, "batch " + std::to_string(index) + " not started");
      }
      changed_.wait(lock, [&] {
        const auto& held = fetched_[index];
        return held &&
               (held->done || (batch.streamed && held->arrived >= end - ranges[unit].offset));
      });
      const std::shared_ptr<Fetched> held = fetched_[index];
      if (held->error) return *held->error;
      if (!current_counted_) {
        current_counted_ = true;
        std::uint64_t total = 0;
        for (const ByteRange& range : ranges) total += range.length;
        ++report_.batches;
        report_.fetched_bytes += total;
        report_.max_batch_bytes = std::max(report_.max_batch_bytes, total);
      }
      if (!batch.streamed) {
        return HeldBytes{ByteSpan(held->whole[unit]).subspan(from, end - offset), held};
      }
      // The streamed unit holding [from, from + end - offset); units before it are let go.
      const std::vector<std::uint64_t>& unit_ends = batch.unit_ends;
      const auto at = static_cast<std::size_t>(
          std::upper_bound(unit_ends.begin(), unit_ends.end(), from) - unit_ends.begin());
      const std::uint64_t unit_start = at == 0 ? 0 : unit_ends[at - 1];
      if (at == unit_ends.size() || from + (end - offset) > unit_ends[at] || !held->units[at]) {
        return make_error(ErrorCode::kInternal,
                          "piece at offset " + std::to_string(offset) + " spans streamed units");
      }
      for (std::size_t before = 0; before < at; ++before) held->units[before].reset();
      const std::shared_ptr<const StreamedUnit> owner = held->units[at];
      return HeldBytes{ByteSpan(owner->buffer.bytes.get() + (from - unit_start), end - offset),
                       owner};
    }
    const ByteRange& last = ranges.back();
    if (offset < last.offset + last.length) break;  // not in this batch's ranges
    STRATA_TRY(move_past_current(lock));
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "plan does not fetch the piece at offset " + std::to_string(offset));
}

}  // namespace strata::fastpull::detail
