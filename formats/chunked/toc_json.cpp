// TOC JSON of zstd:chunked and eStargz layers: a tolerant, bounded parser of both formats' entry
// fields and a writer in c/storage's field order (shared/specs/layer-formats.md §1.2, §2 "TOC"),
// plus base64 (xattr values, tar-split payloads). nlohmann-json parses without exceptions; every
// field is type-checked before use, so hostile TOCs end in an error naming the entry. TOCs in plain
// JSON (no escapes, ASCII) are read first by PlainJsonScanner without building a document.
#include "formats/chunked/toc_json.h"

#include <array>
#include <ctime>
#include <limits>
#include <nlohmann/json.hpp>

#include "formats/chunked/plain_json_scanner.h"

namespace strata::fastpull {

std::string_view chunked_format_name(ChunkedFormat format) noexcept {
  switch (format) {
    case ChunkedFormat::kZstdChunked: return "zstd:chunked";
    case ChunkedFormat::kZstdChunkedV1: return "zstd:chunked-v1";
    case ChunkedFormat::kEstargz: return "estargz";
  }
  return "unknown";
}

std::optional<ChunkedFormat> chunked_format_of(const oci::Annotations& annotations) {
  const bool zstd_v2 = annotations.contains(std::string(kZstdChunkedManifestPositionKey));
  const bool zstd_v1 = annotations.contains(std::string(kZstdChunkedV1ManifestPositionKey));
  const bool estargz = annotations.contains(std::string(kEstargzTocDigestKey));
  if (zstd_v2) return ChunkedFormat::kZstdChunked;
  if (zstd_v1) return ChunkedFormat::kZstdChunkedV1;
  if (estargz) return ChunkedFormat::kEstargz;
  return std::nullopt;
}

namespace {

using nlohmann::json;

Error entry_error(std::size_t index, const std::string& what) {
  return make_error(ErrorCode::kCorruptInput, "TOC entry " + std::to_string(index) + ": " + what);
}

Result<std::uint64_t> get_unsigned(const json& object, const char* key, std::size_t index) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::uint64_t{0};
  if (!it->is_number_unsigned()) {
    return entry_error(index, std::string("'") + key + "' is not a non-negative integer");
  }
  const auto value = it->get<std::uint64_t>();
  if (value > (std::uint64_t{1} << 62U)) {
    return entry_error(index, std::string("'") + key + "' is out of range");
  }
  return value;
}

Result<std::int64_t> get_signed(const json& object, const char* key, std::size_t index) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::int64_t{0};
  if (!it->is_number_integer()) {
    return entry_error(index, std::string("'") + key + "' is not an integer");
  }
  if (it->is_number_unsigned() &&
      it->get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return entry_error(index, std::string("'") + key + "' is out of range");
  }
  return it->get<std::int64_t>();
}

Result<std::string> get_string(const json& object, const char* key, std::size_t index) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) return entry_error(index, std::string("'") + key + "' is not a string");
  return it->get<std::string>();
}

Result<std::optional<Digest>> get_digest(const json& object, const char* key, std::size_t index) {
  auto text = get_string(object, key, index);
  if (!text) return std::move(text).error();
  if (text->empty()) return std::optional<Digest>();
  auto digest = Digest::parse(*text);
  if (!digest) return entry_error(index, std::string("'") + key + "' is not a sha256 digest");
  return std::optional<Digest>(*digest);
}

