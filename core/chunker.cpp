// FastCDC content-defined chunking with fastcdc-rs semantics (shared/specs/chunking.md §1.1,
// vectors in shared/testdata/cdc/sekien_expected.txt): hashing restarts at 0 at each chunk's min
// point, a hit at index i gives a chunk of length i (the hit byte starts the next chunk), masks
// come from bits = round(log2(avg)) +/- level, and a remainder <= min is one final chunk with hash
// 0. The streaming form buffers at most max_size bytes: a chunk's end is certain once max bytes
// past its start are known, because the scan never looks further.
#include "strata/chunker.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/fastcdc_tables.h"
#include "simd/dispatch.h"

namespace strata {
namespace {

std::uint32_t mask_bits_for(std::uint32_t avg_size) {
  // round, not floor: fastcdc-rs 4.0.0 switched to ilog2 and changed cut points (issue #43).
  return static_cast<std::uint32_t>(std::lround(std::log2(static_cast<double>(avg_size))));
}

}  // namespace

std::string_view chunk_algorithm_name(ChunkAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case ChunkAlgorithm::kFastCdc2016: return "fastcdc2016";
    case ChunkAlgorithm::kFastCdc2020: return "fastcdc2020";
  }
  return "unknown";
}

Result<ChunkAlgorithm> parse_chunk_algorithm(std::string_view name) {
  if (name == "fastcdc2016" || name == "fastcdc-v2016") return ChunkAlgorithm::kFastCdc2016;
  if (name == "fastcdc2020" || name == "fastcdc-v2020" || name == "fastcdc") {
    return ChunkAlgorithm::kFastCdc2020;
  }
  return make_error(
      ErrorCode::kInvalidArgument,
      "unknown chunking algorithm '" + std::string(name) + "' (known: fastcdc2020, fastcdc2016)");
}

Result<void> validate(const ChunkerOptions& options) {
  const auto check_size = [](const char* what, std::uint32_t value) -> Result<void> {
    if (value < ChunkerOptions::kSizeFloor || value > ChunkerOptions::kSizeCeiling) {
      return make_error(ErrorCode::kInvalidArgument, std::string(what) + " chunk size " +
                                                         std::to_string(value) +
                                                         " is outside 64 B .. 16 MiB");
    }
    return {};
  };
  STRATA_TRY(check_size("minimum", options.min_size));
  STRATA_TRY(check_size("average", options.avg_size));
  STRATA_TRY(check_size("maximum", options.max_size));
  if (options.min_size > options.avg_size || options.avg_size > options.max_size) {
    return make_error(ErrorCode::kInvalidArgument,
                      "chunk sizes must satisfy min <= avg <= max (got " +
                          std::to_string(options.min_size) + " / " +
                          std::to_string(options.avg_size) + " / " +
                          std::to_string(options.max_size) + ")");
  }
  if (options.level > 3) {
    return make_error(ErrorCode::kInvalidArgument,
                      "normalization level " + std::to_string(options.level) + " is outside 0..3");
  }
  const std::uint32_t bits = mask_bits_for(options.avg_size);
  constexpr std::uint32_t kFirstMask = 5;
  const std::uint32_t last_mask = static_cast<std::uint32_t>(fastcdc::kMasks.size()) - 1;
  if (bits < kFirstMask + options.level || bits + options.level > last_mask) {
    return make_error(ErrorCode::kInvalidArgument,
                      "average size " + std::to_string(options.avg_size) +
                          " with normalization level " + std::to_string(options.level) +
                          " needs a " + std::to_string(bits + options.level) + "/" +
                          std::to_string(bits - std::min(bits, options.level)) +
                          "-bit mask; FastCDC masks exist for 5..25 bits");
  }
  return {};
}

Result<Chunker> Chunker::create(const ChunkerOptions& options) {
  STRATA_TRY(validate(options));
  return Chunker(options);
}

Chunker::Chunker(const ChunkerOptions& options)
    : options_(options), gear_(256), gear_shifted_(256) {
  const std::uint32_t bits = mask_bits_for(options.avg_size);
  mask_small_ = fastcdc::kMasks[bits + options.level];
  mask_large_ = fastcdc::kMasks[bits - options.level];
  for (std::size_t i = 0; i < 256; ++i) {
    gear_[i] = fastcdc::kGearTable[i] ^ options.seed;
    gear_shifted_[i] = (fastcdc::kGearTable[i] << 1U) ^ (options.seed << 1U);
  }
  pending_.reserve(options.max_size);
}

