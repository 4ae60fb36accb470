// Layer recipes: the exact description of an uncompressed layer tar as a sequence of segments,
// each either raw bytes kept inline (tar headers, padding, end blocks, trailing bytes) or a
// reference to a chunk by SHA-256 digest and length. Replaying a recipe against a chunk provider
// rebuilds the tar byte for byte, verifying every chunk, so the layer's diff_id never changes
// (DESIGN.md §1.5 and §3, recipe exactness).
// Stage 1: Recipe (read-only view) and replay(). Stage 2: RecipeBuilder. Stage 3: the compact
// binary form (serialize_recipe / parse_recipe), deterministic so equal recipes give equal bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "strata/buffer.h"
#include "strata/digest.h"
#include "strata/result.h"

namespace strata {

enum class RecipeSegmentKind : std::uint8_t {
  kRaw = 0,    // inline bytes, stored in Recipe::raw_bytes()
  kChunk = 1,  // a chunk, by digest and uncompressed length
};

struct RecipeSegment {
  RecipeSegmentKind kind = RecipeSegmentKind::kRaw;
  std::uint64_t length = 0;      // bytes this segment contributes to the tar
  std::uint64_t raw_offset = 0;  // kRaw: where its bytes start in raw_bytes()
  Digest digest;                 // kChunk: SHA-256 of the chunk's uncompressed bytes

  friend bool operator==(const RecipeSegment&, const RecipeSegment&) = default;
};

class Recipe {
 public:
  Recipe() = default;

  [[nodiscard]] const std::vector<RecipeSegment>& segments() const noexcept { return segments_; }
  [[nodiscard]] ByteSpan raw_bytes() const noexcept { return raw_bytes_; }
  // The inline bytes of a kRaw segment.
  [[nodiscard]] ByteSpan raw_of(const RecipeSegment& segment) const noexcept {
    return ByteSpan(raw_bytes_).subspan(segment.raw_offset, segment.length);
  }
  // Length of the tar the recipe rebuilds.
  [[nodiscard]] std::uint64_t total_size() const noexcept { return total_size_; }
  // SHA-256 of that tar (the layer's diff_id), as recorded by whoever built the recipe; all zero
  // when unknown.
  [[nodiscard]] const Digest& diff_id() const noexcept { return diff_id_; }
  void set_diff_id(const Digest& diff_id) { diff_id_ = diff_id; }

  // Distinct chunk digests referenced, sorted (what a store counts references for).
  [[nodiscard]] std::vector<Digest> distinct_chunks() const;

  friend bool operator==(const Recipe&, const Recipe&) = default;

 private:
  friend class RecipeBuilder;
  friend Result<Recipe> parse_recipe(ByteSpan bytes);

  std::vector<RecipeSegment> segments_;
  std::vector<std::uint8_t> raw_bytes_;
  std::uint64_t total_size_ = 0;
  Digest diff_id_;
};

class RecipeBuilder {
 public:
  // Appends inline bytes, merged into the previous segment when that one is raw too.
  void add_raw(ByteSpan bytes);
  // Appends a chunk reference; a zero length adds nothing.
  void add_chunk(const Digest& digest, std::uint64_t length);
  [[nodiscard]] std::uint64_t total_size() const noexcept { return recipe_.total_size_; }
  // Hands out the recipe and leaves the builder empty.
  Recipe finish();

 private:
  Recipe recipe_;
};

// Returns the uncompressed bytes of a chunk; the span must stay valid until the next call.
using ChunkProvider = std::function<Result<ByteSpan>(const Digest& digest, std::uint64_t length)>;
// Rebuilds the tar into `sink` (strata/bytes.h), in order, in pieces: raw bytes as stored, each
// chunk from `provider` after checking its length (kCorruptInput) and SHA-256 (kDigestMismatch
// naming the digest).
Result<void> replay(const Recipe& recipe, const ChunkProvider& provider, const ByteSink& sink);

// Compact binary form: magic "STRATARC", format version, varints, raw bytes, segments, and an
// XXH3-64 checksum of everything before it. Equal recipes serialize to equal bytes.
std::vector<std::uint8_t> serialize_recipe(const Recipe& recipe);
// Refuses truncated, garbled or non-canonical input with kCorruptInput (counts are checked
// against the bytes present before anything is allocated).
Result<Recipe> parse_recipe(ByteSpan bytes);

}  // namespace strata
