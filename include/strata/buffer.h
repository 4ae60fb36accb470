// A padded, aligned byte buffer (the byte spans it hands out live in strata/bytes.h). SIMD kernels
// may read up to kPaddingBytes past the logical end of a PaddedBuffer (the padding is zeroed), so
// loops need no scalar tail for data that lives in one; data from elsewhere goes through kernels
// that never over-read (see simd/gear_scan.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "strata/bytes.h"

namespace strata {

class PaddedBuffer {
 public:
  static constexpr std::size_t kPaddingBytes = 64;
  static constexpr std::size_t kAlignment = 64;

  PaddedBuffer() = default;
  // Allocates `size` bytes (uninitialised) plus zeroed padding. Throws std::bad_alloc only.
  explicit PaddedBuffer(std::size_t size);

  PaddedBuffer(PaddedBuffer&&) noexcept = default;
  PaddedBuffer& operator=(PaddedBuffer&&) noexcept = default;
  PaddedBuffer(const PaddedBuffer&) = delete;
  PaddedBuffer& operator=(const PaddedBuffer&) = delete;

  [[nodiscard]] std::uint8_t* data() noexcept { return storage_.get(); }
  [[nodiscard]] const std::uint8_t* data() const noexcept { return storage_.get(); }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] ByteSpan span() const noexcept { return {data(), size_}; }
  [[nodiscard]] MutableByteSpan mutable_span() noexcept { return {data(), size_}; }

  // Changes the logical size; grows the allocation (keeping contents) when needed. The bytes past
  // the new size up to kPaddingBytes are zeroed again.
  void resize(std::size_t new_size);

 private:
  struct AlignedDelete {
    void operator()(std::uint8_t* pointer) const noexcept;
  };
  std::unique_ptr<std::uint8_t[], AlignedDelete> storage_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace strata
