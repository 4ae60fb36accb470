// File I/O vocabulary shared by core/ and formats/: one owning file descriptor, writes and
// positioned reads that loop over short transfers and EINTR (shared/specs/reliability.md §5.3 F3),
// the one kIo error that names the path and the errno text, and random tokens for file names that
// no process repeats. Rests on POSIX write(2), pread(2) and getrandom(2)
// only; the store's fault-injection hooks wrap these in core/store/pack_file.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "strata/buffer.h"
#include "strata/result.h"

namespace strata {

class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.release()) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor();

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// How an I/O error spells the path: core/ quotes it; formats/ and the model ingest have always
// written it bare, and keep their messages.
enum class PathQuoting { kQuoted, kBare };

// kIo: "<what> '<path>': <strerror(error_number)>" (kBare: without the quotes).
Error io_error(std::string_view what, const std::string& path, int error_number,
               PathQuoting quoting = PathQuoting::kQuoted);

// Writes all of `data` at the current position; a write that makes no progress is EIO.
Result<void> write_all(int fd, ByteSpan data, const std::string& path,
                       PathQuoting quoting = PathQuoting::kQuoted);
// Writes all of `data` at `offset` (pwrite: the file position does not move, so threads may write
// disjoint parts of one file at once); a write that makes no progress is EIO.
Result<void> pwrite_all(int fd, std::uint64_t offset, ByteSpan data, const std::string& path,
                        PathQuoting quoting = PathQuoting::kQuoted);
// Reads up to out.size() bytes at `offset`, fewer only at the end of the file.
Result<std::size_t> pread_all(int fd, std::uint64_t offset, MutableByteSpan out,
                              const std::string& path, PathQuoting quoting = PathQuoting::kQuoted);

// 16 random lowercase hex characters from the OS entropy source, for names no process repeats.
std::string random_hex_token();

}  // namespace strata
