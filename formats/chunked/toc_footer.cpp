// Footers of chunked layers (shared/specs/layer-formats.md §1.1 and §2 "Footer"): the zstd:chunked
// footer in its last skippable frame (current: 64-byte payload ending in "GNUlInUx"; old: 40 bytes
// ending in "GnUlInUx"), and eStargz's 51-byte empty gzip member whose extra field "SG" holds the
// TOC offset as 16 hex digits followed by "STARGZ".
#include <cstring>

#include "strata/chunked_layer.h"

namespace strata::fastpull {
namespace {

std::uint64_t get_u64le(ByteSpan bytes, std::size_t at) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) value |= std::uint64_t{bytes[at + i]} << (8U * i);
  return value;
}

bool has_skippable_header(ByteSpan bytes, std::size_t at, std::uint32_t length) {
  const std::uint8_t expected[8] = {0x50,
                                    0x2A,
                                    0x4D,
                                    0x18,
                                    static_cast<std::uint8_t>(length),
                                    static_cast<std::uint8_t>(length >> 8U),
                                    0,
                                    0};
  return std::memcmp(bytes.data() + at, expected, 8) == 0;
}

}  // namespace

Result<ZstdChunkedFooter> parse_zstd_chunked_footer(ByteSpan tail) {
  if (tail.size() < kZstdChunkedV1FooterBytes) {
    return make_error(ErrorCode::kCorruptInput, "zstd:chunked footer: blob shorter than 48 bytes");
  }
  const ByteSpan magic = tail.subspan(tail.size() - 8);
  ZstdChunkedFooter footer;
  if (std::memcmp(magic.data(), "GNUlInUx", 8) == 0) {
    if (tail.size() < kZstdChunkedFooterBytes) {
      return make_error(ErrorCode::kCorruptInput, "zstd:chunked footer: truncated (need 72 bytes)");
    }
    const std::size_t header = tail.size() - kZstdChunkedFooterBytes;
    if (!has_skippable_header(tail, header, 64)) {
      return make_error(ErrorCode::kCorruptInput,
                        "zstd:chunked footer: not inside a 64-byte skippable frame");
    }
    const std::size_t at = header + 8;
    footer.format = ChunkedFormat::kZstdChunked;
    footer.toc_offset = get_u64le(tail, at);
    footer.toc_compressed_size = get_u64le(tail, at + 8);
    footer.toc_size = get_u64le(tail, at + 16);
    if (get_u64le(tail, at + 24) != 1) {
      return make_error(ErrorCode::kUnsupported, "zstd:chunked footer: manifest type is not 1");
    }
    footer.tar_split_offset = get_u64le(tail, at + 32);
    footer.tar_split_compressed_size = get_u64le(tail, at + 40);
    footer.tar_split_size = get_u64le(tail, at + 48);
    return footer;
  }
  if (std::memcmp(magic.data(), "GnUlInUx", 8) == 0) {
    const std::size_t header = tail.size() - kZstdChunkedV1FooterBytes;
    if (!has_skippable_header(tail, header, 40)) {
      return make_error(ErrorCode::kCorruptInput,
                        "zstd:chunked footer: not inside a 40-byte skippable frame");
    }
    const std::size_t at = header + 8;
    footer.format = ChunkedFormat::kZstdChunkedV1;
    footer.toc_offset = get_u64le(tail, at);
    footer.toc_compressed_size = get_u64le(tail, at + 8);
    footer.toc_size = get_u64le(tail, at + 16);
    if (get_u64le(tail, at + 24) != 1) {
      return make_error(ErrorCode::kUnsupported, "zstd:chunked footer: manifest type is not 1");
    }
    return footer;
  }
  return make_error(ErrorCode::kCorruptInput, "zstd:chunked footer: no GNUlInUx/GnUlInUx magic");
}

Result<std::uint64_t> parse_estargz_footer(ByteSpan footer) {
  if (footer.size() != kEstargzFooterBytes) {
    return make_error(ErrorCode::kCorruptInput, "eStargz footer: not 51 bytes");
  }
  constexpr std::uint8_t kHead[4] = {0x1f, 0x8b, 0x08, 0x04};
  if (std::memcmp(footer.data(), kHead, 4) != 0 || footer[10] != 26 || footer[11] != 0 ||
      footer[12] != 'S' || footer[13] != 'G' || footer[14] != 22 || footer[15] != 0 ||
      std::memcmp(footer.data() + 32, "STARGZ", 6) != 0) {
    return make_error(ErrorCode::kCorruptInput, "eStargz footer: no SG extra field / STARGZ magic");
  }
  std::uint64_t offset = 0;
  for (std::size_t i = 16; i < 32; ++i) {
    const auto c = static_cast<char>(footer[i]);
    std::uint64_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<std::uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<std::uint64_t>(c - 'a' + 10);
    } else {
      return make_error(ErrorCode::kCorruptInput, "eStargz footer: TOC offset is not hex");
    }
    offset = (offset << 4U) | digit;
  }
  return offset;
}

}  // namespace strata::fastpull
