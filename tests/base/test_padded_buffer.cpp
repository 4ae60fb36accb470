// PaddedBuffer: alignment, zeroed padding after every resize, contents kept when growing.
#include <gtest/gtest.h>

#include <cstring>

#include "strata/buffer.h"

namespace strata {
namespace {

void expect_zero_padding(const PaddedBuffer& buffer) {
  for (std::size_t i = 0; i < PaddedBuffer::kPaddingBytes; ++i) {
    ASSERT_EQ(buffer.data()[buffer.size() + i], 0) << "padding byte " << i;
  }
}

TEST(PaddedBuffer, AlignedWithZeroPadding) {
  PaddedBuffer buffer(1000);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buffer.data()) % PaddedBuffer::kAlignment, 0U);
  EXPECT_EQ(buffer.size(), 1000U);
  expect_zero_padding(buffer);
}

TEST(PaddedBuffer, ResizeKeepsContentsAndRezeroesPadding) {
  PaddedBuffer buffer(100);
  std::memset(buffer.data(), 0xAB, buffer.size());
  buffer.resize(5000);
  for (std::size_t i = 0; i < 100; ++i) ASSERT_EQ(buffer.data()[i], 0xAB);
  expect_zero_padding(buffer);
  std::memset(buffer.data(), 0xCD, buffer.size());
  buffer.resize(10);
  expect_zero_padding(buffer);
  EXPECT_EQ(buffer.span().size(), 10U);
}

TEST(PaddedBuffer, EmptyBufferIsUsable) {
  PaddedBuffer buffer(0);
  EXPECT_TRUE(buffer.empty());
  expect_zero_padding(buffer);
  PaddedBuffer moved = std::move(buffer);
  EXPECT_TRUE(moved.empty());
}

}  // namespace
}  // namespace strata
