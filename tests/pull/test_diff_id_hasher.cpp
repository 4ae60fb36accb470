// fastpull::detail::DiffIdHasher, the thread that hashes a pulled layer's tar beside the rebuild:
// whatever mix of shared and copied segments it is handed, in whatever sizes (empty ones, many
// small ones, ones larger than what it lets pend), its digest is the SHA-256 of those bytes in
// order, and it stops cleanly when dropped without finishing (a failed pull).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "core/pull/diff_id_hasher.h"
#include "tests/test_support.h"

namespace strata::fastpull::detail {
namespace {

TEST(DiffIdHasher, HashesSharedAndCopiedSegmentsInOrder) {
  const std::vector<std::uint8_t> bytes = test::splitmix64_bytes(7, 3'000'000);
  DiffIdHasher hasher;
  std::size_t at = 0;
  std::size_t step = 1;
  bool shared = false;
  while (at < bytes.size()) {
    const std::size_t n = std::min(step, bytes.size() - at);
    const ByteSpan part = ByteSpan(bytes).subspan(at, n);
    if (shared) {
      auto owner = std::make_shared<std::vector<std::uint8_t>>(part.begin(), part.end());
      hasher.add(ByteSpan(*owner), owner);
    } else {
      hasher.add_copy(part);
    }
    hasher.add_copy({});
    at += n;
    step = step * 3 + 1;  // 1, 4, 13, ... up to hundreds of KiB
    shared = !shared;
  }
  EXPECT_EQ(hasher.finish(), sha256_of(bytes));
}

TEST(DiffIdHasher, SegmentsLargerThanItLetsPendAreHashedWhole) {
  const std::size_t big = static_cast<std::size_t>(DiffIdHasher::kMaxPendingBytes) + 12345;
  auto first = std::make_shared<std::vector<std::uint8_t>>(test::splitmix64_bytes(8, big));
  auto second = std::make_shared<std::vector<std::uint8_t>>(test::splitmix64_bytes(9, big));
  DiffIdHasher hasher;
  hasher.add_copy(ByteSpan(*first).first(100));
  hasher.add(ByteSpan(*first).subspan(100), first);
  hasher.add(ByteSpan(*second), second);
  Sha256 expected;
  expected.update(*first);
  expected.update(*second);
  EXPECT_EQ(hasher.finish(), expected.finish());
}

TEST(DiffIdHasher, NothingHandedOverIsTheEmptyDigest) {
  DiffIdHasher hasher;
  EXPECT_EQ(hasher.finish(), sha256_of(ByteSpan{}));
}

TEST(DiffIdHasher, DroppedWithoutFinishingStops) {
  auto bytes = std::make_shared<std::vector<std::uint8_t>>(test::splitmix64_bytes(10, 5'000'000));
  for (int i = 0; i < 20; ++i) {
    DiffIdHasher hasher;
    hasher.add(ByteSpan(*bytes), bytes);
    hasher.add_copy(ByteSpan(*bytes).first(1000));
  }                                 // each destructor joins its thread, whatever was still pending
  EXPECT_EQ(bytes.use_count(), 1);  // no segment outlived its hasher
}

}  // namespace
}  // namespace strata::fastpull::detail
