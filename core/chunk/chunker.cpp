// Content-defined chunking. FastCDC with fastcdc-rs semantics (shared/specs/chunking.md §1.1,
// vectors in shared/testdata/cdc/sekien_expected.txt): hashing restarts at 0 at each chunk's min
// point, a hit at index i gives a chunk of length i (the hit byte starts the next chunk), masks
// come from bits = round(log2(avg)) +/- level, and a remainder <= min is one final chunk with hash
// 0. xet (§4.1, xet_expected.txt): its own gear table, mask = top bits of (avg-1), hashing from
// min-65, hit byte included, forced cut at max. casync (§4.2, casync_expected.txt): 48-byte
// buzhash window ending at min, cut where h % d == d-1, hit byte included. All three restart at
// each chunk start and never look past max bytes, so the streaming form buffers at most max_size
// bytes: a chunk's end is certain once max bytes past its start are known.
#include "strata/chunker.h"

#include <time.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "core/chunk/casync_tables.h"
#include "core/chunk/fastcdc_tables.h"
#include "core/chunk/xet_tables.h"
#include "simd/dispatch.h"

namespace strata {
namespace {

std::uint32_t mask_bits_for(std::uint32_t avg_size) {
  // round, not floor: fastcdc-rs 4.0.0 switched to ilog2 and changed cut points (issue #43).
  return static_cast<std::uint32_t>(std::lround(std::log2(static_cast<double>(avg_size))));
}

bool is_fastcdc(ChunkAlgorithm algorithm) {
  return algorithm == ChunkAlgorithm::kFastCdc2016 || algorithm == ChunkAlgorithm::kFastCdc2020;
}

// casync's discriminator formula (src/cachunker.c), fitted for min = avg/4, max = 4*avg; it turns
// negative above about 9.3 MB, which validate() refuses.
double casync_discriminator(std::uint32_t avg_size) {
  const double average = static_cast<double>(avg_size);
  return average / (-1.42888852e-7 * average + 1.33237515);
}

// xet-core: (target - 1) << leading_zeros(target - 1), the top log2(target) bits for a power of 2.
std::uint64_t xet_mask_for(std::uint32_t avg_size) {
  const std::uint64_t below = std::uint64_t{avg_size} - 1;
  return below << static_cast<unsigned>(std::countl_zero(below));
}

constexpr std::uint32_t kCasyncWindow = 48;
// xet hashes the 64 bytes before its first admissible cut (min-1), from min-64-1.
constexpr std::uint32_t kXetLookBehind = 65;

std::uint32_t rotate_left(std::uint32_t value, unsigned shift) {
  return std::rotl(value, static_cast<int>(shift % 32U));
}

// Chunks cut per timed run: reading the thread CPU clock is a system call (~0.3 us here), a
// 64 KiB chunk's scan ~10 us, so one read per run keeps the clock out of what it measures.
constexpr std::size_t kCutRun = 32;

std::uint64_t thread_cpu_nanoseconds() noexcept {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(now.tv_nsec);
}

}  // namespace

ChunkerOptions default_chunker_options(ChunkAlgorithm algorithm) noexcept {
  ChunkerOptions options;
  options.algorithm = algorithm;
  if (algorithm == ChunkAlgorithm::kXet) {
    options.min_size = 8U << 10U;
    options.avg_size = 64U << 10U;
    options.max_size = 128U << 10U;
  }
  return options;
}

std::string_view chunk_algorithm_name(ChunkAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case ChunkAlgorithm::kFastCdc2016: return "fastcdc2016";
    case ChunkAlgorithm::kFastCdc2020: return "fastcdc2020";
    case ChunkAlgorithm::kXet: return "xet";
    case ChunkAlgorithm::kCasync: return "casync";
  }
  return "unknown";
}

Result<ChunkAlgorithm> parse_chunk_algorithm(std::string_view name) {
  if (name == "fastcdc2016" || name == "fastcdc-v2016") return ChunkAlgorithm::kFastCdc2016;
  if (name == "fastcdc2020" || name == "fastcdc-v2020" || name == "fastcdc") {
    return ChunkAlgorithm::kFastCdc2020;
  }
  if (name == "xet") return ChunkAlgorithm::kXet;
  if (name == "casync" || name == "desync") return ChunkAlgorithm::kCasync;
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown chunking algorithm '" + std::string(name) +
                        "' (known: fastcdc2020, fastcdc2016, xet, casync)");
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
  if (options.algorithm == ChunkAlgorithm::kCasync) {
    const double discriminator = casync_discriminator(options.avg_size);
    if (!(discriminator >= 1.0)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "casync's discriminator formula is undefined for average size " +
                            std::to_string(options.avg_size) + " (it needs avg <= about 9 MB)");
    }
    return {};
  }
  if (options.algorithm == ChunkAlgorithm::kXet) return {};
  if (!is_fastcdc(options.algorithm)) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "unknown chunking algorithm value " + std::to_string(static_cast<int>(options.algorithm)));
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

