// TOC JSON (formats/chunked/toc_json.cpp): the plain-JSON reader that parse_toc_json tries first
// must read every TOC it accepts exactly as the nlohmann DOM reader does, and hand every other
// TOC to it. Checked on the TOCs c/storage wrote for the reference layers (raw, as fetched), on
// strata's own writer's output of every reference TOC (compact and indented), and on variants only
// the DOM reader takes (escapes, UTF-8, other types, repeated keys, nested unknown values).
#include <gtest/gtest.h>
#include <zstd.h>

#include <nlohmann/json.hpp>

#include "formats/chunked/toc_json.h"
#include "strata/fastpull.h"
#include "tests/layer_fixtures.h"
#include "tests/test_support.h"

namespace strata::fastpull {
namespace {

constexpr std::size_t kMaxEntries = 1'000'000;

ByteSpan span_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

void expect_same_toc(const Toc& got, const Toc& want, const std::string& what) {
  ASSERT_EQ(got.entries.size(), want.entries.size()) << what;
  EXPECT_EQ(got.tar_split_digest, want.tar_split_digest) << what;
  for (std::size_t i = 0; i < got.entries.size(); ++i) {
    const TocEntry& a = got.entries[i];
    const TocEntry& b = want.entries[i];
    const std::string where = what + " entry " + std::to_string(i);
    EXPECT_EQ(a.type, b.type) << where;
    EXPECT_EQ(a.name, b.name) << where;
    EXPECT_EQ(a.link_name, b.link_name) << where;
    EXPECT_EQ(a.mode, b.mode) << where;
    EXPECT_EQ(a.size, b.size) << where;
    EXPECT_EQ(a.uid, b.uid) << where;
    EXPECT_EQ(a.gid, b.gid) << where;
    EXPECT_EQ(a.modtime, b.modtime) << where;
    EXPECT_EQ(a.dev_major, b.dev_major) << where;
    EXPECT_EQ(a.dev_minor, b.dev_minor) << where;
    EXPECT_EQ(a.xattrs, b.xattrs) << where;
    EXPECT_EQ(a.digest, b.digest) << where;
    EXPECT_EQ(a.offset, b.offset) << where;
    EXPECT_EQ(a.end_offset, b.end_offset) << where;
    EXPECT_EQ(a.chunk_size, b.chunk_size) << where;
    EXPECT_EQ(a.chunk_offset, b.chunk_offset) << where;
    EXPECT_EQ(a.chunk_digest, b.chunk_digest) << where;
    EXPECT_EQ(a.chunk_type, b.chunk_type) << where;
    EXPECT_EQ(a.inner_offset, b.inner_offset) << where;
  }
}

// Both readers take `text`; they must agree, and the plain one must have read it itself.
void expect_plain_reads_like_full(const std::string& text, const std::string& what) {
  auto plain = detail::parse_plain_toc_json(span_of(text), kMaxEntries);
  auto full = detail::parse_toc_json_in_full(span_of(text), kMaxEntries);
  ASSERT_TRUE(full.ok()) << what << ": " << full.error().to_string();
  ASSERT_TRUE(plain.has_value()) << what << ": the plain reader refused it";
  expect_same_toc(*plain, *full, what);
}

// The zstd:chunked TOCs of the reference layers, as their tools wrote them.
std::vector<std::pair<std::string, std::string>> raw_zstd_chunked_tocs() {
  const auto expected_bytes = test::read_file(test::testdata_path("oci/expected.json"));
  const auto expected = nlohmann::json::parse(expected_bytes.begin(), expected_bytes.end());
  std::vector<std::pair<std::string, std::string>> tocs;
  for (const test::ReferenceLayer& layer : test::reference_layers()) {
    const auto& annotations = expected.at(layer.name).at("layer_annotations");
    for (const char* key : {"io.github.containers.zstd-chunked.manifest-position",
                            "io.containers.zstd-chunked.manifest-position"}) {
      if (!annotations.contains(key)) continue;
      const std::string position = annotations.at(key).get<std::string>();
      const auto first = position.find(':');
      const auto second = position.find(':', first + 1);
      const std::uint64_t offset = std::stoull(position.substr(0, first));
      const std::uint64_t length = std::stoull(position.substr(first + 1, second - first - 1));
      const auto blob = test::read_file(layer.blob_path);
      EXPECT_LE(offset + length, blob.size());
      if (offset + length > blob.size()) continue;
      const auto size = ZSTD_getFrameContentSize(blob.data() + offset, length);
      EXPECT_NE(size, ZSTD_CONTENTSIZE_ERROR);
      std::string json(static_cast<std::size_t>(size), '\0');
      const std::size_t got =
          ZSTD_decompress(json.data(), json.size(), blob.data() + offset, length);
      EXPECT_FALSE(ZSTD_isError(got));
      json.resize(got);
      tocs.emplace_back(layer.name, json);
      break;
    }
  }
  return tocs;
}

TEST(TocJson, ReferenceTocsReadTheSameByBothReaders) {
  const auto tocs = raw_zstd_chunked_tocs();
  ASSERT_GE(tocs.size(), 2U);
  for (const auto& [name, json] : tocs) {
    expect_plain_reads_like_full(json, name);
    // The same TOC indented, as eStargz tools write theirs.
    expect_plain_reads_like_full(nlohmann::json::parse(json).dump(2), name + " indented");
    // strata's writer of what was read, compact.
    auto toc = detail::parse_toc_json_in_full(span_of(json), kMaxEntries);
    ASSERT_TRUE(toc.ok());
    expect_plain_reads_like_full(detail::write_toc_json(*toc), name + " rewritten");
  }
}

TEST(TocJson, OtherJsonTakesTheFullReaderAndReadsTheSame) {
  const std::string digest = "sha256:" + std::string(64, 'a');
  const std::string plain_entry =
      R"({"type":"reg","name":"usr/bin/x","mode":493,"size":5,"uid":-1,"digest":")" + digest +
      R"(","offset":10,"endOffset":20,"xattrs":{"user.a":"YQ=="},"numLink":1})";
  const std::string plain = R"({"version":1,"entries":[)" + plain_entry + "]}";
  expect_plain_reads_like_full(plain, "plain");
  auto want = detail::parse_toc_json_in_full(span_of(plain), kMaxEntries);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(want->entries.at(0).uid, -1);
  EXPECT_EQ(want->entries.at(0).xattrs.at("user.a"), "YQ==");

  // Variants the plain reader hands on, which read as `plain` does.
  const std::vector<std::string> same = {
      R"({"version":1,"entries":[{"type":"reg","name":"usr\/bin\/x","mode":493,"size":5,"uid":-1,"digest":")" +
          digest + R"(","offset":10,"endOffset":20,"xattrs":{"user.a":"YQ=="}}]})",
      R"({"version":1,"x":{"nested":[1,2]},"entries":[)" + plain_entry + "]}",
      R"({"version":1,"entries":[{"type":"reg","name":"usr/bin/x","name":"usr/bin/x","mode":493,"size":5,"uid":-1,"digest":")" +
          digest + R"(","offset":10,"endOffset":20,"xattrs":{"user.a":"YQ=="}}]})",
      R"({"version":1,"entries":[{"type":"reg","name":"usr/bin/x","mode":493,"size":5,"uid":-1,"flag":true,"digest":")" +
          digest + R"(","offset":10,"endOffset":20,"xattrs":{"user.a":"YQ=="}}]})",
  };
  for (const std::string& text : same) {
    EXPECT_FALSE(detail::parse_plain_toc_json(span_of(text), kMaxEntries).has_value()) << text;
    auto got = parse_toc_json(span_of(text), kMaxEntries);
    ASSERT_TRUE(got.ok()) << text << ": " << got.error().to_string();
    expect_same_toc(*got, *want, text);
  }
  auto utf8 = parse_toc_json(span_of("{\"version\":1,\"entries\":[{\"type\":\"reg\",\"name\":"
                                     "\"caf\xC3\xA9\"}]}"),
                             kMaxEntries);
  ASSERT_TRUE(utf8.ok());
  EXPECT_EQ(utf8->entries.at(0).name, "caf\xC3\xA9");
}

