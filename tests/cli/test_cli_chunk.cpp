// The strata tool end to end: `strata chunk` on the Sekien fixture prints the five reference
// chunks with their SHA-256, --json carries the same, bad files and parameters fail with one clear
// line and a non-zero exit, STRATA_KERNEL is honoured or refused, --version and help work.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/test_support.h"

namespace strata {
namespace {

const std::string kSekien = test::testdata_path("cdc/SekienAkashita.jpg");

TEST(CliChunk, SekienFiveChunks) {
  const auto result = test::run_tool("chunk " + kSekien + " --min 4096 --avg 16384 --max 65535");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::istringstream lines(result.out);
  std::vector<std::uint64_t> lengths;
  std::vector<std::string> digests;
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    std::string digest;
    if (fields >> offset >> length >> digest && digest.rfind("sha256:", 0) == 0) {
      lengths.push_back(length);
      digests.push_back(digest);
    }
  }
  EXPECT_EQ(lengths, (std::vector<std::uint64_t>{21325, 17140, 28084, 18217, 24700}));
  ASSERT_EQ(digests.size(), 5U);
  const auto data = test::read_file(kSekien);
  EXPECT_EQ(digests[0], sha256_of(ByteSpan(data).first(21325)).to_string());
  EXPECT_NE(result.out.find("5 chunks"), std::string::npos) << result.out;
}

TEST(CliChunk, JsonOutput) {
  const auto result = test::run_tool("chunk --json --algorithm fastcdc2016 " + kSekien +
                                     " --min 4096 --avg 16384 --max 65535");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["algorithm"], "fastcdc2016");
  ASSERT_EQ(json["files"].size(), 1U);
  const auto& file = json["files"][0];
  EXPECT_EQ(file["bytes"], 109466);
  EXPECT_EQ(file["chunks"], 5);
  EXPECT_EQ(file["chunk_list"][1]["hash"], 4098594969649699419ULL);
  EXPECT_EQ(file["chunk_list"][4]["offset"], 84766);
}

TEST(CliChunk, MissingFileFailsClearly) {
  const auto result = test::run_tool("chunk /nonexistent/strata-file");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("cannot open '/nonexistent/strata-file'"), std::string::npos)
      << result.err;
}

TEST(CliChunk, DirectoryFailsClearly) {
  const auto result = test::run_tool("chunk /tmp");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("is a directory"), std::string::npos) << result.err;
}

TEST(CliChunk, BadParametersFailClearly) {
  auto result = test::run_tool("chunk " + kSekien + " --min 10");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("minimum chunk size 10"), std::string::npos) << result.err;
  result = test::run_tool("chunk " + kSekien + " --algorithm rabin");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown chunking algorithm 'rabin'"), std::string::npos);
  result = test::run_tool("chunk " + kSekien + " --min notanumber");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("strata: error:"), std::string::npos);
}

TEST(CliChunk, KernelOverride) {
  auto result = test::run_tool("kernels --json", "STRATA_KERNEL=scalar");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  bool scalar_active = false;
  for (const auto& kernel : json["kernels"]) {
    if (kernel["name"] == "scalar") scalar_active = kernel["active"];
  }
  EXPECT_TRUE(scalar_active);
  EXPECT_EQ(json["choice"], "STRATA_KERNEL");
  result = test::run_tool("kernels", "STRATA_KERNEL=warp9");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("STRATA_KERNEL=warp9"), std::string::npos) << result.err;
}

TEST(CliChunk, KernelsShowsMeasuredRatesAndThePick) {
  const auto result = test::run_tool("kernels --json", "STRATA_KERNEL=");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["choice"], "measured");
  int fastest = 0;
  for (const auto& kernel : json["kernels"]) {
    const double rate = kernel["measured_gb_per_s"];
    if (kernel["usable"].get<bool>()) {
      EXPECT_GT(rate, 0.0) << kernel["name"];
    } else {
      EXPECT_EQ(rate, 0.0) << kernel["name"];
    }
    if (kernel["fastest"].get<bool>()) {
      ++fastest;
      EXPECT_TRUE(kernel["usable"].get<bool>());
      EXPECT_TRUE(kernel["active"].get<bool>()) << "without STRATA_KERNEL the pick is active";
    }
  }
  EXPECT_EQ(fastest, 1);
}

TEST(CliChunk, VersionAndHelp) {
  auto result = test::run_tool("--version");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find(kVersion), std::string::npos);
  result = test::run_tool("help");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("chunk"), std::string::npos);
  result = test::run_tool("");
  EXPECT_EQ(result.exit_code, 2);
}

}  // namespace
}  // namespace strata
