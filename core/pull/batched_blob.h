// The fetched bytes of a chunked-layer pull (core/pull/chunked_layer_store_pull.cpp; internal):
// the plan's ranges grouped into batches, one request each, fetched in blob order on threads of
// their own while the pieces before them are decoded. A batch is either whole (short ranges in one
// multi-range GET through a RangeBatchFetcher, usable once all of it is in) or streamed (one long
// range through a RangeStreamer, each piece usable as soon as its last byte arrives). Memory stays
// bounded: at most batches_in_flight + 1 batches are held, each at most its limit (one piece larger
// than that is a batch of its own, up to kMaxPieceBytes), and a streamed batch's bytes are held in
// at most kMaxStreamedUnits units of about 1 MiB whatever its size (on threads of their own). Rests
// on strata/store_pull.h (the fetcher types and options), std::async and a condition variable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "core/pull/piece_prefetch.h"
#include "strata/store_pull.h"

namespace strata::fastpull::detail {

// A single fetched piece (one chunk's frame, or a run of tar headers) is held whole; a larger one
// is refused as unsupported, so a registry pull fetches that layer whole (streamed) instead. The
// store's largest chunk (kMaxStoredChunkBytes, 64 MiB) fits with its frame's overhead; so the
// memory a pull holds stays a few hundred MiB whatever the TOC says.
inline constexpr std::uint64_t kMaxPieceBytes = std::uint64_t{96} << 20U;

// Units of streamed batches held at once (fetched, not yet let go by the pieces in them): the
// stream waits beyond this. With the v1 bench pull's 48 MiB in one request instead of three: page
// faults 21 K -> 17 K, peak RSS 80 -> 67 MB.
inline constexpr std::size_t kMaxStreamedUnits = 16;

// One request's worth of the plan's ranges, in blob order.
struct FetchBatch {
  std::vector<ByteRange> ranges;
  bool streamed = false;  // one range, through the streamer
  // Streamed: where each unit of the range ends, from its start. Each unit gets a buffer of its own
  // (no piece spans two), let go once the pieces in it are: memory is taken back as the batch is
  // decoded, not when it ends.
  std::vector<std::uint64_t> unit_ends;
};

// The plan's ranges cut at piece boundaries and grouped into batches (a unit holding one piece
// larger than its batch's limit is a batch of its own). With options.stream set, a plan range of
// at least first_batch_bytes becomes streamed batches of up to stream_batch_bytes; the other
// ranges go in multi-range batches whose limits ramp up from first_batch_bytes, doubling to
// batch_bytes, and down again over the last bytes (a quarter of what is left, not below the first
// limit), so decoding starts as soon as a small first batch is in and little is left to decode
// once the last byte has arrived. Units of one batch that touch are one range of its request (a
// piece never spans two ranges). Only how the plan's bytes are grouped into requests changes.
Result<std::vector<FetchBatch>> batches_of(const PullPlan& plan, const StorePullOptions& options);

// A fetcher's answer for `units` must be one piece per range, each of the range's length.
Result<void> check_fetched_ranges(std::span<const ByteRange> units,
                                  const std::vector<std::vector<std::uint8_t>>& fetched,
                                  const char* what);

// Serves the bytes of fetched pieces, which are asked for in blob order. With `in_flight` > 0,
// batches are fetched on other threads: up to `in_flight` requests at once (a streamed batch runs
// alone: requests in flight together share the link, so the one being decoded would arrive later),
// the first ones from start(), each next one as soon as a request ends, while at most in_flight + 1
// batches are held, of streamed batches two, their units bounded as above (plus what pieces handed
// out still pin). With in_flight 0 each batch is fetched on the asking thread when it is first
// needed, whole before any of it is read. A batch's failure is
// returned to whoever asks for its bytes, and when the asker moves past it.
class BatchedBlob {
 public:
  BatchedBlob(const RangeBatchFetcher& fetch, const RangeStreamer& stream,
              std::vector<FetchBatch> batches, std::uint64_t blob_size, std::size_t in_flight,
              StorePullReport& report);
  ~BatchedBlob();  // ends streams early and waits for every request
  BatchedBlob(const BatchedBlob&) = delete;
  BatchedBlob& operator=(const BatchedBlob&) = delete;

  // Seconds spent inside the fetcher and streamer, summed over the threads that called them.
  [[nodiscard]] double fetch_seconds() const;

  // Starts the first requests (with in_flight > 0): a pull whose first pieces the store holds
  // decodes them while its first missing chunks are on the wire.
  void start();

  HeldBytesSource source();
  // Bytes [offset, end) of the blob, which one batch's range holds; waits for them.
  Result<HeldBytes> bytes_of(std::uint64_t offset, std::uint64_t end);

  struct Fetched;
  class BufferPool;

 private:
  void launch_ready(std::unique_lock<std::mutex>& lock);
  void run(std::size_t index, const std::shared_ptr<Fetched>& batch);
  Result<void> move_past_current(std::unique_lock<std::mutex>& lock);

  const RangeBatchFetcher& fetch_;
  const RangeStreamer& stream_;
  const std::vector<FetchBatch> batches_;
  std::uint64_t blob_size_ = 0;
  std::size_t in_flight_ = 0;
  StorePullReport& report_;
  std::atomic<std::uint64_t> fetch_nanoseconds_{0};
  std::atomic<bool> stopping_{false};
  std::shared_ptr<BufferPool> pool_;  // shared with the batches, which may outlive this

  std::mutex mutex_;
  std::condition_variable changed_;                // bytes arrived, a request ended
  std::vector<std::shared_ptr<Fetched>> fetched_;  // by batch; dropped once moved past
  std::size_t current_ = 0;                        // the batch the asker is in
  bool current_counted_ = false;                   // its bytes are in the report
  std::size_t next_launch_ = 0;
  std::size_t running_ = 0;
  bool stream_running_ = false;
  std::vector<std::future<void>> requests_;
};

}  // namespace strata::fastpull::detail