Chunk Chunker::cut(ByteSpan data, bool at_end) const {
  const std::size_t remaining = data.size();
  if (remaining <= options_.min_size && at_end) {
    return Chunk{0, static_cast<std::uint32_t>(remaining), 0};
  }
  simd::GearScanRequest request;
  request.data = data.data();
  request.begin = options_.min_size;
  request.limit = std::min<std::size_t>(remaining, options_.max_size);
  request.center = std::min<std::size_t>(options_.avg_size, remaining);
  request.mask_small = mask_small_;
  request.mask_large = mask_large_;
  request.gear = gear_.data();
  request.gear_shifted = gear_shifted_.data();
  const simd::GearKernel& kernel = simd::active_kernel();
  const simd::GearScanResult found = options_.algorithm == ChunkAlgorithm::kFastCdc2016
                                         ? kernel.scan(request)
                                         : kernel.scan_pairs(request);
  return Chunk{0, static_cast<std::uint32_t>(found.position), found.hash};
}

void Chunker::emit(const Chunk& chunk, ByteSpan bytes, const Sink& sink) {
  Chunk placed = chunk;
  placed.offset = stream_offset_;
  stream_offset_ += chunk.length;
  sink(placed, bytes.first(chunk.length));
}

void Chunker::feed(ByteSpan piece, const Sink& sink) {
  const std::size_t max_size = options_.max_size;
  std::size_t position = 0;
  if (!pending_.empty()) {
    const std::size_t carried = pending_.size();  // bytes from earlier pieces
    std::size_t taken = std::min(piece.size(), max_size - carried);
    pending_.insert(pending_.end(), piece.begin(),
                    piece.begin() + static_cast<std::ptrdiff_t>(taken));
    std::size_t consumed = 0;  // bytes of pending_ already emitted
    while (pending_.size() - consumed >= max_size) {
      const ByteSpan window(pending_.data() + consumed, pending_.size() - consumed);
      const Chunk chunk = cut(window, false);
      emit(chunk, window, sink);
      consumed += chunk.length;
      if (consumed >= carried) {
        // Everything left in pending_ came from `piece`: continue in place, without copying.
        position = taken - (pending_.size() - consumed);
        pending_.clear();
        break;
      }
      const std::size_t more =
          std::min(piece.size() - taken, max_size - (pending_.size() - consumed));
      pending_.insert(pending_.end(), piece.begin() + static_cast<std::ptrdiff_t>(taken),
                      piece.begin() + static_cast<std::ptrdiff_t>(taken + more));
      taken += more;
    }
    if (!pending_.empty()) {
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(consumed));
      return;  // the whole piece is buffered
    }
  }
  while (piece.size() - position >= max_size) {
    const ByteSpan window = piece.subspan(position);
    const Chunk chunk = cut(window, false);
    emit(chunk, window, sink);
    position += chunk.length;
  }
  pending_.assign(piece.begin() + static_cast<std::ptrdiff_t>(position), piece.end());
}

void Chunker::finish(const Sink& sink) {
  std::size_t consumed = 0;
  while (consumed < pending_.size()) {
    const ByteSpan window(pending_.data() + consumed, pending_.size() - consumed);
    const Chunk chunk = cut(window, true);
    emit(chunk, window, sink);
    consumed += chunk.length;
  }
  pending_.clear();
  stream_offset_ = 0;
}

void Chunker::reset() {
  pending_.clear();
  stream_offset_ = 0;
}

Result<std::vector<Chunk>> chunk_buffer(ByteSpan data, const ChunkerOptions& options) {
  auto chunker = Chunker::create(options);
  if (!chunker.ok()) return std::move(chunker).error();
  std::vector<Chunk> chunks;
  std::size_t position = 0;
  while (position < data.size()) {
    Chunk chunk = chunker->cut(data.subspan(position), true);
    chunk.offset = position;
    chunks.push_back(chunk);
    position += chunk.length;
  }
  return chunks;
}

}  // namespace strata
