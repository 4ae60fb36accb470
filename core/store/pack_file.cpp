// POSIX file helpers for the chunk store (core/store/pack_file.h). fsync failures are final: the
// caller abandons the object instead of retrying (fsyncgate, shared/specs/reliability.md §3.8 P2).
#include "core/store/pack_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/store/chunk_store_fault.h"

namespace strata::pack_file {

Result<FileDescriptor> open_for_reading(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error_number = errno;
    if (error_number == ENOENT) {
      return make_error(ErrorCode::kNotFound, "file '" + path + "' does not exist");
    }
    return io_error("cannot open", path, error_number);
  }
  return FileDescriptor(fd);
}

Result<FileDescriptor> create_exclusive(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create", path, errno);
  return FileDescriptor(fd);
}

Result<void> write_all(const FileDescriptor& file, ByteSpan data, const std::string& path) {
  if (store_fault::should_fail(store_fault::FaultPoint::kPackWrite)) {
    // A torn write: half the bytes reach the file, then the device reports an error.
    const std::size_t half = data.size() / 2;
    if (half > 0 && ::write(file.get(), data.data(), half) < 0) {
      return io_error("cannot write", path, errno);
    }
    return io_error("cannot write (injected fault)", path, EIO);
  }
  return strata::write_all(file.get(), data, path);
}

Result<void> read_exact_at(const FileDescriptor& file, std::uint64_t offset, MutableByteSpan buffer,
                           const std::string& path) {
  auto done = pread_all(file.get(), offset, buffer, path);
  if (!done.ok()) return std::move(done).error();
  if (*done < buffer.size()) {
    return make_error(ErrorCode::kCorruptInput,
                      "file '" + path + "' ends at " + std::to_string(offset + *done) +
                          ", before the " + std::to_string(buffer.size()) +
                          "-byte record at offset " + std::to_string(offset));
  }
  return {};
}

Result<void> sync_file(const FileDescriptor& file, const std::string& path) {
  if (store_fault::should_fail(store_fault::FaultPoint::kFsync)) {
    return io_error("cannot fsync (injected fault)", path, EIO);
  }
  if (::fsync(file.get()) != 0) return io_error("cannot fsync", path, errno);
  return {};
}

void start_writeback(const FileDescriptor& file, std::uint64_t offset, std::uint64_t length) {
#ifdef __linux__
  (void)::sync_file_range(file.get(), static_cast<off_t>(offset), static_cast<off_t>(length),
                          SYNC_FILE_RANGE_WRITE);
#else
  (void)file;
  (void)offset;
  (void)length;
#endif
}

Result<void> sync_directory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory", path, errno);
  FileDescriptor directory(fd);
  return sync_file(directory, path);
}

Result<void> ensure_directory(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0) return {};
  const int error_number = errno;
  struct stat info {};
  if (error_number == EEXIST && ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    return {};
  }
  return io_error("cannot create directory", path, error_number);
}

Result<std::vector<DirectoryEntry>> list_directory(const std::string& path) {
  DIR* directory = ::opendir(path.c_str());
  if (directory == nullptr) return io_error("cannot list", path, errno);
  std::vector<DirectoryEntry> entries;
  while (const dirent* entry = ::readdir(directory)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat info {};
    // A file may vanish between readdir and stat (another process's gc): skip it.
    if (::fstatat(::dirfd(directory), name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (!S_ISREG(info.st_mode)) continue;
    entries.push_back({name, static_cast<std::uint64_t>(info.st_size)});
  }
  ::closedir(directory);
  return entries;
}

namespace {

bool is_lower_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

bool is_pack_file_name(std::string_view name, bool allow_temporary) {
  if (allow_temporary && name.ends_with(".tmp")) name.remove_suffix(4);
  if (!name.ends_with(".pack")) return false;
  name.remove_suffix(5);
  constexpr std::size_t kTokenSize = 16;
  if (name.starts_with("gc-")) {
    name.remove_prefix(3);
    return name.size() == kTokenSize && is_lower_hex(name);
  }
  // "<lease>-<n>": n is a session's pack counter (an int).
  if (name.size() < kTokenSize + 2 || name.size() > kTokenSize + 11 || name[kTokenSize] != '-') {
    return false;
  }
  const std::string_view number = name.substr(kTokenSize + 1);
  return is_lower_hex(name.substr(0, kTokenSize)) &&
         std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace strata::pack_file
