// The data of a chunked layer requested before its pull is planned
// (registry/chunked_layer_pull.cpp; internal). When the store holds no chunk at all, the plan of a
// zstd:chunked layer will fetch every chunk frame, so the frames' region [0, end) of the blob is
// streamed from the start, while the TOC and tar-split are fetched, parsed and planned, instead of
// after: on a link-bound pull the bytes start one TOC read and plan (~20 ms) earlier. The bytes
// wait in a bounded buffer until the plan's streamed ranges ask for them, in blob order; bytes
// between those ranges (the frames of repeated chunks) are read and dropped. Once the buffer is
// drained the bytes go straight from the transfer to the asker, not copied a second time. Rests on
// fastpull::RangeStreamer (one request, resumed by the client when a connection drops), a thread
// and a condition variable.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "strata/store_pull.h"

namespace strata::registry::detail {

class EarlyStream {
 public:
  // Starts streaming bytes [0, end) through `stream` on a thread of its own; at most
  // `max_buffered_bytes` wait for an asker (the transfer then waits too).
  EarlyStream(fastpull::RangeStreamer stream, std::uint64_t end, std::uint64_t max_buffered_bytes);
  ~EarlyStream();  // stop()
  EarlyStream(const EarlyStream&) = delete;
  EarlyStream& operator=(const EarlyStream&) = delete;

  // Whether serve() can give `range`: it lies in [0, end) and starts at or after the bytes
  // already handed out (asking in blob order).
  [[nodiscard]] bool serves(const ByteRange& range) const;
  // Gives the bytes of `range` to `sink` in order, as they arrive; the bytes before it not yet
  // handed out are dropped. One asker at a time. The transfer's error (a short or broken answer
  // after the client's retries) or the sink's is returned; the stream is then of no further use.
  Result<void> serve(const ByteRange& range, const fastpull::RangeSink& sink);
  // Bytes that came over the wire and were never handed out (dropped between ranges, or still
  // waiting when the pull ended): what a report of bytes fetched adds to the plan's.
  [[nodiscard]] std::uint64_t unused_bytes() const;
  // Ends the transfer (bytes still on their way are not waited for) and waits for its thread.
  void stop();
  // After the last range: when at most `max_rest` bytes of [0, end) are left, reads and drops them
  // (waiting `max_wait` at most), so what a pull fetched is the whole region, whatever the timing;
  // then stop(). Returns unused_bytes().
  std::uint64_t finish(std::uint64_t max_rest, std::chrono::milliseconds max_wait);

 private:
  struct Block {
    std::shared_ptr<std::vector<std::uint8_t>> bytes;
    std::size_t begin = 0;  // the first byte not yet handed out or dropped
  };
  struct Asker {
    std::uint64_t next = 0;  // the next byte it wants
    std::uint64_t end = 0;
    const fastpull::RangeSink* sink = nullptr;  // none: finish() dropping the rest
    std::optional<Error> error;                 // its sink's
  };
  Result<void> serve_to(const ByteRange& range, const fastpull::RangeSink* sink,
                        std::optional<std::chrono::steady_clock::time_point> deadline);
  Result<void> on_bytes(ByteSpan bytes);
  // Hands `bytes` (stream bytes from taken_) to the asker and drops what lies before its range;
  // returns how many were used. Called by the one thread delivering; unlocks around the sink.
  std::size_t deliver(ByteSpan bytes, std::unique_lock<std::mutex>& lock);
  void drain_buffer(std::unique_lock<std::mutex>& lock);

  fastpull::RangeStreamer stream_;
  const std::uint64_t end_;
  const std::uint64_t max_buffered_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Block> buffer_;
  std::uint64_t buffered_ = 0;    // bytes in buffer_ not yet taken
  std::uint64_t taken_ = 0;       // stream bytes handed out or dropped (the buffer starts here)
  std::uint64_t handed_out_ = 0;  // of those, handed to askers
  std::uint64_t received_ = 0;    // stream bytes that arrived
  Asker* asker_ = nullptr;
  bool delivering_ = false;  // a thread is calling the asker's sink
  // Who waits on changed_: it is notified only then (the bytes come in spans of a few KiB).
  bool asker_waiting_ = false;
  bool receiver_waiting_ = false;
  bool asker_leaving_ = false;  // the asker waits only for delivering_ to end
  bool finished_ = false;       // the transfer ended (result_ says how)
  bool stopping_ = false;
  Result<void> result_;
  std::thread thread_;  // last: started once everything above is built
};

}  // namespace strata::registry::detail
