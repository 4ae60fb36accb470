// OCI JSON parsers on arbitrary bytes: the same input goes to the manifest, index and config
// parsers; whatever one accepts must write canonically and parse back to an equal value whose
// canonical form is the same bytes (parse -> write -> parse is stable). A parser must never
// crash or throw on any input. The input is also walked as an image index whose every entry is
// served the same bytes (so nested indexes recurse into themselves under other digests): the
// walk must end, within its depth and node caps, in a tree or an error with a message. Any
// disagreement aborts (how libFuzzer reports a finding).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

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

  const std::vector<std::uint8_t> served(input.begin(), input.end());
  const strata::oci::BlobFetcher fetch = [&served](const strata::oci::Descriptor&) {
    return strata::Result<std::vector<std::uint8_t>>(served);
  };
  strata::oci::ImageTreeLimits limits;
  limits.max_depth = 4;
  limits.max_nodes = 64;
  const auto root = strata::oci::describe_bytes(strata::oci::kMediaTypeImageIndex, input);
  auto tree = strata::oci::load_image_tree(root, fetch, limits);
  if (!tree.ok() && tree.error().message.empty()) std::abort();
  return 0;
}
