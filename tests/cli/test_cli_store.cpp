// The store commands of the tool end to end: `strata ingest --json` of the reference gzip layers,
// `export` byte-exact to a file and to a pipe, `ls`, `stats`, `verify` and `gc` with --json, and
// the errors a user meets (no such store, a malformed or unknown digest, a bad --trust value).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/layer_fixtures.h"

namespace strata {
namespace {

std::string quoted(const std::string& text) {
  return "'" + text + "'";
}

TEST(CliStore, IngestExportListStatsVerifyGc) {
  test::ScratchDir dir;
  const std::string store = quoted(dir.file("store"));
  std::vector<test::ReferenceLayer> gzip_layers;
  for (const auto& layer : test::reference_layers()) {
    if (layer.name.rfind("gzip-", 0) == 0) gzip_layers.push_back(layer);
  }
  ASSERT_EQ(gzip_layers.size(), 2U);

  std::vector<nlohmann::json> ingested;
  for (const auto& layer : gzip_layers) {
    const auto result = test::run_tool("ingest --json --store " + store + " " + layer.blob_path);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    ingested.push_back(nlohmann::json::parse(result.out));
    EXPECT_EQ(ingested.back()["diff_id"], layer.diff_id);
    EXPECT_EQ(ingested.back()["layer_digest"], layer.layer_digest);
    EXPECT_EQ(ingested.back()["compression"], "gzip");
    EXPECT_EQ(ingested.back()["tar_bytes"], layer.uncompressed_size);
  }
  // v2 differs from v1 in two small places: it adds a few chunks, not the layer again.
  EXPECT_GT(ingested[0]["new_chunks"].get<int>(), 0);
  EXPECT_LT(ingested[1]["new_raw_bytes"].get<std::uint64_t>(),
            ingested[0]["new_raw_bytes"].get<std::uint64_t>() / 4);

  const std::string out = dir.file("v2.tar");
  auto result = test::run_tool("export --store " + store + " " + gzip_layers[1].layer_digest +
                               " -o " + quoted(out));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(sha256_of(test::read_file(out)).to_string(), gzip_layers[1].diff_id);
  ASSERT_TRUE(test::shell(dir.path(), std::string(STRATA_TOOL_PATH) + " export --store " + store +
                                          " " + gzip_layers[0].diff_id + " | cat > piped.tar"));
  EXPECT_EQ(sha256_of(test::read_file(dir.file("piped.tar"))).to_string(), gzip_layers[0].diff_id);

  result = test::run_tool("ls --json --store " + store);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["layers"].size(), 2U);
  result = test::run_tool("stats --json --store " + store);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto stats = nlohmann::json::parse(result.out);
  EXPECT_EQ(stats["layers"], 2);
  EXPECT_EQ(stats["logical_bytes"],
            gzip_layers[0].uncompressed_size + gzip_layers[1].uncompressed_size);
  EXPECT_GT(stats["dedup_ratio"].get<double>(), 1.5);
  result = test::run_tool("verify --json --store " + store);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(nlohmann::json::parse(result.out)["clean"].get<bool>());
  result = test::run_tool("gc --json --store " + store);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["chunks_removed"], 0);
}

TEST(CliStore, ErrorsAreOneClearLine) {
  test::ScratchDir dir;
  auto result = test::run_tool("ls --store " + quoted(dir.file("missing")));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("strata: error:"), std::string::npos) << result.err;

  const std::string store = quoted(dir.file("store"));
  const auto layer = test::reference_layers().front();
  ASSERT_EQ(test::run_tool("ingest --store " + store + " " + layer.blob_path).exit_code, 0);
  result = test::run_tool("export --store " + store + " sha256:1234 -o " + quoted(dir.file("x")));
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("64"), std::string::npos) << result.err;
  result = test::run_tool("export --store " + store + " " + sha256_of({}).to_string() + " -o " +
                          quoted(dir.file("x")));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("not in the store"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x")));
  result = test::run_tool("ingest --trust maybe --store " + store + " " + layer.blob_path);
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--trust"), std::string::npos) << result.err;
  result = test::run_tool("ingest --store " + store + " " + quoted(dir.file("nope.tar")));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("nope.tar"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace strata
