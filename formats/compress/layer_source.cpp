// Layer decompression (formats/compress/layer_source.h). gzip (RFC 1952) members are "1f 8b 08 ..."
// then deflate data then CRC32 and ISIZE (length mod 2^32), little-endian; ISA-L's isal_inflate
// with crc_flag ISAL_GZIP parses the member header and checks both trailer fields, and is reset for
// each following member. zstd (RFC 8878) frames start with 28 b5 2f fd, skippable frames with 5x 2a
// 4d 18 (x any hex digit); ZSTD_decompressStream walks both and returns 0 exactly when a frame is
// complete, which is how a truncated last frame is told from a clean end. The zstd window stays at
// libzstd's default limit (2^27), so a frame asking for more is refused before allocating.
#include "formats/compress/layer_source.h"

#include <isa-l/igzip_lib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {
namespace {

constexpr std::size_t kInputBufferSize = 1U << 20U;
constexpr std::uint8_t kGzipMagic[] = {0x1F, 0x8B};
constexpr std::uint8_t kZstdMagic[] = {0x28, 0xB5, 0x2F, 0xFD};
// Skippable frames (0x184D2A50..5F little-endian) may open a zstd stream too.
constexpr std::uint8_t kSkippableMagicTail[] = {0x2A, 0x4D, 0x18};

// Formats OCI layers do not use (xz, bzip2, lz4 frame), recognised by their full magic so they
// are refused as unsupported instead of surfacing as a garbled tar header (reliability.md §5.2
// item 18). bzip2's "BZh<level>" is only taken with the block or end-of-stream magic after it,
// so a tar whose first name merely starts with "BZh" is not misread.
const char* unsupported_compression(ByteSpan head) {
  constexpr std::uint8_t kXzMagic[] = {0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00};
  constexpr std::uint8_t kLz4Magic[] = {0x04, 0x22, 0x4D, 0x18};
  constexpr std::uint8_t kBzip2Block[] = {0x31, 0x41, 0x59, 0x26, 0x53, 0x59};
  constexpr std::uint8_t kBzip2End[] = {0x17, 0x72, 0x45, 0x38, 0x50, 0x90};
  const auto starts = [head](const std::uint8_t* magic, std::size_t size, std::size_t at) {
    return head.size() >= at + size && std::memcmp(head.data() + at, magic, size) == 0;
  };
  if (starts(kXzMagic, sizeof kXzMagic, 0)) return "xz";
  if (starts(kLz4Magic, sizeof kLz4Magic, 0)) return "lz4";
  if (head.size() >= 4 && head[0] == 'B' && head[1] == 'Z' && head[2] == 'h' && head[3] >= '1' &&
      head[3] <= '9' &&
      (starts(kBzip2Block, sizeof kBzip2Block, 4) || starts(kBzip2End, sizeof kBzip2End, 4))) {
    return "bzip2";
  }
  return nullptr;
}

bool starts_zstd(const std::uint8_t* head) {
  return std::memcmp(head, kZstdMagic, sizeof kZstdMagic) == 0 ||
         ((head[0] & 0xF0U) == 0x50 &&
          std::memcmp(head + 1, kSkippableMagicTail, sizeof kSkippableMagicTail) == 0);
}

struct ZstdContextDelete {
  void operator()(ZSTD_DCtx* context) const noexcept { ZSTD_freeDCtx(context); }
};

}  // namespace

struct LayerSource::State {
  std::unique_ptr<ByteSource> raw;
  LayerSourceOptions options;
  LayerCompression compression = LayerCompression::kNone;
  std::vector<std::uint8_t> input = std::vector<std::uint8_t>(kInputBufferSize);
  std::size_t input_begin = 0;
  std::size_t input_end = 0;
  bool raw_ended = false;
  bool finished = false;
  std::uint64_t compressed = 0;
  std::uint64_t uncompressed = 0;
  Sha256 compressed_hash;
  Digest compressed_digest;
  // gzip
  std::unique_ptr<inflate_state> inflate;
  bool between_members = true;
  std::uint64_t member_start = 0;  // compressed offset of the current gzip member
  // zstd
  std::unique_ptr<ZSTD_DCtx, ZstdContextDelete> zstd;
  bool frame_open = false;

