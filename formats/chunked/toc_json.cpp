// TOC JSON of zstd:chunked and eStargz layers: a tolerant, bounded parser of both formats' entry
// fields and a writer in c/storage's field order (shared/specs/layer-formats.md §1.2, §2 "TOC"),
// plus base64 (xattr values, tar-split payloads). nlohmann-json parses without exceptions; every
// field is type-checked before use, so hostile TOCs end in an error naming the entry.
#include "formats/chunked/toc_json.h"

#include <array>
#include <ctime>
#include <limits>
#include <nlohmann/json.hpp>

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

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

Result<Toc> parse_toc_json(ByteSpan json_bytes, std::size_t max_entries) {
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
