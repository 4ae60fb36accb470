// SHA-256 digests: known answers (FIPS 180-2 "abc", empty input, the Sekien fixture's published
// sha256), streaming equals one-shot, and the OCI "sha256:<hex>" text form parses strictly.
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace strata {
namespace {

ByteSpan bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

TEST(Digest, KnownAnswers) {
  EXPECT_EQ(sha256_of(bytes_of("abc")).hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_of({}).to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const auto sekien = test::read_file(test::testdata_path("cdc/SekienAkashita.jpg"));
  EXPECT_EQ(sha256_of(sekien).hex(),
            "d9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed");
}

TEST(Digest, StreamingEqualsOneShot) {
  const auto data = test::splitmix64_bytes(5, 1U << 20U);
  Sha256 hasher;
  for (std::size_t at = 0; at < data.size(); at += 1000) {
    hasher.update(ByteSpan(data).subspan(at, std::min<std::size_t>(1000, data.size() - at)));
  }
  EXPECT_EQ(hasher.finish(), sha256_of(data));
  // finish() resets: the next digest starts from scratch.
  hasher.update(bytes_of("abc"));
  EXPECT_EQ(hasher.finish(), sha256_of(bytes_of("abc")));
}

TEST(Digest, ParsesCanonicalForm) {
  const std::string text =
      "sha256:d9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed";
  const auto parsed = Digest::parse(text);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->to_string(), text);
}

TEST(Digest, RejectsMalformedText) {
  for (const std::string bad :
       {"d9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed",
        "sha512:d9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed", "sha256:d9e749",
        "sha256:D9E749D9367FC908876749D6502EB212FEE88C9A94892FB07DA5EF3BA8BC39ED",
        "sha256:g9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed", ""}) {
    const auto parsed = Digest::parse(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_FALSE(parsed.error().message.empty());
  }
}

}  // namespace
}  // namespace strata