  [[nodiscard]] std::size_t input_available() const { return input_end - input_begin; }

  void account_raw(ByteSpan bytes) {
    compressed += bytes.size();
    if (options.hash_compressed) compressed_hash.update(bytes);
  }

  // Makes at least `count` input bytes available unless the blob ends first.
  Result<void> refill(std::size_t count) {
    if (input_available() >= count || raw_ended) return {};
    if (input_begin > 0) {
      std::memmove(input.data(), input.data() + input_begin, input_available());
      input_end -= input_begin;
      input_begin = 0;
    }
    while (input_end < count && !raw_ended) {
      auto got = raw->read(MutableByteSpan(input.data() + input_end, input.size() - input_end));
      if (!got.ok()) return std::move(got).error();
      if (*got == 0) {
        raw_ended = true;
        break;
      }
      account_raw(ByteSpan(input.data() + input_end, *got));
      input_end += *got;
    }
    return {};
  }

  // Output room for one call: never more than one byte past the cap, so a bomb stops there.
  [[nodiscard]] std::size_t output_room(std::size_t wanted) const {
    const std::uint64_t below_cap = options.max_uncompressed_bytes - uncompressed;
    const std::uint64_t left =
        below_cap == std::numeric_limits<std::uint64_t>::max() ? below_cap : below_cap + 1;
    return static_cast<std::size_t>(
        std::min<std::uint64_t>({wanted, left, std::numeric_limits<std::uint32_t>::max()}));
  }

  Result<std::size_t> produced(std::size_t count) {
    uncompressed += count;
    if (uncompressed > options.max_uncompressed_bytes) {
      return make_error(ErrorCode::kLimitExceeded,
                        "decompressed layer exceeds the cap of " +
                            std::to_string(options.max_uncompressed_bytes) + " bytes");
    }
    return count;
  }

  Result<std::size_t> finish() {
    finished = true;
    if (options.hash_compressed) compressed_digest = compressed_hash.finish();
    return std::size_t{0};
  }

  [[nodiscard]] std::uint64_t compressed_offset() const { return compressed - input_available(); }

  Result<std::size_t> read_plain(MutableByteSpan out) {
    if (input_available() > 0) {
      const std::size_t count = std::min(out.size(), input_available());
      std::memcpy(out.data(), input.data() + input_begin, count);
      input_begin += count;
      return produced(count);
    }
    if (raw_ended) return finish();
    auto got = raw->read(out.first(output_room(out.size())));
    if (!got.ok()) return std::move(got).error();
    if (*got == 0) {
      raw_ended = true;
      return finish();
    }
    account_raw(ByteSpan(out.data(), *got));
    return produced(*got);
  }

  // The next decoded bytes, whatever the compression.
  Result<std::size_t> read_decoded(MutableByteSpan out) {
    if (out.empty() || finished) return std::size_t{0};
    switch (compression) {
      case LayerCompression::kNone: return read_plain(out);
      case LayerCompression::kGzip: return read_gzip(out);
      case LayerCompression::kZstd: return read_zstd(out);
    }
    return make_error(ErrorCode::kInternal, "unknown layer compression");
  }

