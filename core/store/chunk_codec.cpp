// Per-chunk compression: one independent zstd frame per chunk with its content size in the frame
// header (DESIGN.md §1 step 4), so any chunk decodes alone and exporters can reuse the frame.
// Contexts are thread_local: the engine compresses from parallel pipeline stages, and creating a
// ZSTD_CCtx per chunk would cost more than compressing a small chunk. Decoding never trusts the
// frame: the declared content size must equal the index's raw length, the window is capped
// (reliability.md §3.8 P9, windowLogMax 27) and the frame must fill the stored bytes exactly.
// Byte-grouped chunks (model weights) decode through core/byte_group_codec, which checks every
// length of the stored form against the bytes present and the raw length.
// Delta codecs (DESIGN.md §7): kZstdDelta is a zstd frame made with the base chunk's raw bytes
// referenced as a prefix (ZSTD_CCtx_refPrefix / ZSTD_DCtx_refPrefix, raw content, so a base that
// happens to start with the zstd dictionary magic is still just bytes); kXorByteGrouped XORs the
// chunk with its base before byte grouping. Both decode under the same strict checks as above;
// which base a chunk needs is the store's business (core/store/chunk_store.cpp).
#include <zstd.h>

#include <algorithm>
#include <memory>
#include <string>

#include "core/store/byte_group_codec.h"
#include "strata/store.h"

namespace strata {
namespace {

constexpr int kMaxWindowLog = 27;

struct CompressionContextDelete {
  void operator()(ZSTD_CCtx* context) const noexcept { ZSTD_freeCCtx(context); }
};
struct DecompressionContextDelete {
  void operator()(ZSTD_DCtx* context) const noexcept { ZSTD_freeDCtx(context); }
};

ZSTD_CCtx* thread_compression_context() {
  thread_local std::unique_ptr<ZSTD_CCtx, CompressionContextDelete> context(ZSTD_createCCtx());
  return context.get();
}

ZSTD_DCtx* thread_decompression_context() {
  thread_local std::unique_ptr<ZSTD_DCtx, DecompressionContextDelete> context = [] {
    std::unique_ptr<ZSTD_DCtx, DecompressionContextDelete> created(ZSTD_createDCtx());
    if (created) ZSTD_DCtx_setParameter(created.get(), ZSTD_d_windowLogMax, kMaxWindowLog);
    return created;
  }();
  return context.get();
}

// Decodes one zstd frame into exactly `raw` (its size is the raw length the index knows).
Result<void> decompress_zstd_into(ByteSpan stored, MutableByteSpan raw, ByteSpan prefix = {}) {
  const std::size_t raw_length = raw.size();
  const unsigned long long declared = ZSTD_getFrameContentSize(stored.data(), stored.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    return make_error(ErrorCode::kCorruptInput, "stored bytes are not a zstd frame");
  }
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN || declared != raw_length) {
    return make_error(ErrorCode::kCorruptInput,
                      "zstd frame declares a content size other than the raw length " +
                          std::to_string(raw_length));
  }
  const std::size_t frame_size = ZSTD_findFrameCompressedSize(stored.data(), stored.size());
  if (ZSTD_isError(frame_size) || frame_size != stored.size()) {
    return make_error(ErrorCode::kCorruptInput, "zstd frame is truncated or has trailing bytes");
  }
  ZSTD_DCtx* context = thread_decompression_context();
  if (context == nullptr) return make_error(ErrorCode::kInternal, "cannot allocate a zstd context");
  if (!prefix.empty()) {
    const std::size_t referenced = ZSTD_DCtx_refPrefix(context, prefix.data(), prefix.size());
    if (ZSTD_isError(referenced)) {
      ZSTD_DCtx_reset(context, ZSTD_reset_session_only);
      return make_error(ErrorCode::kInternal, std::string("cannot reference a zstd prefix: ") +
                                                  ZSTD_getErrorName(referenced));
    }
  }
  const std::size_t produced =
      ZSTD_decompressDCtx(context, raw.data(), raw.size(), stored.data(), stored.size());
  if (ZSTD_isError(produced)) {
    ZSTD_DCtx_reset(context, ZSTD_reset_session_only);
    return make_error(ErrorCode::kCorruptInput,
                      std::string("zstd frame does not decode: ") + ZSTD_getErrorName(produced));
  }
  if (produced != raw_length) {
    return make_error(ErrorCode::kCorruptInput, "zstd frame decodes to " +
                                                    std::to_string(produced) + " bytes, expected " +
                                                    std::to_string(raw_length));
  }
  return {};
}

Result<std::vector<std::uint8_t>> decompress_zstd(ByteSpan stored, std::size_t raw_length,
                                                  ByteSpan prefix = {}) {
  std::vector<std::uint8_t> raw(raw_length);
  STRATA_TRY(decompress_zstd_into(stored, raw, prefix));
  return raw;
}

// The stored form announces its own raw length; one other than the index's is corruption, not a
// limit, even when it is larger (the index's length is the decoder's cap).
Result<std::vector<std::uint8_t>> decompress_byte_grouped(ByteSpan stored, std::size_t raw_length) {
  auto raw = decode_chunk(ChunkCodec::kByteGroupZstd, stored, std::uint64_t{raw_length});
  if (!raw.ok() && raw.error().code == ErrorCode::kLimitExceeded) {
    return make_error(
        ErrorCode::kCorruptInput,
        "byte-grouped chunk declares more than the raw length " + std::to_string(raw_length));
  }
  return raw;
}

}  // namespace