Result<TocEntry> parse_entry(const json& object, std::size_t index) {
  if (!object.is_object()) return entry_error(index, "not an object");
  TocEntry entry;
  auto type = get_string(object, "type", index);
  if (!type) return std::move(type).error();
  entry.type = std::move(*type);
  auto name = get_string(object, "name", index);
  if (!name) return std::move(name).error();
  entry.name = std::move(*name);
  auto link = get_string(object, "linkName", index);
  if (!link) return std::move(link).error();
  entry.link_name = std::move(*link);
  auto modtime = get_string(object, "modtime", index);
  if (!modtime) return std::move(modtime).error();
  entry.modtime = std::move(*modtime);
  auto chunk_type = get_string(object, "chunkType", index);
  if (!chunk_type) return std::move(chunk_type).error();
  entry.chunk_type = std::move(*chunk_type);

  struct SignedField {
    const char* key;
    std::int64_t* target;
  };
  for (const SignedField& field :
       {SignedField{"mode", &entry.mode}, SignedField{"uid", &entry.uid},
        SignedField{"gid", &entry.gid}, SignedField{"devMajor", &entry.dev_major},
        SignedField{"devMinor", &entry.dev_minor}}) {
    auto value = get_signed(object, field.key, index);
    if (!value) return std::move(value).error();
    *field.target = *value;
  }
  struct UnsignedField {
    const char* key;
    std::uint64_t* target;
  };
  for (const UnsignedField& field :
       {UnsignedField{"size", &entry.size}, UnsignedField{"offset", &entry.offset},
        UnsignedField{"endOffset", &entry.end_offset},
        UnsignedField{"chunkSize", &entry.chunk_size},
        UnsignedField{"chunkOffset", &entry.chunk_offset},
        UnsignedField{"innerOffset", &entry.inner_offset}}) {
    auto value = get_unsigned(object, field.key, index);
    if (!value) return std::move(value).error();
    *field.target = *value;
  }
  auto digest = get_digest(object, "digest", index);
  if (!digest) return std::move(digest).error();
  entry.digest = *digest;
  auto chunk_digest = get_digest(object, "chunkDigest", index);
  if (!chunk_digest) return std::move(chunk_digest).error();
  entry.chunk_digest = *chunk_digest;

  const auto xattrs = object.find("xattrs");
  if (xattrs != object.end() && !xattrs->is_null()) {
    if (!xattrs->is_object()) return entry_error(index, "'xattrs' is not an object");
    for (const auto& [key, value] : xattrs->items()) {
      if (!value.is_string()) return entry_error(index, "xattr '" + key + "' is not a string");
      entry.xattrs.emplace(key, value.get<std::string>());
    }
  }
  if (entry.name.empty()) return entry_error(index, "empty name");
  return entry;
}

// The fast path of parse_toc_json: a TOC in plain JSON (PlainJsonScanner: what c/storage, stargz
// and strata write, indented or not) whose every known field is well-formed is read straight into
// its entries, with the checks parse_entry makes; anything else (a field of another type, an
// escape, a duplicate key, nested values under unknown keys, too many entries) returns nullopt
// and takes the DOM parser below, which reads it the same way or names the problem.
class PlainTocReader {
 public:
  PlainTocReader(ByteSpan json_bytes, std::size_t max_entries)
      : scan_(
            std::string_view(reinterpret_cast<const char*>(json_bytes.data()), json_bytes.size())),
        max_entries_(max_entries) {}

  std::optional<Toc> read() {
    Toc toc;
    bool have_version = false;
    bool have_entries = false;
    bool have_split = false;
    if (!scan_.take('{')) return std::nullopt;
    if (!scan_.at('}')) {
      do {
        std::string_view key;
        if (!scan_.string(key) || !scan_.take(':')) return std::nullopt;
        if (key == "version") {
          std::uint64_t version = 0;
          if (have_version || !scan_.unsigned_number(version) || version != 1) return std::nullopt;
          have_version = true;
        } else if (key == "entries") {
          if (have_entries || !entries(toc.entries)) return std::nullopt;
          have_entries = true;
        } else if (key == "tarSplitDigest") {
          if (have_split || !digest(toc.tar_split_digest)) return std::nullopt;
          have_split = true;
        } else if (!scan_.skip_simple_value()) {
          return std::nullopt;
        }
      } while (scan_.take(','));
    }
    if (!scan_.take('}') || !scan_.at_end() || !have_version || !have_entries) return std::nullopt;
    return toc;
  }

 private:
  bool entries(std::vector<TocEntry>& out) {
    if (!scan_.take('[')) return false;
    if (scan_.take(']')) return true;
    do {
      if (out.size() == max_entries_) return false;  // the DOM parser names the limit
      TocEntry& entry = out.emplace_back();
      if (!this->entry(entry)) return false;
    } while (scan_.take(','));
    return scan_.take(']');
  }

