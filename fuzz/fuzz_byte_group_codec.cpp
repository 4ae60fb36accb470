// Byte-grouped codec target (core/store/byte_group_codec.h). Decoding arbitrary bytes must end in a
// value or an error, never a crash or an out-of-bounds access; the first input byte also picks a
// width, phase, layout and kernel to encode the rest, and decode(encode(x)) must equal x with
// every usable kernel producing the same stored bytes.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/store/byte_group_codec.h"
#include "simd/byte_group_dispatch.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const strata::ByteSpan input(data, size);
  auto decoded = strata::decode_byte_grouped(input, 1U << 20U);
  if (decoded.ok()) check(decoded->size() <= (1U << 20U));
  (void)strata::decompress_plain(input, 1U << 20U);
  if (size == 0) return 0;

  const std::uint8_t control = data[0];
  const std::uint32_t width = (control & 1U) != 0 ? 4 : 2;
  const std::uint32_t phase = ((control >> 1U) & 3U) % width;
  strata::ByteGroupOptions options;
  options.level = 1;
  options.layout = (control & 8U) != 0 ? strata::PlaneLayout::kSingleFrame
                                       : strata::PlaneLayout::kSeparatePlanes;
  const strata::ByteSpan raw = input.subspan(1);
  std::vector<std::uint8_t> first;
  for (const strata::simd::ByteGroupKernel& kernel : strata::simd::built_byte_group_kernels()) {
    if (!strata::simd::byte_group_kernel_usable(kernel)) continue;
    strata::simd::set_active_byte_group_kernel(kernel);
    auto stored = strata::encode_byte_grouped(raw, width, phase, options);
    check(stored.ok());
    if (first.empty()) first = *stored;
    check(*stored == first);
    auto back = strata::decode_byte_grouped(strata::ByteSpan(*stored));
    check(back.ok() && back->size() == raw.size());
    check(std::equal(raw.begin(), raw.end(), back->begin()));
  }
  auto chosen = strata::choose_codec(raw, width, phase, options);
  check(chosen.ok());
  auto restored = strata::decode_chunk(chosen->codec, strata::ByteSpan(chosen->bytes), raw.size());
  check(restored.ok() && std::equal(raw.begin(), raw.end(), restored->begin()));
  return 0;
}
