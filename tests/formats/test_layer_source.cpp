// LayerSource: compression detection, decompression of the reference OCI layers to their diff_id
// (checked against expected.json, made with the real tools), multi-member gzip and multi-frame
// zstd made by the gzip/zstd binaries, and refusal of corrupt, truncated and bomb inputs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <limits>
#include <thread>

#include "formats/compress/layer_source.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

Result<std::unique_ptr<LayerSource>> open_bytes(const std::vector<std::uint8_t>& bytes,
                                                const LayerSourceOptions& options = {}) {
  return LayerSource::open(std::make_unique<MemoryByteSource>(ByteSpan(bytes)), options);
}

// Decompresses a whole blob; returns the error of the first failing read.
Result<std::vector<std::uint8_t>> decompress(const std::vector<std::uint8_t>& bytes,
                                             const LayerSourceOptions& options = {}) {
  auto source = open_bytes(bytes, options);
  if (!source.ok()) return std::move(source).error();
  return test::read_all(**source);
}

void expect_error(const Result<std::vector<std::uint8_t>>& result, ErrorCode code,
                  const std::string& fragment) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, code) << result.error().to_string();
  EXPECT_NE(result.error().message.find(fragment), std::string::npos) << result.error().to_string();
}

class LayerSourceTools : public ::testing::Test {
 protected:
  // Writes `data` to a file, runs `command` on it in the scratch dir and returns `output_name`.
  std::vector<std::uint8_t> make(const std::vector<std::uint8_t>& data, const std::string& command,
                                 const std::string& output_name) {
    test::write_file(scratch_.file("data"), data);
    EXPECT_TRUE(test::shell(scratch_.path(), command)) << command;
    return test::read_file(scratch_.file(output_name));
  }
  test::ScratchDir scratch_;
};

TEST(LayerSource, ReferenceLayersDecompressToTheirDiffId) {
  const auto layers = test::reference_layers();
  ASSERT_EQ(layers.size(), 10U);
  for (const auto& layer : layers) {
    SCOPED_TRACE(layer.name);
    auto source = LayerSource::open_path(layer.blob_path);
    ASSERT_TRUE(source.ok()) << source.error().to_string();
    const bool zstd = layer.media_type.ends_with("+zstd");
    EXPECT_EQ((*source)->compression(), zstd ? LayerCompression::kZstd : LayerCompression::kGzip);
    auto digest = sha256_of_stream(**source);
    ASSERT_TRUE(digest.ok()) << digest.error().to_string();
    EXPECT_EQ(digest->digest.to_string(), layer.diff_id);
    EXPECT_EQ(digest->size, layer.uncompressed_size);
    EXPECT_TRUE((*source)->finished());
    EXPECT_EQ((*source)->compressed_bytes(), layer.layer_size);
    EXPECT_EQ((*source)->uncompressed_bytes(), layer.uncompressed_size);
    auto blob_digest = (*source)->compressed_digest();
    ASSERT_TRUE(blob_digest.ok());
    EXPECT_EQ(blob_digest->to_string(), layer.layer_digest);
  }
}

TEST(LayerSource, PlainBytesPassThrough) {
  const auto data = test::splitmix64_bytes(7, 3U << 20U);
  auto source = open_bytes(data);
  ASSERT_TRUE(source.ok());
  EXPECT_EQ((*source)->compression(), LayerCompression::kNone);
  auto out = test::read_all(**source);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, data);
  EXPECT_EQ((*source)->compressed_digest()->to_string(), sha256_of(data).to_string());
}

TEST(LayerSource, UnlimitedCapStillReads) {
  const auto data = test::splitmix64_bytes(9, 5000);
  LayerSourceOptions options;
  options.max_uncompressed_bytes = std::numeric_limits<std::uint64_t>::max();
  auto out = decompress(data, options);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, data);
}

TEST(LayerSource, EmptyAndTinyInputsArePlain) {
  for (std::size_t size = 0; size < 4; ++size) {
    const std::vector<std::uint8_t> data(size, 0x1F);
    auto out = decompress(data);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(*out, data);
  }
}

TEST(LayerSource, CompressedDigestNeedsTheEnd) {
  const auto data = test::splitmix64_bytes(1, 1000);
  auto source = open_bytes(data);
  ASSERT_TRUE(source.ok());
  EXPECT_FALSE((*source)->compressed_digest().ok());
  LayerSourceOptions no_hash;
  no_hash.hash_compressed = false;
  auto unhashed = open_bytes(data, no_hash);
  ASSERT_TRUE(test::read_all(**unhashed).ok());
  EXPECT_FALSE((*unhashed)->compressed_digest().ok());
}

