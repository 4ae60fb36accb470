// Shared helpers of the strata tool: turning library errors into one line on stderr and an exit
// code, reading files in blocks, a terminal progress bar, human-readable sizes, opening --store.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

#include "strata/strata.h"

namespace strata::tool {

// Exit codes of the tool.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,  // the operation failed (I/O, corrupt input, ...)
  kExitUsage = 2,    // bad command line or parameters
};

// Prints "strata: error: <message>" to stderr and returns the matching exit code.
int report_error(const Error& error);

// Reads a regular file in blocks of `block_size`, calling `consume` for each; errors name the path.
Result<std::uint64_t> read_file_blocks(const std::string& path, std::size_t block_size,
                                       const std::function<void(ByteSpan)>& consume,
                                       const std::function<void(std::uint64_t)>& on_progress);

// "12.3 MiB"
std::string format_bytes(std::uint64_t bytes);

// The store at `path` (created if missing), or none for an empty path (an optional --store).
Result<std::optional<ChunkStore>> open_optional_store(const std::string& path);

// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class ProgressBar {
 public:
  ProgressBar(std::string label, std::uint64_t total);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  void update(std::uint64_t done);

 private:
  std::string label_;
  std::uint64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point last_draw_;
  bool drawn_ = false;
};

}  // namespace strata::tool
