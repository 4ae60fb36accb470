// Byte-grouped store codec (layout in core/store/byte_group_codec.h; idea from ZipNN and Xet's BG4,
// shared/specs/models.md §1-§2). The transform runs through the byte-grouping kernel table
// (simd/byte_group_dispatch.h); zstd does the entropy coding. Decoding trusts nothing: every length
// is checked against the bytes present and the size announced, and each zstd frame must decode to
// exactly its plane's size, so a hostile stored form cannot overflow a buffer or inflate.
#include "core/store/byte_group_codec.h"

#include <zstd.h>

#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "simd/byte_group_dispatch.h"

namespace strata {
namespace {

constexpr std::array<std::uint8_t, 4> kMagic = {'S', 'B', 'G', 1};
constexpr std::size_t kFixedHeaderBytes = 16;
constexpr std::size_t kPlaneEntryBytes = 5;
constexpr std::uint8_t kMethodStored = 0;
constexpr std::uint8_t kMethodZstd = 1;

struct CompressContextDelete {
  void operator()(ZSTD_CCtx* context) const noexcept { ZSTD_freeCCtx(context); }
};
struct DecompressContextDelete {
  void operator()(ZSTD_DCtx* context) const noexcept { ZSTD_freeDCtx(context); }
};

ZSTD_CCtx* compress_context() {
  thread_local std::unique_ptr<ZSTD_CCtx, CompressContextDelete> context(ZSTD_createCCtx());
  return context.get();
}

ZSTD_DCtx* decompress_context() {
  thread_local std::unique_ptr<ZSTD_DCtx, DecompressContextDelete> context(ZSTD_createDCtx());
  return context.get();
}

// Appends one zstd frame of `raw` to `out`; returns its length.
Result<std::size_t> append_frame(ByteSpan raw, int level, std::vector<std::uint8_t>& out) {
  const std::size_t start = out.size();
  out.resize(start + ZSTD_compressBound(raw.size()));
  const std::size_t written = ZSTD_compressCCtx(compress_context(), out.data() + start,
                                                out.size() - start, raw.data(), raw.size(), level);
  if (ZSTD_isError(written) != 0U) {
    out.resize(start);
    return make_error(ErrorCode::kInternal,
                      std::string("zstd compression failed: ") + ZSTD_getErrorName(written));
  }
  out.resize(start + written);
  return written;
}

// Decodes exactly one frame that fills `destination` exactly.
Result<void> decode_frame_exactly(ByteSpan frame, MutableByteSpan destination,
                                  const std::string& what) {
  const unsigned long long announced = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (announced != destination.size()) {
    return make_error(ErrorCode::kCorruptInput, what +
                                                    ": zstd frame does not announce the expected " +
                                                    std::to_string(destination.size()) + " bytes");
  }
  if (ZSTD_findFrameCompressedSize(frame.data(), frame.size()) != frame.size()) {
    return make_error(ErrorCode::kCorruptInput, what + ": payload is not exactly one zstd frame");
  }
  const std::size_t produced = ZSTD_decompressDCtx(decompress_context(), destination.data(),
                                                   destination.size(), frame.data(), frame.size());
  if (ZSTD_isError(produced) != 0U) {
    return make_error(ErrorCode::kCorruptInput, what + ": zstd: " + ZSTD_getErrorName(produced));
  }
  if (produced != destination.size()) {
    return make_error(ErrorCode::kCorruptInput, what + ": zstd frame decoded to " +
                                                    std::to_string(produced) + " bytes, not " +
                                                    std::to_string(destination.size()));
  }
  return {};
}

void put_u32(std::uint8_t* at, std::uint32_t value) {
  for (unsigned i = 0; i < 4; ++i) at[i] = static_cast<std::uint8_t>(value >> (8U * i));
}

std::uint64_t get_le(const std::uint8_t* at, unsigned bytes) {
  std::uint64_t value = 0;
  for (unsigned i = 0; i < bytes; ++i) value |= std::uint64_t{at[i]} << (8U * i);
  return value;
}

struct Geometry {
  std::uint64_t lead = 0;      // bytes before the first whole element
  std::uint64_t elements = 0;  // whole elements, i.e. bytes per plane
  std::uint64_t tail = 0;      // bytes after the last whole element
};

Geometry geometry_of(std::uint64_t raw_length, std::uint32_t width, std::uint32_t phase) {
  Geometry shape;
  shape.lead = std::min<std::uint64_t>(phase, raw_length);
  shape.elements = (raw_length - shape.lead) / width;
  shape.tail = (raw_length - shape.lead) % width;
  return shape;
}

// True when the plane's order-0 entropy is within 1 % of 8 bits per byte, as for the low mantissa
// bytes of trained weights (shared/specs/models.md §0: mantissa planes stay at ~1.00x). Such a
// plane is stored without asking zstd, which would spend most of the encode time to find nothing.
// Small planes always go to zstd: their histogram says too little.
bool looks_incompressible(ByteSpan plane) {
  constexpr std::size_t kMinimumBytes = 4096;
  if (plane.size() < kMinimumBytes) return false;
  std::array<std::array<std::uint32_t, 256>, 4> counts{};  // 4 tables break store dependencies
  std::size_t i = 0;
  for (; i + 4 <= plane.size(); i += 4) {
    ++counts[0][plane[i]];
    ++counts[1][plane[i + 1]];
    ++counts[2][plane[i + 2]];
    ++counts[3][plane[i + 3]];
  }
  for (; i < plane.size(); ++i) ++counts[0][plane[i]];
  const double total = static_cast<double>(plane.size());
  double bits = 0;
  for (std::size_t symbol = 0; symbol < 256; ++symbol) {
    const std::uint32_t count =
        counts[0][symbol] + counts[1][symbol] + counts[2][symbol] + counts[3][symbol];
    if (count == 0) continue;
    const double p = count / total;
    bits -= p * std::log2(p);
  }
  return bits >= 7.92;
}

// zstd level for one plane. Planes gain from entropy coding, not from matches: on exponent planes
// of real and synthetic weights, level 1 measured both smaller and faster than levels 2-3 (the
// match finder finds short matches that cost more than Huffman-coded literals), so the fast levels
// all map to 1; from 4 up the caller's level is kept.
int plane_level(int level) {
  return level >= 1 && level <= 3 ? 1 : level;
}

// memcpy that accepts empty ranges (whose pointers may be null, which memcpy does not allow).
void copy_bytes(std::uint8_t* destination, const std::uint8_t* source, std::size_t count) {
  if (count != 0) std::memcpy(destination, source, count);
}

Error stored_error(const std::string& problem) {
  return make_error(ErrorCode::kCorruptInput, "byte-grouped chunk: " + problem);
}

}  // namespace

Result<std::vector<std::uint8_t>> compress_plain(ByteSpan raw, int level) {
  std::vector<std::uint8_t> out;
  auto written = append_frame(raw, level, out);
  if (!written.ok()) return std::move(written).error();
  return out;
}

Result<std::vector<std::uint8_t>> decompress_plain(ByteSpan stored, std::uint64_t max_raw_bytes) {
  const unsigned long long announced = ZSTD_getFrameContentSize(stored.data(), stored.size());
  if (announced == ZSTD_CONTENTSIZE_ERROR || announced == ZSTD_CONTENTSIZE_UNKNOWN) {
    return make_error(ErrorCode::kCorruptInput, "zstd chunk: no valid frame with a content size");
  }
  if (announced > max_raw_bytes) {
    return make_error(ErrorCode::kLimitExceeded,
                      "zstd chunk: announces " + std::to_string(announced) +
                          " bytes, over the cap of " + std::to_string(max_raw_bytes));
  }
  std::vector<std::uint8_t> raw(static_cast<std::size_t>(announced));
  STRATA_TRY(decode_frame_exactly(stored, raw, "zstd chunk"));
  return raw;
}

Result<std::vector<std::uint8_t>> encode_byte_grouped(ByteSpan raw, std::uint32_t width,
                                                      std::uint32_t phase,
                                                      const ByteGroupOptions& options) {
  if (width != 2 && width != 4) {
    return make_error(ErrorCode::kInvalidArgument,
                      "byte grouping: element width " + std::to_string(width) + " is not 2 or 4");
  }
  if (phase >= width) {
    return make_error(ErrorCode::kInvalidArgument, "byte grouping: phase " + std::to_string(phase) +
                                                       " is not below the element width");
  }
  const Geometry shape = geometry_of(raw.size(), width, phase);
  const std::size_t elements = static_cast<std::size_t>(shape.elements);

  // Planes side by side in one scratch buffer.
  thread_local std::vector<std::uint8_t> scratch;
  scratch.resize(elements * width);
  std::array<std::uint8_t*, 4> planes{};
  for (std::uint32_t k = 0; k < width; ++k) planes[k] = scratch.data() + k * elements;
  const simd::ByteGroupKernel& kernel = simd::active_byte_group_kernel();
  const std::uint8_t* first_element = raw.data() + shape.lead;
  (width == 2 ? kernel.split2 : kernel.split4)(first_element, elements, planes.data());

  const std::size_t table_bytes =
      options.layout == PlaneLayout::kSeparatePlanes ? width * kPlaneEntryBytes : 4;
  std::vector<std::uint8_t> out(kFixedHeaderBytes + table_bytes);
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  out[4] = static_cast<std::uint8_t>(width);
  out[5] = static_cast<std::uint8_t>(phase);
  out[6] = static_cast<std::uint8_t>(options.layout);
  out[7] = 0;
  for (unsigned i = 0; i < 8; ++i) {
    out[8 + i] = static_cast<std::uint8_t>(std::uint64_t{raw.size()} >> (8U * i));
  }
  out.insert(out.end(), raw.begin(), raw.begin() + static_cast<std::ptrdiff_t>(shape.lead));
  out.insert(out.end(), raw.end() - static_cast<std::ptrdiff_t>(shape.tail), raw.end());

  if (options.layout == PlaneLayout::kSingleFrame) {
    auto written = append_frame(ByteSpan(scratch.data(), scratch.size()), options.level, out);
    if (!written.ok()) return std::move(written).error();
    put_u32(out.data() + kFixedHeaderBytes, static_cast<std::uint32_t>(*written));
    return out;
  }
  for (std::uint32_t k = 0; k < width; ++k) {
    const ByteSpan plane(planes[k], elements);
    const std::size_t before = out.size();
    std::size_t length = plane.size();
    if (!looks_incompressible(plane)) {
      auto written = append_frame(plane, plane_level(options.level), out);
      if (!written.ok()) return std::move(written).error();
      length = *written;
    }
    std::uint8_t method = kMethodZstd;
    if (length >= plane.size()) {  // incompressible (mantissa bytes): store as is
      out.resize(before);
      out.insert(out.end(), plane.begin(), plane.end());
      method = kMethodStored;
      length = plane.size();
    }
    std::uint8_t* entry = out.data() + kFixedHeaderBytes + k * kPlaneEntryBytes;
    entry[0] = method;
    put_u32(entry + 1, static_cast<std::uint32_t>(length));
  }
  return out;
}

Result<std::vector<std::uint8_t>> decode_byte_grouped(ByteSpan stored,
                                                      std::uint64_t max_raw_bytes) {
  if (stored.size() < kFixedHeaderBytes) return stored_error("shorter than its 16-byte header");
  if (std::memcmp(stored.data(), kMagic.data(), kMagic.size()) != 0) {
    return stored_error("bad magic or version");
  }
  const std::uint32_t width = stored[4];
  const std::uint32_t phase = stored[5];
  const std::uint8_t layout = stored[6];
  if (width != 2 && width != 4) {
    return stored_error("element width " + std::to_string(width) + " is not 2 or 4");
  }
  if (phase >= width) return stored_error("phase " + std::to_string(phase) + " >= width");
  if (layout > static_cast<std::uint8_t>(PlaneLayout::kSingleFrame) || stored[7] != 0) {
    return stored_error("unknown layout " + std::to_string(layout));
  }
  const std::uint64_t raw_length = get_le(stored.data() + 8, 8);
  if (raw_length > max_raw_bytes) {
    return make_error(ErrorCode::kLimitExceeded,
                      "byte-grouped chunk: raw length " + std::to_string(raw_length) +
                          " exceeds the cap of " + std::to_string(max_raw_bytes));
  }
  const Geometry shape = geometry_of(raw_length, width, phase);
  const std::size_t elements = static_cast<std::size_t>(shape.elements);
  const bool separate = layout == static_cast<std::uint8_t>(PlaneLayout::kSeparatePlanes);
  const std::size_t table_bytes = separate ? width * kPlaneEntryBytes : 4;
  std::size_t cursor = kFixedHeaderBytes + table_bytes;
  const std::size_t edge_bytes = static_cast<std::size_t>(shape.lead + shape.tail);
  if (stored.size() < cursor || stored.size() - cursor < edge_bytes) {
    return stored_error("truncated in its header or edge bytes");
  }
  std::vector<std::uint8_t> raw(static_cast<std::size_t>(raw_length));
  copy_bytes(raw.data(), stored.data() + cursor, static_cast<std::size_t>(shape.lead));
  copy_bytes(raw.data() + raw.size() - shape.tail, stored.data() + cursor + shape.lead,
             static_cast<std::size_t>(shape.tail));
  cursor += edge_bytes;

  thread_local std::vector<std::uint8_t> scratch;
  scratch.resize(elements * width);
  std::array<const std::uint8_t*, 4> planes{};
  if (separate) {
    for (std::uint32_t k = 0; k < width; ++k) {
      const std::uint8_t* entry = stored.data() + kFixedHeaderBytes + k * kPlaneEntryBytes;
      const std::uint8_t method = entry[0];
      const std::uint64_t length = get_le(entry + 1, 4);
      const std::string what = "byte-grouped chunk plane " + std::to_string(k);
      if (length > stored.size() - cursor)
        return stored_error("plane " + std::to_string(k) + " payload runs past the end");
      const ByteSpan payload = stored.subspan(cursor, static_cast<std::size_t>(length));
      const MutableByteSpan plane(scratch.data() + k * elements, elements);
      if (method == kMethodStored) {
        if (length != elements) {
          return stored_error("stored plane " + std::to_string(k) + " has " +
                              std::to_string(length) + " bytes, not " + std::to_string(elements));
        }
        copy_bytes(plane.data(), payload.data(), elements);
      } else if (method == kMethodZstd) {
        STRATA_TRY(decode_frame_exactly(payload, plane, what));
      } else {
        return stored_error("plane " + std::to_string(k) + " has unknown method " +
                            std::to_string(method));
      }
      planes[k] = plane.data();
      cursor += static_cast<std::size_t>(length);
    }
  } else {
    const std::uint64_t length = get_le(stored.data() + kFixedHeaderBytes, 4);
    if (length > stored.size() - cursor) return stored_error("frame runs past the end");
    STRATA_TRY(decode_frame_exactly(stored.subspan(cursor, static_cast<std::size_t>(length)),
                                    MutableByteSpan(scratch.data(), scratch.size()),
                                    "byte-grouped chunk frame"));
    for (std::uint32_t k = 0; k < width; ++k) planes[k] = scratch.data() + k * elements;
    cursor += static_cast<std::size_t>(length);
  }
  if (cursor != stored.size()) {
    return stored_error(std::to_string(stored.size() - cursor) + " trailing bytes");
  }
  const simd::ByteGroupKernel& kernel = simd::active_byte_group_kernel();
  (width == 2 ? kernel.merge2 : kernel.merge4)(planes.data(), elements, raw.data() + shape.lead);
  return raw;
}

Result<EncodedChunk> choose_codec(ByteSpan raw, std::uint32_t width, std::uint32_t phase,
                                  const ByteGroupOptions& options) {
  std::vector<std::uint8_t> grouped;
  if (width != 0) {
    auto encoded = encode_byte_grouped(raw, width, phase, options);
    if (!encoded.ok()) return std::move(encoded).error();
    grouped = std::move(encoded).value();
    const bool clear_gain = grouped.size() <= raw.size() - raw.size() / 32;
    if (options.choice == CodecChoice::kGroupingFirst && clear_gain) {
      return EncodedChunk{ChunkCodec::kByteGroupZstd, std::move(grouped)};
    }
  }
  auto plain = compress_plain(raw, options.level);
  if (!plain.ok()) return std::move(plain).error();
  if (width != 0 && grouped.size() < plain->size()) {
    return EncodedChunk{ChunkCodec::kByteGroupZstd, std::move(grouped)};
  }
  return EncodedChunk{ChunkCodec::kZstd, std::move(plain).value()};
}

Result<std::vector<std::uint8_t>> decode_chunk(ChunkCodec codec, ByteSpan stored,
                                               std::uint64_t raw_bytes) {
  Result<std::vector<std::uint8_t>> raw =
      codec == ChunkCodec::kZstd            ? decompress_plain(stored, raw_bytes)
      : codec == ChunkCodec::kByteGroupZstd ? decode_byte_grouped(stored, raw_bytes)
                                            : Result<std::vector<std::uint8_t>>(make_error(
                                                  ErrorCode::kCorruptInput, "unknown chunk codec"));
  if (!raw.ok()) return raw;
  if (raw->size() != raw_bytes) {
    return make_error(ErrorCode::kCorruptInput, "chunk decoded to " + std::to_string(raw->size()) +
                                                    " bytes, expected " +
                                                    std::to_string(raw_bytes));
  }
  return raw;
}

}  // namespace strata
