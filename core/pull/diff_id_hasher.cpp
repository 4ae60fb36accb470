// The diff_id hashed on a thread of its own (diff_id_hasher.h): segments queue in tar order and
// the thread takes all that are queued under one lock, hashes them and drops their owners. The
// thread is woken when 256 KiB are queued (or at finish), not for each segment: a layer of
// thousands of chunks costs several hundred wake-ups. The bytes were decoded on other cores, some
// time before: each 8 KiB step prefetches the next one, so the SHA-256 is not left waiting on
// memory (v2 of the bench image on loopback: the diff_id's thread 123 -> 112 ms, the pull
// 241 -> 231-234 ms, medians of 7). Rests on strata::Sha256, the standard library and GCC's
// __builtin_prefetch.
#include "core/pull/diff_id_hasher.h"

#include <chrono>

namespace strata::fastpull::detail {
namespace {

// The thread is woken once this many bytes are queued (or the rebuild finishes or waits): the
// bytes are then still in cache (a 16 MiB backlog measured no faster, with 10 MiB more RSS).
constexpr std::uint64_t kWakeBytes = std::uint64_t{256} << 10U;
// Copied bytes are handed over in segments of about this size.
constexpr std::size_t kCopySegmentBytes = std::size_t{64} << 10U;
// Hashed in steps of this size, the next step's cache lines prefetched before each (4, 16 and 32
// KiB measured alike).
constexpr std::size_t kStepBytes = std::size_t{8} << 10U;

}  // namespace

DiffIdHasher::DiffIdHasher() {
  thread_ = std::thread([this] { run(); });
}

DiffIdHasher::~DiffIdHasher() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    work_.notify_all();
  }
  thread_.join();
}

void DiffIdHasher::add(ByteSpan bytes, std::shared_ptr<const void> owner) {
  if (bytes.empty()) return;
  flush_copies();
  push(Segment{bytes, std::move(owner)});
}

void DiffIdHasher::add_copy(ByteSpan bytes) {
  if (bytes.empty()) return;
  if (!copies_) {
    copies_ = std::make_shared<std::vector<std::uint8_t>>();
    copies_->reserve(kCopySegmentBytes);
  }
  copies_->insert(copies_->end(), bytes.begin(), bytes.end());
  if (copies_->size() >= kCopySegmentBytes) flush_copies();
}

void DiffIdHasher::flush_copies() {
  if (!copies_ || copies_->empty()) return;
  std::shared_ptr<std::vector<std::uint8_t>> held = std::move(copies_);
  const ByteSpan bytes(*held);
  push(Segment{bytes, std::move(held)});
}

void DiffIdHasher::push(Segment segment) {
  std::unique_lock lock(mutex_);
  if (pending_bytes_ != 0 && pending_bytes_ + segment.bytes.size() > kMaxPendingBytes) {
    rebuild_waiting_ = true;
    work_.notify_one();
    room_.wait(lock, [&] {
      return stop_ || pending_bytes_ == 0 ||
             pending_bytes_ + segment.bytes.size() <= kMaxPendingBytes / 2;
    });
    rebuild_waiting_ = false;
  }
  pending_bytes_ += segment.bytes.size();
  queue_.push_back(std::move(segment));
  if (thread_waiting_ && pending_bytes_ >= kWakeBytes) work_.notify_one();
}

Digest DiffIdHasher::finish() {
  flush_copies();
  std::unique_lock lock(mutex_);
  closed_ = true;
  work_.notify_one();
  drained_.wait(lock, [&] { return pending_bytes_ == 0; });
  return hash_.finish();
}

double DiffIdHasher::hash_seconds() const {
  std::lock_guard lock(mutex_);
  return hash_seconds_;
}

void DiffIdHasher::run() {
  std::deque<Segment> taken;
  std::unique_lock lock(mutex_);
  for (;;) {
    thread_waiting_ = true;
    work_.wait(lock, [&] {
      return stop_ ||
             (!queue_.empty() && (closed_ || rebuild_waiting_ || pending_bytes_ >= kWakeBytes)) ||
             (closed_ && pending_bytes_ == 0);
    });
    thread_waiting_ = false;
    if (stop_) return;
    if (queue_.empty()) {  // closed with nothing pending
      drained_.notify_all();
      work_.wait(lock, [&] { return stop_; });
      return;
    }
    taken.swap(queue_);
    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t done = 0;
    for (std::size_t i = 0; i < taken.size(); ++i) {
      const ByteSpan bytes = taken[i].bytes;
      const ByteSpan next = i + 1 < taken.size() ? taken[i + 1].bytes : ByteSpan();
      for (std::size_t at = 0; at < bytes.size(); at += kStepBytes) {
        // The bytes after this step are asked for now, so the SHA-256 finds them in cache.
        const std::size_t ahead = at + kStepBytes;
        for (std::size_t line = 0; line < kStepBytes; line += 64) {
          if (ahead + line < bytes.size()) {
            __builtin_prefetch(bytes.data() + ahead + line);
          } else if (ahead + line - bytes.size() < next.size()) {
            __builtin_prefetch(next.data() + (ahead + line - bytes.size()));
          }
        }
        hash_.update(bytes.subspan(at, std::min(kStepBytes, bytes.size() - at)));
      }
      done += bytes.size();
    }
    taken.clear();  // the owners go here, outside the lock
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    lock.lock();
    hash_seconds_ += seconds;
    pending_bytes_ -= done;
    if (rebuild_waiting_) room_.notify_one();
    if (pending_bytes_ == 0 && closed_) drained_.notify_all();
  }
}

}  // namespace strata::fastpull::detail
