// The early data stream of an empty store's pull (registry/early_stream.h) against a scripted
// transfer: ranges asked in blob order get exactly their bytes, with the bytes between them
// dropped and counted; the buffer stays within its bound while nobody asks; the transfer's
// failure, a short blob and the asker's own failure reach the asker; stop() ends a transfer that
// waits for room. Rests on strata/store_pull.h's RangeStreamer only, no network.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "registry/early_stream.h"
#include "tests/test_support.h"

namespace strata::registry::detail {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A transfer of `blob` in spans of `span` bytes that fails after `fail_after` bytes (with its
// error) or ends early after `end_after` bytes (successfully), as a registry might.
struct ScriptedTransfer {
  const Bytes* blob = nullptr;
  std::size_t span = 16 << 10;
  std::uint64_t fail_after = UINT64_MAX;
  std::uint64_t end_after = UINT64_MAX;
  std::atomic<std::uint64_t> sent{0};
  std::atomic<bool> sink_refused{false};

  fastpull::RangeStreamer streamer() {
    return [this](const ByteRange& range, const fastpull::RangeSink& sink) -> Result<void> {
      for (std::uint64_t at = range.offset; at < range.offset + range.length;) {
        if (at >= fail_after) return make_error(ErrorCode::kIo, "connection reset by the registry");
        if (at >= end_after) return {};
        const std::uint64_t n = std::min<std::uint64_t>(
            {span, range.offset + range.length - at, fail_after - at, end_after - at});
        Result<void> given = sink(ByteSpan(*blob).subspan(at, n));
        if (!given.ok()) {
          sink_refused = true;
          return given;
        }
        at += n;
        sent = at;
      }
      return {};
    };
  }
};

// serve() into a byte vector.
Result<Bytes> take(EarlyStream& stream, std::uint64_t offset, std::uint64_t length) {
  Bytes got;
  auto served = stream.serve(ByteRange{offset, length}, [&](ByteSpan bytes) -> Result<void> {
    got.insert(got.end(), bytes.begin(), bytes.end());
    return {};
  });
  if (!served.ok()) return std::move(served).error();
  return got;
}

Bytes slice(const Bytes& blob, std::uint64_t offset, std::uint64_t length) {
  return Bytes(blob.begin() + static_cast<std::ptrdiff_t>(offset),
               blob.begin() + static_cast<std::ptrdiff_t>(offset + length));
}

TEST(EarlyStream, RangesInBlobOrderGetTheirBytesAndTheGapsAreDroppedAndCounted) {
  const Bytes blob = test::splitmix64_bytes(7, 3'000'000);
  for (const std::uint64_t buffer : {std::uint64_t{1} << 20U, std::uint64_t{64} << 20U}) {
    SCOPED_TRACE(buffer);
    ScriptedTransfer transfer;
    transfer.blob = &blob;
    EarlyStream stream(transfer.streamer(), blob.size(), buffer);
    // Let the transfer run ahead (with the large buffer it is all in before the first ask).
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(stream.serves(ByteRange{0, blob.size() + 1}));
    auto first = take(stream, 100, 500'000);
    ASSERT_TRUE(first.ok()) << first.error().to_string();
    EXPECT_EQ(*first, slice(blob, 100, 500'000));
    EXPECT_FALSE(stream.serves(ByteRange{400'000, 10})) << "before what was handed out";
    ASSERT_TRUE(stream.serves(ByteRange{700'000, 1'300'000}));
    auto second = take(stream, 700'000, 1'300'000);
    ASSERT_TRUE(second.ok()) << second.error().to_string();
    EXPECT_EQ(*second, slice(blob, 700'000, 1'300'000));
    auto third = take(stream, 2'000'000, 999'000);
    ASSERT_TRUE(third.ok()) << third.error().to_string();
    EXPECT_EQ(*third, slice(blob, 2'000'000, 999'000));
    stream.stop();
    // What came and was not handed out: the first 100 bytes, the gap, and at most the last 1000.
    const std::uint64_t dropped = 100 + 200'000;
    EXPECT_GE(stream.unused_bytes(), dropped);
    EXPECT_LE(stream.unused_bytes(), dropped + 1000);
  }
}

TEST(EarlyStream, HoldsAtMostItsBufferWhileNobodyAsks) {
  const Bytes blob = test::splitmix64_bytes(8, 8'000'000);
  ScriptedTransfer transfer;
  transfer.blob = &blob;
  transfer.span = 64 << 10;
  constexpr std::uint64_t kBuffer = 512 << 10;
  EarlyStream stream(transfer.streamer(), blob.size(), kBuffer);
  // Once the buffer is full, the transfer waits however long nobody asks.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (transfer.sent.load() < kBuffer && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // One span may come beyond the bound (it is taken whole once there is room).
  EXPECT_LE(transfer.sent.load(), kBuffer + transfer.span);
  EXPECT_GE(transfer.sent.load(), kBuffer);
  auto all = take(stream, 0, blob.size());
  ASSERT_TRUE(all.ok()) << all.error().to_string();
  EXPECT_EQ(*all, blob);
  stream.stop();
  EXPECT_EQ(stream.unused_bytes(), 0U);
}

TEST(EarlyStream, ATransferThatFailsOrEndsShortFailsTheAskerPastIt) {
  const Bytes blob = test::splitmix64_bytes(9, 1'000'000);
  {
    ScriptedTransfer transfer;
    transfer.blob = &blob;
    transfer.fail_after = 600'000;
    EarlyStream stream(transfer.streamer(), blob.size(), 4 << 20);
    auto before = take(stream, 0, 500'000);
    ASSERT_TRUE(before.ok()) << before.error().to_string();
    EXPECT_EQ(*before, slice(blob, 0, 500'000));
    auto across = take(stream, 550'000, 100'000);
    ASSERT_FALSE(across.ok());
    EXPECT_EQ(across.error().code, ErrorCode::kIo);
    EXPECT_EQ(across.error().message, "connection reset by the registry");
  }
  {
    ScriptedTransfer transfer;
    transfer.blob = &blob;
    transfer.end_after = 300'000;
    EarlyStream stream(transfer.streamer(), blob.size(), 4 << 20);
    auto across = take(stream, 200'000, 200'000);
    ASSERT_FALSE(across.ok());
    EXPECT_EQ(across.error().code, ErrorCode::kCorruptInput);
    EXPECT_NE(across.error().message.find("300000"), std::string::npos)
        << across.error().to_string();
  }
}

TEST(EarlyStream, TheAskersOwnFailureEndsItsRangeAndStopEndsTheTransfer) {
  const Bytes blob = test::splitmix64_bytes(10, 4'000'000);
  ScriptedTransfer transfer;
  transfer.blob = &blob;
  EarlyStream stream(transfer.streamer(), blob.size(), 256 << 10);
  std::uint64_t got = 0;
  auto served = stream.serve(ByteRange{0, 3'000'000}, [&](ByteSpan bytes) -> Result<void> {
    got += bytes.size();
    if (got > 1'000'000) return make_error(ErrorCode::kLimitExceeded, "the pull is ending");
    return {};
  });
  ASSERT_FALSE(served.ok());
  EXPECT_EQ(served.error().code, ErrorCode::kLimitExceeded);
  EXPECT_LT(got, 3'000'000U);
  // The transfer waits for room (nobody asks any more); stop() ends it instead of hanging.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stream.stop();
  EXPECT_TRUE(transfer.sink_refused.load());
  EXPECT_LT(transfer.sent.load(), blob.size());
}

}  // namespace
}  // namespace strata::registry::detail