std::string_view codec_name(Codec codec) noexcept {
  switch (codec) {
    case Codec::kRaw: return "raw";
    case Codec::kZstd: return "zstd";
    case Codec::kByteGrouped: return "byte-grouped";
    case Codec::kZstdDelta: return "zstd-delta";
    case Codec::kXorByteGrouped: return "xor-byte-grouped";
  }
  return "unknown";
}

Result<void> compress_chunk_zstd_into(ByteSpan raw, int level, std::vector<std::uint8_t>& out) {
  if (level < 1 || level > ZSTD_maxCLevel()) {
    return make_error(ErrorCode::kInvalidArgument, "zstd level " + std::to_string(level) +
                                                       " is outside 1.." +
                                                       std::to_string(ZSTD_maxCLevel()));
  }
  if (raw.size() > kMaxStoredChunkBytes) {
    return make_error(ErrorCode::kLimitExceeded,
                      "chunk of " + std::to_string(raw.size()) + " bytes exceeds the store limit");
  }
  ZSTD_CCtx* context = thread_compression_context();
  if (context == nullptr) return make_error(ErrorCode::kInternal, "cannot allocate a zstd context");
  ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0);  // the pack record carries a checksum
  out.resize(ZSTD_compressBound(raw.size()));
  const std::size_t written =
      ZSTD_compress2(context, out.data(), out.size(), raw.data(), raw.size());
  if (ZSTD_isError(written)) {
    return make_error(ErrorCode::kInternal,
                      std::string("zstd compression failed: ") + ZSTD_getErrorName(written));
  }
  out.resize(written);
  return {};
}

namespace {

Result<void> check_level_and_size(ByteSpan raw, int level) {
  if (level < 1 || level > ZSTD_maxCLevel()) {
    return make_error(ErrorCode::kInvalidArgument, "zstd level " + std::to_string(level) +
                                                       " is outside 1.." +
                                                       std::to_string(ZSTD_maxCLevel()));
  }
  if (raw.size() > kMaxStoredChunkBytes) {
    return make_error(ErrorCode::kLimitExceeded,
                      "chunk of " + std::to_string(raw.size()) + " bytes exceeds the store limit");
  }
  return {};
}

}  // namespace

Result<void> compress_chunk_delta_into(ByteSpan raw, ByteSpan base, int level,
                                       std::vector<std::uint8_t>& out) {
  STRATA_TRY(check_level_and_size(raw, level));
  if (base.size() > kMaxStoredChunkBytes) {
    return make_error(ErrorCode::kLimitExceeded, "base chunk of " + std::to_string(base.size()) +
                                                     " bytes exceeds the store limit");
  }
  ZSTD_CCtx* context = thread_compression_context();
  if (context == nullptr) return make_error(ErrorCode::kInternal, "cannot allocate a zstd context");
  ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0);
  // The window must reach back over the whole base, or its matches are out of reach.
  int window_log = 10;
  while (window_log < kMaxWindowLog && (std::size_t{1} << window_log) < base.size() + raw.size()) {
    ++window_log;
  }
  ZSTD_CCtx_setParameter(context, ZSTD_c_windowLog, window_log);
  if (!base.empty()) {
    const std::size_t referenced = ZSTD_CCtx_refPrefix(context, base.data(), base.size());
    if (ZSTD_isError(referenced)) {
      return make_error(ErrorCode::kInternal, std::string("cannot reference a zstd prefix: ") +
                                                  ZSTD_getErrorName(referenced));
    }
  }
  out.resize(ZSTD_compressBound(raw.size()));
  const std::size_t written =
      ZSTD_compress2(context, out.data(), out.size(), raw.data(), raw.size());
  if (ZSTD_isError(written)) {
    ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters);
    return make_error(ErrorCode::kInternal,
                      std::string("zstd compression failed: ") + ZSTD_getErrorName(written));
  }
  out.resize(written);
  return {};
}