  Result<std::size_t> read_gzip(MutableByteSpan out) {
    while (true) {
      if (between_members) {
        STRATA_TRY(refill(sizeof kGzipMagic));
        if (input_available() == 0) return finish();
        if (input_available() < sizeof kGzipMagic ||
            std::memcmp(input.data() + input_begin, kGzipMagic, sizeof kGzipMagic) != 0) {
          return make_error(ErrorCode::kCorruptInput,
                            "gzip: bytes at compressed offset " +
                                std::to_string(compressed_offset()) +
                                " after a complete member are not another gzip member");
        }
        isal_inflate_reset(inflate.get());
        inflate->crc_flag = ISAL_GZIP;
        between_members = false;
        member_start = compressed_offset();
      }
      if (input_available() == 0) STRATA_TRY(refill(1));
      const std::size_t room = output_room(out.size());
      inflate->next_in = input.data() + input_begin;
      inflate->avail_in = static_cast<std::uint32_t>(input_available());
      inflate->next_out = out.data();
      inflate->avail_out = static_cast<std::uint32_t>(room);
      const int status = isal_inflate(inflate.get());
      const auto consumed =
          static_cast<std::size_t>(inflate->next_in - (input.data() + input_begin));
      const std::size_t made = room - inflate->avail_out;
      input_begin += consumed;
      if (status < 0) {
        const char* why = status == ISAL_INCORRECT_CHECKSUM   ? "CRC32 or ISIZE trailer mismatch"
                          : status == ISAL_INVALID_WRAPPER    ? "invalid gzip header"
                          : status == ISAL_UNSUPPORTED_METHOD ? "unsupported compression method"
                                                              : "invalid deflate data";
        return make_error(ErrorCode::kCorruptInput,
                          std::string("gzip member at compressed offset ") +
                              std::to_string(member_start) + ": " + why);
      }
      if (inflate->block_state == ISAL_BLOCK_FINISH) between_members = true;
      if (made > 0) return produced(made);
      if (consumed == 0 && !between_members) {
        if (raw_ended && input_available() == 0) {
          return make_error(ErrorCode::kCorruptInput,
                            "gzip truncated: member at compressed offset " +
                                std::to_string(member_start) + " ends early (at " +
                                std::to_string(compressed) + " bytes)");
        }
        const std::size_t before = input_available();
        STRATA_TRY(refill(before + 1));
        if (input_available() == before && !raw_ended) {
          return make_error(ErrorCode::kInternal, "gzip: inflate made no progress");
        }
      }
    }
  }

  Result<std::size_t> read_zstd(MutableByteSpan out) {
    while (true) {
      if (input_available() == 0) STRATA_TRY(refill(1));
      const std::size_t room = output_room(out.size());
      ZSTD_inBuffer in{input.data() + input_begin, input_available(), 0};
      ZSTD_outBuffer output{out.data(), room, 0};
      const std::size_t status = ZSTD_decompressStream(zstd.get(), &output, &in);
      if (ZSTD_isError(status) != 0U) {
        // Between frames the only legal bytes are another frame: say so rather than passing on
        // zstd's "Unknown frame descriptor" (the gzip path words it the same way).
        if (!frame_open && ZSTD_getErrorCode(status) == ZSTD_error_prefix_unknown &&
            compressed_offset() > 0) {
          return make_error(ErrorCode::kCorruptInput,
                            "zstd: bytes at compressed offset " +
                                std::to_string(compressed_offset()) +
                                " after a complete frame are not another zstd frame");
        }
        const ErrorCode code = ZSTD_getErrorCode(status) == ZSTD_error_frameParameter_windowTooLarge
                                   ? ErrorCode::kLimitExceeded
                                   : ErrorCode::kCorruptInput;
        return make_error(code, "zstd near compressed offset " +
                                    std::to_string(compressed_offset()) + ": " +
                                    ZSTD_getErrorName(status));
      }
      input_begin += in.pos;
      if (in.pos > 0 || output.pos > 0) frame_open = status != 0;
      if (output.pos > 0) return produced(output.pos);
      if (in.pos == 0) {
        if (raw_ended && input_available() == 0) {
          if (frame_open) {
            return make_error(ErrorCode::kCorruptInput,
                              "zstd truncated: the last frame ends early (at " +
                                  std::to_string(compressed) + " compressed bytes)");
          }
          return finish();
        }
        const std::size_t before = input_available();
        STRATA_TRY(refill(before + 1));
        if (input_available() == before && !raw_ended) {
          return make_error(ErrorCode::kInternal, "zstd: decompression made no progress");
        }
      }
    }
  }
};

