// Many SHA-256 digests at once (strata/digest.h: sha256_of_each, sha256_of_pair). Two lanes each
// carry one message; the active SHA-NI kernel (simd/sha256_shani.h) compresses both lanes' next
// blocks interleaved until one lane's segment ends, that lane moves on (to its message's padded
// tail, or to the next message), and so on, so every block runs paired except the end of the last
// message. Messages enter longest first, which keeps that unpaired end short. The state, padding
// and digest are FIPS 180-4's: initial hash value §5.3.3, padding §5.1.1, digest §6.2.2 (H0..H7,
// big-endian). Without a usable kernel each digest comes from sha256_of (OpenSSL).
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "simd/sha256_shani.h"
#include "strata/digest.h"

namespace strata {
namespace {

constexpr std::size_t kBlockSize = 64;
// §5.1.1: the message length in bits fills the last 64 bits of the last block.
constexpr std::size_t kLengthFieldSize = 8;

// §5.3.3: the initial hash value H(0).
constexpr std::array<std::uint32_t, 8> kInitialHash = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

// One message on its way through a lane: first its whole blocks, read in place, then its tail,
// one or two blocks built here from the last partial block (§5.1.1: the message bits, a 1 bit,
// zeros up to 448 mod 512, the 64-bit big-endian length).
class LaneMessage {
 public:
  void start(ByteSpan message) {
    hash_ = kInitialHash;
    const std::size_t rest = message.size() % kBlockSize;
    const std::size_t whole_bytes = message.size() - rest;
    tail_.fill(0);
    if (rest > 0) std::memcpy(tail_.data(), message.data() + whole_bytes, rest);
    tail_[rest] = 0x80;
    tail_blocks_ = rest + 1 + kLengthFieldSize <= kBlockSize ? 1 : 2;
    const std::uint64_t bits = static_cast<std::uint64_t>(message.size()) * 8U;
    std::uint8_t* length_field = tail_.data() + tail_blocks_ * kBlockSize - kLengthFieldSize;
    for (std::size_t i = 0; i < kLengthFieldSize; ++i) {
      length_field[i] = static_cast<std::uint8_t>(bits >> (8U * (kLengthFieldSize - 1 - i)));
    }
    in_tail_ = false;
    next_ = message.data();
    blocks_ = whole_bytes / kBlockSize;
    if (blocks_ == 0) enter_tail();
  }

  [[nodiscard]] std::uint32_t* hash() noexcept { return hash_.data(); }
  [[nodiscard]] const std::uint8_t* next() const noexcept { return next_; }
  // Blocks left in the current segment (never 0 before done()).
  [[nodiscard]] std::size_t blocks() const noexcept { return blocks_; }
  [[nodiscard]] bool done() const noexcept { return in_tail_ && blocks_ == 0; }

  // Records that the kernel compressed the next `count` blocks of the current segment.
  void advance(std::size_t count) noexcept {
    next_ += count * kBlockSize;
    blocks_ -= count;
    if (blocks_ == 0 && !in_tail_) enter_tail();
  }

  // §6.2.2: the digest is H0..H7 of the last block, each word big-endian.
  [[nodiscard]] Digest digest() const noexcept {
    Digest::Bytes bytes{};
    for (std::size_t word = 0; word < hash_.size(); ++word) {
      for (std::size_t byte = 0; byte < 4; ++byte) {
        bytes[4 * word + byte] = static_cast<std::uint8_t>(hash_[word] >> (24U - 8U * byte));
      }
    }
    return Digest(bytes);
  }

 private:
  void enter_tail() noexcept {
    in_tail_ = true;
    next_ = tail_.data();
    blocks_ = tail_blocks_;
  }

  std::array<std::uint32_t, 8> hash_{};
  std::array<std::uint8_t, 2 * kBlockSize> tail_{};
  std::size_t tail_blocks_ = 0;
  const std::uint8_t* next_ = nullptr;
  std::size_t blocks_ = 0;
  bool in_tail_ = false;
};

// Feeds messages, longest first, to lanes as they free up.
class MessageQueue {
 public:
  explicit MessageQueue(std::span<const ByteSpan> inputs) : inputs_(inputs), order_(inputs.size()) {
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    std::stable_sort(order_.begin(), order_.end(), [inputs](std::size_t x, std::size_t y) {
      return inputs[x].size() > inputs[y].size();
    });
  }

  // Starts the next message in `lane` and returns its index, or returns false when none is left.
  bool load(LaneMessage& lane, std::size_t& index) {
    if (taken_ == order_.size()) return false;
    index = order_[taken_++];
    lane.start(inputs_[index]);
    return true;
  }

 private:
  std::span<const ByteSpan> inputs_;
  std::vector<std::size_t> order_;
  std::size_t taken_ = 0;
};

void hash_with_kernel(const simd::Sha256Kernel& kernel, std::span<const ByteSpan> inputs,
                      std::span<Digest> digests) {
  MessageQueue queue(inputs);
  std::array<LaneMessage, 2> lanes;
  std::array<std::size_t, 2> index{};
  std::array<bool, 2> busy = {queue.load(lanes[0], index[0]), queue.load(lanes[1], index[1])};
  while (busy[0] && busy[1]) {
    const std::size_t count = std::min(lanes[0].blocks(), lanes[1].blocks());
    kernel.compress_pair(lanes[0].hash(), lanes[0].next(), lanes[1].hash(), lanes[1].next(), count);
    for (std::size_t lane = 0; lane < 2; ++lane) {
      lanes[lane].advance(count);
      if (!lanes[lane].done()) continue;
      digests[index[lane]] = lanes[lane].digest();
      busy[lane] = queue.load(lanes[lane], index[lane]);
    }
  }
  // The queue is empty; at most one lane still holds a message.
  for (std::size_t lane = 0; lane < 2; ++lane) {
    if (!busy[lane]) continue;
    while (!lanes[lane].done()) {
      const std::size_t count = lanes[lane].blocks();
      kernel.compress(lanes[lane].hash(), lanes[lane].next(), count);
      lanes[lane].advance(count);
    }
    digests[index[lane]] = lanes[lane].digest();
  }
}

}  // namespace

void sha256_of_each(std::span<const ByteSpan> inputs, std::span<Digest> digests) {
  const std::size_t count = std::min(inputs.size(), digests.size());
  inputs = inputs.first(count);
  const simd::Sha256Kernel* kernel = simd::active_sha256_kernel();
  if (kernel == nullptr || count < 2) {
    for (std::size_t i = 0; i < count; ++i) digests[i] = sha256_of(inputs[i]);
    return;
  }
  hash_with_kernel(*kernel, inputs, digests);
}

std::pair<Digest, Digest> sha256_of_pair(ByteSpan a, ByteSpan b) {
  const std::array<ByteSpan, 2> inputs = {a, b};
  std::array<Digest, 2> digests;
  sha256_of_each(inputs, digests);
  return {digests[0], digests[1]};
}

}  // namespace strata
