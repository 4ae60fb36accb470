// Tar reader + recipe round-trip target: arbitrary bytes are read as a layer tar and turned into
// a recipe with small chunks. Whatever the input, nothing may crash, hang or allocate without
// bound; when the tar is accepted, replaying the recipe (also after serialize -> parse) must give
// back the input byte for byte, and its diff_id must be the input's SHA-256 (DESIGN.md §3,
// recipe exactness). The same bytes are also fed to the recipe parser, which must refuse or
// accept them without crashing; an accepted one, written again, reads back as the same recipe.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "core/base/byte_source.h"
#include "core/ingest/layer_recipe_builder.h"
#include "strata/recipe.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const strata::ByteSpan input(data, size);

  auto parsed_recipe = strata::parse_recipe(input);
  if (parsed_recipe.ok()) {
    // Written again (version 2), it must read back as the same recipe.
    auto again = strata::parse_recipe(strata::serialize_recipe(*parsed_recipe));
    check(again.ok() && *again == *parsed_recipe);
  }

  strata::ChunkerOptions options;
  options.min_size = 64;
  options.avg_size = 256;
  options.max_size = 1024;
  strata::LayerRecipeLimits limits;
  limits.tar.max_header_bytes = 64U << 10U;
  limits.tar.max_entry_size = 16U << 20U;
  limits.max_inline_trailing_bytes = 4096;
  std::map<strata::Digest, std::vector<std::uint8_t>> store;
  strata::MemoryByteSource source(input);
  auto built = strata::build_recipe_from_tar(
      source, options,
      [&](const strata::Digest& digest, strata::ByteSpan bytes) -> strata::Result<void> {
        store.try_emplace(digest, bytes.begin(), bytes.end());
        return {};
      },
      limits);
  if (!built.ok()) return 0;

  const strata::Recipe& recipe = built->recipe;
  check(recipe.total_size() == size);
  check(recipe.diff_id() == strata::sha256_of(input));
  auto reparsed = strata::parse_recipe(strata::serialize_recipe(recipe));
  check(reparsed.ok() && *reparsed == recipe);
  std::vector<std::uint8_t> out;
  auto replayed = strata::replay(
      *reparsed,
      [&](const strata::Digest& digest, std::uint64_t) -> strata::Result<strata::ByteSpan> {
        const auto it = store.find(digest);
        if (it == store.end()) return strata::make_error(strata::ErrorCode::kNotFound, "chunk");
        return strata::ByteSpan(it->second);
      },
      [&](strata::ByteSpan bytes) -> strata::Result<void> {
        out.insert(out.end(), bytes.begin(), bytes.end());
        return {};
      });
  check(replayed.ok());
  check(out.size() == size && (size == 0 || std::memcmp(out.data(), data, size) == 0));
  return 0;
}
