// Encoding and checking of pack records (layout in core/store/pack_record.h, docs/STORE.md). The
// checksum is XXH3-64 over header and payload: a bit flip anywhere in a record is reported before
// the payload reaches a decompressor (shared/specs/reliability.md §3.8 P4).
#include "core/store/pack_record.h"

#include <xxhash.h>

#include <cstring>
#include <string>

namespace strata::pack_record {
namespace {

constexpr std::uint8_t kFileMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'P', 'K'};

void put_u16(std::uint8_t* out, std::uint16_t value) noexcept {
  out[0] = static_cast<std::uint8_t>(value);
  out[1] = static_cast<std::uint8_t>(value >> 8U);
}

void put_u32(std::uint8_t* out, std::uint32_t value) noexcept {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::uint8_t>(value >> (8U * unsigned(i)));
}

void put_u64(std::uint8_t* out, std::uint64_t value) noexcept {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(value >> (8U * unsigned(i)));
}

std::uint32_t get_u32(const std::uint8_t* in) noexcept {
  std::uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8U) | in[i];
  return value;
}

std::uint64_t get_u64(const std::uint8_t* in) noexcept {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8U) | in[i];
  return value;
}

}  // namespace

std::vector<std::uint8_t> encode_file_header() {
  std::vector<std::uint8_t> header(kFileHeaderSize, 0);
  std::memcpy(header.data(), kFileMagic, sizeof(kFileMagic));
  put_u32(header.data() + 8, kPackVersion);
  return header;
}

Result<void> check_file_header(ByteSpan bytes) {
  if (bytes.size() < kFileHeaderSize || std::memcmp(bytes.data(), kFileMagic, 8) != 0) {
    return make_error(ErrorCode::kCorruptInput, "not a strata pack file (bad magic)");
  }
  const std::uint32_t version = get_u32(bytes.data() + 8);
  if (version != kPackVersion) {
    return make_error(ErrorCode::kUnsupported,
                      "pack file version " + std::to_string(version) + " is not supported");
  }
  return {};
}

void append_record(const Digest& digest, Codec codec, std::uint32_t raw_length, ByteSpan stored,
                   std::vector<std::uint8_t>& out) {
  const std::size_t start = out.size();
  out.resize(start + record_size(stored.size()));
  std::uint8_t* record = out.data() + start;
  put_u32(record, kRecordMagic);
  record[4] = kRecordVersion;
  record[5] = static_cast<std::uint8_t>(codec);
  put_u16(record + 6, 0);
  put_u32(record + 8, raw_length);
  put_u32(record + 12, static_cast<std::uint32_t>(stored.size()));
  std::memcpy(record + 16, digest.bytes().data(), Digest::kSize);
  if (!stored.empty()) std::memcpy(record + kRecordHeaderSize, stored.data(), stored.size());
  const std::size_t checked = kRecordHeaderSize + stored.size();
  put_u64(record + checked, XXH3_64bits(record, checked));
}

Result<RecordHeader> check_record(ByteSpan bytes) {
  if (bytes.size() < kRecordOverhead) {
    return make_error(ErrorCode::kCorruptInput,
                      "record of " + std::to_string(bytes.size()) + " bytes is too short");
  }
  const std::uint8_t* record = bytes.data();
  if (get_u32(record) != kRecordMagic) {
    return make_error(ErrorCode::kCorruptInput, "record magic is wrong");
  }
  if (record[4] != kRecordVersion) {
    return make_error(ErrorCode::kUnsupported,
                      "record version " + std::to_string(record[4]) + " is not supported");
  }
  RecordHeader header;
  header.codec = record[5];
  header.raw_length = get_u32(record + 8);
  header.stored_length = get_u32(record + 12);
  Digest::Bytes digest_bytes{};
  std::memcpy(digest_bytes.data(), record + 16, Digest::kSize);
  header.digest = Digest(digest_bytes);
  if (record_size(header.stored_length) != bytes.size()) {
    return make_error(ErrorCode::kCorruptInput,
                      "record declares " + std::to_string(header.stored_length) +
                          " stored bytes but spans " + std::to_string(bytes.size()) + " bytes");
  }
  const std::size_t checked = kRecordHeaderSize + header.stored_length;
  if (XXH3_64bits(record, checked) != get_u64(record + checked)) {
    return make_error(ErrorCode::kCorruptInput, "record checksum (XXH3-64) mismatch");
  }
  return header;
}

}  // namespace strata::pack_record
