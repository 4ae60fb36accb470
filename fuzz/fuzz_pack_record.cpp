// Pack record target (core/store/pack_record.h, docs/STORE.md "Pack files"): arbitrary bytes are
// checked as one record and as a pack file header. Nothing may crash or read outside the span; a
// record that passes must have consistent lengths, and re-encoding its header and payload must give
// the input back byte for byte (the format has one encoding per record, so a checksum collision
// cannot smuggle in a second reading of the same bytes).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/store/pack_record.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const strata::ByteSpan bytes(data, size);
  if (strata::pack_record::check_file_header(bytes).ok()) {
    check(size >= strata::pack_record::kFileHeaderSize);
  }
  auto header = strata::pack_record::check_record(bytes);
  if (!header.ok()) return 0;
  check(strata::pack_record::record_size(header->stored_length) == size);
  const strata::ByteSpan payload =
      bytes.subspan(strata::pack_record::kRecordHeaderSize, header->stored_length);
  std::vector<std::uint8_t> again;
  strata::pack_record::append_record(header->digest, static_cast<strata::Codec>(header->codec),
                                     header->raw_length, payload, again);
  check(again.size() == size && std::memcmp(again.data(), data, size) == 0);
  return 0;
}
