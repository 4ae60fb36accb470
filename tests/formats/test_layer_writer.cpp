// Layer writers and decoders: every gzip (ISA-L levels 0..3, zlib) and zstd (levels, threads)
// blob decompresses with the gzip / zstd command-line tools to the input tar bytes; zlib level 6
// equals Python's zlib byte for byte; digests, sizes and diff_ids equal independent SHA-256s;
// output does not depend on how the input was split; zstd's multi-threaded output is the same
// for 2 and 4 workers; bad levels, damaged, truncated and oversized streams are refused.
#include <gtest/gtest.h>
#include <zlib.h>

#include <iostream>

#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"

namespace strata {
namespace {

using test::TempDir;

// 3.5 MiB mixing random and repetitive bytes, so blocks compress differently and several 1 MiB
// input blocks are crossed.
std::vector<std::uint8_t> make_input() {
  std::vector<std::uint8_t> data = test::splitmix64_bytes(42, 1U << 20U);
  const std::string text = "usr/lib/x86_64-linux-gnu/libexample.so.1 0755 root root\n";
  while (data.size() < (7U << 19U)) data.insert(data.end(), text.begin(), text.end());
  const auto tail = test::splitmix64_bytes(7, 12345);
  data.insert(data.end(), tail.begin(), tail.end());
  return data;
}

struct Written {
  std::vector<std::uint8_t> blob;
  oci::LayerDigests digests;
};

Written write_layer(const oci::LayerWriterOptions& options, ByteSpan input,
                    const std::vector<std::size_t>& pieces = {}) {
  Written written;
  auto writer = oci::LayerWriter::create(options, [&written](ByteSpan bytes) -> Result<void> {
    written.blob.insert(written.blob.end(), bytes.begin(), bytes.end());
    return {};
  });
  EXPECT_TRUE(writer.ok()) << writer.error().to_string();
  std::size_t offset = 0;
  std::size_t next_piece = 0;
  while (offset < input.size()) {
    const std::size_t want = pieces.empty() ? input.size() : pieces[next_piece++ % pieces.size()];
    const std::size_t take = std::min(want, input.size() - offset);
    EXPECT_TRUE(writer->write(input.subspan(offset, take)).ok());
    offset += take;
  }
  auto digests = writer->finish();
  EXPECT_TRUE(digests.ok()) << digests.error().to_string();
  written.digests = *digests;
  return written;
}

// Decompresses with an outside tool (gzip -dc / zstd -dc) and returns the bytes.
std::vector<std::uint8_t> decompress_with_tool(const std::string& tool, ByteSpan blob) {
  TempDir temp;
  test::write_bytes(temp / "blob", blob);
  EXPECT_EQ(test::shell(tool + " -dc " + (temp / "blob") + " > " + (temp / "out")), 0);
  return test::read_file(temp / "out");
}

void expect_consistent(const Written& written, ByteSpan input) {
  EXPECT_EQ(written.digests.diff_id, sha256_of(input));
  EXPECT_EQ(written.digests.uncompressed_size, input.size());
  EXPECT_EQ(written.digests.digest, sha256_of(written.blob));
  EXPECT_EQ(written.digests.size, written.blob.size());
}

TEST(LayerWriter, IsalGzipLevelsDecompressWithGzip) {
  const auto input = make_input();
  std::vector<std::vector<std::uint8_t>> blobs;
  for (int level = 0; level <= 3; ++level) {
    SCOPED_TRACE(level);
    oci::LayerWriterOptions options;
    options.level = level;
    const Written written = write_layer(options, input);
    expect_consistent(written, input);
    EXPECT_EQ(written.digests.media_type, oci::kMediaTypeLayerTarGzip);
    EXPECT_EQ(decompress_with_tool("gzip", written.blob), input);
    // Fixed header: no name, mtime 0, OS 255.
    ASSERT_GE(written.blob.size(), 10U);
    EXPECT_EQ(std::vector<std::uint8_t>(written.blob.begin(), written.blob.begin() + 10),
              (std::vector<std::uint8_t>{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}));
    blobs.push_back(written.blob);
  }
  // The level reaches ISA-L: level 0 compresses least, level 3 differs from level 1. (Level 2
  // gave level 1's bytes on the development machine, so the two are not compared.)
  EXPECT_GT(blobs[0].size(), blobs[1].size());
  EXPECT_NE(blobs[3], blobs[1]);
}

TEST(LayerWriter, ZlibGzipMatchesOtherZlibUsers) {
  const auto input = make_input();
  oci::LayerWriterOptions options;
  options.gzip_engine = oci::GzipEngine::kZlib;
  const Written written = write_layer(options, input);
  expect_consistent(written, input);
  EXPECT_EQ(decompress_with_tool("gzip", written.blob), input);
  // zlib's gzip header at level 6: no name, mtime 0, XFL 0, OS 3, as `gzip -n` writes it.
  EXPECT_EQ(std::vector<std::uint8_t>(written.blob.begin(), written.blob.begin() + 10),
            (std::vector<std::uint8_t>{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}));
  // An independent zlib user gives the same bytes: Python's zlib at level 6 with a gzip wrapper
  // (when it runs the same zlib release; deflate output may change between releases).
  TempDir temp;
  test::write_bytes(temp / "in", input);
  const std::string script =
      "import sys, zlib\n"
      "if zlib.ZLIB_RUNTIME_VERSION != sys.argv[3]: sys.exit(77)\n"
      "c = zlib.compressobj(6, zlib.DEFLATED, 31)\n"
      "data = open(sys.argv[1], 'rb').read()\n"
      "open(sys.argv[2], 'wb').write(c.compress(data) + c.flush())\n";
  test::write_text(temp / "zlib6.py", script);
  const int status = test::shell("python3 " + (temp / "zlib6.py") + " " + (temp / "in") + " " +
                                 (temp / "out") + " " + zlibVersion());
  if (status == 77) {
    std::cout << "python3's zlib is another release than strata's; byte comparison skipped\n";
  } else {
    ASSERT_EQ(status, 0);
    EXPECT_EQ(test::read_file(temp / "out"), written.blob);
  }
  options.level = 1;
  const Written fast = write_layer(options, input);
  EXPECT_EQ(decompress_with_tool("gzip", fast.blob), input);
  EXPECT_GT(fast.blob.size(), written.blob.size());
}

TEST(LayerWriter, ZstdLevelsAndThreadsDecompressWithZstd) {
  const auto input = make_input();
  for (const int level : {-3, 1, 3, 9}) {
    SCOPED_TRACE(level);
    oci::LayerWriterOptions options;
    options.compression = oci::LayerCompression::kZstd;
    options.level = level;
    const Written written = write_layer(options, input);
    expect_consistent(written, input);
    EXPECT_EQ(written.digests.media_type, oci::kMediaTypeLayerTarZstd);
    EXPECT_EQ(decompress_with_tool("zstd", written.blob), input);
  }
  oci::LayerWriterOptions threaded;
  threaded.compression = oci::LayerCompression::kZstd;
  threaded.threads = 2;
  const Written two = write_layer(threaded, input);
  threaded.threads = 4;
  const Written four = write_layer(threaded, input, {100000, 7, 3000000});
  EXPECT_EQ(decompress_with_tool("zstd", two.blob), input);
  EXPECT_EQ(two.blob, four.blob);  // zstd MT output does not depend on the worker count
}

TEST(LayerWriter, OutputDoesNotDependOnInputSplit) {
  const auto input = make_input();
  const std::vector<std::size_t> pieces = {1, 511, 4096, 65537, 1U << 20U, 3};
  oci::LayerWriterOptions options;
  for (const auto compression :
       {oci::LayerCompression::kNone, oci::LayerCompression::kGzip, oci::LayerCompression::kZstd}) {
    options.compression = compression;
    for (const auto engine : {oci::GzipEngine::kIsal, oci::GzipEngine::kZlib}) {
      options.gzip_engine = engine;
      const Written whole = write_layer(options, input);
      const Written split = write_layer(options, input, pieces);
      EXPECT_EQ(whole.blob, split.blob);
      EXPECT_EQ(whole.digests.digest, split.digests.digest);
    }
  }
}

TEST(LayerWriter, UncompressedIsPassThrough) {
  const auto input = make_input();
  oci::LayerWriterOptions options;
  options.compression = oci::LayerCompression::kNone;
  const Written written = write_layer(options, input);
  EXPECT_EQ(written.blob, input);
  EXPECT_EQ(written.digests.digest, written.digests.diff_id);
  EXPECT_EQ(written.digests.media_type, oci::kMediaTypeLayerTar);
}

TEST(LayerWriter, BadOptionsAreRefused) {
  const auto sink = [](ByteSpan) -> Result<void> { return {}; };
  oci::LayerWriterOptions options;
  options.level = 4;
  auto writer = oci::LayerWriter::create(options, sink);
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(writer.error().message.find("outside 0..3"), std::string::npos);
  options.gzip_engine = oci::GzipEngine::kZlib;
  options.level = 10;
  EXPECT_FALSE(oci::LayerWriter::create(options, sink).ok());
  options.compression = oci::LayerCompression::kZstd;
  options.level = 1000;
  EXPECT_FALSE(oci::LayerWriter::create(options, sink).ok());
  options.level = 3;
  options.threads = 0;
  EXPECT_FALSE(oci::LayerWriter::create(options, sink).ok());
  EXPECT_FALSE(oci::LayerWriter::create({}, ByteSink()).ok());
}

TEST(LayerWriter, SinkErrorsPropagate) {
  const auto input = make_input();
  auto writer = oci::LayerWriter::create(
      {}, [](ByteSpan) -> Result<void> { return make_error(ErrorCode::kIo, "disk full"); });
  ASSERT_TRUE(writer.ok());
  Result<void> status = writer->write(input);
  if (status.ok()) {
    auto finished = writer->finish();
    ASSERT_FALSE(finished.ok());
    EXPECT_EQ(finished.error().message, "disk full");
  } else {
    EXPECT_EQ(status.error().message, "disk full");
  }
}

Result<oci::LayerDigests> decode_bytes(oci::LayerCompression compression, ByteSpan blob,
                                       std::vector<std::uint8_t>* tar = nullptr,
                                       std::uint64_t limit = std::uint64_t{1} << 40U) {
  std::size_t offset = 0;
  const oci::ByteSource source = [&](MutableByteSpan into) -> Result<std::size_t> {
    const std::size_t take = std::min({into.size(), blob.size() - offset, std::size_t{70000}});
    std::copy_n(blob.begin() + static_cast<std::ptrdiff_t>(offset), take, into.begin());
    offset += take;
    return take;
  };
  ByteSink sink;
  if (tar != nullptr) {
    sink = [tar](ByteSpan bytes) -> Result<void> {
      tar->insert(tar->end(), bytes.begin(), bytes.end());
      return {};
    };
  }
  return oci::decode_layer(compression, source, sink, limit);
}

TEST(LayerDecoder, DecodesWhatTheToolsWrite) {
  const auto input = make_input();
  TempDir temp;
  test::write_bytes(temp / "in", input);
  ASSERT_EQ(test::shell("gzip -9nc " + (temp / "in") + " > " + (temp / "in.gz")), 0);
  ASSERT_EQ(test::shell("zstd -q -19 -c " + (temp / "in") + " > " + (temp / "in.zst")), 0);
  // Two gzip members back to back are one valid gzip file (RFC 1952 §2.2).
  ASSERT_EQ(
      test::shell("cat " + (temp / "in.gz") + " " + (temp / "in.gz") + " > " + (temp / "two.gz")),
      0);
  for (const std::string name : {"in.gz", "in.zst"}) {
    SCOPED_TRACE(name);
    std::vector<std::uint8_t> tar;
    const auto blob = test::read_file(temp / name);
    auto decoded = decode_bytes(oci::detect_compression(blob), blob, &tar);
    ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
    EXPECT_EQ(tar, input);
    EXPECT_EQ(decoded->diff_id, sha256_of(input));
    EXPECT_EQ(decoded->digest, sha256_of(blob));
  }
  auto file = oci::decode_layer_file(temp / "two.gz", ByteSink());
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_EQ(file->uncompressed_size, 2 * input.size());
  auto plain = oci::decode_layer_file(temp / "in", ByteSink());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->diff_id, sha256_of(input));
  EXPECT_EQ(plain->media_type, oci::kMediaTypeLayerTar);
}

TEST(LayerDecoder, DamagedStreamsAreRefused) {
  const auto input = make_input();
  for (const auto compression : {oci::LayerCompression::kGzip, oci::LayerCompression::kZstd}) {
    SCOPED_TRACE(static_cast<int>(compression));
    oci::LayerWriterOptions options;
    options.compression = compression;
    const Written written = write_layer(options, input);
    std::vector<std::uint8_t> flipped = written.blob;
    flipped[flipped.size() / 2] ^= 0x10U;
    auto damaged = decode_bytes(compression, flipped);
    ASSERT_FALSE(damaged.ok());
    EXPECT_EQ(damaged.error().code, ErrorCode::kCorruptInput) << damaged.error().message;
    auto truncated =
        decode_bytes(compression, ByteSpan(written.blob).first(written.blob.size() - 9));
    ASSERT_FALSE(truncated.ok());
    EXPECT_EQ(truncated.error().code, ErrorCode::kCorruptInput);
    std::vector<std::uint8_t> trailing = written.blob;
    trailing.insert(trailing.end(), {'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k'});
    EXPECT_FALSE(decode_bytes(compression, trailing).ok());
    auto bomb = decode_bytes(compression, written.blob, nullptr, 1000);
    ASSERT_FALSE(bomb.ok());
    EXPECT_EQ(bomb.error().code, ErrorCode::kLimitExceeded);
  }
  EXPECT_FALSE(decode_bytes(oci::LayerCompression::kZstd, ByteSpan()).ok());
}

TEST(LayerDecoder, DetectsCompressionByMagic) {
  const std::uint8_t gzip[] = {0x1f, 0x8b, 8, 0};
  const std::uint8_t zstd[] = {0x28, 0xb5, 0x2f, 0xfd};
  const std::uint8_t tar[] = {'b', 'i', 'n', '/'};
  EXPECT_EQ(oci::detect_compression(gzip), oci::LayerCompression::kGzip);
  EXPECT_EQ(oci::detect_compression(zstd), oci::LayerCompression::kZstd);
  EXPECT_EQ(oci::detect_compression(tar), oci::LayerCompression::kNone);
  EXPECT_EQ(oci::detect_compression(ByteSpan()), oci::LayerCompression::kNone);
}

}  // namespace
}  // namespace strata
