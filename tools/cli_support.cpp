// Implementation of the tool's shared helpers (see cli_support.h).
#include "tools/cli_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace strata::tool {

int report_error(const Error& error) {
  std::fprintf(stderr, "strata: error: %s\n", error.message.c_str());
  return error.code == ErrorCode::kInvalidArgument ? kExitUsage : kExitFailure;
}

Result<std::uint64_t> read_file_blocks(const std::string& path, std::size_t block_size,
                                       const std::function<void(ByteSpan)>& consume,
                                       const std::function<void(std::uint64_t)>& on_progress) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(ErrorCode::kIo, "cannot open '" + path + "': " + std::strerror(errno));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    const bool is_dir = S_ISDIR(info.st_mode);
    ::close(fd);
    return make_error(ErrorCode::kIo,
                      "'" + path + "' is " + (is_dir ? "a directory" : "not a regular file"));
  }
  std::vector<std::uint8_t> block(block_size);
  std::uint64_t total = 0;
  for (;;) {
    const ssize_t got = ::read(fd, block.data(), block.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      const std::string reason = std::strerror(errno);
      ::close(fd);
      return make_error(ErrorCode::kIo, "cannot read '" + path + "': " + reason);
    }
    if (got == 0) break;
    consume(ByteSpan(block.data(), static_cast<std::size_t>(got)));
    total += static_cast<std::uint64_t>(got);
    if (on_progress) on_progress(total);
  }
  ::close(fd);
  return total;
}

std::string format_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  if (unit == 0) {
    std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  }
  return text;
}

ProgressBar::ProgressBar(std::string label, std::uint64_t total)
    : label_(std::move(label)), total_(total), enabled_(::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fprintf(stderr, "\r\033[K");
}

void ProgressBar::update(std::uint64_t done) {
  if (!enabled_ || total_ == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  drawn_ = true;
  constexpr int kWidth = 30;
  const double fraction = static_cast<double>(done) / static_cast<double>(total_);
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r%s [%s] %5.1f%% %s", label_.c_str(), bar.c_str(), fraction * 100.0,
               format_bytes(done).c_str());
  std::fflush(stderr);
}

Result<std::optional<ChunkStore>> open_optional_store(const std::string& path) {
  if (path.empty()) return std::optional<ChunkStore>();
  StoreOptions options;
  options.create_if_missing = true;
  auto opened = ChunkStore::open(path, options);
  if (!opened.ok()) return std::move(opened).error();
  return std::optional<ChunkStore>(std::move(*opened));
}

}  // namespace strata::tool
