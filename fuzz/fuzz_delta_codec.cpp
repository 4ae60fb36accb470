// Delta chunk codec target (include/strata/store.h: kZstdDelta, a zstd frame with the base as its
// prefix; kXorByteGrouped, the chunk XOR its base, byte-grouped). A delta chunk's stored bytes
// come from a pack or a registry's delta referrer, so decoding any bytes against any base must end
// in the announced raw length or an error: never a crash, an over-read of the base or an
// allocation beyond the announced length. The input also seeds a round trip: the rest of it coded
// against a base cut from it must decode, against that base, to the same bytes.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "strata/store.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

// Layout: control byte, base length (2 bytes), announced raw length (3 bytes), then the bytes:
// the first `base length` of them (at most what is there) are the base, the rest the payload.
constexpr std::size_t kHeaderBytes = 6;
constexpr std::size_t kMaxAnnounced = std::size_t{1} << 20U;

void decode_any(strata::ByteSpan stored, strata::ByteSpan base, std::size_t announced) {
  for (const auto codec : {strata::Codec::kZstdDelta, strata::Codec::kXorByteGrouped}) {
    auto decoded = strata::decompress_delta_chunk(codec, stored, base, announced);
    if (decoded.ok()) check(decoded->size() == announced);
  }
  // A delta codec needs a base: decompress_chunk must refuse it, whatever the bytes.
  check(!strata::decompress_chunk(strata::Codec::kZstdDelta, stored, announced).ok());
}

void round_trip(strata::ByteSpan raw, strata::ByteSpan base, std::uint8_t control) {
  std::vector<std::uint8_t> coded;
  check(strata::compress_chunk_delta_into(raw, base, 1, coded).ok());
  auto back = strata::decompress_delta_chunk(strata::Codec::kZstdDelta, strata::ByteSpan(coded),
                                             base, raw.size());
  check(back.ok() && std::equal(raw.begin(), raw.end(), back->begin(), back->end()));

  const std::uint32_t width = (control & 1U) != 0 ? 4 : 2;
  const std::uint32_t phase = ((control >> 1U) & 3U) % width;
  auto grouped = strata::encode_chunk_xor_grouped(raw, base, width, phase, 1);
  check(grouped.ok());
  back = strata::decompress_delta_chunk(strata::Codec::kXorByteGrouped, strata::ByteSpan(*grouped),
                                        base, raw.size());
  check(back.ok() && std::equal(raw.begin(), raw.end(), back->begin(), back->end()));

  // The same stored bytes against another base (one byte changed) decode to something of the
  // announced length or fail; the reader's SHA-256 then refuses what is wrong.
  if (base.empty()) return;
  std::vector<std::uint8_t> other(base.begin(), base.end());
  other[control % other.size()] ^= 0x5AU;
  decode_any(strata::ByteSpan(coded), strata::ByteSpan(other), raw.size());
  decode_any(strata::ByteSpan(*grouped), strata::ByteSpan(other), raw.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < kHeaderBytes) return 0;
  const std::uint8_t control = data[0];
  const std::size_t base_length =
      std::min<std::size_t>((std::size_t{data[1]} << 8U) | data[2], size - kHeaderBytes);
  const std::size_t announced =
      ((std::size_t{data[3]} << 16U) | (std::size_t{data[4]} << 8U) | data[5]) % kMaxAnnounced;
  const strata::ByteSpan base(data + kHeaderBytes, base_length);
  const strata::ByteSpan payload(data + kHeaderBytes + base_length,
                                 size - kHeaderBytes - base_length);
  decode_any(payload, base, announced);
  // Lengths beyond the store's limit are refused before anything is allocated.
  for (const auto codec : {strata::Codec::kZstdDelta, strata::Codec::kXorByteGrouped}) {
    check(!strata::decompress_delta_chunk(codec, payload, base, strata::kMaxStoredChunkBytes + 1)
               .ok());
  }
  round_trip(payload, base, control);
  return 0;
}