TEST_F(LayerSourceTools, GzipWithNameAndConcatenatedMembers) {
  const auto data = test::splitmix64_bytes(11, 300000);
  // Member 1 keeps the file name (FNAME header field), member 2 is empty, member 3 is -1.
  const auto blob = make(data,
                         "gzip -9 -c data > a.gz && printf '' | gzip -n > b.gz && "
                         "gzip -1 -n -c data > c.gz && cat a.gz b.gz c.gz > all.gz",
                         "all.gz");
  auto out = decompress(blob);
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  std::vector<std::uint8_t> expected = data;
  expected.insert(expected.end(), data.begin(), data.end());
  EXPECT_EQ(*out, expected);
}

TEST_F(LayerSourceTools, ZstdFramesAndSkippableFrames) {
  const auto data = test::splitmix64_bytes(12, 200000);
  auto blob = make(data,
                   "zstd -q -3 -c data > a.zst && zstd -q --no-check -c data > b.zst && "
                   "cat a.zst b.zst > all.zst",
                   "all.zst");
  // A skippable frame (magic 0x184D2A50, 5 bytes of payload) between the two frames.
  const std::vector<std::uint8_t> skippable = {0x50, 0x2A, 0x4D, 0x18, 5, 0, 0, 0, 1, 2, 3, 4, 5};
  const auto first = test::read_file(scratch_.file("a.zst"));
  blob.insert(blob.begin() + static_cast<std::ptrdiff_t>(first.size()), skippable.begin(),
              skippable.end());
  auto out = decompress(blob);
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  std::vector<std::uint8_t> expected = data;
  expected.insert(expected.end(), data.begin(), data.end());
  EXPECT_EQ(*out, expected);
}

TEST_F(LayerSourceTools, GzipBadCrcIsRefused) {
  auto blob = make(test::splitmix64_bytes(13, 5000), "gzip -n -c data > d.gz", "d.gz");
  blob[blob.size() - 8] ^= 0x01;  // first byte of the CRC32 trailer
  expect_error(decompress(blob), ErrorCode::kCorruptInput, "CRC32 or ISIZE");
}

// hash_plain_tar off: no blob hash for a plain tar (its digest is the diff_id the reader computes),
// but a compressed blob is still hashed, and to the gzip tool's bytes.
TEST_F(LayerSourceTools, PlainTarHashingCanBeLeftToTheReader) {
  LayerSourceOptions options;
  options.hash_plain_tar = false;
  const auto data = test::splitmix64_bytes(15, 5000);
  auto plain = open_bytes(data, options);
  ASSERT_TRUE(plain.ok());
  ASSERT_TRUE(test::read_all(**plain).ok());
  EXPECT_EQ((*plain)->compression(), LayerCompression::kNone);
  EXPECT_FALSE((*plain)->compressed_digest().ok());
  const auto blob = make(data, "gzip -n -c data > e.gz", "e.gz");
  auto gzip = open_bytes(blob, options);
  ASSERT_TRUE(gzip.ok());
  ASSERT_TRUE(test::read_all(**gzip).ok());
  ASSERT_TRUE((*gzip)->compressed_digest().ok());
  EXPECT_EQ(*(*gzip)->compressed_digest(), sha256_of(blob));
}

TEST_F(LayerSourceTools, GzipBadIsizeIsRefused) {
  auto blob = make(test::splitmix64_bytes(13, 5000), "gzip -n -c data > d.gz", "d.gz");
  blob[blob.size() - 4] ^= 0x01;
  expect_error(decompress(blob), ErrorCode::kCorruptInput, "CRC32 or ISIZE");
}

TEST_F(LayerSourceTools, TruncatedGzipIsRefused) {
  const auto blob = make(test::splitmix64_bytes(14, 100000), "gzip -n -c data > d.gz", "d.gz");
  for (const std::size_t keep :
       {std::size_t{3}, std::size_t{10}, blob.size() / 2, blob.size() - 4, blob.size() - 1}) {
    SCOPED_TRACE(keep);
    const std::vector<std::uint8_t> cut(blob.begin(),
                                        blob.begin() + static_cast<std::ptrdiff_t>(keep));
    expect_error(decompress(cut), ErrorCode::kCorruptInput, "truncated");
  }
}

