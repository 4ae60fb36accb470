// Layer source target: arbitrary bytes are detected as gzip, zstd or plain (xz, bzip2 and lz4 are
// refused at open) and decompressed under a 1 MiB cap. Nothing may crash or allocate without
// bound (bombs stop at the cap); reading in input-chosen small pieces must give exactly the
// bytes, or the same error code, as reading in 1 MiB pieces (shared/specs/reliability.md §5.1,
// fuzz_decompress_gzip/zstd oracle).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "formats/compress/layer_source.h"

namespace {

constexpr std::uint64_t kCap = 1U << 20U;

void check(bool condition) {
  if (!condition) std::abort();
}

struct Outcome {
  std::vector<std::uint8_t> bytes;
  bool ok = true;
  strata::ErrorCode code = strata::ErrorCode::kInternal;
};

Outcome decompress(strata::ByteSpan input, std::size_t piece, std::uint8_t piece_seed) {
  Outcome outcome;
  strata::LayerSourceOptions options;
  options.max_uncompressed_bytes = kCap;
  auto source =
      strata::LayerSource::open(std::make_unique<strata::MemoryByteSource>(input), options);
  if (!source.ok()) {
    // Only a blob in a compression strata refuses (xz, bzip2, lz4 magic) fails at open.
    check(source.error().code == strata::ErrorCode::kUnsupported);
    outcome.ok = false;
    outcome.code = source.error().code;
    return outcome;
  }
  std::vector<std::uint8_t> buffer(piece);
  std::size_t call = 0;
  while (true) {
    // Piece sizes vary between 1 and `piece` when a seed is given.
    const std::size_t size =
        piece_seed == 0 ? piece : 1 + (call++ * (piece_seed | 1U) * 131U) % piece;
    auto got = (*source)->read(strata::MutableByteSpan(buffer.data(), size));
    if (!got.ok()) {
      outcome.ok = false;
      outcome.code = got.error().code;
      return outcome;
    }
    if (*got == 0) break;
    check(*got <= size);
    outcome.bytes.insert(outcome.bytes.end(), buffer.begin(),
                         buffer.begin() + static_cast<std::ptrdiff_t>(*got));
    check(outcome.bytes.size() <= kCap);
  }
  check((*source)->finished());
  check((*source)->compressed_bytes() == input.size());
  check((*source)->compressed_digest().ok());
  check((*source)->compressed_digest().value() == strata::sha256_of(input));
  if ((*source)->compression() == strata::LayerCompression::kNone) {
    check(outcome.bytes.size() == input.size() &&
          std::equal(outcome.bytes.begin(), outcome.bytes.end(), input.begin()));
  }
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const strata::ByteSpan input(data, size);
  const Outcome whole = decompress(input, 1U << 20U, 0);
  const std::uint8_t seed = size > 0 ? data[size - 1] : 1;
  const Outcome pieces =
      decompress(input, 1 + seed * 61U % 8191U, static_cast<std::uint8_t>(seed | 1U));
  check(whole.ok == pieces.ok);
  if (whole.ok) {
    check(whole.bytes == pieces.bytes);
  } else {
    check(whole.code == pieces.code);
  }
  return 0;
}