  // One entry object; every field at most once.
  bool entry(TocEntry& entry) {
    if (!scan_.take('{')) return false;
    std::uint32_t seen = 0;
    if (!scan_.at('}')) {
      do {
        std::string_view key;
        if (!scan_.string(key) || !scan_.take(':')) return false;
        const int field = field_index(key);
        if (field >= 0) {
          const std::uint32_t bit = 1U << static_cast<unsigned>(field);
          if ((seen & bit) != 0 || !value(entry, field)) return false;
          seen |= bit;
        } else if (!scan_.skip_simple_value()) {
          return false;
        }
      } while (scan_.take(','));
    }
    return scan_.take('}') && !entry.name.empty();
  }

  static constexpr std::array<std::string_view, 19> kFields = {
      "type",        "name",   "linkName",    "modtime",   "chunkType",
      "mode",        "uid",    "gid",         "devMajor",  "devMinor",
      "size",        "offset", "endOffset",   "chunkSize", "chunkOffset",
      "innerOffset", "digest", "chunkDigest", "xattrs"};

  static int field_index(std::string_view key) {
    for (std::size_t i = 0; i < kFields.size(); ++i) {
      if (kFields[i] == key) return static_cast<int>(i);
    }
    return -1;
  }

  bool value(TocEntry& entry, int field) {
    switch (field) {
      case 0: return text(entry.type);
      case 1: return text(entry.name);
      case 2: return text(entry.link_name);
      case 3: return text(entry.modtime);
      case 4: return text(entry.chunk_type);
      case 5: return signed_value(entry.mode);
      case 6: return signed_value(entry.uid);
      case 7: return signed_value(entry.gid);
      case 8: return signed_value(entry.dev_major);
      case 9: return signed_value(entry.dev_minor);
      case 10: return unsigned_value(entry.size);
      case 11: return unsigned_value(entry.offset);
      case 12: return unsigned_value(entry.end_offset);
      case 13: return unsigned_value(entry.chunk_size);
      case 14: return unsigned_value(entry.chunk_offset);
      case 15: return unsigned_value(entry.inner_offset);
      case 16: return digest(entry.digest);
      case 17: return digest(entry.chunk_digest);
      case 18: return xattrs(entry.xattrs);
      default: return false;
    }
  }

  // get_string: a string, or null for "".
  bool text(std::string& out) {
    if (scan_.at('n')) return scan_.null();
    std::string_view value;
    if (!scan_.string(value)) return false;
    out.assign(value);
    return true;
  }
  // get_signed: an integer, or null for 0.
  bool signed_value(std::int64_t& out) {
    if (scan_.at('n')) return scan_.null();
    return scan_.signed_number(out);
  }
  // get_unsigned: a non-negative integer up to 2^62, or null for 0.
  bool unsigned_value(std::uint64_t& out) {
    if (scan_.at('n')) return scan_.null();
    return scan_.unsigned_number(out) && out <= (std::uint64_t{1} << 62U);
  }
  // get_digest: a sha256 digest, "" or null for none.
  bool digest(std::optional<Digest>& out) {
    std::string text_value;
    if (!text(text_value)) return false;
    if (text_value.empty()) return true;
    auto parsed = Digest::parse(text_value);
    if (!parsed) return false;
    out = *parsed;
    return true;
  }
  // An object of string values, or null for none.
  bool xattrs(std::map<std::string, std::string>& out) {
    if (scan_.at('n')) return scan_.null();
    if (!scan_.take('{')) return false;
    if (scan_.take('}')) return true;
    do {
      std::string_view key;
      std::string_view value;
      if (!scan_.string(key) || !scan_.take(':') || !scan_.string(value)) return false;
      if (!out.emplace(key, value).second) return false;  // a repeated name: the DOM decides
    } while (scan_.take(','));
    return scan_.take('}');
  }

  detail::PlainJsonScanner scan_;
  std::size_t max_entries_;
};

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

Result<Toc> parse_toc_json(ByteSpan json_bytes, std::size_t max_entries) {
  if (auto plain = detail::parse_plain_toc_json(json_bytes, max_entries)) return std::move(*plain);
  return detail::parse_toc_json_in_full(json_bytes, max_entries);
}

