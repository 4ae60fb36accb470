// OCI JSON parsers on arbitrary bytes: the same input goes to the manifest, index and config
// parsers; whatever one accepts must write canonically and parse back to an equal value whose
// canonical form is the same bytes (parse -> write -> parse is stable). A parser must never
// crash or throw on any input. Any disagreement aborts (how libFuzzer reports a finding).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "strata/strata.h"

namespace {

strata::ByteSpan bytes_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

template <typename Parse, typename Write>
void check_round_trip(strata::ByteSpan input, Parse parse, Write write) {
  auto parsed = parse(input);
  if (!parsed.ok()) {
    if (parsed.error().message.empty()) std::abort();
    return;
  }
  const std::string written = write(*parsed);
  auto again = parse(bytes_of(written));
  if (!again.ok() || !(*again == *parsed)) std::abort();
  if (write(*again) != written) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const strata::ByteSpan input(data, size);
  check_round_trip(input, strata::oci::parse_manifest, strata::oci::write_manifest);
  check_round_trip(input, strata::oci::parse_index, strata::oci::write_index);
  check_round_trip(input, strata::oci::parse_image_config, strata::oci::write_image_config);
  return 0;
}