Chunker::Chunker(const ChunkerOptions& options) : options_(options) {
  pending_.reserve(options.max_size);
  // The process's kernel is picked (measured once) when the first chunker is made, so the probe
  // never runs inside a scan that is being timed.
  if (options.algorithm != ChunkAlgorithm::kCasync) static_cast<void>(simd::active_kernel());
  if (options.algorithm == ChunkAlgorithm::kXet) {
    mask_small_ = mask_large_ = xet_mask_for(options.avg_size);
    gear_tables_.resize(simd::kGearShiftsSize);
    simd::shift_gear_tables(xet::kGearTable.data(), gear_tables_.data());
    return;
  }
  if (options.algorithm == ChunkAlgorithm::kCasync) {
    discriminator_ = static_cast<std::uint32_t>(casync_discriminator(options.avg_size));
    discriminator_inverse_ = ~std::uint64_t{0} / discriminator_ + 1;
    return;
  }
  const std::uint32_t bits = mask_bits_for(options.avg_size);
  mask_small_ = fastcdc::kMasks[bits + options.level];
  mask_large_ = fastcdc::kMasks[bits - options.level];
  std::array<std::uint64_t, 256> seeded{};
  for (std::size_t i = 0; i < 256; ++i) seeded[i] = fastcdc::kGearTable[i] ^ options.seed;
  // (gear ^ seed) << 1 == (gear << 1) ^ (seed << 1): table 1 is fastcdc-rs's seeded shifted table.
  gear_tables_.resize(simd::kGearShiftsSize);
  simd::shift_gear_tables(seeded.data(), gear_tables_.data());
}

Chunk Chunker::cut(ByteSpan data, bool at_end) const {
  switch (options_.algorithm) {
    case ChunkAlgorithm::kXet: return cut_xet(data);
    case ChunkAlgorithm::kCasync: return cut_casync(data);
    case ChunkAlgorithm::kFastCdc2016:
    case ChunkAlgorithm::kFastCdc2020: break;
  }
  return cut_fastcdc(data, at_end);
}

Chunk Chunker::cut_xet(ByteSpan data) const {
  // Data shorter than max is the rest of the stream (cut()'s contract), so no at_end is needed.
  const std::size_t remaining = data.size();
  const std::size_t min_size = options_.min_size;
  if (remaining <= min_size) return Chunk{0, static_cast<std::uint32_t>(remaining), 0};
  std::uint64_t hash = 0;
  for (std::size_t i = min_size >= kXetLookBehind ? min_size - kXetLookBehind : 0; i + 1 < min_size;
       ++i) {
    hash = (hash << 1U) + gear_tables_[data[i]];
  }
  simd::GearScanRequest request;
  request.data = data.data();
  request.begin = min_size - 1;  // the first byte whose hit gives a chunk of min bytes
  request.center = request.begin;
  request.limit = std::min<std::size_t>(remaining, options_.max_size);
  request.mask_small = mask_small_;
  request.mask_large = mask_large_;
  request.hash = hash;
  request.gear = gear_tables_.data();
  request.gear_shifted = gear_tables_.data() + 256;
  request.gear_shifts = gear_tables_.data();
  const simd::GearScanResult found = simd::active_kernel().scan(request);
  const std::size_t length = found.position < request.limit ? found.position + 1 : request.limit;
  return Chunk{0, static_cast<std::uint32_t>(length), found.hash};
}

Chunk Chunker::cut_casync(ByteSpan data) const {
  const std::size_t remaining = data.size();
  const std::size_t min_size = options_.min_size;
  if (remaining < min_size) return Chunk{0, static_cast<std::uint32_t>(remaining), 0};
  const std::uint8_t* const bytes = data.data();
  const std::uint32_t* const table = casync::kBuzhashTable.data();
  std::uint32_t hash = 0;
  for (std::size_t j = 0; j < kCasyncWindow; ++j) {
    hash ^= rotate_left(table[bytes[min_size - kCasyncWindow + j]],
                        static_cast<unsigned>(kCasyncWindow - 1 - j));
  }
  const std::size_t limit = std::min<std::size_t>(remaining, options_.max_size);
  // h % d == d-1 means d divides h+1. Lemire's divisibility test decides that for a 32-bit n with
  // one multiply (n * ceil(2^64/d) < ceil(2^64/d)); a division per byte made the loop 4x slower.
  // h+1 wraps to 0 only for h = 2^32-1, which the exact check after the filter settles.
  const std::uint32_t discriminator = discriminator_;
  const std::uint64_t inverse = discriminator_inverse_;
  const auto is_cut = [discriminator, inverse](std::uint32_t value) {
    const std::uint64_t next = static_cast<std::uint32_t>(value + 1U);
    return next * inverse <= inverse - 1 && value % discriminator == discriminator - 1;
  };
  if (is_cut(hash) || min_size >= options_.max_size) {
    return Chunk{0, static_cast<std::uint32_t>(min_size), hash};
  }
  for (std::size_t i = min_size; i < limit; ++i) {
    hash = rotate_left(hash, 1) ^ rotate_left(table[bytes[i - kCasyncWindow]], kCasyncWindow) ^
           table[bytes[i]];
    if (is_cut(hash)) return Chunk{0, static_cast<std::uint32_t>(i + 1), hash};
  }
  return Chunk{0, static_cast<std::uint32_t>(limit), hash};
}

