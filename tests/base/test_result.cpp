// Result<T> and Error: values and errors round-trip, codes have stable names, STRATA_TRY
// propagates.
#include <gtest/gtest.h>

#include "strata/result.h"

namespace strata {
namespace {

Result<int> parse_positive(int value) {
  if (value <= 0) return make_error(ErrorCode::kInvalidArgument, "value must be positive");
  return value;
}

Result<int> doubled(int value) {
  STRATA_TRY(parse_positive(value));
  return value * 2;
}

TEST(Result, HoldsValueOrError) {
  const auto good = parse_positive(3);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);
  const auto bad = parse_positive(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().to_string(), "invalid_argument: value must be positive");
}

TEST(Result, TryPropagatesErrors) {
  EXPECT_EQ(*doubled(4), 8);
  const auto failed = doubled(0);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().message, "value must be positive");
}

TEST(Result, VoidResult) {
  const Result<void> fine;
  EXPECT_TRUE(fine.ok());
  const Result<void> broken = make_error(ErrorCode::kIo, "disk on fire");
  EXPECT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code, ErrorCode::kIo);
}

TEST(Result, CodeNamesAreDistinct) {
  EXPECT_EQ(error_code_name(ErrorCode::kCorruptInput), "corrupt_input");
  EXPECT_EQ(error_code_name(ErrorCode::kUnsafePath), "unsafe_path");
  EXPECT_EQ(error_code_name(ErrorCode::kDigestMismatch), "digest_mismatch");
  EXPECT_EQ(error_code_name(ErrorCode::kLimitExceeded), "limit_exceeded");
}

}  // namespace
}  // namespace strata
