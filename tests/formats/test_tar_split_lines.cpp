// tar-split lines (formats/chunked/tar_split.cpp): lines as JSONPacker writes them take a fast
// scanner, every other line nlohmann's parser. Both must give the same fields: checked on the
// c/storage fixture's real tar-split against an independent nlohmann reading, and on hand-made
// lines that leave the packed shape (whitespace, escapes, UTF-8, other key orders, nulls) or break
// the format (errors must still name the line and the problem). Also base64 against RFC 4648.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/chunked/toc_json.h"
#include "strata/fastpull.h"
#include "strata/oci.h"
#include "tests/test_support.h"

namespace strata::fastpull {
namespace {

struct SeenLine {
  std::int64_t type = 0;
  std::vector<std::uint8_t> payload;
  std::string name;
  std::uint64_t size = 0;
  std::uint64_t line_number = 0;
};

Result<std::vector<SeenLine>> lines_of(std::string_view text) {
  std::vector<SeenLine> seen;
  const ByteSpan bytes(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
  STRATA_TRY(detail::for_each_tar_split_line(bytes, [&](detail::TarSplitLine& line) {
    seen.push_back(
        SeenLine{line.type, line.payload, line.file.name, line.file.size, line.line_number});
    return Result<void>{};
  }));
  return seen;
}

ByteSpan bytes_span(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::vector<std::uint8_t> bytes_of(std::string_view text) {
  return {text.begin(), text.end()};
}

std::vector<std::uint8_t> c_storage_tar_split() {
  const auto expected_bytes = test::read_file(test::testdata_path("oci/expected.json"));
  const auto expected = nlohmann::json::parse(expected_bytes.begin(), expected_bytes.end());
  const std::string key = "zstd-chunked-cstorage-v2format:v1";
  const auto& value = expected.at(key);
  const std::string layout = test::testdata_path("oci/layouts/" + key.substr(0, key.find(':')));
  const auto blob = test::read_file(layout + "/blobs/sha256/" +
                                    value["layer_digest"].get<std::string>().substr(7));
  oci::Annotations annotations;
  for (const auto& [name, text] : value["layer_annotations"].items()) {
    annotations[name] = text.get<std::string>();
  }
  auto toc = read_chunked_toc(
      blob.size(), annotations,
      [&blob](std::uint64_t offset, std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
        if (offset > blob.size() || length > blob.size() - offset) {
          return make_error(ErrorCode::kCorruptInput, "range outside the blob");
        }
        return std::vector<std::uint8_t>(
            blob.begin() + static_cast<std::ptrdiff_t>(offset),
            blob.begin() + static_cast<std::ptrdiff_t>(offset + length));
      });
  EXPECT_TRUE(toc.ok());
  return toc ? toc->tar_split : std::vector<std::uint8_t>{};
}

TEST(TarSplitLines, TheFixturesLinesReadAsNlohmannReadsThem) {
  const auto tar_split = c_storage_tar_split();
  ASSERT_FALSE(tar_split.empty());
  const std::string text(tar_split.begin(), tar_split.end());
  auto seen = lines_of(text);
  ASSERT_TRUE(seen.ok()) << seen.error().to_string();
  std::size_t index = 0;
  std::size_t files = 0;
  std::uint64_t line_number = 0;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (line.empty()) continue;
    ASSERT_LT(index, seen->size());
    const SeenLine& got = (*seen)[index++];
    // The fast reader takes every line of a real tar-split, and reads it as the full one does.
    detail::TarSplitLine packed;
    detail::TarSplitLine full;
    ASSERT_TRUE(detail::parse_packed_tar_split_line(bytes_span(line), packed)) << line;
    ASSERT_TRUE(detail::parse_tar_split_line_in_full(bytes_span(line), full).ok()) << line;
    EXPECT_EQ(packed.type, full.type);
    EXPECT_EQ(packed.payload, full.payload);
    EXPECT_EQ(packed.file.name, full.file.name);
    EXPECT_EQ(packed.file.size, full.file.size);
    const auto object = nlohmann::json::parse(line);
    EXPECT_EQ(got.line_number, line_number);
    EXPECT_EQ(got.type, object["type"].get<std::int64_t>());
    const auto payload = object.find("payload");
    if (payload != object.end() && payload->is_string()) {
      EXPECT_EQ(got.payload, *detail::base64_decode(payload->get<std::string>()));
    } else {
      EXPECT_TRUE(got.payload.empty());
    }
    if (got.type == 1) {
      ++files;
      EXPECT_EQ(got.name, object["name"].get<std::string>());
      EXPECT_EQ(got.size, object.value("size", std::uint64_t{0}));
    }
  }
  EXPECT_EQ(index, seen->size());
  EXPECT_GT(files, 2U);
}

TEST(TarSplitLines, LinesOutsideThePackedShapeGiveTheSameFields) {
  // The packed form and variants of it the fast scanner hands on: each must read the same.
  const std::vector<std::string> same_file = {
      R"({"type":1,"name":"a/b.txt","size":20,"payload":"z9g6sYgSixw=","position":3})",
      R"({ "type": 1, "name": "a/b.txt", "size": 20, "payload": "z9g6sYgSixw=", "position": 3 })",
      R"({"position":3,"payload":"z9g6sYgSixw=","size":20,"name":"a/b.txt","type":1})",
      R"({"type":1,"name":"a\/b.txt","size":20,"payload":"z9g6sYgSixw=","position":3})",
      R"({"type":1,"name_raw":"YS9iLnR4dA==","size":20,"payload":"z9g6sYgSixw=","position":3})",
      R"({"type":1,"name":"a/b.txt","size":20,"payload":"z9g6sYgSixw=","position":3,"x":[1]})",
  };
  detail::TarSplitLine packed;
  EXPECT_TRUE(detail::parse_packed_tar_split_line(bytes_span(same_file[0]), packed));
  for (const std::string& line : same_file) {
    auto seen = lines_of(line);
    ASSERT_TRUE(seen.ok()) << line << ": " << seen.error().to_string();
    ASSERT_EQ(seen->size(), 1U) << line;
    EXPECT_EQ((*seen)[0].type, 1) << line;
    EXPECT_EQ((*seen)[0].name, "a/b.txt") << line;
    EXPECT_EQ((*seen)[0].size, 20U) << line;
    EXPECT_EQ((*seen)[0].payload, *detail::base64_decode("z9g6sYgSixw=")) << line;
  }
  // Escapes and UTF-8 in names, null size and payload, an empty file.
  auto seen = lines_of(
      "{\"type\":1,\"name\":\"q\\\"uote\",\"payload\":null,\"position\":0}\n"
      "{\"type\":1,\"name\":\"caf\xC3\xA9\",\"size\":null,\"payload\":null,\"position\":1}\n"
      "{\"type\":1,\"name\":\"caf\\u00e9\",\"payload\":null,\"position\":2}\n"
      "\n"
      "{\"type\":2,\"payload\":\"AAEC\",\"position\":3}\n"
      "{\"type\":2,\"payload\":null,\"position\":4}\n");
  ASSERT_TRUE(seen.ok()) << seen.error().to_string();
  ASSERT_EQ(seen->size(), 5U);
  EXPECT_EQ((*seen)[0].name, "q\"uote");
  EXPECT_EQ((*seen)[1].name, "caf\xC3\xA9");
  EXPECT_EQ((*seen)[2].name, "caf\xC3\xA9");
  EXPECT_EQ((*seen)[2].size, 0U);
  EXPECT_EQ((*seen)[3].type, 2);
  EXPECT_EQ((*seen)[3].line_number, 5U);
  EXPECT_EQ((*seen)[3].payload, (std::vector<std::uint8_t>{0, 1, 2}));
  EXPECT_TRUE((*seen)[4].payload.empty());
}

TEST(TarSplitLines, BrokenLinesAreNamedWithTheirProblem) {
  const std::vector<std::pair<std::string, std::string>> broken = {
      {R"({"type":1,"size":5,"payload":"z9g6sYgSixw=","position":0})", "file entry without a name"},
      {R"({"type":3,"payload":null,"position":0})", "unknown type"},
      {R"({"type":2,"payload":"AAE","position":0})", "bad base64 length"},
      {R"({"type":2,"payload":"AA=B","position":0})", "bad base64 character"},
      {R"({"type":1,"name":"x","size":5,"payload":"AAEC","position":0})",
       "file payload is not a CRC-64"},
      {R"({"type":1,"name":"x","size":-5,"payload":null,"position":0})",
       "size is not a non-negative integer"},
      {R"({"type":1,"name":"x","size":05,"payload":null,"position":0})", "not a JSON object"},
      {R"({"type":"2","payload":null})", "no type"},
      {R"({"type":2,"payload":5})", "payload is not a string"},
      {R"({"type":2,"payload":null}garbage)", "not a JSON object"},
      {"{\"type\":1,\"name\":\"\xFF\",\"payload\":null}", "not a JSON object"},
  };
  for (const auto& [line, problem] : broken) {
    auto seen = lines_of("{\"type\":2,\"payload\":null}\n" + line + "\n");
    ASSERT_FALSE(seen.ok()) << line;
    EXPECT_EQ(seen.error().code, ErrorCode::kCorruptInput) << line;
    EXPECT_NE(seen.error().message.find("tar-split line 2: "), std::string::npos)
        << line << ": " << seen.error().message;
    EXPECT_NE(seen.error().message.find(problem), std::string::npos)
        << line << ": " << seen.error().message;
  }
}

TEST(TarSplitLines, Base64FollowsRfc4648) {
  // RFC 4648 §10 test vectors, then malformed inputs.
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"Zg==", "f"},
                                                                    {"Zm8=", "fo"},
                                                                    {"Zm9v", "foo"},
                                                                    {"Zm9vYg==", "foob"},
                                                                    {"Zm9vYmE=", "fooba"},
                                                                    {"Zm9vYmFy", "foobar"},
                                                                    {"+/+/", "\xFB\xFF\xBF"}};
  for (const auto& [text, decoded] : vectors) {
    auto got = detail::base64_decode(text);
    ASSERT_TRUE(got.ok()) << text;
    EXPECT_EQ(*got, bytes_of(decoded)) << text;
    EXPECT_EQ(detail::base64_encode(bytes_of(decoded)), text);
  }
  const std::vector<std::string> malformed = {
      "Zg=",      "Z===", "====",     "Zg=a",  "Z=g=",
      "Zm9v!A==", "Zm 9", "Zg==Zg==", "Zm9\n", std::string("Zm\0v", 4)};
  for (const std::string& text : malformed) {
    std::vector<std::uint8_t> out = {1, 2, 3};
    EXPECT_FALSE(detail::base64_decode_into(text, out).ok()) << text;
    EXPECT_TRUE(out.empty()) << text;
  }
}

}  // namespace
}  // namespace strata::fastpull
