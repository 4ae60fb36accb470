// PaddedBuffer: 64-byte aligned storage with 64 zeroed bytes past the logical end, so SIMD loops
// may over-read without touching unmapped memory (the simdjson padded_string idea).
#include <cstdlib>
#include <cstring>
#include <new>

#include "strata/buffer.h"

namespace strata {
namespace {

std::uint8_t* allocate_padded(std::size_t capacity) {
  const std::size_t total = capacity + PaddedBuffer::kPaddingBytes;
  const std::size_t rounded =
      (total + PaddedBuffer::kAlignment - 1) / PaddedBuffer::kAlignment * PaddedBuffer::kAlignment;
  void* memory = std::aligned_alloc(PaddedBuffer::kAlignment, rounded);
  if (memory == nullptr) throw std::bad_alloc();
  return static_cast<std::uint8_t*>(memory);
}

}  // namespace

void PaddedBuffer::AlignedDelete::operator()(std::uint8_t* pointer) const noexcept {
  std::free(pointer);  // NOLINT: pairs with aligned_alloc
}

PaddedBuffer::PaddedBuffer(std::size_t size)
    : storage_(allocate_padded(size)), size_(size), capacity_(size) {
  std::memset(storage_.get() + size_, 0, kPaddingBytes);
}

void PaddedBuffer::resize(std::size_t new_size) {
  if (new_size > capacity_) {
    std::size_t new_capacity = capacity_ + capacity_ / 2;
    if (new_capacity < new_size) new_capacity = new_size;
    std::unique_ptr<std::uint8_t[], AlignedDelete> grown(allocate_padded(new_capacity));
    if (size_ > 0) std::memcpy(grown.get(), storage_.get(), size_);
    storage_ = std::move(grown);
    capacity_ = new_capacity;
  }
  size_ = new_size;
  std::memset(storage_.get() + size_, 0, kPaddingBytes);
}

}  // namespace strata