TEST(TocJson, BrokenTocsAreRefusedWithTheEntryNamed) {
  const std::vector<std::pair<std::string, std::string>> broken = {
      {R"({"version":1,"entries":[{"type":"reg","name":"a","size":-1}]})",
       "TOC entry 0: 'size' is not a non-negative integer"},
      {R"({"version":1,"entries":[{"type":"reg","name":"a","size":1.5}]})",
       "TOC entry 0: 'size' is not a non-negative integer"},
      {R"({"version":1,"entries":[{"type":"reg","name":"a"},{"type":"reg","name":""}]})",
       "TOC entry 1: empty name"},
      {R"({"version":1,"entries":[{"type":"reg","name":"a","mode":"755"}]})",
       "TOC entry 0: 'mode' is not an integer"},
      {R"({"version":1,"entries":[{"type":"reg","name":"a","digest":"md5:00"}]})",
       "TOC entry 0: 'digest' is not a sha256 digest"},
      {R"({"version":1,"entries":[{"type":"reg","name":"a","xattrs":{"user.a":1}}]})",
       "TOC entry 0: xattr 'user.a' is not a string"},
      {R"({"version":1,"entries":[{"type":"reg","name":"a","offset":4611686018427387905}]})",
       "TOC entry 0: 'offset' is out of range"},
      {R"({"version":2,"entries":[]})", "TOC version is not 1"},
      {R"({"version":1})", "TOC has no 'entries' array"},
      {R"({"version":1,"entries":[]} x)", "TOC is not valid JSON"},
      {R"({"version":1,"entries":[],"tarSplitDigest":"nope"})",
       "TOC 'tarSplitDigest' is not a sha256 digest"},
  };
  for (const auto& [text, problem] : broken) {
    EXPECT_FALSE(detail::parse_plain_toc_json(span_of(text), kMaxEntries).has_value()) << text;
    auto got = parse_toc_json(span_of(text), kMaxEntries);
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_NE(got.error().message.find(problem), std::string::npos)
        << text << ": " << got.error().message;
  }
  // The entry limit holds on both paths.
  const std::string two = R"({"version":1,"entries":[{"name":"a"},{"name":"b"}]})";
  auto limited = parse_toc_json(span_of(two), 1);
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.error().code, ErrorCode::kLimitExceeded);
  EXPECT_TRUE(parse_toc_json(span_of(two), 2).ok());
}

}  // namespace
}  // namespace strata::fastpull
