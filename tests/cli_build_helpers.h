// Helpers of the `strata build` tests (test_cli_build.cpp, test_cli_build_chunked.cpp): a small
// source tree with an empty directory, a text file, a symlink and 200 kB of pseudo-random bytes
// (a few content-defined chunks), and running the tool for its --json report.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"

namespace strata::test {

inline void make_build_source(const std::string& root) {
  std::filesystem::create_directories(root + "/etc/empty");
  std::filesystem::create_directories(root + "/bin");
  write_text(root + "/etc/hello.txt", "hello\n");
  write_bytes(root + "/bin/data.bin", splitmix64_bytes(3, 200000));
  std::filesystem::create_symlink("../etc/hello.txt", root + "/bin/hello");
}

// Runs the tool, expects exit 0 and returns its stdout parsed as JSON.
inline nlohmann::json run_tool_json(const std::string& arguments,
                                    const std::string& environment = "") {
  const auto result = run_tool(arguments, environment);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const auto parsed = nlohmann::json::parse(result.out, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << result.out;
  return parsed;
}

}  // namespace strata::test