TEST_F(LayerSourceTools, GarbageAfterGzipMemberIsRefused) {
  auto blob = make(test::splitmix64_bytes(15, 1000), "gzip -n -c data > d.gz", "d.gz");
  blob.push_back(0);
  blob.push_back(0);
  expect_error(decompress(blob), ErrorCode::kCorruptInput, "not another gzip member");
}

TEST_F(LayerSourceTools, CorruptGzipDeflateIsRefused) {
  auto blob = make(std::vector<std::uint8_t>(100000, 'a'), "gzip -n -c data > d.gz", "d.gz");
  for (std::size_t i = 10; i < 30 && i < blob.size(); ++i) blob[i] = 0xFF;
  const auto result = decompress(blob);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(result.error().message.find("gzip member at compressed offset 0"), std::string::npos)
      << result.error().to_string();
}

TEST_F(LayerSourceTools, CorruptZstdIsRefused) {
  auto blob = make(test::splitmix64_bytes(16, 100000), "zstd -q -c data > d.zst", "d.zst");
  auto flipped = blob;
  flipped[flipped.size() - 2] ^= 0x40;  // inside the content checksum
  expect_error(decompress(flipped), ErrorCode::kCorruptInput, "zstd");
  const std::vector<std::uint8_t> cut(blob.begin(), blob.end() - 10);
  expect_error(decompress(cut), ErrorCode::kCorruptInput, "truncated");
  auto garbage = blob;
  garbage.insert(garbage.end(), {1, 2, 3, 4, 5, 6, 7, 8});
  expect_error(decompress(garbage), ErrorCode::kCorruptInput, "zstd");
}

TEST(LayerSource, TruncatedZstdFramesAreRefused) {
  const std::vector<std::uint8_t> magic_only = {0x28, 0xB5, 0x2F, 0xFD};
  expect_error(decompress(magic_only), ErrorCode::kCorruptInput, "zstd truncated");
  // A skippable frame claiming 4 GiB - 1 bytes with 4 present: no allocation, a truncation error.
  const std::vector<std::uint8_t> skippable = {0x50, 0x2A, 0x4D, 0x18, 0xFF, 0xFF,
                                               0xFF, 0xFF, 1,    2,    3,    4};
  auto source = open_bytes(skippable);
  ASSERT_TRUE(source.ok());
  EXPECT_EQ((*source)->compression(), LayerCompression::kZstd);
  expect_error(decompress(skippable), ErrorCode::kCorruptInput, "zstd truncated");
}

TEST(LayerSource, OnlySkippableFramesGiveAnEmptyStream) {
  const std::vector<std::uint8_t> blob = {0x5F, 0x2A, 0x4D, 0x18, 2, 0, 0, 0, 9, 9};
  auto out = decompress(blob);
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  EXPECT_TRUE(out->empty());
}

TEST_F(LayerSourceTools, GzipBombStopsAtTheCap) {
  const auto blob = make({}, "head -c 67108864 /dev/zero | gzip -1 -n > bomb.gz", "bomb.gz");
  ASSERT_LT(blob.size(), 1U << 20U);
  LayerSourceOptions options;
  options.max_uncompressed_bytes = 16U << 20U;
  auto source = open_bytes(blob, options);
  ASSERT_TRUE(source.ok());
  std::vector<std::uint8_t> buffer(1U << 20U);
  Error error;
  while (true) {
    auto got = (*source)->read(buffer);
    if (!got.ok()) {
      error = got.error();
      break;
    }
    ASSERT_NE(*got, 0U) << "the bomb decompressed fully despite the cap";
  }
  EXPECT_EQ(error.code, ErrorCode::kLimitExceeded);
  EXPECT_NE(error.message.find("16777216"), std::string::npos) << error.to_string();
  EXPECT_LE((*source)->uncompressed_bytes(), options.max_uncompressed_bytes + 1);
}

TEST_F(LayerSourceTools, ZstdBombStopsAtTheCap) {
  const auto blob = make({}, "head -c 67108864 /dev/zero | zstd -q -19 > bomb.zst", "bomb.zst");
  LayerSourceOptions options;
  options.max_uncompressed_bytes = 16U << 20U;
  expect_error(decompress(blob, options), ErrorCode::kLimitExceeded, "16777216");
}

