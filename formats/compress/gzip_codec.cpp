// gzip (RFC 1952) streams for tar+gzip layers: compression with ISA-L igzip (levels 0..3, the
// fast path) or zlib (levels 0..9; level 6 is the classic default others reproduce), and
// decompression with ISA-L inflate, which checks each member's CRC-32 and length trailer. ISA-L
// writes only the deflate data and trailer here (IGZIP_GZIP_NO_HDR); the 10-byte header is ours and
// fixed: 1f 8b, CM 8, no flags, MTIME 0, XFL 0, OS 255. Fact: shared/specs/layer-formats.md §3
// (layer media types), RFC 1952 §2.3.
#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include <array>
#include <vector>

#include "formats/compress/layer_writer_codecs.h"

namespace strata::oci::detail {
namespace {

constexpr std::size_t kOutputBlockBytes = std::size_t{256} << 10U;
constexpr std::array<std::uint8_t, 10> kGzipHeader = {0x1f, 0x8b, 0x08, 0x00, 0x00,
                                                      0x00, 0x00, 0x00, 0x00, 0xff};

std::uint32_t level_buffer_bytes(int level) {
  switch (level) {
    case 1: return ISAL_DEF_LVL1_DEFAULT;
    case 2: return ISAL_DEF_LVL2_DEFAULT;
    case 3: return ISAL_DEF_LVL3_DEFAULT;
    default: return 0;
  }
}

class IsalGzipEncoder final : public StreamEncoder {
 public:
  explicit IsalGzipEncoder(int level)
      : stream_(std::make_unique<isal_zstream>()),
        level_buffer_(level_buffer_bytes(level)),
        output_(kOutputBlockBytes) {
    isal_deflate_init(stream_.get());
    stream_->level = static_cast<std::uint32_t>(level);
    stream_->level_buf = level_buffer_.empty() ? nullptr : level_buffer_.data();
    stream_->level_buf_size = static_cast<std::uint32_t>(level_buffer_.size());
    stream_->gzip_flag = IGZIP_GZIP_NO_HDR;
  }

  Result<void> encode(ByteSpan input, bool last, const ByteSink& out) override {
    if (!header_written_) {
      STRATA_TRY(out(ByteSpan(kGzipHeader)));
      header_written_ = true;
    }
    stream_->next_in = const_cast<std::uint8_t*>(input.data());  // ISA-L never writes input
    stream_->avail_in = static_cast<std::uint32_t>(input.size());
    stream_->end_of_stream = last ? 1 : 0;
    for (;;) {
      stream_->next_out = output_.data();
      stream_->avail_out = static_cast<std::uint32_t>(output_.size());
      const int status = isal_deflate(stream_.get());
      if (status != COMP_OK) {
        return make_error(ErrorCode::kInternal,
                          "ISA-L deflate failed with status " + std::to_string(status));
      }
      const std::size_t produced = output_.size() - stream_->avail_out;
      if (produced > 0) STRATA_TRY(out(ByteSpan(output_.data(), produced)));
      const bool input_done = stream_->avail_in == 0;
      if (last ? stream_->internal_state.state == ZSTATE_END
               : input_done && stream_->avail_out != 0) {
        return {};
      }
    }
  }

 private:
  std::unique_ptr<isal_zstream> stream_;
  std::vector<std::uint8_t> level_buffer_;
  std::vector<std::uint8_t> output_;
  bool header_written_ = false;
};

class ZlibGzipEncoder final : public StreamEncoder {
 public:
  ZlibGzipEncoder() : output_(kOutputBlockBytes) {}
  ~ZlibGzipEncoder() override {
    if (initialised_) deflateEnd(&stream_);
  }
  ZlibGzipEncoder(const ZlibGzipEncoder&) = delete;
  ZlibGzipEncoder& operator=(const ZlibGzipEncoder&) = delete;

  Result<void> init(int level) {
    constexpr int kGzipWindowBits = 15 + 16;  // +16: gzip wrapper instead of zlib's
    constexpr int kMemoryLevel = 8;           // zlib's default
    if (deflateInit2(&stream_, level, Z_DEFLATED, kGzipWindowBits, kMemoryLevel,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      return make_error(ErrorCode::kInternal, "zlib deflateInit2 failed");
    }
    initialised_ = true;
    return {};
  }

  Result<void> encode(ByteSpan input, bool last, const ByteSink& out) override {
    stream_.next_in = const_cast<Bytef*>(input.data());  // zlib never writes input
    stream_.avail_in = static_cast<uInt>(input.size());
    const int flush = last ? Z_FINISH : Z_NO_FLUSH;
    for (;;) {
      stream_.next_out = output_.data();
      stream_.avail_out = static_cast<uInt>(output_.size());
      const int status = deflate(&stream_, flush);
      if (status == Z_STREAM_ERROR) {
        return make_error(ErrorCode::kInternal, "zlib deflate failed");
      }
      const std::size_t produced = output_.size() - stream_.avail_out;
      if (produced > 0) STRATA_TRY(out(ByteSpan(output_.data(), produced)));
      if (last ? status == Z_STREAM_END : stream_.avail_in == 0 && stream_.avail_out != 0) {
        return {};
      }
    }
  }

 private:
  z_stream stream_{};
  bool initialised_ = false;
  std::vector<std::uint8_t> output_;
};

class IsalGzipDecoder final : public StreamDecoder {
 public:
  IsalGzipDecoder() : state_(std::make_unique<inflate_state>()), output_(kOutputBlockBytes) {
    isal_inflate_init(state_.get());
    state_->crc_flag = ISAL_GZIP;
  }