// LayerSourceOptions::decode_ahead: a worker thread runs the decoder into blocks while the
// reader's thread takes the previous ones, so inflating overlaps with whatever the reader does
// with the bytes. The worker owns the State until it has pushed its last block; the reader sees
// only the blocks and the counters they carry. Memory: kDecodeAheadDepth blocks plus the one
// being read.
constexpr std::size_t kDecodeAheadBlockBytes = std::size_t{1} << 20U;
constexpr std::size_t kDecodeAheadDepth = 4;

class DecodeAhead {
 public:
  explicit DecodeAhead(LayerSource::State& state) : state_(state), worker_([this] { run(); }) {}
  DecodeAhead(const DecodeAhead&) = delete;
  DecodeAhead& operator=(const DecodeAhead&) = delete;
  ~DecodeAhead() {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    room_.notify_all();
    worker_.join();
  }

  Result<std::size_t> read(MutableByteSpan out) {
    if (out.empty()) return std::size_t{0};
    while (used_ == current_.size) {
      if (current_.last) {
        if (!current_.status.ok()) return current_.status.error();
        finished_ = true;
        return std::size_t{0};
      }
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return !full_.empty(); });
        current_ = std::move(full_.front());
        full_.pop_front();
      }
      room_.notify_one();
      used_ = 0;
      compressed_ = current_.compressed_after;
    }
    const std::size_t n = std::min(out.size(), current_.size - used_);
    std::memcpy(out.data(), current_.bytes.data() + used_, n);
    used_ += n;
    uncompressed_ += n;
    return n;
  }

  [[nodiscard]] std::uint64_t compressed() const noexcept { return compressed_; }
  [[nodiscard]] std::uint64_t uncompressed() const noexcept { return uncompressed_; }
  [[nodiscard]] bool finished() const noexcept { return finished_; }

 private:
  struct Block {
    std::vector<std::uint8_t> bytes;
    std::size_t size = 0;
    std::uint64_t compressed_after = 0;  // blob bytes read once this block was decoded
    bool last = false;                   // the end of the layer, or the error in `status`
    Result<void> status;
  };

  void run() {
    for (;;) {
      Block block;
      block.bytes.resize(kDecodeAheadBlockBytes);
      while (block.size < block.bytes.size()) {
        auto got = state_.read_decoded(MutableByteSpan(block.bytes).subspan(block.size));
        if (!got.ok()) {
          block.status = std::move(got).error();
          block.last = true;
          break;
        }
        if (*got == 0) {
          block.last = true;
          break;
        }
        block.size += *got;
      }
      block.compressed_after = state_.compressed;
      const bool last = block.last;
      {
        std::unique_lock lock(mutex_);
        room_.wait(lock, [this] { return stop_ || full_.size() < kDecodeAheadDepth; });
        if (stop_) return;
        full_.push_back(std::move(block));
      }
      ready_.notify_one();
      if (last) return;
    }
  }

  LayerSource::State& state_;
  std::mutex mutex_;
  std::condition_variable ready_;  // a block was pushed
  std::condition_variable room_;   // a block was taken, or stop_
  std::deque<Block> full_;
  bool stop_ = false;
  // The reader's side.
  Block current_;
  std::size_t used_ = 0;
  std::uint64_t compressed_ = 0;
  std::uint64_t uncompressed_ = 0;
  bool finished_ = false;
  std::thread worker_;  // last: started once everything above exists
};

std::string_view layer_compression_name(LayerCompression compression) noexcept {
  switch (compression) {
    case LayerCompression::kNone: return "none";
    case LayerCompression::kGzip: return "gzip";
    case LayerCompression::kZstd: return "zstd";
  }
  return "unknown";
}

