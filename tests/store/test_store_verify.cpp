// ChunkStore::verify against damage to index.db that leaves SQLite's own checks happy
// (shared/specs/reliability.md §5.3 F4/F13): rows edited with the sqlite3 tool, each the effect a
// bit flip can have on a recipe, a layer size, a layer_chunks row or a chunk's location, must be
// reported with a line naming the layer or chunk, and export must refuse rather than serve
// wrong bytes. A packs row whose name is not one the store makes ("../victim.pack") must be
// reported by verify and refused by gc, and nothing outside packs/ may be read or deleted.
// The sqlite3 tool is required (scripts/install-deps.sh): without it the tests fail.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
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

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// name -> content of every file in `directory`.
std::map<std::string, std::string> snapshot(const std::string& directory) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    files[entry.path().filename().string()] = read_text(entry.path().string());
  }
  return files;
}

TEST(StoreVerify, PackRowsNamedOutsidePacksAreReportedAndNeverFollowed) {
  ASSERT_TRUE(sqlite3_installed()) << "sqlite3 is not installed (scripts/install-deps.sh)";
  test::ScratchDir scratch;
  const std::string dir = scratch.file("store");
  {
    StoreOptions options;
    options.create_if_missing = true;
    auto store = ChunkStore::open(dir, options);
    ASSERT_TRUE(store.ok()) << store.error().to_string();
    auto report = ingest_layer_bytes(*store, two_file_tar(), IngestOptions{});
    ASSERT_TRUE(report.ok()) << report.error().to_string();
  }
  const auto packs = snapshot(dir + "/packs");
  ASSERT_EQ(packs.size(), 1U);
  // Outside packs/: a valid copy of the pack (so following the name would read good records)
  // and a file two levels up.
  {
    std::ofstream(dir + "/victim.pack", std::ios::binary) << packs.begin()->second;
    std::ofstream(scratch.file("x")) << "not a pack";
  }
  const std::string sql =
      "UPDATE packs SET name = '../victim.pack'; "
      "INSERT INTO packs(name, state, size, lease, created) VALUES('../../x', 1, 0, 'gc', 0);";
  ASSERT_EQ(std::system(("sqlite3 '" + dir + "/index.db' \"" + sql + "\"").c_str()), 0);

  auto store = ChunkStore::open(dir, StoreOptions{});
  ASSERT_TRUE(store.ok()) << store.error().to_string();
  auto verified = store->verify();
  ASSERT_TRUE(verified.ok()) << verified.error().to_string();
  EXPECT_FALSE(verified->clean()) << "verify read the pack through '../victim.pack'";
  bool named_victim = false;
  bool named_x = false;
  for (const std::string& problem : verified->problems) {
    named_victim = named_victim || problem.find("'../victim.pack'") != std::string::npos;
    named_x = named_x || problem.find("'../../x'") != std::string::npos;
  }
  EXPECT_TRUE(named_victim && named_x)
      << (verified->problems.empty() ? std::string("no problems") : verified->problems.front());

  // gc with the layer gone: both rows are dead packs it would delete.
  auto layers = store->list_layers();
  ASSERT_TRUE(layers.ok() && layers->size() == 1U);
  ASSERT_TRUE(store->remove_layer(layers->front().diff_id).ok());
  const auto before = store->stats();
  ASSERT_TRUE(before.ok());
  auto collected = store->gc();
  ASSERT_FALSE(collected.ok()) << "gc went ahead with a packs row named '../victim.pack'";
  EXPECT_NE(collected.error().message.find("'../victim.pack'"), std::string::npos)
      << collected.error().message;
  EXPECT_NE(collected.error().message.find("'../../x'"), std::string::npos)
      << collected.error().message;
  EXPECT_EQ(read_text(dir + "/victim.pack"), packs.begin()->second);
  EXPECT_EQ(read_text(scratch.file("x")), "not a pack");
  EXPECT_EQ(snapshot(dir + "/packs"), packs) << "gc touched packs/";
  const auto after = store->stats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->chunks, before->chunks);
  EXPECT_EQ(after->packs, before->packs);
}

}  // namespace
}  // namespace strata
