// The strata tool with the compatible algorithms and the kernel table: `strata chunk --algorithm
// casync` prints desync's 20 chunks with their SHA-512/256 ids (shared/testdata/cdc/
// casync_expected.txt), `--algorithm xet` uses xet-core's default sizes, and `strata kernels
// --json` marks exactly the kernel forced by STRATA_KERNEL as active, for every usable kernel.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/test_support.h"

namespace strata {
namespace {

TEST(CliChunkAlgorithms, CasyncPrintsDesyncChunkIds) {
  const auto result =
      test::run_tool("chunk --algorithm casync " + test::testdata_path("cdc/desync_chunker.input"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::ifstream expected_file(test::testdata_path("cdc/casync_expected.txt"));
  std::vector<std::string> expected;
  std::string line;
  while (std::getline(expected_file, line)) {
    if (line.empty() || line[0] == '#' || line[0] == '[') continue;
    std::istringstream fields(line);
    std::string offset, length, id;
    fields >> offset >> length >> id;
    expected.push_back(offset + " " + length + " " + id);
  }
  ASSERT_EQ(expected.size(), 20U);
  std::istringstream output(result.out);
  std::vector<std::string> got;
  while (std::getline(output, line)) {
    std::istringstream fields(line);
    std::string offset, length, digest, id;
    if (fields >> offset >> length >> digest >> id && digest.rfind("sha256:", 0) == 0) {
      got.push_back(offset + " " + length + " " + id);
    }
  }
  EXPECT_EQ(got, expected);
}

TEST(CliChunkAlgorithms, XetUsesItsDefaultSizes) {
  const auto result = test::run_tool("chunk --json --algorithm xet " +
                                     test::testdata_path("cdc/desync_chunker.input"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto report = nlohmann::json::parse(result.out);
  EXPECT_EQ(report["algorithm"], "xet");
  EXPECT_EQ(report["min_size"], 8192);
  EXPECT_EQ(report["avg_size"], 65536);
  EXPECT_EQ(report["max_size"], 131072);
  for (const auto& chunk : report["files"][0]["chunk_list"]) {
    EXPECT_LE(chunk["length"].get<std::uint64_t>(), 131072U);
  }
}

TEST(CliChunkAlgorithms, ForcedKernelIsTheActiveOne) {
  for (const KernelInfo& kernel : list_kernels()) {
    if (!kernel.usable) continue;
    const auto result = test::run_tool("kernels --json", "STRATA_KERNEL=" + kernel.name);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto report = nlohmann::json::parse(result.out);
    int active = 0;
    for (const auto& entry : report["kernels"]) {
      if (entry["active"].get<bool>()) {
        ++active;
        EXPECT_EQ(entry["name"], kernel.name);
      }
    }
    EXPECT_EQ(active, 1) << kernel.name;
  }
}

}  // namespace
}  // namespace strata
