// Byte-grouped store codec for float tensor chunks (shared/specs/models.md §0-§1: ZipNN / Xet
// byte grouping). A chunk of F16/BF16 (width 2) or F32 (width 4) elements is split into planes,
// plane k holding byte k of every element, so the exponent bytes sit together and compress
// (2.4-2.8x for FP32) while mantissa planes, near-random, are stored as they are. The stored form
// describes itself; decoding gives back the exact raw bytes, so export and pull always emit the
// standard layer bytes. choose_codec() keeps plain zstd whenever byte grouping does not win.
//
// Stored form (little-endian):
//   0  "SBG" 0x01        magic and format version
//   4  u8 width (2|4), u8 phase (< width), u8 layout (0 planes, 1 single frame), u8 0
//   8  u64 raw_length
//  16  layout 0: width x { u8 method (0 stored, 1 zstd), u32 payload length }
//      layout 1: u32 payload length of one zstd frame over plane 0 .. plane width-1
//      then the edge bytes, raw: min(phase, raw_length) leading bytes (a partial element from
//      before the chunk start), then (raw_length - lead) % width trailing bytes
//      then the payloads in plane order
//
// Layout 0 is what encode uses by default: on 8 MiB of synthetic weights in 64 KiB chunks
// (bench/bench_models.cpp, zstd 3) separate planes gave 1.454x (BF16) / 1.178x (F32) against
// 1.318x / 1.096x for one frame over the transposed bytes, and decode faster, since random
// mantissa planes are copied rather than decompressed. Layout 1 stays decodable and measurable.
#pragma once

#include <cstdint>
#include <vector>

#include "strata/buffer.h"
#include "strata/result.h"

namespace strata {

enum class ChunkCodec : std::uint8_t {
  kZstd = 1,           // one zstd frame of the raw bytes
  kByteGroupZstd = 2,  // the byte-grouped stored form above
};

enum class PlaneLayout : std::uint8_t {
  kSeparatePlanes = 0,  // each plane its own zstd frame, or stored raw when zstd does not help
  kSingleFrame = 1,     // one zstd frame over the concatenated planes
};

// How choose_codec() decides between plain zstd and byte grouping for a float chunk.
enum class CodecChoice : std::uint8_t {
  // Compute both and keep the smaller: never worse than plain zstd, about twice its zstd work.
  kSmaller = 0,
  // Compute byte grouping first and keep it when it saves at least 1/32 of the raw bytes (real
  // float weights save 8-30 %, shared/specs/models.md §4.2); only otherwise compute plain zstd
  // too. About the cost of one compression; may keep a grouped form up to a few percent larger
  // than plain zstd would have been on unusual (very repetitive) float data.
  kGroupingFirst = 1,
};

struct ByteGroupOptions {
  int level = 3;  // zstd level (levels 1-3 encode planes at level 1: smaller and faster there)
  PlaneLayout layout = PlaneLayout::kSeparatePlanes;
  CodecChoice choice = CodecChoice::kSmaller;
};

// Largest raw chunk the decoders accept unless told otherwise (the chunker's size ceiling).
inline constexpr std::uint64_t kDefaultMaxChunkBytes = 16U << 20U;

// Encodes `raw` whose first `phase` bytes finish an element begun before the chunk (phase <
// width). kInvalidArgument for a width other than 2 or 4, or phase >= width.
Result<std::vector<std::uint8_t>> encode_byte_grouped(ByteSpan raw, std::uint32_t width,
                                                      std::uint32_t phase,
                                                      const ByteGroupOptions& options = {});

// Decodes a stored form; kCorruptInput naming the field for anything malformed or truncated,
// kLimitExceeded when it claims more than `max_raw_bytes`.
Result<std::vector<std::uint8_t>> decode_byte_grouped(
    ByteSpan stored, std::uint64_t max_raw_bytes = kDefaultMaxChunkBytes);

// Plain zstd, one frame with its content size recorded.
Result<std::vector<std::uint8_t>> compress_plain(ByteSpan raw, int level);
Result<std::vector<std::uint8_t>> decompress_plain(
    ByteSpan stored, std::uint64_t max_raw_bytes = kDefaultMaxChunkBytes);

struct EncodedChunk {
  ChunkCodec codec = ChunkCodec::kZstd;
  std::vector<std::uint8_t> bytes;
};

// Per-chunk choice: plain zstd for width 0 (integers, quantized blocks, header bytes); otherwise
// as options.choice says (plain wins ties).
Result<EncodedChunk> choose_codec(ByteSpan raw, std::uint32_t width, std::uint32_t phase,
                                  const ByteGroupOptions& options = {});

// Decodes a chunk stored with either codec; the result must be `raw_bytes` long.
Result<std::vector<std::uint8_t>> decode_chunk(ChunkCodec codec, ByteSpan stored,
                                               std::uint64_t raw_bytes);

}  // namespace strata
