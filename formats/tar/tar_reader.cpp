// Tar reader (formats/tar/tar_reader.h). Header block layout (POSIX ustar, 512 bytes): name[100]
// mode[8] uid[8] gid[8] size[12] mtime[12] chksum[8] typeflag[1] linkname[100] magic[6]
// version[2] uname[32] gname[32] devmajor[8] devminor[8] prefix[155]; GNU puts "ustar  \0" in
// magic+version and has no prefix; star keeps a 131-byte prefix and "tar\0" at offset 508.
// Numbers are octal text, or base-256 when the first byte has its high bit set (GNU). The
// checksum is the sum of the header bytes with chksum read as spaces, signed or unsigned (old
// tars summed signed chars). Pax records are "<len> <key>=<value>\n", len counting the whole
// record. Interpretation rules mirror Go archive/tar (reader.go); see the header for the list
// and shared/specs/reliability.md §1b, §5.2 (items 19-41) for the attacks they close.
#include "formats/tar/tar_reader.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

namespace strata {
namespace {

constexpr std::size_t kBlock = TarReader::kBlockSize;

struct Field {
  std::size_t offset;
  std::size_t length;
};
constexpr Field kName{0, 100};
constexpr Field kMode{100, 8};
constexpr Field kUid{108, 8};
constexpr Field kGid{116, 8};
constexpr Field kSize{124, 12};
constexpr Field kMtime{136, 12};
constexpr Field kChecksum{148, 8};
constexpr std::size_t kTypeflagOffset = 156;
constexpr Field kLinkname{157, 100};
constexpr Field kMagic{257, 6};
constexpr Field kVersion{263, 2};
constexpr Field kUname{265, 32};
constexpr Field kGname{297, 32};
constexpr Field kDevMajor{329, 8};
constexpr Field kDevMinor{337, 8};
constexpr Field kPrefix{345, 155};
constexpr Field kStarPrefix{345, 131};
constexpr Field kStarTrailer{508, 4};

constexpr std::string_view kMagicUstar{"ustar\0", 6};
constexpr std::string_view kMagicGnu{"ustar ", 6};
constexpr std::string_view kVersionGnu{" \0", 2};
constexpr std::string_view kTrailerStar{"tar\0", 4};

constexpr std::string_view kPaxXattrPrefix = "SCHILY.xattr.";
constexpr std::string_view kPaxSparsePrefix = "GNU.sparse.";
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";

enum class HeaderFormat : std::uint8_t { kV7, kUstar, kStar, kGnu };

std::string_view field_view(const std::uint8_t* block, Field field) {
  return {reinterpret_cast<const char*>(block) + field.offset, field.length};
}

// Text up to the first NUL (C string semantics of tar fields).
std::string_view field_string(std::string_view raw) {
  const std::size_t nul = raw.find('\0');
  return nul == std::string_view::npos ? raw : raw.substr(0, nul);
}

std::string at_offset(std::uint64_t offset) {
  return "tar header at offset " + std::to_string(offset);
}

bool is_zero_block(const std::uint8_t* block) {
  return std::all_of(block, block + kBlock, [](std::uint8_t byte) { return byte == 0; });
}

// Base-256 (first byte's high bit set; bit 6 gives the sign) or octal text padded with spaces
// and NULs. Values beyond int64 are errors, never wrapped.
std::optional<std::int64_t> parse_numeric(std::string_view raw) {
  if (!raw.empty() && (static_cast<std::uint8_t>(raw[0]) & 0x80U) != 0) {
    const std::uint8_t invert = (static_cast<std::uint8_t>(raw[0]) & 0x40U) != 0 ? 0xFF : 0x00;
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      auto byte = static_cast<std::uint8_t>(static_cast<std::uint8_t>(raw[i]) ^ invert);
      if (i == 0) byte &= 0x7FU;
      if ((value >> 56U) != 0) return std::nullopt;
      value = (value << 8U) | byte;
    }
    if ((value >> 63U) != 0) return std::nullopt;
    // -a-1 == ~a: the inverted magnitude of a negative number.
    return invert != 0 ? ~static_cast<std::int64_t>(value) : static_cast<std::int64_t>(value);
  }
  std::size_t first = raw.find_first_not_of(std::string_view(" \0", 2));
  if (first == std::string_view::npos) return 0;
  std::size_t last = raw.find_last_not_of(std::string_view(" \0", 2));
  std::string_view digits = field_string(raw.substr(first, last - first + 1));
  if (digits.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : digits) {
    if (c < '0' || c > '7') return std::nullopt;
    if ((value >> 60U) != 0) return std::nullopt;
    value = (value << 3U) | static_cast<std::uint64_t>(c - '0');
  }
  if ((value >> 63U) != 0) return std::nullopt;
  return static_cast<std::int64_t>(value);
}

// Pax decimal integer: optional '-', then digits; no overflow.
std::optional<std::int64_t> parse_decimal(std::string_view text) {
  bool negative = false;
  if (!text.empty() && text[0] == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  return negative ? -static_cast<std::int64_t>(value) : static_cast<std::int64_t>(value);
}

// Pax time: [-]seconds[.fraction]; the fraction is kept as text by the caller.
std::optional<std::int64_t> parse_pax_time(std::string_view text) {
  const std::size_t dot = text.find('.');
  if (dot != std::string_view::npos) {
    const std::string_view fraction = text.substr(dot + 1);
    if (!std::all_of(fraction.begin(), fraction.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    text = text.substr(0, dot);
  }
  return parse_decimal(text);
}

bool has_dot_dot_component(std::string_view path) {
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (path.substr(start, slash - start) == "..") return true;
    start = slash + 1;
  }
  return false;
}

bool is_unsafe_path(std::string_view path) {
  return (!path.empty() && path[0] == '/') || has_dot_dot_component(path);
}

std::string_view basename_of(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::uint64_t padded_size(std::uint64_t size) {
  return (size + kBlock - 1) / kBlock * kBlock;
}

bool is_header_only(TarEntryType type) {
  switch (type) {
    case TarEntryType::kHardLink:
    case TarEntryType::kSymlink:
    case TarEntryType::kCharDevice:
    case TarEntryType::kBlockDevice:
    case TarEntryType::kDirectory:
    case TarEntryType::kFifo:
    case TarEntryType::kGlobalHeader: return true;
    case TarEntryType::kRegular:
    case TarEntryType::kOther: return false;
  }
  return false;
}

TarEntryType type_of(char typeflag) {
  switch (typeflag) {
    case '0':
    case '\0':
    case '7': return TarEntryType::kRegular;
    case '1': return TarEntryType::kHardLink;
    case '2': return TarEntryType::kSymlink;
    case '3': return TarEntryType::kCharDevice;
    case '4': return TarEntryType::kBlockDevice;
    case '5': return TarEntryType::kDirectory;
    case '6': return TarEntryType::kFifo;
    case 'g': return TarEntryType::kGlobalHeader;
    default: return TarEntryType::kOther;
  }
}

// Parses pax records; `where` names the header for messages.
Result<std::vector<std::pair<std::string, std::string>>> parse_pax_records(
    std::string_view data, const std::string& where) {
  std::vector<std::pair<std::string, std::string>> records;
  std::size_t position = 0;
  while (position < data.size()) {
    const std::string_view rest = data.substr(position);
    const std::size_t space = rest.find(' ');
    const auto record_error = [&](const std::string& why) {
      return make_error(ErrorCode::kCorruptInput,
                        where + ": pax record at byte " + std::to_string(position) + " " + why);
    };
    if (space == std::string_view::npos || space == 0 || space > 19) {
      return record_error("has no decimal length");
    }
    std::uint64_t length = 0;
    for (std::size_t i = 0; i < space; ++i) {
      if (rest[i] < '0' || rest[i] > '9') return record_error("has a non-decimal length");
      length = length * 10 + static_cast<std::uint64_t>(rest[i] - '0');
    }
    if (length < 5 || length > rest.size() || length <= space + 1) {
      return record_error("claims length " + std::to_string(length) + " but " +
                          std::to_string(rest.size()) + " bytes remain");
    }
    if (rest[length - 1] != '\n') return record_error("does not end with a newline at its length");
    const std::string_view record = rest.substr(space + 1, length - space - 2);
    const std::size_t equals = record.find('=');
    if (equals == std::string_view::npos || equals == 0) {
      return record_error("has no key=value");
    }
    const std::string_view key = record.substr(0, equals);
    const std::string_view value = record.substr(equals + 1);
    if ((key == "path" || key == "linkpath" || key == "uname" || key == "gname") &&
        value.find('\0') != std::string_view::npos) {
      return record_error("'" + std::string(key) + "' contains a NUL byte");
    }
    records.emplace_back(std::string(key), std::string(value));
    position += length;
  }
  return records;
}

using PaxRecords = std::vector<std::pair<std::string, std::string>>;

// The extended headers that precede an entry's own header block and change what it says.
struct ExtendedHeaders {
  std::optional<PaxRecords> pax;
  std::optional<std::string> long_name;  // GNU 'L'
  std::optional<std::string> long_link;  // GNU 'K'
};

// The checksum of a header block, summed unsigned and signed (old tars summed signed chars).
Result<void> verify_checksum(const std::uint8_t* block, std::uint64_t block_offset) {
  const auto stored_sum = parse_numeric(field_view(block, kChecksum));
  std::int64_t unsigned_sum = 0;
  std::int64_t signed_sum = 0;
  for (std::size_t i = 0; i < kBlock; ++i) {
    const std::uint8_t byte =
        (i >= kChecksum.offset && i < kChecksum.offset + kChecksum.length) ? ' ' : block[i];
    unsigned_sum += byte;
    signed_sum += static_cast<std::int8_t>(byte);
  }
  if (!stored_sum || (*stored_sum != unsigned_sum && *stored_sum != signed_sum)) {
    return make_error(ErrorCode::kCorruptInput, at_offset(block_offset) +
                                                    ": checksum mismatch (computed " +
                                                    std::to_string(unsigned_sum) + ")");
  }
  return {};
}

HeaderFormat format_of(const std::uint8_t* block) {
  const std::string_view magic = field_view(block, kMagic);
  if (magic == kMagicUstar) {
    return field_view(block, kStarTrailer) == kTrailerStar ? HeaderFormat::kStar
                                                           : HeaderFormat::kUstar;
  }
  if (magic == kMagicGnu && field_view(block, kVersion) == kVersionGnu) return HeaderFormat::kGnu;
  return HeaderFormat::kV7;
}

Error bad_field(const std::string& where, std::string_view name) {
  return make_error(ErrorCode::kCorruptInput, where + ": invalid " + std::string(name) + " field");
}

// The ustar fields of an entry's own header block (names, numbers, the ustar/star prefix) and
// the GNU long name and link; returns the size field, which a pax record may still replace.
Result<std::int64_t> decode_header_block(const std::uint8_t* block, const std::string& where,
                                         ExtendedHeaders& extended, TarEntry& entry) {
  entry.typeflag = static_cast<char>(block[kTypeflagOffset]);
  const HeaderFormat format = format_of(block);
  entry.path = std::string(field_string(field_view(block, kName)));
  entry.link_path = std::string(field_string(field_view(block, kLinkname)));
  const auto mode = parse_numeric(field_view(block, kMode));
  const auto uid = parse_numeric(field_view(block, kUid));
  const auto gid = parse_numeric(field_view(block, kGid));
  const auto size = parse_numeric(field_view(block, kSize));
  const auto mtime = parse_numeric(field_view(block, kMtime));
  if (!mode) return bad_field(where, "mode");
  if (!uid) return bad_field(where, "uid");
  if (!gid) return bad_field(where, "gid");
  if (!size) return bad_field(where, "size");
  if (!mtime) return bad_field(where, "mtime");
  entry.mode = *mode;
  entry.uid = *uid;
  entry.gid = *gid;
  entry.mtime = *mtime;
  if (format != HeaderFormat::kV7) {
    entry.uname = std::string(field_string(field_view(block, kUname)));
    entry.gname = std::string(field_string(field_view(block, kGname)));
    const auto major = parse_numeric(field_view(block, kDevMajor));
    const auto minor = parse_numeric(field_view(block, kDevMinor));
    if (!major) return bad_field(where, "devmajor");
    if (!minor) return bad_field(where, "devminor");
    entry.dev_major = *major;
    entry.dev_minor = *minor;
    if (format == HeaderFormat::kUstar || format == HeaderFormat::kStar) {
      const std::string_view prefix =
          field_string(field_view(block, format == HeaderFormat::kUstar ? kPrefix : kStarPrefix));
      if (!prefix.empty()) entry.path = std::string(prefix) + "/" + entry.path;
    }
  }
  if (extended.long_name) entry.path = std::move(*extended.long_name);
  if (extended.long_link) entry.link_path = std::move(*extended.long_link);
  entry.type = type_of(entry.typeflag);
  if (entry.typeflag == '\0' && !entry.path.empty() && entry.path.back() == '/') {
    entry.type = TarEntryType::kDirectory;
  }
  return *size;
}

// Pax records override the header block's fields (Go's mergePAX); `entry_size` takes "size".
Result<void> apply_pax_records(const PaxRecords& pax, const std::string& where, TarEntry& entry,
                               std::int64_t& entry_size) {
  for (const auto& record : pax) {
    // Named references, not structured bindings: lambdas may not capture those before C++20
    // compilers caught up (clang 14).
    const std::string& key = record.first;
    const std::string& value = record.second;
    const auto bad_record = [&](std::string_view name) {
      return make_error(ErrorCode::kCorruptInput, where + ": invalid pax " + std::string(name) +
                                                      " '" + value.substr(0, 40) + "'");
    };
    if (key == "path") {
      entry.path = value;
    } else if (key == "linkpath") {
      entry.link_path = value;
    } else if (key == "uname") {
      entry.uname = value;
    } else if (key == "gname") {
      entry.gname = value;
    } else if (key == "size") {
      const auto parsed = parse_decimal(value);
      if (!parsed || *parsed < 0) return bad_record("size");
      entry_size = *parsed;
    } else if (key == "uid" || key == "gid") {
      const auto parsed = parse_decimal(value);
      if (!parsed) return bad_record(key);
      (key == "uid" ? entry.uid : entry.gid) = *parsed;
    } else if (key == "mtime") {
      const auto parsed = parse_pax_time(value);
      if (!parsed) return bad_record("mtime");
      entry.mtime = *parsed;
      entry.pax_mtime = value;
    } else if (key == "atime" || key == "ctime") {
      if (!parse_pax_time(value)) return bad_record(key);
    } else if (key.starts_with(kPaxXattrPrefix)) {
      entry.xattrs.emplace_back(key.substr(kPaxXattrPrefix.size()), value);
    } else if (key.starts_with(kPaxSparsePrefix)) {
      return make_error(ErrorCode::kUnsupported, where + ": GNU sparse pax record '" + key +
                                                     "' (sparse files are not supported)");
    }
  }
  return {};
}

// The caps of TarLimits on one entry; `entries` counts the entries before this one.
Result<void> check_entry_limits(const TarEntry& entry, std::int64_t entry_size,
                                const TarLimits& limits, std::uint64_t entries,
                                const std::string& where) {
  if (entry_size < 0) return bad_field(where, "size");
  if (static_cast<std::uint64_t>(entry_size) > limits.max_entry_size) {
    return make_error(ErrorCode::kLimitExceeded,
                      where + ": entry size " + std::to_string(entry_size) +
                          " exceeds the cap of " + std::to_string(limits.max_entry_size));
  }
  if (entry.path.size() > limits.max_path_length ||
      entry.link_path.size() > limits.max_path_length) {
    return make_error(ErrorCode::kLimitExceeded, where + ": path longer than the cap of " +
                                                     std::to_string(limits.max_path_length) +
                                                     " bytes");
  }
  if (entries >= limits.max_entries) {
    return make_error(ErrorCode::kLimitExceeded,
                      where + ": more than " + std::to_string(limits.max_entries) + " entries");
  }
  return {};
}

// The flags a consumer checks before it touches the file system: unsafe paths and whiteouts.
void mark_path_flags(TarEntry& entry) {
  entry.unsafe_path = is_unsafe_path(entry.path);
  entry.unsafe_link =
      (entry.type == TarEntryType::kHardLink || entry.type == TarEntryType::kSymlink) &&
      is_unsafe_path(entry.link_path);
  const std::string_view base = basename_of(entry.path);
  entry.whiteout = base.starts_with(kWhiteoutPrefix);
  entry.opaque_whiteout = base == kOpaqueWhiteout;
}

// An entry from its own header block and the extended headers before it, checked against the
// limits; its size is 0 for types that have no content.
Result<TarEntry> decode_entry(const std::uint8_t* block, const std::string& where,
                              ExtendedHeaders& extended, const TarLimits& limits,
                              std::uint64_t entries) {
  TarEntry entry;
  auto entry_size = decode_header_block(block, where, extended, entry);
  if (!entry_size) return std::move(entry_size).error();
  if (extended.pax) {
    STRATA_TRY(apply_pax_records(*extended.pax, where, entry, *entry_size));
    entry.pax_records = std::move(*extended.pax);
  }
  STRATA_TRY(check_entry_limits(entry, *entry_size, limits, entries, where));
  entry.size = is_header_only(entry.type) ? 0 : static_cast<std::uint64_t>(*entry_size);
  mark_path_flags(entry);
  return entry;
}

}  // namespace

TarReader::TarReader(ByteSource& source, const TarLimits& limits, TarReadBuffers* buffers)
    : source_(source),
      limits_(limits),
      lent_(buffers),
      buffer_(buffers == nullptr ? kBufferSize : 0),
      data_(buffer_) {}

Error TarReader::fail(Error error) {
  state_ = State::kFailed;
  error_ = error;
  return error;
}

Error TarReader::truncated(std::string_view what) const {
  return make_error(ErrorCode::kCorruptInput, "tar truncated at offset " +
                                                  std::to_string(offset_ + (end_ - begin_)) +
                                                  " inside " + std::string(what));
}

Result<void> TarReader::make_room(std::size_t count) {
  if (lent_ == nullptr) {
    if (begin_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    return {};
  }
  // A lent buffer is only appended to: earlier events' spans stay valid in it.
  if (data_.size() - begin_ >= count && end_ < data_.size()) return {};
  const MutableByteSpan next = lent_->next_buffer();
  if (next.size() < std::max(kMinLentBuffer, count)) {
    return make_error(ErrorCode::kInternal,
                      "tar reader was lent a buffer of " + std::to_string(next.size()) + " bytes");
  }
  if (end_ > begin_) std::memcpy(next.data(), data_.data() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
  data_ = next;
  return {};
}

Result<bool> TarReader::fill(std::size_t count) {
  if (end_ - begin_ >= count) return true;
  STRATA_TRY(make_room(count));
  while (end_ - begin_ < count && !source_ended_) {
    auto got = source_.read(data_.subspan(end_));
    if (!got.ok()) return std::move(got).error();
    if (*got == 0) source_ended_ = true;
    end_ += *got;
  }
  return end_ - begin_ >= count;
}

ByteSpan TarReader::consume(std::size_t count) {
  const ByteSpan bytes(data_.data() + begin_, count);
  begin_ += count;
  offset_ += count;
  return bytes;
}

Result<void> TarReader::take_header_bytes(std::size_t count, std::string_view what) {
  if (header_bytes_.size() + count > limits_.max_header_bytes) {
    return make_error(ErrorCode::kLimitExceeded, at_offset(offset_) + ": header group of " +
                                                     std::to_string(header_bytes_.size() + count) +
                                                     " bytes exceeds the cap of " +
                                                     std::to_string(limits_.max_header_bytes));
  }
  while (count > 0) {
    auto available = fill(1);
    if (!available.ok()) return std::move(available).error();
    if (!*available) return truncated(what);
    const std::size_t take = std::min(count, end_ - begin_);
    const ByteSpan bytes = consume(take);
    header_bytes_.insert(header_bytes_.end(), bytes.begin(), bytes.end());
    count -= take;
  }
  return {};
}

bool TarReader::give_back(std::size_t count) {
  if (lent_ == nullptr || count == 0 || count > returnable_ || count > data_.size() / 2) {
    return false;
  }
  begin_ -= count;
  offset_ -= count;
  content_left_ += count;
  state_ = State::kContent;
  want_ = count + 1;
  returnable_ = 0;
  return true;
}

Result<TarEvent> TarReader::next() {
  returnable_ = 0;
  switch (state_) {
    case State::kHeader: return read_header_group();
    case State::kContent: return read_content();
    case State::kPadding: return read_padding();
    case State::kTrailing: return read_trailing();
    case State::kDone: return TarEvent{TarEventKind::kDone, {}, nullptr, offset_};
    case State::kFailed: return error_;
  }
  return fail(make_error(ErrorCode::kInternal, "tar reader in an unknown state"));
}

Result<TarEvent> TarReader::finish_end_of_archive(std::uint64_t block_offset) {
  auto available = fill(2 * kBlock);
  if (!available.ok()) return fail(std::move(available).error());
  if (!*available) {
    if (end_ - begin_ == kBlock) {
      // A lone zero block at the very end: Go reads it as the end too.
      const ByteSpan bytes = consume(kBlock);
      state_ = State::kTrailing;
      return TarEvent{TarEventKind::kEndOfArchive, bytes, nullptr, block_offset};
    }
    return fail(make_error(ErrorCode::kCorruptInput, "tar truncated: zero block at offset " +
                                                         std::to_string(block_offset) +
                                                         " is followed by a partial block"));
  }
  if (!is_zero_block(data_.data() + begin_ + kBlock)) {
    return fail(make_error(ErrorCode::kCorruptInput,
                           "zero block at offset " + std::to_string(block_offset) +
                               " is followed by a non-zero block (not an end of archive)"));
  }
  const ByteSpan bytes = consume(2 * kBlock);
  state_ = State::kTrailing;
  return TarEvent{TarEventKind::kEndOfArchive, bytes, nullptr, block_offset};
}

Result<TarEvent> TarReader::read_header_group() {
  header_bytes_.clear();
  const std::uint64_t group_offset = offset_;
  ExtendedHeaders extended;
  std::array<std::uint8_t, kBlock> block{};
  std::uint64_t block_offset = 0;

  while (true) {
    block_offset = offset_;
    auto available = fill(kBlock);
    if (!available.ok()) return fail(std::move(available).error());
    if (!*available) {
      if (offset_ == 0 && end_ == begin_) {
        return fail(make_error(ErrorCode::kCorruptInput, "empty input is not a tar archive"));
      }
      if (end_ == begin_ && header_bytes_.empty()) {
        // No end-of-archive blocks at all: Go accepts this and real writers (stargz's
        // zstd:chunked) produce it, so it is a clean end.
        state_ = State::kDone;
        return TarEvent{TarEventKind::kDone, {}, nullptr, offset_};
      }
      return fail(truncated("a header block"));
    }
    std::memcpy(block.data(), data_.data() + begin_, kBlock);
    if (is_zero_block(block.data())) {
      if (!header_bytes_.empty()) {
        return fail(make_error(
            ErrorCode::kCorruptInput,
            at_offset(group_offset) + ": extended header is followed by the end of the archive"));
      }
      return finish_end_of_archive(block_offset);
    }
    {
      auto verified = verify_checksum(block.data(), block_offset);
      if (!verified.ok()) return fail(std::move(verified).error());
      auto taken = take_header_bytes(kBlock, "a header block");
      if (!taken.ok()) return fail(std::move(taken).error());
    }
    const char typeflag = static_cast<char>(block[kTypeflagOffset]);
    const auto size = parse_numeric(field_view(block.data(), kSize));
    if (!size || *size < 0) {
      return fail(
          make_error(ErrorCode::kCorruptInput, at_offset(block_offset) + ": invalid size field"));
    }
    const auto data_size = static_cast<std::uint64_t>(*size);

    if (typeflag == 'x' || typeflag == 'g' || typeflag == 'L' || typeflag == 'K') {
      if (data_size > limits_.max_header_bytes) {
        return fail(make_error(ErrorCode::kLimitExceeded,
                               at_offset(block_offset) + ": extended header of " +
                                   std::to_string(data_size) + " bytes exceeds the cap of " +
                                   std::to_string(limits_.max_header_bytes)));
      }
      const std::size_t data_start = header_bytes_.size();
      auto taken = take_header_bytes(padded_size(data_size), "extended header data");
      if (!taken.ok()) return fail(std::move(taken).error());
      const std::string_view data(reinterpret_cast<const char*>(header_bytes_.data()) + data_start,
                                  data_size);
      if (typeflag == 'L' || typeflag == 'K') {
        (typeflag == 'L' ? extended.long_name : extended.long_link) =
            std::string(field_string(data));
        continue;
      }
      auto records = parse_pax_records(data, at_offset(block_offset));
      if (!records.ok()) return fail(std::move(records).error());
      if (typeflag == 'x') {
        extended.pax = std::move(*records);
        continue;
      }
      if (extended.pax || extended.long_name || extended.long_link) {
        return fail(
            make_error(ErrorCode::kCorruptInput,
                       at_offset(block_offset) + ": pax global header follows an extended header"));
      }
      entry_ = TarEntry{};
      entry_.type = TarEntryType::kGlobalHeader;
      entry_.typeflag = 'g';
      entry_.pax_records = std::move(*records);
      entry_.header_offset = group_offset;
      ++entries_;
      state_ = State::kHeader;
      return TarEvent{TarEventKind::kHeader, ByteSpan(header_bytes_), &entry_, group_offset};
    }
    if (typeflag == 'S') {
      return fail(make_error(ErrorCode::kUnsupported,
                             at_offset(block_offset) + ": GNU sparse entry '" +
                                 std::string(field_string(field_view(block.data(), kName))) +
                                 "' (sparse files are not supported)"));
    }
    break;
  }

  // The entry's own header.
  auto entry = decode_entry(block.data(), at_offset(block_offset), extended, limits_, entries_);
  if (!entry.ok()) return fail(std::move(entry).error());
  ++entries_;
  entry_ = std::move(*entry);
  entry_.header_offset = group_offset;
  content_left_ = entry_.size;
  padding_ = static_cast<std::size_t>(padded_size(entry_.size) - entry_.size);
  state_ = content_left_ > 0 ? State::kContent : State::kHeader;
  return TarEvent{TarEventKind::kHeader, ByteSpan(header_bytes_), &entry_, group_offset};
}

Result<TarEvent> TarReader::read_content() {
  // After give_back(): the bytes handed back and at least one more (or the entry's end).
  const std::size_t wanted =
      static_cast<std::size_t>(std::min<std::uint64_t>(content_left_, want_));
  want_ = 1;
  auto available = fill(wanted);
  if (!available.ok()) return fail(std::move(available).error());
  if (!*available) {
    return fail(truncated("the content of '" + entry_.path.substr(0, 200) + "'"));
  }
  const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(content_left_, end_ - begin_));
  const std::uint64_t piece_offset = offset_;
  const ByteSpan bytes = consume(take);
  content_left_ -= take;
  returnable_ = take;
  if (content_left_ == 0) state_ = padding_ > 0 ? State::kPadding : State::kHeader;
  return TarEvent{TarEventKind::kContent, bytes, nullptr, piece_offset};
}

Result<void> TarReader::skip_content() {
  if (state_ != State::kContent) return {};
  returnable_ = 0;
  want_ = 1;
  const auto buffered =
      static_cast<std::size_t>(std::min<std::uint64_t>(content_left_, end_ - begin_));
  consume(buffered);
  content_left_ -= buffered;
  if (content_left_ > 0) {
    auto skipped = source_.skip(content_left_);
    if (!skipped.ok()) return fail(std::move(skipped).error());
    offset_ += *skipped;
    content_left_ -= *skipped;
    if (content_left_ > 0) {
      source_ended_ = true;
      return fail(truncated("the content of '" + entry_.path.substr(0, 200) + "'"));
    }
  }
  state_ = padding_ > 0 ? State::kPadding : State::kHeader;
  return {};
}

Result<TarEvent> TarReader::read_padding() {
  auto available = fill(padding_);
  if (!available.ok()) return fail(std::move(available).error());
  if (!*available) return fail(truncated("the padding of '" + entry_.path.substr(0, 200) + "'"));
  const std::uint64_t padding_offset = offset_;
  const ByteSpan bytes = consume(padding_);
  state_ = State::kHeader;
  return TarEvent{TarEventKind::kPadding, bytes, nullptr, padding_offset};
}

Result<TarEvent> TarReader::read_trailing() {
  auto available = fill(1);
  if (!available.ok()) return fail(std::move(available).error());
  if (!*available) {
    state_ = State::kDone;
    return TarEvent{TarEventKind::kDone, {}, nullptr, offset_};
  }
  const std::uint64_t trailing_offset = offset_;
  const ByteSpan bytes = consume(end_ - begin_);
  return TarEvent{TarEventKind::kTrailingBytes, bytes, nullptr, trailing_offset};
}

}  // namespace strata