Chunk Chunker::cut_fastcdc(ByteSpan data, bool at_end) const {
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
  request.gear = gear_tables_.data();
  request.gear_shifted = gear_tables_.data() + 256;
  request.gear_shifts = gear_tables_.data();
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

double Chunker::scan_cpu_seconds() const noexcept {
  return static_cast<double>(scan_nanoseconds_) / 1e9;
}

std::size_t Chunker::cut_run(ByteSpan data, bool at_end, std::span<Chunk> out) {
  const std::size_t keep = at_end ? 1 : options_.max_size;  // cut while this much is left
  // A tail of at most min_size is one chunk found without a scan: no clock for it.
  const bool scans = data.size() > options_.min_size;
  const std::uint64_t started = scans ? thread_cpu_nanoseconds() : 0;
  std::size_t count = 0;
  std::size_t position = 0;
  while (count < out.size() && data.size() - position >= keep) {
    out[count] = cut(data.subspan(position), at_end);
    position += out[count].length;
    ++count;
  }
  if (scans) scan_nanoseconds_ += thread_cpu_nanoseconds() - started;
  return count;
}

std::size_t Chunker::cut_in_place(ByteSpan bytes, bool at_end, const Sink& sink) {
  const std::size_t keep = at_end ? 1 : options_.max_size;
  std::array<Chunk, kCutRun> cuts;
  std::size_t position = 0;
  while (bytes.size() - position >= keep) {
    const std::size_t count = cut_run(bytes.subspan(position), at_end, cuts);
    for (std::size_t i = 0; i < count; ++i) {
      emit(cuts[i], bytes.subspan(position), sink);
      position += cuts[i].length;
    }
  }
  return position;
}

std::size_t Chunker::drain_pending(ByteSpan piece, const Sink& sink) {
  if (pending_.empty()) return 0;
  const std::size_t max_size = options_.max_size;
  const std::size_t carried = pending_.size();  // bytes from earlier pieces
  std::size_t taken = std::min(piece.size(), max_size - carried);
  pending_.insert(pending_.end(), piece.begin(),
                  piece.begin() + static_cast<std::ptrdiff_t>(taken));
  std::size_t consumed = 0;  // bytes of pending_ already emitted
  while (pending_.size() - consumed >= max_size) {
    const ByteSpan window(pending_.data() + consumed, pending_.size() - consumed);
    Chunk chunk;
    cut_run(window, false, std::span<Chunk>(&chunk, 1));
    emit(chunk, window, sink);
    consumed += chunk.length;
    if (consumed >= carried) {
      // Everything left in pending_ came from `piece`: continue in place, without copying.
      const std::size_t position = taken - (pending_.size() - consumed);
      pending_.clear();
      return position;
    }
    const std::size_t more =
        std::min(piece.size() - taken, max_size - (pending_.size() - consumed));
    pending_.insert(pending_.end(), piece.begin() + static_cast<std::ptrdiff_t>(taken),
                    piece.begin() + static_cast<std::ptrdiff_t>(taken + more));
    taken += more;
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(consumed));
  return piece.size() + 1;  // the whole piece is buffered
}

void Chunker::feed(ByteSpan piece, const Sink& sink) {
  std::size_t position = drain_pending(piece, sink);
  if (position > piece.size()) return;
  position += cut_in_place(piece.subspan(position), false, sink);
  pending_.assign(piece.begin() + static_cast<std::ptrdiff_t>(position), piece.end());
}

std::size_t Chunker::feed_certain(ByteSpan piece, const Sink& sink) {
  if (!pending_.empty()) {
    feed(piece, sink);
    return piece.size();
  }
  return cut_in_place(piece, false, sink);
}

void Chunker::finish(const Sink& sink) {
  cut_in_place(pending_, true, sink);
  pending_.clear();
  stream_offset_ = 0;
}

void Chunker::finish(ByteSpan last_piece, const Sink& sink) {
  const std::size_t position = drain_pending(last_piece, sink);
  if (position <= last_piece.size()) cut_in_place(last_piece.subspan(position), true, sink);
  finish(sink);  // what drain_pending buffered, if it kept the piece
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
