// Helpers shared by the test suites: locating reference data, reading files, deterministic
// pseudo-random bytes, parsing the FastCDC vector file, and running the strata tool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "strata/strata.h"

namespace strata::test {

std::string testdata_path(const std::string& relative);
std::vector<std::uint8_t> read_file(const std::string& path);

// SplitMix64 bytes (little-endian words), the generator the xet vectors use.
std::vector<std::uint8_t> splitmix64_bytes(std::uint64_t seed, std::size_t size);

// A safetensors file (shared/specs/models.md §3): the 8-byte little-endian header length, the
// JSON header padded with spaces to a multiple of 8, then the tensor data.
std::vector<std::uint8_t> safetensors_file(std::string header_json, ByteSpan data);

struct ExpectedChunk {
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
  std::uint64_t hash = 0;
};

struct ExpectedBlock {
  std::string variant;  // fastcdc-v2016 | fastcdc-v2020 | ronomon
  std::uint32_t min_size = 0, avg_size = 0, max_size = 0, level = 0;
  std::uint64_t seed = 0;
  std::vector<ExpectedChunk> chunks;
};

// Every block of shared/testdata/cdc/sekien_expected.txt.
std::vector<ExpectedBlock> load_sekien_blocks();

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the strata tool with the given argument string (shell-quoted by the caller).
CommandResult run_tool(const std::string& arguments, const std::string& environment = "");

}  // namespace strata::test