namespace detail {

std::optional<Toc> parse_plain_toc_json(ByteSpan json_bytes, std::size_t max_entries) {
  return PlainTocReader(json_bytes, max_entries).read();
}

Result<Toc> parse_toc_json_in_full(ByteSpan json_bytes, std::size_t max_entries) {
  const json document = json::parse(json_bytes.begin(), json_bytes.end(), nullptr, false);
  if (document.is_discarded()) return make_error(ErrorCode::kCorruptInput, "TOC is not valid JSON");
  if (!document.is_object()) return make_error(ErrorCode::kCorruptInput, "TOC is not an object");
  const auto version = document.find("version");
  if (version == document.end() || !version->is_number_integer() ||
      version->get<std::int64_t>() != 1) {
    return make_error(ErrorCode::kUnsupported, "TOC version is not 1");
  }
  const auto entries = document.find("entries");
  if (entries == document.end() || !entries->is_array()) {
    return make_error(ErrorCode::kCorruptInput, "TOC has no 'entries' array");
  }
  if (entries->size() > max_entries) {
    return make_error(ErrorCode::kLimitExceeded, "TOC has " + std::to_string(entries->size()) +
                                                     " entries, more than " +
                                                     std::to_string(max_entries));
  }
  Toc toc;
  toc.entries.reserve(entries->size());
  for (std::size_t i = 0; i < entries->size(); ++i) {
    auto entry = parse_entry((*entries)[i], i);
    if (!entry) return std::move(entry).error();
    toc.entries.push_back(std::move(*entry));
  }
  const auto tar_split = document.find("tarSplitDigest");
  if (tar_split != document.end() && !tar_split->is_null()) {
    if (!tar_split->is_string()) {
      return make_error(ErrorCode::kCorruptInput, "TOC 'tarSplitDigest' is not a string");
    }
    if (!tar_split->get<std::string>().empty()) {
      auto digest = Digest::parse(tar_split->get<std::string>());
      if (!digest) {
        return make_error(ErrorCode::kCorruptInput, "TOC 'tarSplitDigest' is not a sha256 digest");
      }
      toc.tar_split_digest = *digest;
    }
  }
  return toc;
}

}  // namespace detail

