// The byte layout of pack files (docs/STORE.md "Pack files"); format only, no store logic, as
// restic keeps its pack/ package apart from the repository. All integers little-endian.
//
//   pack     := file_header record*
//   file_header (16 bytes) := "STRATAPK" u32 version(=1) u32 reserved(=0)
//   record   := header(48) payload(stored_length) checksum(8)
//   header   := u32 magic("SCRK") u8 version(=1) u8 codec u16 reserved(=0)
//               u32 raw_length u32 stored_length u8[32] sha256_of_raw
//   checksum := XXH3-64 of header and payload, so corruption is caught before decompression.
#pragma once

#include <cstdint>
#include <vector>

#include "strata/buffer.h"
#include "strata/digest.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata::pack_record {

inline constexpr std::size_t kFileHeaderSize = 16;
inline constexpr std::size_t kRecordHeaderSize = 48;
inline constexpr std::size_t kChecksumSize = 8;
inline constexpr std::size_t kRecordOverhead = kRecordHeaderSize + kChecksumSize;
inline constexpr std::uint32_t kRecordMagic = 0x4B524353U;  // "SCRK" read little-endian
inline constexpr std::uint8_t kRecordVersion = 1;
inline constexpr std::uint32_t kPackVersion = 1;

// The 16 bytes every pack file starts with.
std::vector<std::uint8_t> encode_file_header();
// kCorruptInput unless `bytes` is a pack file header strata can read.
Result<void> check_file_header(ByteSpan bytes);

struct RecordHeader {
  Digest digest;
  std::uint8_t codec = 0;  // kept as the stored integer: unknown codecs are reported on decode
  std::uint32_t raw_length = 0;
  std::uint32_t stored_length = 0;
};

[[nodiscard]] constexpr std::uint64_t record_size(std::uint64_t stored_length) noexcept {
  return kRecordOverhead + stored_length;
}

// Appends one complete record (header, payload, checksum) to `out`.
void append_record(const Digest& digest, Codec codec, std::uint32_t raw_length, ByteSpan stored,
                   std::vector<std::uint8_t>& out);

// Parses and checks a complete record (`bytes` spans exactly one record): magic, version, lengths
// against `bytes.size()`, then the checksum. Returns the header; the payload is
// bytes[kRecordHeaderSize, kRecordHeaderSize + stored_length).
Result<RecordHeader> check_record(ByteSpan bytes);

}  // namespace strata::pack_record
