// File I/O vocabulary (core/base/file_io.h): the owning descriptor, the looping write and
// positioned read, and the one kIo error. POSIX write(2)/pread(2) may transfer less than asked or
// be interrupted (EINTR); both loops retry until done, so callers see all or an error.
#include "core/base/file_io.h"

#include <sys/random.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "strata/digest.h"

namespace strata {

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

Error io_error(std::string_view what, const std::string& path, int error_number,
               PathQuoting quoting) {
  std::string message(what);
  message += quoting == PathQuoting::kQuoted ? " '" : " ";
  message += path;
  message += quoting == PathQuoting::kQuoted ? "': " : ": ";
  message += std::strerror(error_number);
  return make_error(ErrorCode::kIo, message);
}

namespace {

// Writes all of `data` through `write_some(bytes, length, done)` (one write(2) or pwrite(2) call),
// retrying on EINTR; a call that writes nothing is an I/O error.
template <class WriteSome>
Result<void> write_fully(ByteSpan data, const WriteSome& write_some, const std::string& path,
                         PathQuoting quoting) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t written = write_some(data.data() + done, data.size() - done, done);
    if (written < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write", path, errno, quoting);
    }
    if (written == 0) return io_error("cannot write", path, EIO, quoting);
    done += static_cast<std::size_t>(written);
  }
  return {};
}

}  // namespace

Result<void> write_all(int fd, ByteSpan data, const std::string& path, PathQuoting quoting) {
  return write_fully(
      data,
      [fd](const std::uint8_t* bytes, std::size_t length, std::size_t /*done*/) {
        return ::write(fd, bytes, length);
      },
      path, quoting);
}

Result<void> pwrite_all(int fd, std::uint64_t offset, ByteSpan data, const std::string& path,
                        PathQuoting quoting) {
  return write_fully(
      data,
      [fd, offset](const std::uint8_t* bytes, std::size_t length, std::size_t done) {
        return ::pwrite(fd, bytes, length, static_cast<off_t>(offset + done));
      },
      path, quoting);
}

Result<std::size_t> pread_all(int fd, std::uint64_t offset, MutableByteSpan out,
                              const std::string& path, PathQuoting quoting) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t got =
        ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot read", path, errno, quoting);
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

std::string random_hex_token() {
  std::array<std::uint8_t, 8> bytes{};
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t got = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (got <= 0) {
      if (got < 0 && errno == EINTR) continue;
      break;
    }
    filled += static_cast<std::size_t>(got);
  }
  if (filled < bytes.size()) {
    // No entropy source: pid and time still make a name no other live writer uses.
    const auto mix = static_cast<std::uint64_t>(::getpid()) * 0x9E3779B97F4A7C15ULL ^
                     static_cast<std::uint64_t>(::time(nullptr));
    std::memcpy(bytes.data(), &mix, bytes.size());
  }
  return to_hex(ByteSpan(bytes.data(), bytes.size()));
}

}  // namespace strata
