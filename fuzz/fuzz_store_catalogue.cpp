// Remote store catalogue target (include/strata/remote_store.h, docs/remote-store.md
// "Catalogue"): the input is the catalogue's decoded binary form, zstd-framed here so the fuzzer
// works on the layout itself (and once as a raw blob, for the zstd path). decode must refuse it or
// accept it without crashing, hanging or allocating beyond a small cap; an accepted catalogue is
// canonical, so encoding it and decoding that again gives an equal catalogue.
#include <cstdint>
#include <cstdlib>

#include "strata/remote_store.h"
#include "strata/store.h"

namespace {

constexpr std::uint64_t kFuzzDecodedCap = std::uint64_t{4} << 20U;

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const strata::ByteSpan input(data, size);
  (void)strata::registry::decode_store_catalogue(input, kFuzzDecodedCap);
  auto framed = strata::compress_chunk_zstd(input, 1);
  if (!framed.ok()) return 0;
  auto decoded = strata::registry::decode_store_catalogue(*framed, kFuzzDecodedCap);
  if (!decoded.ok()) return 0;
  auto encoded = strata::registry::encode_store_catalogue(*decoded);
  check(encoded.ok());
  auto again = strata::registry::decode_store_catalogue(*encoded, kFuzzDecodedCap);
  check(again.ok() && *again == *decoded);
  return 0;
}
