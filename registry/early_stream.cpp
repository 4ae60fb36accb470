// The early data stream of an empty store's pull (early_stream.h). One thread receives (the
// transfer's sink, on_bytes); the asker (serve) waits. Bytes are handed out by one thread at a
// time, in stream order: the asker drains what is buffered, and once the buffer is empty the
// receiving thread hands new bytes over itself, so in the steady state each byte is copied once,
// by the asker's sink. Blocks are filled to a fixed capacity and never grown, so a block being
// read outside the lock is never moved by an append. Rests on the standard library only.
#include "registry/early_stream.h"

#include <algorithm>
#include <string>
#include <utility>

namespace strata::registry::detail {
namespace {

// Buffered bytes are kept in blocks of this size.
constexpr std::size_t kBlockBytes = std::size_t{1} << 20U;

}  // namespace

EarlyStream::EarlyStream(fastpull::RangeStreamer stream, std::uint64_t end,
                         std::uint64_t max_buffered_bytes)
    : stream_(std::move(stream)),
      end_(end),
      max_buffered_(std::max<std::uint64_t>(max_buffered_bytes, 1)) {
  thread_ = std::thread([this] {
    Result<void> result =
        end_ == 0 ? Result<void>()
                  : stream_(ByteRange{0, end_}, [this](ByteSpan bytes) { return on_bytes(bytes); });
    std::lock_guard lock(mutex_);
    result_ = std::move(result);
    finished_ = true;
    changed_.notify_all();
  });
}

EarlyStream::~EarlyStream() {
  stop();
}

void EarlyStream::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    changed_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

bool EarlyStream::serves(const ByteRange& range) const {
  std::lock_guard lock(mutex_);
  return asker_ == nullptr && range.length != 0 && range.offset >= taken_ && range.offset <= end_ &&
         range.length <= end_ - range.offset;
}

std::uint64_t EarlyStream::unused_bytes() const {
  std::lock_guard lock(mutex_);
  return received_ - handed_out_;
}

std::size_t EarlyStream::deliver(ByteSpan bytes, std::unique_lock<std::mutex>& lock) {
  std::size_t used = 0;
  while (used < bytes.size() && asker_ != nullptr && !asker_->error && asker_->next < asker_->end) {
    const std::uint64_t at = taken_;  // the stream offset of bytes[used]
    const std::uint64_t left = bytes.size() - used;
    if (at < asker_->next) {  // before the asker's range: dropped
      const auto n = static_cast<std::size_t>(std::min(left, asker_->next - at));
      taken_ += n;
      used += n;
      continue;
    }
    const auto n = static_cast<std::size_t>(std::min(left, asker_->end - at));
    if (asker_->sink == nullptr) {  // finish(): the rest is read and dropped
      taken_ += n;
      used += n;
      asker_->next += n;
      continue;
    }
    Asker& asker = *asker_;  // stays attached while delivering_ is set
    lock.unlock();
    Result<void> given = (*asker.sink)(bytes.subspan(used, n));
    lock.lock();
    taken_ += n;
    handed_out_ += n;
    used += n;
    asker.next += n;
    if (!given.ok()) asker.error = std::move(given).error();
  }
  return used;
}

void EarlyStream::drain_buffer(std::unique_lock<std::mutex>& lock) {
  while (!buffer_.empty() && asker_ != nullptr && !asker_->error && asker_->next < asker_->end) {
    const std::shared_ptr<std::vector<std::uint8_t>> block = buffer_.front().bytes;
    const std::size_t begin = buffer_.front().begin;
    const ByteSpan bytes(block->data() + begin, block->size() - begin);
    const std::size_t used = deliver(bytes, lock);
    buffer_.front().begin += used;
    buffered_ -= used;
    if (buffer_.front().begin == buffer_.front().bytes->size()) buffer_.pop_front();
    if (receiver_waiting_) changed_.notify_all();  // room for it
    if (used == 0) break;
  }
}

Result<void> EarlyStream::on_bytes(ByteSpan bytes) {
  std::unique_lock lock(mutex_);
  received_ += bytes.size();
  while (!bytes.empty()) {
    if (stopping_) return make_error(ErrorCode::kInternal, "early stream ended by its pull");
    // Nothing waits in the buffer and an asker is there: the bytes go to it directly.
    if (asker_ != nullptr && buffered_ == 0 && !delivering_) {
      delivering_ = true;
      const std::size_t used = deliver(bytes, lock);
      delivering_ = false;
      // The asker hears of it once its range is done or failed, or when it waits to leave.
      if (asker_waiting_ && (asker_leaving_ || asker_->next == asker_->end || asker_->error)) {
        changed_.notify_all();
      }
      bytes = bytes.subspan(used);
      if (used != 0) continue;
    }
    if (buffered_ >= max_buffered_) {
      receiver_waiting_ = true;
      changed_.wait(lock, [&] {
        return stopping_ || buffered_ < max_buffered_ ||
               (asker_ != nullptr && buffered_ == 0 && !delivering_);
      });
      receiver_waiting_ = false;
      continue;
    }
    // Kept for the next asker: appended to the last block while it has room (never grown).
    if (buffer_.empty() || buffer_.back().bytes->size() == kBlockBytes) {
      auto block = std::make_shared<std::vector<std::uint8_t>>();
      block->reserve(kBlockBytes);
      buffer_.push_back(Block{std::move(block), 0});
    }
    std::vector<std::uint8_t>& last = *buffer_.back().bytes;
    const std::size_t n = std::min(bytes.size(), kBlockBytes - last.size());
    last.insert(last.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    buffered_ += n;
    bytes = bytes.subspan(n);
    if (asker_waiting_) changed_.notify_all();  // bytes for it to drain
  }
  return {};
}

Result<void> EarlyStream::serve(const ByteRange& range, const fastpull::RangeSink& sink) {
  return serve_to(range, &sink, std::nullopt);
}

std::uint64_t EarlyStream::finish(std::uint64_t max_rest, std::chrono::milliseconds max_wait) {
  std::uint64_t rest = 0;
  std::uint64_t from = 0;
  {
    std::lock_guard lock(mutex_);
    from = taken_;
    rest = end_ - taken_;
  }
  if (rest != 0 && rest <= max_rest) {
    // The pull has its bytes: a transfer that fails or stalls here only ends the wait.
    (void)serve_to(ByteRange{from, rest}, nullptr, std::chrono::steady_clock::now() + max_wait);
  }
  stop();
  return unused_bytes();
}

Result<void> EarlyStream::serve_to(const ByteRange& range, const fastpull::RangeSink* sink,
                                   std::optional<std::chrono::steady_clock::time_point> deadline) {
  if (!serves(range)) {
    return make_error(ErrorCode::kInternal, "early stream asked for bytes " +
                                                std::to_string(range.offset) + "+" +
                                                std::to_string(range.length) + " out of order");
  }
  std::unique_lock lock(mutex_);
  Asker asker{range.offset, range.offset + range.length, sink, std::nullopt};
  asker_ = &asker;
  if (receiver_waiting_) changed_.notify_all();  // it may hand bytes over now
  for (;;) {
    if (asker.error || asker.next == asker.end) break;
    if (!delivering_ && buffered_ != 0) {
      delivering_ = true;
      drain_buffer(lock);
      delivering_ = false;
      if (receiver_waiting_) changed_.notify_all();  // it may hand bytes over directly now
      continue;
    }
    if (finished_ && buffered_ == 0 && !delivering_) {
      asker.error = !result_.ok() ? result_.error()
                                  : make_error(ErrorCode::kCorruptInput,
                                               "blob ended at byte " + std::to_string(taken_) +
                                                   " before byte " + std::to_string(asker.end));
      break;
    }
    if (stopping_) {
      asker.error = make_error(ErrorCode::kInternal, "early stream ended by its pull");
      break;
    }
    asker_waiting_ = true;
    if (deadline) {
      if (changed_.wait_until(lock, *deadline) == std::cv_status::timeout) {
        asker.error = make_error(ErrorCode::kIo, "early stream: the rest did not come in time");
      }
    } else {
      changed_.wait(lock);
    }
    asker_waiting_ = false;
  }
  // Whoever was handing bytes to this asker is done with it before it goes.
  asker_waiting_ = true;
  asker_leaving_ = true;
  changed_.wait(lock, [&] { return !delivering_; });
  asker_leaving_ = false;
  asker_waiting_ = false;
  asker_ = nullptr;
  if (receiver_waiting_) changed_.notify_all();
  if (asker.error) return *asker.error;
  return {};
}

}  // namespace strata::registry::detail
