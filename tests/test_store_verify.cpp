// ChunkStore::verify against damage to index.db that leaves SQLite's own checks happy
// (shared/specs/reliability.md §5.3 F4/F13): rows edited with the sqlite3 tool, each the effect a
// bit flip can have on a recipe, a layer size, a layer_chunks row or a chunk's location, must be
// reported with a line naming the layer or chunk, and export must refuse rather than serve
// wrong bytes. Skipped when the sqlite3 tool is not installed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "strata/strata.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

bool sqlite3_installed() {
  return std::system("sqlite3 -version >/dev/null 2>&1") == 0;
}

std::vector<std::uint8_t> two_file_tar() {
  std::vector<std::uint8_t> tar = test::make_header("a", '0', 70000);
  const auto a = test::splitmix64_bytes(1, 70000);
  test::append_content(tar, std::string(a.begin(), a.end()));
  test::append(tar, test::make_header("b", '0', 5));
  test::append_content(tar, "bbbbb");
  test::append_end(tar);
  return tar;
}

struct Damage {
  const char* name;
  const char* sql;
  const char* fragment;
};

TEST(StoreVerify, ReportsIndexRowsThatDisagreeWithTheRecipes) {
  // scripts/install-deps.sh installs sqlite3: without it this check must fail, not vanish.
  ASSERT_TRUE(sqlite3_installed()) << "sqlite3 is not installed (scripts/install-deps.sh)";
  const std::vector<Damage> damages = {
      {"layer size", "UPDATE layers SET size = size + 1", "recipe adds up to"},
      {"layer_chunks row lost",
       "DELETE FROM layer_chunks WHERE digest = (SELECT MIN(digest) FROM layer_chunks)",
       "(not the same set)"},
      {"recipe byte",
       "UPDATE layers SET recipe = CAST(replace(CAST(recipe AS TEXT), 'a', 'c') AS "
       "BLOB)",
       "recipe: "},
      {"chunk offset", "UPDATE chunks SET offset = offset + 1 WHERE id = 1", "chunk sha256:"},
      {"chunk digest", "UPDATE chunks SET digest = zeroblob(32) WHERE id = 1",
       "which is not in the store"},
  };
  for (const Damage& damage : damages) {
    SCOPED_TRACE(damage.name);
    test::ScratchDir scratch;
    const std::string dir = scratch.file("store");
    const auto tar = two_file_tar();
    Digest diff_id;
    {
      StoreOptions options;
      options.create_if_missing = true;
      auto store = ChunkStore::open(dir, options);
      ASSERT_TRUE(store.ok()) << store.error().to_string();
      auto report = ingest_layer_bytes(*store, tar, IngestOptions{});
      ASSERT_TRUE(report.ok()) << report.error().to_string();
      diff_id = report->diff_id;
      auto verified = store->verify();
      ASSERT_TRUE(verified.ok() && verified->clean());
    }
    ASSERT_EQ(std::system(("sqlite3 '" + dir + "/index.db' \"" + damage.sql + "\"").c_str()), 0);
    auto store = ChunkStore::open(dir, StoreOptions{});
    ASSERT_TRUE(store.ok()) << store.error().to_string();
    auto verified = store->verify();
    ASSERT_TRUE(verified.ok()) << verified.error().to_string();
    ASSERT_FALSE(verified->clean()) << "verify missed it";
    bool named = false;
    for (const std::string& problem : verified->problems) {
      named = named || problem.find(damage.fragment) != std::string::npos;
    }
    EXPECT_TRUE(named) << verified->problems.front();
    std::vector<std::uint8_t> exported;
    auto replay = export_layer_tar(*store, diff_id, [&exported](ByteSpan bytes) -> Result<void> {
      exported.insert(exported.end(), bytes.begin(), bytes.end());
      return {};
    });
    EXPECT_TRUE(!replay.ok() || exported == tar) << "export served wrong bytes";
  }
}

}  // namespace
}  // namespace strata
