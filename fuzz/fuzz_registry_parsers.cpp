// The registry client's parsers on arbitrary bytes (registry/registry_parsers.cpp): the first
// byte picks the parser, the rest is its input. WWW-Authenticate, Link, Content-Range, the
// multipart boundary, multipart/byteranges (boundary "B", with range extraction of what parsed:
// every extracted range must have its asked length and lie inside a part), Retry-After, auth.json
// and image references. None may crash, hang or throw; an error must carry a message.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "strata/registry.h"

namespace {

template <typename T>
void check(const strata::Result<T>& result) {
  if (!result.ok() && result.error().message.empty()) std::abort();
}

void fuzz_multipart(strata::ByteSpan body) {
  auto parts = strata::registry::parse_multipart_byteranges(body, "B", std::nullopt);
  check(parts);
  if (!parts.ok()) return;
  std::vector<strata::ByteRange> wanted;
  for (const auto& part : *parts) {
    if (part.bytes.size() != part.range.last - part.range.first + 1) std::abort();
    wanted.push_back({part.range.first, part.bytes.size()});
    wanted.push_back({part.range.last, 1});
  }
  auto extracted = strata::registry::extract_ranges(*parts, wanted);
  if (!extracted.ok()) std::abort();  // every wanted range lies inside a part
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    if ((*extracted)[i].size() != wanted[i].length) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  const strata::ByteSpan input(data + 1, size - 1);
  const std::string_view text(reinterpret_cast<const char*>(input.data()), input.size());
  switch (selector % 8) {
    case 0: check(strata::registry::parse_www_authenticate(text)); break;
    case 1: check(strata::registry::parse_next_link(text)); break;
    case 2: check(strata::registry::parse_content_range(text)); break;
    case 3: check(strata::registry::parse_multipart_boundary(text)); break;
    case 4: fuzz_multipart(input); break;
    case 5:
      (void)strata::registry::parse_retry_after(text, std::chrono::system_clock::now());
      break;
    case 6: check(strata::registry::parse_auth_json(input, "127.0.0.1:5000")); break;
    default: check(strata::registry::parse_image_reference(text)); break;
  }
  return 0;
}