  Result<void> decode(ByteSpan input, const ByteSink& out) override {
    if (input.empty()) return {};
    if (state_->block_state == ISAL_BLOCK_FINISH) start_next_member();
    state_->next_in = const_cast<std::uint8_t*>(input.data());  // ISA-L never writes input
    state_->avail_in = static_cast<std::uint32_t>(input.size());
    for (;;) {
      state_->next_out = output_.data();
      state_->avail_out = static_cast<std::uint32_t>(output_.size());
      const std::uint32_t consumed_before = state_->avail_in;
      const int status = isal_inflate(state_.get());
      if (status < 0) return inflate_error(status);
      const std::size_t produced = output_.size() - state_->avail_out;
      if (produced > 0) STRATA_TRY(out(ByteSpan(output_.data(), produced)));
      if (state_->block_state == ISAL_BLOCK_FINISH) {
        if (state_->avail_in == 0) return {};
        start_next_member();
        continue;
      }
      if (state_->avail_in == 0 && state_->avail_out != 0) return {};
      if (produced == 0 && state_->avail_in == consumed_before) {
        return make_error(ErrorCode::kCorruptInput, "gzip stream makes no progress");
      }
    }
  }

  Result<void> finish() override {
    if (state_->block_state != ISAL_BLOCK_FINISH) {
      return make_error(ErrorCode::kCorruptInput, "gzip stream is truncated");
    }
    return {};
  }

 private:
  // RFC 1952 §2.2: a gzip file is a series of members (eStargz layers are built that way).
  // ISA-L hands back the bytes it read past a member's trailer, so the rest starts a new one.
  void start_next_member() {
    std::uint8_t* next_in = state_->next_in;
    const std::uint32_t avail_in = state_->avail_in;
    isal_inflate_reset(state_.get());
    state_->crc_flag = ISAL_GZIP;
    state_->next_in = next_in;
    state_->avail_in = avail_in;
  }
  static Error inflate_error(int status) {
    switch (status) {
      case ISAL_INVALID_WRAPPER: return make_error(ErrorCode::kCorruptInput, "not a gzip stream");
      case ISAL_UNSUPPORTED_METHOD:
        return make_error(ErrorCode::kCorruptInput, "gzip stream uses an unknown method");
      case ISAL_INCORRECT_CHECKSUM:
        return make_error(ErrorCode::kCorruptInput, "gzip CRC-32 or length trailer mismatch");
      default:
        return make_error(ErrorCode::kCorruptInput,
                          "invalid deflate data (ISA-L status " + std::to_string(status) + ")");
    }
  }

  std::unique_ptr<inflate_state> state_;
  std::vector<std::uint8_t> output_;
};

}  // namespace

Result<std::unique_ptr<StreamEncoder>> make_isal_gzip_encoder(int level) {
  if (level < ISAL_DEF_MIN_LEVEL || level > ISAL_DEF_MAX_LEVEL) {
    return make_error(ErrorCode::kInvalidArgument,
                      "ISA-L gzip level " + std::to_string(level) + " is outside 0..3");
  }
  return std::unique_ptr<StreamEncoder>(std::make_unique<IsalGzipEncoder>(level));
}

Result<std::unique_ptr<StreamEncoder>> make_zlib_gzip_encoder(int level) {
  if (level < 0 || level > 9) {
    return make_error(ErrorCode::kInvalidArgument,
                      "zlib gzip level " + std::to_string(level) + " is outside 0..9");
  }
  auto encoder = std::make_unique<ZlibGzipEncoder>();
  STRATA_TRY(encoder->init(level));
  return std::unique_ptr<StreamEncoder>(std::move(encoder));
}

Result<std::unique_ptr<StreamDecoder>> make_gzip_decoder() {
  return std::unique_ptr<StreamDecoder>(std::make_unique<IsalGzipDecoder>());
}

}  // namespace strata::oci::detail
