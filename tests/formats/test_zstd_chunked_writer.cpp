// The zstd:chunked writer on layers with runs of zeros (shared/specs/layer-formats.md §1.2:
// c/storage turns every run of >= 1024 zero bytes into a chunk of type "zeros"): the tar comes from
// GNU tar, the blob must decompress with the real `zstd -d` to that tar, the TOC's zeros chunks
// must be exactly the runs a plain byte loop finds in each file, a planner must fetch none of them,
// and the streaming writer must give the same bytes however the tar is handed to it.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>

#include "formats/tar/tar_reader.h"
#include "strata/fastpull.h"
#include "strata/oci.h"
#include "tests/layer_fixtures.h"

namespace strata::fastpull {
namespace {

using Bytes = std::vector<std::uint8_t>;

void append_random(Bytes& out, std::uint64_t seed, std::size_t size) {
  const Bytes random = test::splitmix64_bytes(seed, size);
  out.insert(out.end(), random.begin(), random.end());
}
void append_zeros(Bytes& out, std::size_t size) {
  out.insert(out.end(), size, 0);
}

struct ZeroRunSpan {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  friend bool operator==(const ZeroRunSpan&, const ZeroRunSpan&) = default;
};

// The reference: maximal runs of >= 1024 zero bytes, found one byte at a time.
std::vector<ZeroRunSpan> zero_runs_of(const Bytes& content) {
  std::vector<ZeroRunSpan> runs;
  std::size_t i = 0;
  while (i < content.size()) {
    if (content[i] != 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < content.size() && content[j] == 0) ++j;
    if (j - i >= 1024) runs.push_back({i, j - i});
    i = j;
  }
  return runs;
}

struct SparseLayer {
  test::ScratchDir dir;
  std::map<std::string, Bytes> files;
  Bytes tar;
  std::vector<TarChunk> chunks;  // every 4 KiB of every file: cuts fall inside the zero runs
};

void make_sparse_layer(SparseLayer& layer) {
  Bytes sparse;
  append_random(sparse, 1, 5000);
  append_zeros(sparse, 65536);
  append_random(sparse, 2, 3000);
  append_zeros(sparse, 2000);  // a run at the file's end
  Bytes edges;
  append_zeros(edges, 1024);  // exactly the threshold, at the start
  append_random(edges, 3, 100);
  append_zeros(edges, 1023);  // one short of it
  append_random(edges, 4, 100);
  Bytes short_gap;
  append_random(short_gap, 5, 3000);
  append_zeros(short_gap, 500);
  append_random(short_gap, 6, 3000);
  layer.files["sparse.bin"] = sparse;
  layer.files["edges.bin"] = edges;
  layer.files["short-gap.bin"] = short_gap;
  layer.files["all-zeros.bin"] = Bytes(10240, 0);
  std::filesystem::create_directories(layer.dir.file("root"));
  for (const auto& [name, content] : layer.files) {
    test::write_file(layer.dir.file("root/" + name), content);
  }
  ASSERT_TRUE(test::shell(layer.dir.path(),
                          "tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner "
                          "--mtime=2024-01-01 -C root -cf layer.tar ."));
  layer.tar = test::read_file(layer.dir.file("layer.tar"));
  MemoryByteSource source(layer.tar);
  TarReader reader(source);
  for (;;) {
    auto event = reader.next();
    ASSERT_TRUE(event.ok()) << event.error().message;
    if (event->kind == TarEventKind::kDone) break;
    if (event->kind != TarEventKind::kHeader || event->entry->type != TarEntryType::kRegular) {
      continue;
    }
    const std::uint64_t start = event->offset + event->bytes.size();
    for (std::uint64_t at = 0; at < event->entry->size; at += 4096) {
      const std::uint64_t length = std::min<std::uint64_t>(4096, event->entry->size - at);
      layer.chunks.push_back(
          TarChunk{start + at, length, sha256_of(ByteSpan(layer.tar).subspan(start + at, length))});
    }
  }
}

Result<ChunkedWriteReport> write_blob(const SparseLayer& layer, std::span<const TarChunk> chunks,
                                      Bytes& blob, const ChunkedWriteOptions& options = {}) {
  return write_zstd_chunked_layer(layer.tar, chunks, {}, options,
                                  [&](ByteSpan bytes) -> Result<void> {
                                    blob.insert(blob.end(), bytes.begin(), bytes.end());
                                    return {};
                                  });
}

Result<ChunkedLayerToc> read_toc(const Bytes& blob, const oci::Annotations& annotations) {
  return read_chunked_toc(
      blob.size(), annotations, [&](std::uint64_t offset, std::uint64_t length) -> Result<Bytes> {
        return Bytes(blob.begin() + static_cast<std::ptrdiff_t>(offset),
                     blob.begin() + static_cast<std::ptrdiff_t>(offset + length));
      });
}

// The reference for whole chunks: a chunk of 4 KiB steps that is all zeros joins the zeros chunk
// before it, or starts one when it is at least 1024 bytes long.
std::vector<ZeroRunSpan> zero_chunks_of(const Bytes& content) {
  std::vector<ZeroRunSpan> runs;
  bool open = false;
  for (std::size_t at = 0; at < content.size(); at += 4096) {
    const std::size_t length = std::min<std::size_t>(4096, content.size() - at);
    const bool zero = std::all_of(content.begin() + static_cast<std::ptrdiff_t>(at),
                                  content.begin() + static_cast<std::ptrdiff_t>(at + length),
                                  [](std::uint8_t b) { return b == 0; });
    if (zero && open) {
      runs.back().length += length;
    } else if (zero && length >= 1024) {
      runs.push_back({at, length});
      open = true;
    } else {
      open = false;
    }
  }
  return runs;
}

// Writes the layer, decodes the blob with the real zstd, and checks the TOC's zeros chunks per
// file against `expected_of`, the blob against its digests, and that a plan fetches no zeros.
void check_zeros_chunks(const SparseLayer& layer, std::span<const TarChunk> chunks,
                        const ChunkedWriteOptions& options,
                        const std::function<std::vector<ZeroRunSpan>(const Bytes&)>& expected_of) {
  Bytes blob;
  auto written = write_blob(layer, chunks, blob, options);
  ASSERT_TRUE(written.ok()) << written.error().message;
  EXPECT_EQ(written->diff_id, sha256_of(layer.tar));

  // The real zstd tool decodes the whole blob (zeros frames included) to the exact tar.
  test::write_file(layer.dir.file("blob.zst"), blob);
  ASSERT_TRUE(test::shell(layer.dir.path(), "zstd -d -q -f blob.zst -o blob.tar"));
  EXPECT_EQ(test::read_file(layer.dir.file("blob.tar")), layer.tar);

  auto toc = read_toc(blob, written->annotations);
  ASSERT_TRUE(toc.ok()) << toc.error().message;
  std::map<std::string, std::vector<ZeroRunSpan>> found;
  std::map<std::string, std::size_t> pieces;
  std::size_t zeros_total = 0;
  for (const TocEntry& entry : toc->toc.entries) {
    if (entry.type != "reg" && entry.type != "chunk") continue;
    const std::string name = entry.name.substr(entry.name.rfind('/') + 1);
    ++pieces[name];
    if (entry.chunk_type == "zeros") {
      found[name].push_back({entry.chunk_offset, entry.chunk_size});
      EXPECT_EQ(*entry.chunk_digest, sha256_of(Bytes(entry.chunk_size, 0)));
      ++zeros_total;
    } else {
      EXPECT_EQ(entry.chunk_type, "") << name;
    }
  }
  for (const auto& [name, content] : layer.files) {
    SCOPED_TRACE(name);
    std::vector<ZeroRunSpan> expected = expected_of(content);
    // A file that is one chunk carries no chunk fields (§1.2), zeros or not.
    if (expected.size() == 1 && expected[0].length == content.size()) {
      expected.clear();
      EXPECT_EQ(pieces[name], 1U);
    }
    EXPECT_EQ(found[name], expected);
  }
  EXPECT_GE(zeros_total, 2U);

  auto verified = verify_chunked_blob(blob, written->annotations, sha256_of(layer.tar));
  ASSERT_TRUE(verified.ok()) << verified.error().message;

  // Nothing local: a planner still fetches no zeros chunk.
  PullPlanOptions no_bridging;
  no_bridging.gap_bridge_bytes = 0;
  auto plan = plan_pull(*toc, {}, no_bridging);
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  std::size_t zeros = 0;
  for (const BlobPiece& piece : plan->pieces) {
    if (!piece.zeros) continue;
    ++zeros;
    EXPECT_TRUE(piece.local);
    for (const ByteRange& range : plan->ranges) {
      EXPECT_TRUE(piece.end <= range.offset || piece.offset >= range.offset + range.length);
    }
  }
  EXPECT_EQ(zeros, zeros_total);
}

TEST(ZstdChunkedWriter, ZeroRunsOfUncoveredContentBecomeZerosChunks) {
  SparseLayer layer;
  make_sparse_layer(layer);
  check_zeros_chunks(layer, {}, ChunkedWriteOptions{}, zero_runs_of);
}

TEST(ZstdChunkedWriter, SplittingChunksAtZeroRunsFindsEveryRunAcrossCuts) {
  SparseLayer layer;
  make_sparse_layer(layer);
  ChunkedWriteOptions options;
  options.split_chunks_at_zero_runs = true;
  check_zeros_chunks(layer, layer.chunks, options, zero_runs_of);
}

TEST(ZstdChunkedWriter, WholeChunksOfZerosBecomeZerosChunksAndOthersStayWhole) {
  SparseLayer layer;
  make_sparse_layer(layer);
  check_zeros_chunks(layer, layer.chunks, ChunkedWriteOptions{}, zero_chunks_of);
}

TEST(ZstdChunkedWriter, StreamingGivesTheSameBlobHoweverTheTarArrives) {
  SparseLayer layer;
  make_sparse_layer(layer);
  ChunkedWriteOptions options;
  options.split_chunks_at_zero_runs = true;  // the most state carried from piece to piece
  Bytes whole;
  auto expected = write_blob(layer, layer.chunks, whole, options);
  ASSERT_TRUE(expected.ok()) << expected.error().message;
  for (const std::size_t piece : {std::size_t{1}, std::size_t{777}, std::size_t{1} << 20U}) {
    SCOPED_TRACE(piece);
    std::size_t position = 0;
    Bytes blob;
    auto streamed = stream_zstd_chunked_layer(
        [&](MutableByteSpan out) -> Result<std::size_t> {
          const std::size_t n = std::min({out.size(), piece, layer.tar.size() - position});
          std::copy_n(layer.tar.begin() + static_cast<std::ptrdiff_t>(position), n, out.begin());
          position += n;
          return n;
        },
        layer.chunks, {}, options,
        [&](ByteSpan bytes) -> Result<void> {
          blob.insert(blob.end(), bytes.begin(), bytes.end());
          return {};
        });
    ASSERT_TRUE(streamed.ok()) << streamed.error().message;
    EXPECT_EQ(blob, whole);
    EXPECT_EQ(streamed->digest, expected->digest);
    EXPECT_EQ(streamed->diff_id, sha256_of(layer.tar));
  }
}

TEST(ZstdChunkedWriter, ReaderErrorsAndTruncatedTarsAreReported) {
  SparseLayer layer;
  make_sparse_layer(layer);
  const auto discard = [](ByteSpan) -> Result<void> { return {}; };
  auto failed = stream_zstd_chunked_layer(
      [](MutableByteSpan) -> Result<std::size_t> {
        return make_error(ErrorCode::kIo, "source went away");
      },
      {}, {}, ChunkedWriteOptions{}, discard);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("source went away"), std::string::npos);
  const Bytes truncated(layer.tar.begin(), layer.tar.begin() + 3000);
  auto cut = write_zstd_chunked_layer(truncated, {}, {}, ChunkedWriteOptions{}, discard);
  EXPECT_FALSE(cut.ok());
}

// The containers/storage fixture has a 64 KiB zeros chunk (testdata/oci/README.txt): with nothing
// local, the plan makes it and fetches everything else of that file.
TEST(ZstdChunkedWriter, ReferenceZerosChunkIsMadeNotFetched) {
  const std::string layout = test::testdata_path("oci/layouts/zstd-chunked-cstorage-v2format");
  auto opened = oci::OciLayout::open(layout);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  auto image = opened->load_image("v1");
  ASSERT_TRUE(image.ok()) << image.error().message;
  const oci::Descriptor& descriptor = image->manifest.layers.at(0);
  auto blob = opened->read_blob(descriptor);
  ASSERT_TRUE(blob.ok()) << blob.error().message;
  auto toc = read_toc(*blob, descriptor.annotations);
  ASSERT_TRUE(toc.ok()) << toc.error().message;
  PullPlanOptions no_bridging;
  no_bridging.gap_bridge_bytes = 0;
  auto plan = plan_pull(*toc, {}, no_bridging);
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  std::size_t zeros = 0;
  for (const BlobPiece& piece : plan->pieces) {
    if (!piece.zeros) continue;
    ++zeros;
    EXPECT_TRUE(piece.local);
    EXPECT_EQ(piece.chunk_size, 65536U);
    EXPECT_EQ(piece.chunk_offset, 500000U);
  }
  EXPECT_EQ(zeros, 1U);
  auto verified = verify_chunked_blob(*blob, descriptor.annotations, image->config.diff_ids.at(0));
  EXPECT_TRUE(verified.ok()) << verified.error().message;
}

}  // namespace
}  // namespace strata::fastpull
