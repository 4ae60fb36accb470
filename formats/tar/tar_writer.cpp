// A deterministic PAX tar of a directory (POSIX.1-2001 pax / ustar; the header layout is in
// shared/specs/layer-formats.md §3's references: 512-byte headers, octal fields, checksum over
// the header with the checksum field as spaces). Entries come in a fixed order (names sorted
// bytewise within each directory, depth first), with numeric owners only (no uname/gname), an
// optional fixed mtime, hard links as typeflag '1' to the first name of the inode in that order,
// and a PAX 'x' header only where a value does not fit its ustar field (path or linkpath over
// 100 bytes, size over 8 GiB, ids over 0o7777777, mtime outside 0..0o77777777777). The archive
// ends with two zero blocks and no record padding, so equal trees give equal bytes. Extended
// attributes (security.capability, user.*, ...) go into PAX 'SCHILY.xattr.<name>' records, the
// key GNU tar, Go's archive/tar and containerd use, sorted by name.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "core/base/file_io.h"
#include "strata/oci.h"

namespace strata::oci {
namespace {

constexpr std::size_t kBlockSize = 512;
constexpr std::size_t kNameField = 100;
constexpr std::uint64_t kMaxOctal11 = 077777777777ULL;  // 12-byte fields: size, mtime
constexpr std::uint64_t kMaxOctal7 = 07777777ULL;       // 8-byte fields: uid, gid, dev numbers
constexpr std::size_t kFileBlockBytes = std::size_t{1} << 20U;

// Offsets of the ustar header fields (POSIX.1-2001 ustar).
enum HeaderOffset : std::size_t {
  kName = 0,
  kMode = 100,
  kUid = 108,
  kGid = 116,
  kSize = 124,
  kMtime = 136,
  kChecksum = 148,
  kTypeflag = 156,
  kLinkname = 157,
  kMagic = 257,
  kVersion = 263,
  kDevMajor = 329,
  kDevMinor = 337,
};

using Block = std::array<std::uint8_t, kBlockSize>;

struct Entry {
  std::string name;  // relative, '/'-terminated for directories
  char typeflag = '0';
  std::uint32_t mode = 0;
  std::uint64_t uid = 0;
  std::uint64_t gid = 0;
  std::uint64_t size = 0;
  std::int64_t mtime = 0;
  std::string linkname;
  std::uint32_t dev_major = 0;
  std::uint32_t dev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;  // sorted by name
};

void put_octal(Block& block, std::size_t offset, std::size_t width, std::uint64_t value) {
  // width-1 zero-padded octal digits and a NUL, as GNU tar and Go's archive/tar write them.
  for (std::size_t i = width - 1; i-- > 0;) {
    block[offset + i] = static_cast<std::uint8_t>('0' + (value & 7U));
    value >>= 3U;
  }
  block[offset + width - 1] = 0;
}

void put_text(Block& block, std::size_t offset, std::size_t width, std::string_view text) {
  std::memcpy(block.data() + offset, text.data(), std::min(width, text.size()));
}

void seal_checksum(Block& block) {
  std::memset(block.data() + kChecksum, ' ', 8);
  std::uint32_t sum = 0;
  for (const std::uint8_t byte : block) sum += byte;
  put_octal(block, kChecksum, 7, sum);  // six digits and a NUL, then the space left in place
  block[kChecksum + 7] = ' ';
}

Block make_header(const Entry& entry, std::string_view name, char typeflag, std::uint64_t size) {
  Block block{};
  put_text(block, kName, kNameField, name);
  put_octal(block, kMode, 8, entry.mode);
  put_octal(block, kUid, 8, std::min(entry.uid, kMaxOctal7));
  put_octal(block, kGid, 8, std::min(entry.gid, kMaxOctal7));
  put_octal(block, kSize, 12, size);
  const std::int64_t clamped_mtime =
      std::clamp<std::int64_t>(entry.mtime, 0, static_cast<std::int64_t>(kMaxOctal11));
  put_octal(block, kMtime, 12, static_cast<std::uint64_t>(clamped_mtime));
  block[kTypeflag] = static_cast<std::uint8_t>(typeflag);
  put_text(block, kLinkname, kNameField, entry.linkname);
  put_text(block, kMagic, 6, std::string_view("ustar\0", 6));
  put_text(block, kVersion, 2, "00");
  put_octal(block, kDevMajor, 8, entry.dev_major);
  put_octal(block, kDevMinor, 8, entry.dev_minor);
  seal_checksum(block);
  return block;
}

// "<length> <key>=<value>\n", where length counts the whole record including its own digits.
void append_pax_record(std::string& records, std::string_view key, std::string_view value) {
  const std::size_t body = key.size() + value.size() + 3;
  std::size_t length = body + 1;
  while (std::to_string(length).size() + body != length) ++length;
  records += std::to_string(length) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

class TarEmitter {
 public:
  TarEmitter(const ByteSink& sink, DirectoryTarStats& stats) : sink_(sink), stats_(stats) {}

  Result<void> emit(ByteSpan bytes) {
    stats_.bytes += bytes.size();
    return sink_(bytes);
  }

  Result<void> emit_padding(std::uint64_t size) {
    static constexpr Block kZeros{};
    const std::size_t tail = static_cast<std::size_t>(size % kBlockSize);
    if (tail == 0) return {};
    return emit(ByteSpan(kZeros.data(), kBlockSize - tail));
  }

  Result<void> emit_header(const Entry& entry) {
    std::string records;
    if (entry.name.size() > kNameField) append_pax_record(records, "path", entry.name);
    if (entry.linkname.size() > kNameField) append_pax_record(records, "linkpath", entry.linkname);
    if (entry.size > kMaxOctal11) append_pax_record(records, "size", std::to_string(entry.size));
    if (entry.uid > kMaxOctal7) append_pax_record(records, "uid", std::to_string(entry.uid));
    if (entry.gid > kMaxOctal7) append_pax_record(records, "gid", std::to_string(entry.gid));
    if (entry.mtime < 0 || static_cast<std::uint64_t>(entry.mtime) > kMaxOctal11) {
      append_pax_record(records, "mtime", std::to_string(entry.mtime));
    }
    for (const auto& [name, value] : entry.xattrs) {
      append_pax_record(records, "SCHILY.xattr." + name, value);
    }
    if (!records.empty()) {
      const std::string base = entry.name.substr(0, kNameField - 11);
      Entry pax_entry;
      pax_entry.mode = 0644;
      pax_entry.mtime = entry.mtime;
      const Block pax = make_header(pax_entry, "PaxHeaders/" + base, 'x', records.size());
      STRATA_TRY(emit(pax));
      STRATA_TRY(
          emit(ByteSpan(reinterpret_cast<const std::uint8_t*>(records.data()), records.size())));
      STRATA_TRY(emit_padding(records.size()));
    }
    const std::uint64_t size_field = entry.size > kMaxOctal11 ? 0 : entry.size;
    const Block header = make_header(entry, entry.name, entry.typeflag, size_field);
    ++stats_.entries;
    return emit(header);
  }

 private:
  const ByteSink& sink_;
  DirectoryTarStats& stats_;
};

class DirectoryWalker {
 public:
  DirectoryWalker(const DirectoryTarOptions& options, TarEmitter& emitter)
      : options_(options), emitter_(emitter), buffer_(kFileBlockBytes) {}

  Result<void> walk(const std::string& absolute, const std::string& relative) {
    auto names = list_directory(absolute);
    if (!names.ok()) return std::move(names).error();
    for (const std::string& name : *names) {
      const std::string path = absolute + "/" + name;
      const std::string member = relative + name;
      struct stat info {};
      if (::lstat(path.c_str(), &info) != 0)
        return io_error("cannot stat", path, errno, PathQuoting::kBare);
      STRATA_TRY(add_entry(path, member, info));
      if (S_ISDIR(info.st_mode)) STRATA_TRY(walk(path, member + "/"));
    }
    return {};
  }

 private:
  static Result<std::vector<std::string>> list_directory(const std::string& path) {
    DIR* directory = ::opendir(path.c_str());
    if (directory == nullptr)
      return io_error("cannot open directory", path, errno, PathQuoting::kBare);
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* item = ::readdir(directory)) {
      const std::string_view name = item->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    const int read_errno = errno;
    ::closedir(directory);
    if (read_errno != 0) {
      errno = read_errno;
      return io_error("cannot read directory", path, errno, PathQuoting::kBare);
    }
    std::sort(names.begin(), names.end());  // char_traits<char> compares as unsigned bytes
    return names;
  }

  Result<void> add_entry(const std::string& path, const std::string& member,
                         const struct stat& info) {
    Entry entry;
    entry.name = member;
    entry.mode = static_cast<std::uint32_t>(info.st_mode & 07777);
    entry.uid = options_.uid.value_or(info.st_uid);
    entry.gid = options_.gid.value_or(info.st_gid);
    entry.mtime = options_.mtime.value_or(static_cast<std::int64_t>(info.st_mtime));
    if (!S_ISDIR(info.st_mode) && info.st_nlink > 1) {
      const auto key = std::make_pair(static_cast<std::uint64_t>(info.st_dev),
                                      static_cast<std::uint64_t>(info.st_ino));
      const auto [first, inserted] = first_names_.emplace(key, member);
      if (!inserted) {
        entry.typeflag = '1';
        entry.linkname = first->second;
        return emitter_.emit_header(entry);
      }
    }
    // A hard link entry names its target; the attributes travel with the target's entry.
    if (options_.xattrs) {
      auto xattrs = read_xattrs(path);
      if (!xattrs.ok()) return std::move(xattrs).error();
      entry.xattrs = std::move(*xattrs);
    }
    if (S_ISREG(info.st_mode)) {
      entry.typeflag = '0';
      entry.size = static_cast<std::uint64_t>(info.st_size);
      STRATA_TRY(emitter_.emit_header(entry));
      return copy_file(path, entry.size);
    }
    if (S_ISDIR(info.st_mode)) {
      entry.typeflag = '5';
      entry.name += '/';
      return emitter_.emit_header(entry);
    }
    if (S_ISLNK(info.st_mode)) {
      entry.typeflag = '2';
      auto target = read_link(path, info);
      if (!target.ok()) return std::move(target).error();
      entry.linkname = std::move(*target);
      return emitter_.emit_header(entry);
    }
    if (S_ISCHR(info.st_mode) || S_ISBLK(info.st_mode)) {
      entry.typeflag = S_ISCHR(info.st_mode) ? '3' : '4';
      entry.dev_major = major(info.st_rdev);
      entry.dev_minor = minor(info.st_rdev);
      if (entry.dev_major > kMaxOctal7 || entry.dev_minor > kMaxOctal7) {
        return make_error(ErrorCode::kUnsupported,
                          path + ": device numbers too large for a tar header");
      }
      return emitter_.emit_header(entry);
    }
    if (S_ISFIFO(info.st_mode)) {
      entry.typeflag = '6';
      return emitter_.emit_header(entry);
    }
    return make_error(ErrorCode::kUnsupported,
                      path + ": sockets and other special files cannot be stored in a tar layer");
  }

  // The entry's extended attributes, not following a symlink; none where the file system has
  // none. Names and values are bounded by the kernel (XATTR_LIST_MAX, XATTR_SIZE_MAX: 64 KiB).
  static Result<std::vector<std::pair<std::string, std::string>>> read_xattrs(
      const std::string& path) {
    std::vector<std::pair<std::string, std::string>> xattrs;
    std::vector<char> names(std::size_t{64} << 10U);
    const ssize_t listed = ::llistxattr(path.c_str(), names.data(), names.size());
    if (listed < 0) {
      if (errno == ENOTSUP || errno == ENODATA) return xattrs;
      return io_error("cannot list extended attributes of", path, errno, PathQuoting::kBare);
    }
    std::vector<char> value(std::size_t{64} << 10U);
    for (std::size_t at = 0; at < static_cast<std::size_t>(listed);) {
      const std::string name(names.data() + at);
      at += name.size() + 1;
      if (name.empty()) continue;
      const ssize_t got = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
      if (got < 0) {
        if (errno == ENODATA) continue;  // removed since the listing
        return io_error("cannot read extended attribute " + name + " of", path, errno,
                        PathQuoting::kBare);
      }
      xattrs.emplace_back(name, std::string(value.data(), static_cast<std::size_t>(got)));
    }
    std::sort(xattrs.begin(), xattrs.end());
    return xattrs;
  }

  static Result<std::string> read_link(const std::string& path, const struct stat& info) {
    std::string target(static_cast<std::size_t>(info.st_size) + 1, '\0');
    const ssize_t length = ::readlink(path.c_str(), target.data(), target.size());
    if (length < 0) return io_error("cannot read symlink", path, errno, PathQuoting::kBare);
    if (static_cast<std::size_t>(length) >= target.size()) {
      return make_error(ErrorCode::kIo, path + ": symlink changed while being read");
    }
    target.resize(static_cast<std::size_t>(length));
    return target;
  }

  Result<void> copy_file(const std::string& path, std::uint64_t size) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open", path, errno, PathQuoting::kBare);
    std::uint64_t copied = 0;
    Result<void> status;
    while (copied < size) {
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), size - copied));
      const ssize_t got = ::read(fd, buffer_.data(), want);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        status = io_error("cannot read", path, errno, PathQuoting::kBare);
        break;
      }
      if (got == 0) {
        status = make_error(ErrorCode::kIo, path + ": file shrank while being read");
        break;
      }
      status = emitter_.emit(ByteSpan(buffer_.data(), static_cast<std::size_t>(got)));
      if (!status.ok()) break;
      copied += static_cast<std::uint64_t>(got);
    }
    ::close(fd);
    STRATA_TRY(status);
    return emitter_.emit_padding(size);
  }

  const DirectoryTarOptions& options_;
  TarEmitter& emitter_;
  std::vector<std::uint8_t> buffer_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::string> first_names_;
};

}  // namespace

Result<DirectoryTarStats> write_directory_tar(const std::string& directory,
                                              const DirectoryTarOptions& options,
                                              const ByteSink& sink) {
  struct stat info {};
  if (::stat(directory.c_str(), &info) != 0)
    return io_error("cannot stat", directory, errno, PathQuoting::kBare);
  if (!S_ISDIR(info.st_mode)) {
    return make_error(ErrorCode::kInvalidArgument, directory + " is not a directory");
  }
  DirectoryTarStats stats;
  TarEmitter emitter(sink, stats);
  DirectoryWalker walker(options, emitter);
  STRATA_TRY(walker.walk(directory, ""));
  static constexpr std::array<std::uint8_t, 2 * kBlockSize> kEndBlocks{};
  STRATA_TRY(emitter.emit(kEndBlocks));
  return stats;
}

}  // namespace strata::oci
