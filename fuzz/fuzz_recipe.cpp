// Recipe parser target (include/strata/recipe.h, DESIGN.md §3 recipe exactness): arbitrary bytes
// go to parse_recipe, which must refuse them or accept them without crashing, hanging or
// allocating beyond the bytes present or (version 2) what its zstd frame really decodes to. An
// accepted recipe must be deterministic: serializing it twice gives equal bytes, parsing that
// again gives an equal recipe, and its segments must tile [0, total_size) with raw segments
// inside raw_bytes(). Seeds hold both versions.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "strata/recipe.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parsed = strata::parse_recipe(strata::ByteSpan(data, size));
  if (!parsed.ok()) return 0;
  const auto first = strata::serialize_recipe(*parsed);
  const auto second = strata::serialize_recipe(*parsed);
  check(first == second);
  // serialize_recipe writes version 2, whose zstd frame is one of many that decode to the same
  // body; so the input is not expected back byte for byte, only the same recipe.
  auto again = strata::parse_recipe(first);
  check(again.ok() && *again == *parsed);
  std::uint64_t covered = 0;
  for (const strata::RecipeSegment& segment : parsed->segments()) {
    if (segment.kind == strata::RecipeSegmentKind::kRaw) {
      check(segment.raw_offset <= parsed->raw_bytes().size() &&
            segment.length <= parsed->raw_bytes().size() - segment.raw_offset);
    }
    check(covered + segment.length >= covered);
    covered += segment.length;
  }
  check(covered == parsed->total_size());
  return 0;
}
