// Implementation of the shared test helpers (test_support.h).
#include "tests/test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace strata::test {

std::string testdata_path(const std::string& relative) {
  return std::string(STRATA_TESTDATA_DIR) + "/" + relative;
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::uint8_t> safetensors_file(std::string header_json, ByteSpan data) {
  while (header_json.size() % 8 != 0) header_json += ' ';
  std::vector<std::uint8_t> file;
  for (unsigned i = 0; i < 8; ++i) {
    file.push_back(static_cast<std::uint8_t>(std::uint64_t{header_json.size()} >> (8U * i)));
  }
  file.insert(file.end(), header_json.begin(), header_json.end());
  file.insert(file.end(), data.begin(), data.end());
  return file;
}

std::vector<std::uint8_t> splitmix64_bytes(std::uint64_t seed, std::size_t size) {
  std::vector<std::uint8_t> bytes;
  bytes.reserve(size + 8);
  std::uint64_t state = seed;
  while (bytes.size() < size) {
    state += 0x9E3779B97F4A7C15ULL;
    std::uint64_t z = state;
    z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
    z ^= z >> 31U;
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::uint8_t>(z >> (8U * i)));
  }
  bytes.resize(size);
  return bytes;
}

std::vector<ExpectedBlock> load_sekien_blocks() {
  std::ifstream in(testdata_path("cdc/sekien_expected.txt"));
  if (!in) throw std::runtime_error("cannot open sekien_expected.txt");
  std::vector<ExpectedBlock> blocks;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    if (line[0] == '[') {
      ExpectedBlock block;
      fields.ignore(1);
      fields >> block.variant >> block.min_size >> block.avg_size >> block.max_size >>
          block.level >> block.seed;
      blocks.push_back(block);
      continue;
    }
    if (blocks.empty()) throw std::runtime_error("chunk line before any block: " + line);
    ExpectedChunk chunk;
    fields >> chunk.offset >> chunk.length >> chunk.hash;
    blocks.back().chunks.push_back(chunk);
  }
  return blocks;
}

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

CommandResult run_tool(const std::string& arguments, const std::string& environment) {
  char out_template[] = "/tmp/strata_test_out_XXXXXX";
  char err_template[] = "/tmp/strata_test_err_XXXXXX";
  const int out_fd = mkstemp(out_template);
  const int err_fd = mkstemp(err_template);
  if (out_fd < 0 || err_fd < 0) throw std::runtime_error("mkstemp failed");
  close(out_fd);
  close(err_fd);
  const std::string command = environment + " " + STRATA_TOOL_PATH + " " + arguments + " >" +
                              out_template + " 2>" + err_template + " </dev/null";
  const int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = slurp(out_template);
  result.err = slurp(err_template);
  std::remove(out_template);
  std::remove(err_template);
  return result;
}

}  // namespace strata::test
