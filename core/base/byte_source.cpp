// ByteSource implementations over memory and POSIX file descriptors (core/base/byte_source.h).
#include "core/base/byte_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace strata {

Result<std::uint64_t> ByteSource::skip(std::uint64_t count) {
  std::array<std::uint8_t, 64 * 1024> scratch{};
  std::uint64_t skipped = 0;
  while (skipped < count) {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(scratch.size(), count - skipped));
    auto got = read(MutableByteSpan(scratch.data(), want));
    if (!got.ok()) return std::move(got).error();
    if (*got == 0) break;
    skipped += *got;
  }
  return skipped;
}

Result<std::size_t> MemoryByteSource::read(MutableByteSpan out) {
  const std::size_t count = std::min(out.size(), bytes_.size() - position_);
  if (count > 0) std::memcpy(out.data(), bytes_.data() + position_, count);
  position_ += count;
  return count;
}

Result<std::uint64_t> MemoryByteSource::skip(std::uint64_t count) {
  const auto skipped =
      static_cast<std::size_t>(std::min<std::uint64_t>(count, bytes_.size() - position_));
  position_ += skipped;
  return std::uint64_t{skipped};
}

Result<FdByteSource> FdByteSource::open(const std::string& path) {
  if (path == "-") return FdByteSource(STDIN_FILENO, false);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(ErrorCode::kIo, "cannot open '" + path + "': " + std::strerror(errno));
  }
  return FdByteSource(fd, true);
}

FdByteSource::FdByteSource(FdByteSource&& other) noexcept
    : ByteSource(), fd_(other.fd_), owns_(other.owns_) {
  other.fd_ = -1;
  other.owns_ = false;
}

FdByteSource::~FdByteSource() {
  if (owns_ && fd_ >= 0) ::close(fd_);
}

Result<std::size_t> FdByteSource::read(MutableByteSpan out) {
  while (true) {
    const ssize_t count = ::read(fd_, out.data(), out.size());
    if (count >= 0) return static_cast<std::size_t>(count);
    if (errno == EINTR) continue;
    return make_error(ErrorCode::kIo, std::string("read failed: ") + std::strerror(errno));
  }
}

Result<std::size_t> read_fully(ByteSource& source, MutableByteSpan out) {
  std::size_t filled = 0;
  while (filled < out.size()) {
    auto count = source.read(out.subspan(filled));
    if (!count.ok()) return std::move(count).error();
    if (*count == 0) break;
    filled += *count;
  }
  return filled;
}

}  // namespace strata
