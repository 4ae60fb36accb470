// eStargz parsers on arbitrary bytes (shared/specs/layer-formats.md §2): the input is parsed as a
// 51-byte footer (its last 51 bytes) and as a whole blob whose footer locates the TOC member
// (gzip, a tar entry stargz.index.json), which is then planned and rebuilt with small caps.
// Nothing may crash, hang or allocate without bound; every refusal carries a message.
#include <cstdint>
#include <cstdlib>

#include "strata/fastpull.h"

namespace {

template <typename T>
void expect_message(const strata::Result<T>& result) {
  if (!result.ok() && result.error().message.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace strata;
  using namespace strata::fastpull;
  const ByteSpan input(data, size);
  if (size >= kEstargzFooterBytes) {
    expect_message(parse_estargz_footer(input.last(kEstargzFooterBytes)));
  }
  const RangeFetcher fetch = [&](std::uint64_t offset,
                                 std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
    if (offset > size || length > size - offset) {
      return make_error(ErrorCode::kCorruptInput, "range outside the input");
    }
    return std::vector<std::uint8_t>(data + offset, data + offset + length);
  };
  TocReadOptions options;
  options.allow_unverified = true;
  options.max_toc_bytes = 1U << 20U;
  // The toc.digest annotation names the format; an empty value leaves the TOC unverified.
  const oci::Annotations annotations = {{std::string(kEstargzTocDigestKey), ""}};
  auto layer = read_chunked_toc(size, annotations, fetch, options);
  expect_message(layer);
  if (!layer.ok()) return 0;
  auto plan = plan_pull(*layer, [](const Digest&) { return false; });
  expect_message(plan);
  if (!plan.ok()) return 0;
  std::vector<std::uint8_t> tar;
  expect_message(rebuild_chunked_layer(
      *layer, *plan, fetch,
      [](const Digest&) -> Result<std::vector<std::uint8_t>> {
        return make_error(ErrorCode::kNotFound, "no local chunks");
      },
      std::nullopt, tar, 8U << 20U));
  return 0;
}
