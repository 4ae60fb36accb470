// zstd:chunked parsers on arbitrary bytes (shared/specs/layer-formats.md §1.1-§1.3): the input is
// parsed as a footer, as TOC JSON and as tar-split lines, and then as a whole blob whose footer
// locates the TOC (no annotations, so unverified), which is planned and rebuilt with small caps.
// None of it may crash, hang or allocate without bound; every refusal must carry a message. The
// plain-JSON fast paths of the TOC and tar-split readers must read what they accept as nlohmann
// does.
#include <cstdint>
#include <cstdlib>

#include "formats/chunked/toc_json.h"
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
  expect_message(parse_zstd_chunked_footer(input));
  expect_message(parse_toc_json(input, 4096));
  // The plain-JSON readers are fast paths: what they accept must read as nlohmann reads it.
  if (auto plain = detail::parse_plain_toc_json(input, 4096)) {
    auto full = detail::parse_toc_json_in_full(input, 4096);
    if (!full.ok() || *plain != *full) std::abort();
  }
  detail::TarSplitLine packed;
  if (detail::parse_packed_tar_split_line(input, packed)) {
    detail::TarSplitLine full;
    if (!detail::parse_tar_split_line_in_full(input, full).ok() || full.type != packed.type ||
        full.payload != packed.payload || full.file.name != packed.file.name ||
        full.file.size != packed.file.size) {
      std::abort();
    }
  }
  expect_message(detail::check_tar_split(input, input));
  expect_message(detail::assemble_tar_from_tar_split(input, input, 1U << 20U));

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
  auto layer = read_chunked_toc(size, {}, fetch, options);
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
