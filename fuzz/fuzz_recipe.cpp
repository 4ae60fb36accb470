// Recipe parser target (include/strata/recipe.h, DESIGN.md §3 recipe exactness): arbitrary bytes
// go to parse_recipe, which must refuse them or accept them without crashing, hanging or
// allocating beyond the bytes present. An accepted recipe must be canonical and deterministic:
// serializing it gives back exactly the input, serializing twice gives equal bytes, parsing that
// again gives an equal recipe, and its segments must tile [0, total_size) with raw segments
// inside raw_bytes().
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
  check(first.size() == size && std::memcmp(first.data(), data, size) == 0);
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