LayerSource::LayerSource(std::unique_ptr<State> state) : state_(std::move(state)) {
  if (state_->options.decode_ahead && state_->compression != LayerCompression::kNone) {
    decode_ahead_ = std::make_unique<DecodeAhead>(*state_);
  }
}
LayerSource::~LayerSource() {
  decode_ahead_.reset();  // joins the worker before the state it uses goes
}

Result<std::unique_ptr<LayerSource>> LayerSource::open_path(const std::string& path,
                                                            const LayerSourceOptions& options) {
  auto file = FdByteSource::open(path);
  if (!file.ok()) return std::move(file).error();
  return open(std::make_unique<FdByteSource>(std::move(*file)), options);
}

Result<std::unique_ptr<LayerSource>> LayerSource::open(std::unique_ptr<ByteSource> raw,
                                                       const LayerSourceOptions& options) {
  if (raw == nullptr) return make_error(ErrorCode::kInvalidArgument, "layer source is null");
  auto state = std::make_unique<State>();
  state->raw = std::move(raw);
  state->options = options;
  STRATA_TRY(state->refill(10));
  const std::uint8_t* head = state->input.data();
  if (const char* format = unsupported_compression(ByteSpan(head, state->input_available()))) {
    return make_error(ErrorCode::kUnsupported, std::string(format) +
                                                   "-compressed layers are not supported "
                                                   "(only tar, gzip and zstd)");
  }
  if (state->input_available() >= sizeof kGzipMagic &&
      std::memcmp(head, kGzipMagic, sizeof kGzipMagic) == 0) {
    state->compression = LayerCompression::kGzip;
    state->inflate = std::make_unique<inflate_state>();
    isal_inflate_init(state->inflate.get());
  } else if (state->input_available() >= sizeof kZstdMagic && starts_zstd(head)) {
    state->compression = LayerCompression::kZstd;
    state->zstd.reset(ZSTD_createDCtx());
    if (state->zstd == nullptr) {
      return make_error(ErrorCode::kInternal, "zstd: cannot allocate a decompression context");
    }
  }
  if (state->compression == LayerCompression::kNone && !state->options.hash_plain_tar) {
    state->options.hash_compressed = false;
  }
  return std::unique_ptr<LayerSource>(new LayerSource(std::move(state)));
}

Result<std::size_t> LayerSource::read(MutableByteSpan out) {
  if (decode_ahead_) return decode_ahead_->read(out);
  return state_->read_decoded(out);
}

LayerCompression LayerSource::compression() const noexcept {
  return state_->compression;
}
std::uint64_t LayerSource::compressed_bytes() const noexcept {
  return decode_ahead_ ? decode_ahead_->compressed() : state_->compressed;
}
std::uint64_t LayerSource::uncompressed_bytes() const noexcept {
  return decode_ahead_ ? decode_ahead_->uncompressed() : state_->uncompressed;
}
bool LayerSource::finished() const noexcept {
  return decode_ahead_ ? decode_ahead_->finished() : state_->finished;
}

Result<Digest> LayerSource::compressed_digest() const {
  if (!state_->options.hash_compressed) {
    return make_error(ErrorCode::kInvalidArgument, "compressed hashing was turned off");
  }
  if (!finished()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "compressed digest asked for before the end of the layer");
  }
  return state_->compressed_digest;
}

Result<StreamDigest> sha256_of_stream(ByteSource& source) {
  std::vector<std::uint8_t> buffer(kInputBufferSize);
  Sha256 hash;
  StreamDigest result;
  while (true) {
    auto got = source.read(buffer);
    if (!got.ok()) return std::move(got).error();
    if (*got == 0) break;
    hash.update(ByteSpan(buffer.data(), *got));
    result.size += *got;
  }
  result.digest = hash.finish();
  return result;
}

}  // namespace strata
