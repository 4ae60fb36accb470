// Content sketches (core/ingest/delta_sketch.h): a gear fingerprint (FastCDC's rolling hash,
// shared/specs/chunking.md) over a 64-byte window, sampled where its top 5 bits are zero (about
// one position in 32), twelve N-transform features (max of a_i * fp + b_i over the samples), and
// four super-features, each a mix of three features. The constants come from SplitMix64, so the
// sketch of given bytes is the same on every machine and in every version that keeps them.
#include "core/ingest/delta_sketch.h"

#include <algorithm>

namespace strata {
namespace {

constexpr std::size_t kFeaturesPerSuper = 3;
constexpr std::size_t kFeatures = kSuperFeatures * kFeaturesPerSuper;
constexpr std::uint64_t kSampleMask = 0xF800000000000000ULL;  // top 5 bits zero: 1 in 32
// Candidates looked at per super-feature in SketchIndex::best (a feature many chunks share, e.g.
// of zeros or padding, costs no more than this).
constexpr std::size_t kMaxCandidatesPerFeature = 32;

constexpr std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31U);
}

struct Tables {
  std::array<std::uint64_t, 256> gear{};
  std::array<std::uint64_t, kFeatures> multiply{};
  std::array<std::uint64_t, kFeatures> add{};
};

constexpr Tables make_tables() {
  Tables tables;
  std::uint64_t state = 0x5EED'0016'DE17'A5EDULL;
  for (auto& value : tables.gear) value = splitmix64(state);
  for (std::size_t i = 0; i < kFeatures; ++i) {
    tables.multiply[i] = splitmix64(state) | 1U;  // odd: a bijection of the fingerprints
    tables.add[i] = splitmix64(state);
  }
  return tables;
}

constexpr Tables kTables = make_tables();

constexpr std::uint64_t mix(std::uint64_t value) {
  value ^= value >> 33U;
  value *= 0xFF51AFD7ED558CCDULL;
  value ^= value >> 33U;
  value *= 0xC4CEB9FE1A85EC53ULL;
  return value ^ (value >> 33U);
}

}  // namespace

ChunkSketch sketch_of(ByteSpan bytes) {
  std::array<std::uint64_t, kFeatures> features{};
  std::uint64_t fingerprint = 0;
  std::size_t samples = 0;
  const std::size_t length = std::min(bytes.size(), kSketchPrefixBytes);
  for (std::size_t i = 0; i < length; ++i) {
    fingerprint = (fingerprint << 1U) + kTables.gear[bytes[i]];
    if ((fingerprint & kSampleMask) != 0 || i < 64) continue;
    ++samples;
    for (std::size_t f = 0; f < kFeatures; ++f) {
      features[f] = std::max(features[f], kTables.multiply[f] * fingerprint + kTables.add[f]);
    }
  }
  ChunkSketch sketch;
  if (samples == 0) return sketch;
  sketch.empty = false;
  for (std::size_t s = 0; s < kSuperFeatures; ++s) {
    std::uint64_t value = s;
    for (std::size_t f = 0; f < kFeaturesPerSuper; ++f) {
      value = mix(value ^ features[s * kFeaturesPerSuper + f]);
    }
    sketch.super[s] = value;
  }
  return sketch;
}

int sketch_similarity(const ChunkSketch& a, const ChunkSketch& b) noexcept {
  if (a.empty || b.empty) return 0;
  int shared = 0;
  for (std::size_t s = 0; s < kSuperFeatures; ++s) shared += a.super[s] == b.super[s] ? 1 : 0;
  return shared;
}

bool SketchIndex::add(const Digest& chunk, const ChunkSketch& sketch) {
  if (sketch.empty) return true;
  if (chunks_.size() >= max_chunks_) return false;
  const auto id = static_cast<std::uint32_t>(chunks_.size());
  chunks_.push_back(chunk);
  sketches_.push_back(sketch);
  for (std::size_t s = 0; s < kSuperFeatures; ++s) by_feature_[s].emplace(sketch.super[s], id);
  return true;
}

const Digest* SketchIndex::best(const ChunkSketch& sketch, int min_shared) const {
  if (sketch.empty) return nullptr;
  const Digest* found = nullptr;
  int found_shared = std::max(min_shared, 1) - 1;
  for (std::size_t s = 0; s < kSuperFeatures; ++s) {
    auto [at, end] = by_feature_[s].equal_range(sketch.super[s]);
    for (std::size_t n = 0; at != end && n < kMaxCandidatesPerFeature; ++at, ++n) {
      const int shared = sketch_similarity(sketch, sketches_[at->second]);
      if (shared > found_shared) {
        found_shared = shared;
        found = &chunks_[at->second];
      }
    }
  }
  return found;
}

}  // namespace strata