namespace {

std::vector<std::uint8_t> xor_with_base(ByteSpan raw, ByteSpan base) {
  std::vector<std::uint8_t> mixed(raw.begin(), raw.end());
  const std::size_t common = std::min(raw.size(), base.size());
  for (std::size_t i = 0; i < common; ++i) mixed[i] ^= base[i];
  return mixed;
}

}  // namespace

Result<std::vector<std::uint8_t>> encode_chunk_xor_grouped(ByteSpan raw, ByteSpan base,
                                                           std::uint32_t width, std::uint32_t phase,
                                                           int level) {
  STRATA_TRY(check_level_and_size(raw, level));
  const std::vector<std::uint8_t> mixed = xor_with_base(raw, base);
  ByteGroupOptions options;
  options.level = level;
  return encode_byte_grouped(ByteSpan(mixed.data(), mixed.size()), width, phase, options);
}

Result<std::vector<std::uint8_t>> decompress_delta_chunk(Codec codec, ByteSpan stored,
                                                         ByteSpan base, std::size_t raw_length) {
  if (raw_length > kMaxStoredChunkBytes || base.size() > kMaxStoredChunkBytes) {
    return make_error(ErrorCode::kLimitExceeded, "chunk raw length " + std::to_string(raw_length) +
                                                     " exceeds the store limit");
  }
  switch (codec) {
    case Codec::kZstdDelta:
      // An empty base means no prefix: the frame then decodes alone, which is still correct.
      return decompress_zstd(stored, raw_length, base);
    case Codec::kXorByteGrouped: {
      auto mixed = decompress_byte_grouped(stored, raw_length);
      if (!mixed.ok()) return mixed;
      const std::size_t common = std::min(mixed->size(), base.size());
      for (std::size_t i = 0; i < common; ++i) (*mixed)[i] ^= base[i];
      return mixed;
    }
    default: break;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "codec " + std::string(codec_name(codec)) + " is not a delta codec");
}

Result<std::vector<std::uint8_t>> compress_chunk_zstd(ByteSpan raw, int level) {
  std::vector<std::uint8_t> out;
  STRATA_TRY(compress_chunk_zstd_into(raw, level, out));
  return out;
}

Result<std::vector<std::uint8_t>> decompress_chunk(Codec codec, ByteSpan stored,
                                                   std::size_t raw_length) {
  if (raw_length > kMaxStoredChunkBytes) {
    return make_error(ErrorCode::kLimitExceeded, "chunk raw length " + std::to_string(raw_length) +
                                                     " exceeds the store limit");
  }
  switch (codec) {
    case Codec::kRaw:
      if (stored.size() != raw_length) {
        return make_error(ErrorCode::kCorruptInput,
                          "raw chunk has " + std::to_string(stored.size()) +
                              " stored bytes, expected " + std::to_string(raw_length));
      }
      return std::vector<std::uint8_t>(stored.begin(), stored.end());
    case Codec::kZstd: return decompress_zstd(stored, raw_length);
    case Codec::kByteGrouped: return decompress_byte_grouped(stored, raw_length);
    case Codec::kZstdDelta:
    case Codec::kXorByteGrouped:
      return make_error(ErrorCode::kInvalidArgument, "a " + std::string(codec_name(codec)) +
                                                         " chunk decodes only with its base chunk");
  }
  return make_error(ErrorCode::kUnsupported,
                    "chunk codec " + std::to_string(static_cast<int>(codec)) + " is not supported");
}

Result<void> decompress_chunk_into(Codec codec, ByteSpan stored, MutableByteSpan raw) {
  if (raw.size() > kMaxStoredChunkBytes) {
    return make_error(ErrorCode::kLimitExceeded, "chunk raw length " + std::to_string(raw.size()) +
                                                     " exceeds the store limit");
  }
  if (codec == Codec::kZstd) return decompress_zstd_into(stored, raw);
  auto decoded = decompress_chunk(codec, stored, raw.size());
  if (!decoded) return std::move(decoded).error();
  std::copy(decoded->begin(), decoded->end(), raw.begin());
  return {};
}

}  // namespace strata