TEST(LayerSource, ZstdWindowTooLargeIsRefused) {
  // Frame header: magic, descriptor 0x00 (no FCS, single segment off), window byte 0xF8:
  // exponent 31 -> a 2 GiB window, above libzstd's default limit of 2^27.
  const std::vector<std::uint8_t> blob = {0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xF8, 0x01, 0x00, 0x00};
  expect_error(decompress(blob), ErrorCode::kLimitExceeded, "zstd");
}

TEST_F(LayerSourceTools, GzipThroughAPipeInSmallWrites) {
  const auto data = test::splitmix64_bytes(21, 400000);
  const auto blob = make(data, "gzip -n -c data > d.gz", "d.gz");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::thread writer([&] {
    for (std::size_t at = 0; at < blob.size();) {
      const std::size_t piece = std::min<std::size_t>(blob.size() - at, 1 + at % 3001);
      const ssize_t written = ::write(fds[1], blob.data() + at, piece);
      if (written <= 0) break;
      at += static_cast<std::size_t>(written);
    }
    ::close(fds[1]);
  });
  auto source = LayerSource::open(std::make_unique<FdByteSource>(fds[0], true));
  ASSERT_TRUE(source.ok());
  EXPECT_EQ((*source)->compression(), LayerCompression::kGzip);
  auto out = test::read_all(**source);
  writer.join();
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  EXPECT_EQ(*out, data);
  EXPECT_EQ((*source)->compressed_bytes(), blob.size());
}

// decode_ahead moves decoding to a worker thread: the bytes, the counters, the blob digest and
// every error must be what the reader's own thread would have produced; a reader that stops
// early must not leave the worker blocked.
TEST_F(LayerSourceTools, DecodeAheadGivesTheSameBytesCountersAndErrors) {
  LayerSourceOptions ahead;
  ahead.decode_ahead = true;
  for (const auto& layer : test::reference_layers()) {
    SCOPED_TRACE(layer.name);
    auto source = LayerSource::open_path(layer.blob_path, ahead);
    ASSERT_TRUE(source.ok()) << source.error().to_string();
    Sha256 hash;
    std::vector<std::uint8_t> piece(777);  // pieces that straddle the worker's blocks
    std::uint64_t total = 0;
    for (;;) {
      auto got = (*source)->read(piece);
      ASSERT_TRUE(got.ok()) << got.error().to_string();
      if (*got == 0) break;
      hash.update(ByteSpan(piece.data(), *got));
      total += *got;
      EXPECT_LE((*source)->uncompressed_bytes(), total);
    }
    EXPECT_EQ(hash.finish().to_string(), layer.diff_id);
    EXPECT_TRUE((*source)->finished());
    EXPECT_EQ((*source)->uncompressed_bytes(), layer.uncompressed_size);
    EXPECT_EQ((*source)->compressed_bytes(), layer.layer_size);
    auto blob_digest = (*source)->compressed_digest();
    ASSERT_TRUE(blob_digest.ok());
    EXPECT_EQ(blob_digest->to_string(), layer.layer_digest);
  }
  const auto data = test::splitmix64_bytes(21, 3U << 20U);
  const auto blob = make(data, "gzip -n -c data > a.gz", "a.gz");
  auto whole = decompress(blob, ahead);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*whole, data);
  auto bad_crc = blob;
  bad_crc[bad_crc.size() - 8] ^= 0x01;
  expect_error(decompress(bad_crc, ahead), ErrorCode::kCorruptInput, "CRC32 or ISIZE");
  const std::vector<std::uint8_t> cut(blob.begin(), blob.begin() + blob.size() / 2);
  expect_error(decompress(cut, ahead), ErrorCode::kCorruptInput, "truncated");
  LayerSourceOptions capped = ahead;
  capped.max_uncompressed_bytes = 1U << 20U;
  expect_error(decompress(blob, capped), ErrorCode::kLimitExceeded, "1048576");
  // Stopping after one read: the worker has blocks queued and must still be joined.
  for (int round = 0; round < 20; ++round) {
    auto source = open_bytes(blob, ahead);
    ASSERT_TRUE(source.ok());
    std::vector<std::uint8_t> head(4096);
    auto got = (*source)->read(head);
    ASSERT_TRUE(got.ok());
    EXPECT_GT(*got, 0U);
  }
}

TEST(LayerSource, MissingFileIsAnIoError) {
  auto source = LayerSource::open_path("/nonexistent/strata/layer.tar");
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.error().code, ErrorCode::kIo);
  EXPECT_NE(source.error().message.find("/nonexistent/strata/layer.tar"), std::string::npos);
}

}  // namespace
}  // namespace strata
