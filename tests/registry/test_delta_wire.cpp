// The delta referrer's index and planner step (core/pull/delta_wire.cpp, docs/DELTA.md): a
// written index parses back to the same entries; hostile indexes (a chunk its own base, a chain,
// a cycle, absurd counts and sizes, ranges past the frames blob, a chunk twice, a plain codec)
// are refused with an error naming the problem; apply_delta_index turns only missing chunk pieces
// whose base the store holds into delta pieces and takes them out of the layer-blob ranges.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "strata/fastpull.h"

namespace strata::fastpull {
namespace {

Digest digest_of(const std::string& text) {
  return sha256_of(ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

ByteSpan span_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

DeltaIndex sample_index() {
  DeltaIndex index;
  index.frames_digest = digest_of("frames");
  index.frames_size = 300;
  index.entries.push_back(
      DeltaEntry{digest_of("c1"), digest_of("b1"), Codec::kZstdDelta, 0, 100, 4000, {}});
  index.entries.push_back(
      DeltaEntry{digest_of("c2"), digest_of("b2"), Codec::kXorByteGrouped, 100, 200, 800, {}});
  std::sort(index.entries.begin(), index.entries.end(),
            [](const DeltaEntry& a, const DeltaEntry& b) { return a.chunk < b.chunk; });
  return index;
}

// The sample index as JSON, changed by `edit`, parsed.
Result<DeltaIndex> parse_edited(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json json = nlohmann::json::parse(write_delta_index(sample_index()));
  edit(json);
  const std::string text = json.dump();
  return parse_delta_index(span_of(text));
}

void expect_refused(const std::function<void(nlohmann::json&)>& edit, const std::string& words) {
  auto parsed = parse_edited(edit);
  ASSERT_FALSE(parsed.ok()) << "accepted: " << words;
  EXPECT_NE(parsed.error().message.find(words), std::string::npos) << parsed.error().message;
}

TEST(DeltaWire, IndexRoundTrips) {
  const DeltaIndex index = sample_index();
  const std::string text = write_delta_index(index);
  auto parsed = parse_delta_index(span_of(text));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->frames_digest, index.frames_digest);
  EXPECT_EQ(parsed->frames_size, 300U);
  ASSERT_EQ(parsed->entries.size(), 2U);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(parsed->entries[i].chunk, index.entries[i].chunk);
    EXPECT_EQ(parsed->entries[i].base, index.entries[i].base);
    EXPECT_EQ(parsed->entries[i].codec, index.entries[i].codec);
    EXPECT_EQ(parsed->entries[i].offset, index.entries[i].offset);
    EXPECT_EQ(parsed->entries[i].length, index.entries[i].length);
    EXPECT_EQ(parsed->entries[i].raw_length, index.entries[i].raw_length);
  }
  EXPECT_NE(parsed->find(digest_of("c1")), nullptr);
  EXPECT_EQ(parsed->find(digest_of("b1")), nullptr);
}

TEST(DeltaWire, HostileIndexesAreRefusedNamingTheProblem) {
  expect_refused([](nlohmann::json& j) { j["chunks"][0][1] = j["chunks"][0][0]; },
                 "names itself as its base");
  expect_refused([](nlohmann::json& j) { j["chunks"][1][1] = j["chunks"][0][0]; },
                 "itself a delta of the index");
  expect_refused(
      [](nlohmann::json& j) {
        j["chunks"][0][1] = j["chunks"][1][0];
        j["chunks"][1][1] = j["chunks"][0][0];
      },
      "chains and cycles are refused");
  expect_refused([](nlohmann::json& j) { j["count"] = std::uint64_t{1} << 62U; }, "over the limit");
  expect_refused([](nlohmann::json& j) { j["count"] = 3; }, "differs from its 2 chunks");
  expect_refused([](nlohmann::json& j) { j["chunks"][0][3] = ~std::uint64_t{0} - 5; },
                 "past the frames blob");
  expect_refused([](nlohmann::json& j) { j["chunks"][1][3] = 250; }, "past the frames blob");
  expect_refused([](nlohmann::json& j) { j["chunks"][0][5] = std::uint64_t{1} << 40U; },
                 "raw length");
  expect_refused([](nlohmann::json& j) { j["chunks"][0][4] = 0; }, "delta length 0");
  expect_refused([](nlohmann::json& j) { j["chunks"][1][0] = j["chunks"][0][0]; }, "twice");
  expect_refused([](nlohmann::json& j) { j["chunks"][0][2] = "zstd"; }, "not a delta codec");
  expect_refused([](nlohmann::json& j) { j["schemaVersion"] = 3; }, "schemaVersion");
  // A 7th element (a prefix) only in schemaVersion 2.
  expect_refused([](nlohmann::json& j) { j["chunks"][0].push_back(nlohmann::json::array()); },
                 "6-element array");
  expect_refused([](nlohmann::json& j) { j["chunks"][0] = 7; }, "6-element array");
  DeltaIndexLimits small;
  small.max_json_bytes = 64;
  const std::string text = write_delta_index(sample_index());
  auto parsed = parse_delta_index(span_of(text), small);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, ErrorCode::kLimitExceeded);
}

// The sample index with c1 coded against a prefix of three chunks (schemaVersion 2).
DeltaIndex prefix_index() {
  DeltaIndex index = sample_index();
  for (DeltaEntry& entry : index.entries) {
    if (entry.chunk == digest_of("c1")) {
      entry.prefix = {digest_of("b0"), digest_of("b1"), digest_of("b2")};
    }
  }
  return index;
}

void expect_prefix_refused(const std::function<void(nlohmann::json&, std::size_t)>& edit,
                           const std::string& words) {
  nlohmann::json json = nlohmann::json::parse(write_delta_index(prefix_index()));
  std::size_t row = 0;
  while (json["chunks"][row].size() != 7) ++row;
  edit(json, row);
  const std::string text = json.dump();
  auto parsed = parse_delta_index(span_of(text));
  ASSERT_FALSE(parsed.ok()) << "accepted: " << words;
  EXPECT_NE(parsed.error().message.find(words), std::string::npos) << parsed.error().message;
}

TEST(DeltaWire, APrefixIndexIsVersionTwoAndRoundTrips) {
  // Without prefixes the index stays version 1 (what older clients parse).
  EXPECT_EQ(nlohmann::json::parse(write_delta_index(sample_index()))["schemaVersion"], 1);
  const DeltaIndex index = prefix_index();
  const std::string text = write_delta_index(index);
  EXPECT_EQ(nlohmann::json::parse(text)["schemaVersion"], 2);
  auto parsed = parse_delta_index(span_of(text));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const DeltaEntry* c1 = parsed->find(digest_of("c1"));
  const DeltaEntry* c2 = parsed->find(digest_of("c2"));
  ASSERT_TRUE(c1 != nullptr && c2 != nullptr);
  EXPECT_EQ(c1->prefix, (std::vector<Digest>{digest_of("b0"), digest_of("b1"), digest_of("b2")}));
  EXPECT_TRUE(c2->prefix.empty());

  expect_prefix_refused(
      [](nlohmann::json& j, std::size_t r) { j["chunks"][r][6][0] = j["chunks"][r][0]; },
      "names itself in its prefix");
  expect_prefix_refused([](nlohmann::json& j, std::size_t r) { j["chunks"][r][6].erase(1); },
                        "base is not in its prefix");
  expect_prefix_refused(
      [](nlohmann::json& j, std::size_t r) {
        for (int i = 0; i < 8; ++i) j["chunks"][r][6].push_back(j["chunks"][r][1]);
      },
      "array of 1..8 chunks");
  expect_prefix_refused(
      [](nlohmann::json& j, std::size_t r) { j["chunks"][r][6] = nlohmann::json::array(); },
      "array of 1..8 chunks");
  expect_prefix_refused(
      [](nlohmann::json& j, std::size_t r) { j["chunks"][r][2] = "xor-byte-grouped"; },
      "needs codec zstd-delta");
  expect_prefix_refused(
      [](nlohmann::json& j, std::size_t r) { j["chunks"][r][6][0] = j["chunks"][1 - r][0]; },
      "itself a delta of the index");
  expect_prefix_refused([](nlohmann::json& j, std::size_t r) { j["chunks"][r][6][2] = 5; },
                        "malformed prefix digest");
}

TEST(DeltaWire, APrefixDeltaNeedsEveryPrefixChunkHeld) {
  const DeltaIndex index = prefix_index();
  const auto plan_with = [&](const HaveChunk& have) {
    PullPlan plan;
    BlobPiece piece;
    piece.offset = 0;
    piece.end = 10'000;
    piece.is_chunk = true;
    piece.digest = digest_of("c1");
    piece.chunk_size = 4000;
    plan.pieces.push_back(piece);
    EXPECT_TRUE(apply_delta_index(plan, index, have).ok());
    return plan;
  };
  EXPECT_EQ(plan_with([](const Digest& d) { return d != digest_of("b2"); }).delta_chunks, 0U);
  const PullPlan all = plan_with([](const Digest&) { return true; });
  EXPECT_EQ(all.delta_chunks, 1U);
  EXPECT_EQ(all.pieces[0].delta->prefix.size(), 3U);
}

BlobPiece chunk_piece(std::uint64_t offset, std::uint64_t end, const Digest& digest,
                      std::uint64_t size, bool local) {
  BlobPiece piece;
  piece.offset = offset;
  piece.end = end;
  piece.is_chunk = true;
  piece.digest = digest;
  piece.chunk_size = size;
  piece.local = local;
  return piece;
}

TEST(DeltaWire, OnlyMissingChunksWithAHeldBaseBecomeDeltas) {
  const DeltaIndex index = sample_index();
  PullPlan plan;
  // c1 (delta, base b1 held), c2 (delta listed, base b2 not held), a local chunk, an unlisted one.
  plan.pieces.push_back(chunk_piece(0, 10'000, digest_of("c1"), 4000, false));
  plan.pieces.push_back(chunk_piece(20'000, 30'000, digest_of("c2"), 800, false));
  plan.pieces.push_back(chunk_piece(40'000, 50'000, digest_of("b1"), 4000, true));
  plan.pieces.push_back(chunk_piece(60'000, 70'000, digest_of("other"), 4000, false));
  const HaveChunk have = [](const Digest& d) { return d == digest_of("b1"); };
  auto applied = apply_delta_index(plan, index, have);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(plan.delta_chunks, 1U);
  ASSERT_TRUE(plan.pieces[0].delta.has_value());
  EXPECT_EQ(plan.pieces[0].delta->base, digest_of("b1"));
  EXPECT_FALSE(plan.pieces[1].delta.has_value());
  EXPECT_FALSE(plan.pieces[3].delta.has_value());
  EXPECT_EQ(plan.fetch_bytes, 20'000U);  // c2 and the unlisted chunk, whole
  EXPECT_EQ(plan.delta_fetch_bytes, 100U);
  ASSERT_EQ(plan.delta_ranges.size(), 1U);
  EXPECT_EQ(plan.delta_ranges[0].offset, 0U);

  // A delta whose raw length disagrees with the TOC, or that is no smaller than the piece, is
  // not used.
  PullPlan odd;
  odd.pieces.push_back(chunk_piece(0, 10'000, digest_of("c1"), 3999, false));
  odd.pieces.push_back(chunk_piece(10'000, 10'050, digest_of("c2"), 800, false));
  ASSERT_TRUE(apply_delta_index(odd, index, [](const Digest&) { return true; }).ok());
  EXPECT_EQ(odd.delta_chunks, 0U);
  EXPECT_EQ(odd.fetch_bytes, 10'050U);
}

}  // namespace
}  // namespace strata::fastpull
