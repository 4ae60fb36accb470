// zstd streams for tar+zstd layers through libzstd's streaming API (RFC 8878 frames). Encoding
// writes one frame with the content checksum; threads > 1 sets ZSTD_c_nbWorkers, whose output is
// the same for every worker count >= 1 (zstd cuts jobs by size, not by worker) but differs from
// single-threaded output, so the blob is a function of (bytes, level, threads > 1). Decoding
// accepts concatenated frames (as the format allows) and keeps zstd's default window limit
// (2^27), which bounds decoder memory for hostile input.
#include <zstd.h>

#include <vector>

#include "formats/compress/layer_writer_codecs.h"

namespace strata::oci::detail {
namespace {

class ZstdEncoder final : public StreamEncoder {
 public:
  ZstdEncoder() : context_(ZSTD_createCCtx()), output_(ZSTD_CStreamOutSize()) {}
  ~ZstdEncoder() override { ZSTD_freeCCtx(context_); }
  ZstdEncoder(const ZstdEncoder&) = delete;
  ZstdEncoder& operator=(const ZstdEncoder&) = delete;

  Result<void> init(int level, unsigned threads) {
    if (context_ == nullptr) return make_error(ErrorCode::kInternal, "ZSTD_createCCtx failed");
    STRATA_TRY(set(ZSTD_c_compressionLevel, level, "level"));
    STRATA_TRY(set(ZSTD_c_checksumFlag, 1, "checksum"));
    if (threads > 1) STRATA_TRY(set(ZSTD_c_nbWorkers, static_cast<int>(threads), "threads"));
    return {};
  }

  Result<void> encode(ByteSpan input, bool last, const ByteSink& out) override {
    ZSTD_inBuffer in{input.data(), input.size(), 0};
    const ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      ZSTD_outBuffer buffer{output_.data(), output_.size(), 0};
      const std::size_t remaining = ZSTD_compressStream2(context_, &buffer, &in, mode);
      if (ZSTD_isError(remaining)) {
        return make_error(ErrorCode::kInternal,
                          std::string("zstd compression failed: ") + ZSTD_getErrorName(remaining));
      }
      if (buffer.pos > 0) STRATA_TRY(out(ByteSpan(output_.data(), buffer.pos)));
      if (last ? remaining == 0 : in.pos == in.size) return {};
    }
  }

 private:
  Result<void> set(ZSTD_cParameter parameter, int value, const char* what) {
    const std::size_t status = ZSTD_CCtx_setParameter(context_, parameter, value);
    if (ZSTD_isError(status)) {
      return make_error(ErrorCode::kInvalidArgument, std::string("zstd ") + what + " " +
                                                         std::to_string(value) + ": " +
                                                         ZSTD_getErrorName(status));
    }
    return {};
  }

  ZSTD_CCtx* context_;
  std::vector<std::uint8_t> output_;
};

class ZstdDecoder final : public StreamDecoder {
 public:
  ZstdDecoder() : context_(ZSTD_createDCtx()), output_(ZSTD_DStreamOutSize()) {}
  ~ZstdDecoder() override { ZSTD_freeDCtx(context_); }
  ZstdDecoder(const ZstdDecoder&) = delete;
  ZstdDecoder& operator=(const ZstdDecoder&) = delete;

  Result<void> decode(ByteSpan input, const ByteSink& out) override {
    if (context_ == nullptr) return make_error(ErrorCode::kInternal, "ZSTD_createDCtx failed");
    ZSTD_inBuffer in{input.data(), input.size(), 0};
    while (in.pos < in.size || output_full_) {
      ZSTD_outBuffer buffer{output_.data(), output_.size(), 0};
      const std::size_t hint = ZSTD_decompressStream(context_, &buffer, &in);
      if (ZSTD_isError(hint)) {
        return make_error(ErrorCode::kCorruptInput,
                          std::string("invalid zstd data: ") + ZSTD_getErrorName(hint));
      }
      frame_complete_ = hint == 0;
      output_full_ = buffer.pos == buffer.size;
      if (buffer.pos > 0) STRATA_TRY(out(ByteSpan(output_.data(), buffer.pos)));
      seen_input_ = true;
    }
    return {};
  }

  Result<void> finish() override {
    if (!seen_input_ || !frame_complete_) {
      return make_error(ErrorCode::kCorruptInput, "zstd stream is truncated");
    }
    return {};
  }

 private:
  ZSTD_DCtx* context_;
  std::vector<std::uint8_t> output_;
  bool frame_complete_ = false;
  bool output_full_ = false;
  bool seen_input_ = false;
};

}  // namespace

Result<std::unique_ptr<StreamEncoder>> make_zstd_encoder(int level, unsigned threads) {
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
    return make_error(ErrorCode::kInvalidArgument, "zstd level " + std::to_string(level) +
                                                       " is outside " +
                                                       std::to_string(ZSTD_minCLevel()) + ".." +
                                                       std::to_string(ZSTD_maxCLevel()));
  }
  auto encoder = std::make_unique<ZstdEncoder>();
  STRATA_TRY(encoder->init(level, threads));
  return std::unique_ptr<StreamEncoder>(std::move(encoder));
}

Result<std::unique_ptr<StreamDecoder>> make_zstd_decoder() {
  return std::unique_ptr<StreamDecoder>(std::make_unique<ZstdDecoder>());
}

}  // namespace strata::oci::detail