namespace detail {

std::string rfc3339(std::int64_t seconds) {
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return {};
  char text[40];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(text, n);
}

std::string toc_type_of(TarEntryType type) {
  switch (type) {
    case TarEntryType::kRegular: return "reg";
    case TarEntryType::kHardLink: return "hardlink";
    case TarEntryType::kSymlink: return "symlink";
    case TarEntryType::kCharDevice: return "char";
    case TarEntryType::kBlockDevice: return "block";
    case TarEntryType::kDirectory: return "dir";
    case TarEntryType::kFifo: return "fifo";
    case TarEntryType::kGlobalHeader:
    case TarEntryType::kOther: break;
  }
  return {};
}

std::string write_toc_json(const Toc& toc) {
  using ordered = nlohmann::ordered_json;
  ordered entries = ordered::array();
  for (const TocEntry& entry : toc.entries) {
    ordered object;
    object["type"] = entry.type;
    object["name"] = entry.name;
    if (!entry.link_name.empty()) object["linkName"] = entry.link_name;
    if (entry.mode != 0) object["mode"] = entry.mode;
    if (entry.size != 0) object["size"] = entry.size;
    if (entry.uid != 0) object["uid"] = entry.uid;
    if (entry.gid != 0) object["gid"] = entry.gid;
    if (!entry.modtime.empty()) object["modtime"] = entry.modtime;
    if (entry.dev_major != 0) object["devMajor"] = entry.dev_major;
    if (entry.dev_minor != 0) object["devMinor"] = entry.dev_minor;
    if (!entry.xattrs.empty()) object["xattrs"] = entry.xattrs;
    if (entry.digest) object["digest"] = entry.digest->to_string();
    if (entry.offset != 0) object["offset"] = entry.offset;
    if (entry.end_offset != 0) object["endOffset"] = entry.end_offset;
    if (entry.chunk_size != 0) object["chunkSize"] = entry.chunk_size;
    if (entry.chunk_offset != 0) object["chunkOffset"] = entry.chunk_offset;
    if (entry.chunk_digest) object["chunkDigest"] = entry.chunk_digest->to_string();
    if (!entry.chunk_type.empty()) object["chunkType"] = entry.chunk_type;
    entries.push_back(std::move(object));
  }
  ordered document;
  document["version"] = 1;
  document["entries"] = std::move(entries);
  if (toc.tar_split_digest) document["tarSplitDigest"] = toc.tar_split_digest->to_string();
  // Names that are not UTF-8 are written with replacement characters rather than failing: the
  // tar-split keeps the exact bytes.
  return document.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string base64_encode(ByteSpan bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v =
        (std::uint32_t{bytes[i]} << 16U) | (std::uint32_t{bytes[i + 1]} << 8U) | bytes[i + 2];
    out += kBase64Alphabet[(v >> 18U) & 63U];
    out += kBase64Alphabet[(v >> 12U) & 63U];
    out += kBase64Alphabet[(v >> 6U) & 63U];
    out += kBase64Alphabet[v & 63U];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest != 0) {
    std::uint32_t v = std::uint32_t{bytes[i]} << 16U;
    if (rest == 2) v |= std::uint32_t{bytes[i + 1]} << 8U;
    out += kBase64Alphabet[(v >> 18U) & 63U];
    out += kBase64Alphabet[(v >> 12U) & 63U];
    out += rest == 2 ? kBase64Alphabet[(v >> 6U) & 63U] : '=';
    out += '=';
  }
  return out;
}

namespace {

// Each byte's 6-bit value in the standard alphabet, kNotBase64 for every other byte.
constexpr std::uint8_t kNotBase64 = 0xFF;
constexpr std::array<std::uint8_t, 256> kBase64Values = [] {
  std::array<std::uint8_t, 256> values{};
  values.fill(kNotBase64);
  for (std::size_t i = 0; i < kBase64Alphabet.size(); ++i) {
    values[static_cast<unsigned char>(kBase64Alphabet[i])] = static_cast<std::uint8_t>(i);
  }
  return values;
}();

}  // namespace

Result<void> base64_decode_into(std::string_view text, std::vector<std::uint8_t>& out) {
  out.clear();
  if (text.size() % 4 != 0) return make_error(ErrorCode::kCorruptInput, "bad base64 length");
  if (text.empty()) return {};
  // Padding ('=') may only end the last quartet, in its third and fourth places.
  std::size_t padding = 0;
  if (text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  const std::size_t full = text.size() - (padding != 0 ? 4 : 0);
  out.resize(full / 4 * 3 + (padding != 0 ? 3 - padding : 0));
  std::uint8_t* target = out.data();
  for (std::size_t i = 0; i < full; i += 4) {
    const std::uint8_t a = kBase64Values[static_cast<unsigned char>(text[i])];
    const std::uint8_t b = kBase64Values[static_cast<unsigned char>(text[i + 1])];
    const std::uint8_t c = kBase64Values[static_cast<unsigned char>(text[i + 2])];
    const std::uint8_t d = kBase64Values[static_cast<unsigned char>(text[i + 3])];
    if (((a | b | c | d) & 0xC0U) != 0) {  // a value is kNotBase64: valid ones are below 64
      out.clear();
      return make_error(ErrorCode::kCorruptInput, "bad base64 character");
    }
    const std::uint32_t v = (std::uint32_t{a} << 18U) | (std::uint32_t{b} << 12U) |
                            (std::uint32_t{c} << 6U) | std::uint32_t{d};
    target[0] = static_cast<std::uint8_t>(v >> 16U);
    target[1] = static_cast<std::uint8_t>(v >> 8U);
    target[2] = static_cast<std::uint8_t>(v);
    target += 3;
  }
  if (padding != 0) {
    const std::string_view last = text.substr(full);
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4 - padding; ++k) {
      const std::uint8_t digit = kBase64Values[static_cast<unsigned char>(last[k])];
      if (digit == kNotBase64) {
        out.clear();
        return make_error(ErrorCode::kCorruptInput, "bad base64 character");
      }
      v |= std::uint32_t{digit} << (18U - 6U * static_cast<unsigned>(k));
    }
    target[0] = static_cast<std::uint8_t>(v >> 16U);
    if (padding == 1) target[1] = static_cast<std::uint8_t>(v >> 8U);
  }
  return {};
}

Result<std::vector<std::uint8_t>> base64_decode(std::string_view text) {
  std::vector<std::uint8_t> out;
  STRATA_TRY(base64_decode_into(text, out));
  return out;
}

}  // namespace detail
}  // namespace strata::fastpull
