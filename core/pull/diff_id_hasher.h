// The diff_id of a pulled layer hashed beside the rebuild (core/pull/chunked_layer_store_pull.cpp;
// internal): the rebuild hands over the tar's bytes in order (chunks by reference to the buffer
// that holds them, tar headers copied) and a thread of its own runs the one SHA-256 the tar needs,
// so the rebuild thread is left the store puts and the recipe. SHA-256 is sequential by nature:
// this moves it off the rebuild's path, it does not split it. Memory stays bounded: the rebuild
// waits while more than kMaxPendingBytes are handed over and not yet hashed. Rests on
// strata::Sha256 (OpenSSL), std::thread and a condition variable; the diff_id itself is the OCI
// image spec's (shared/specs: the SHA-256 of the uncompressed layer tar).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "strata/digest.h"

namespace strata::fastpull::detail {

class DiffIdHasher {
 public:
  // Handed-over bytes not yet hashed above this make add() wait.
  static constexpr std::uint64_t kMaxPendingBytes = std::uint64_t{4} << 20U;

  DiffIdHasher();
  ~DiffIdHasher();  // stops the thread (whatever is pending is dropped)
  DiffIdHasher(const DiffIdHasher&) = delete;
  DiffIdHasher& operator=(const DiffIdHasher&) = delete;

  // The next bytes of the tar, which `owner` keeps alive until they are hashed.
  void add(ByteSpan bytes, std::shared_ptr<const void> owner);
  // The next bytes of the tar, copied (tar headers, padding: small).
  void add_copy(ByteSpan bytes);
  // Waits for every byte handed over to be hashed and returns the digest (once).
  Digest finish();
  // Seconds the thread spent hashing.
  [[nodiscard]] double hash_seconds() const;

 private:
  struct Segment {
    ByteSpan bytes;
    std::shared_ptr<const void> owner;
  };
  void flush_copies();  // hands the copied bytes gathered so far over as one segment
  void push(Segment segment);
  void run();

  Sha256 hash_;  // the thread's
  mutable std::mutex mutex_;
  std::condition_variable work_;     // the thread waits on it
  std::condition_variable room_;     // add() waits on it when too much is pending
  std::condition_variable drained_;  // finish() waits on it
  std::deque<Segment> queue_;
  std::uint64_t pending_bytes_ = 0;  // handed over, not yet hashed (queued or being hashed)
  bool thread_waiting_ = false;
  bool rebuild_waiting_ = false;  // add() waits for room
  bool stop_ = false;
  bool closed_ = false;  // finish() called: nothing more comes
  double hash_seconds_ = 0;
  // The rebuild's own: copied bytes not yet handed over.
  std::shared_ptr<std::vector<std::uint8_t>> copies_;
  std::thread thread_;  // last: started once everything above is built
};

}  // namespace strata::fastpull::detail
