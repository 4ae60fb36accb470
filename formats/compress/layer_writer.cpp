// Layer blobs from tar streams and back: LayerWriter hashes the uncompressed tar (the diff_id),
// compresses it with the chosen codec and hashes what it gives the sink (the blob digest);
// decode_layer() runs the other way for verification and for layers given as files. Input is
// regrouped into fixed 1 MiB blocks before it reaches an encoder, so the output depends only on
// the bytes and the options, never on how the caller split them. Facts: layer media types and
// diff_id in shared/specs/layer-formats.md §3.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "formats/compress/layer_writer_codecs.h"

namespace strata::oci {
namespace {

constexpr std::size_t kBlockBytes = std::size_t{1} << 20U;
constexpr std::uint8_t kGzipMagic[] = {0x1f, 0x8b};
constexpr std::uint8_t kZstdMagic[] = {0x28, 0xb5, 0x2f, 0xfd};

Result<std::unique_ptr<detail::StreamEncoder>> make_encoder(const LayerWriterOptions& options) {
  switch (options.compression) {
    case LayerCompression::kNone: return std::unique_ptr<detail::StreamEncoder>();
    case LayerCompression::kGzip:
      if (options.gzip_engine == GzipEngine::kZlib) {
        return detail::make_zlib_gzip_encoder(options.level.value_or(6));
      }
      return detail::make_isal_gzip_encoder(options.level.value_or(1));
    case LayerCompression::kZstd:
      return detail::make_zstd_encoder(options.level.value_or(3), options.threads);
  }
  return make_error(ErrorCode::kInvalidArgument, "unknown layer compression");
}

}  // namespace

struct LayerWriter::State {
  LayerWriterOptions options;
  ByteSink sink;
  std::unique_ptr<detail::StreamEncoder> encoder;
  std::vector<std::uint8_t> pending;
  Sha256 tar_hasher;
  Sha256 blob_hasher;
  std::uint64_t tar_bytes = 0;
  std::uint64_t blob_bytes = 0;
  bool finished = false;
  ByteSink counting_sink;
};

LayerWriter::LayerWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
LayerWriter::LayerWriter(LayerWriter&&) noexcept = default;
LayerWriter& LayerWriter::operator=(LayerWriter&&) noexcept = default;
LayerWriter::~LayerWriter() = default;

Result<LayerWriter> LayerWriter::create(const LayerWriterOptions& options, ByteSink sink) {
  if (!sink) return make_error(ErrorCode::kInvalidArgument, "layer writer needs a sink");
  if (options.threads == 0) {
    return make_error(ErrorCode::kInvalidArgument, "layer writer threads must be at least 1");
  }
  auto encoder = make_encoder(options);
  if (!encoder.ok()) return std::move(encoder).error();
  auto state = std::make_unique<State>();
  state->options = options;
  state->sink = std::move(sink);
  state->encoder = std::move(*encoder);
  state->pending.reserve(kBlockBytes);
  State* raw = state.get();
  state->counting_sink = [raw](ByteSpan bytes) -> Result<void> {
    raw->blob_hasher.update(bytes);
    raw->blob_bytes += bytes.size();
    return raw->sink(bytes);
  };
  return LayerWriter(std::move(state));
}

Result<void> LayerWriter::write(ByteSpan tar_bytes) {
  State& state = *state_;
  if (state.finished) return make_error(ErrorCode::kInvalidArgument, "layer writer finished");
  if (state.options.hash_tar) state.tar_hasher.update(tar_bytes);
  state.tar_bytes += tar_bytes.size();
  if (!state.encoder) return state.counting_sink(tar_bytes);
  while (!tar_bytes.empty()) {
    const std::size_t take = std::min(tar_bytes.size(), kBlockBytes - state.pending.size());
    state.pending.insert(state.pending.end(), tar_bytes.begin(),
                         tar_bytes.begin() + static_cast<std::ptrdiff_t>(take));
    tar_bytes = tar_bytes.subspan(take);
    if (state.pending.size() == kBlockBytes) {
      STRATA_TRY(state.encoder->encode(state.pending, false, state.counting_sink));
      state.pending.clear();
    }
  }
  return {};
}

Result<LayerDigests> LayerWriter::finish() {
  State& state = *state_;
  if (state.finished) return make_error(ErrorCode::kInvalidArgument, "layer writer finished");
  state.finished = true;
  if (state.encoder) {
    STRATA_TRY(state.encoder->encode(state.pending, true, state.counting_sink));
    state.pending.clear();
  }
  LayerDigests digests;
  digests.media_type = std::string(layer_media_type(state.options.compression));
  digests.digest = state.blob_hasher.finish();
  digests.size = state.blob_bytes;
  if (state.options.hash_tar) digests.diff_id = state.tar_hasher.finish();
  digests.uncompressed_size = state.tar_bytes;
  return digests;
}

LayerCompression detect_compression(ByteSpan head) noexcept {
  if (head.size() >= sizeof kGzipMagic && std::memcmp(head.data(), kGzipMagic, 2) == 0) {
    return LayerCompression::kGzip;
  }
  if (head.size() >= sizeof kZstdMagic && std::memcmp(head.data(), kZstdMagic, 4) == 0) {
    return LayerCompression::kZstd;
  }
  return LayerCompression::kNone;
}

Result<LayerDigests> decode_layer(LayerCompression compression, const ByteSource& source,
                                  const ByteSink& tar_sink, std::uint64_t max_uncompressed) {
  std::unique_ptr<detail::StreamDecoder> decoder;
  if (compression != LayerCompression::kNone) {
    auto made = compression == LayerCompression::kGzip ? detail::make_gzip_decoder()
                                                       : detail::make_zstd_decoder();
    if (!made.ok()) return std::move(made).error();
    decoder = std::move(*made);
  }
  Sha256 blob_hasher;
  Sha256 tar_hasher;
  LayerDigests digests;
  digests.media_type = std::string(layer_media_type(compression));
  const ByteSink tar_out = [&](ByteSpan bytes) -> Result<void> {
    digests.uncompressed_size += bytes.size();
    if (digests.uncompressed_size > max_uncompressed) {
      return make_error(ErrorCode::kLimitExceeded, "layer decompresses to more than " +
                                                       std::to_string(max_uncompressed) + " bytes");
    }
    tar_hasher.update(bytes);
    if (tar_sink) return tar_sink(bytes);
    return {};
  };
  std::vector<std::uint8_t> block(kBlockBytes);
  for (;;) {
    auto got = source(MutableByteSpan(block));
    if (!got.ok()) return std::move(got).error();
    if (*got == 0) break;
    const ByteSpan piece(block.data(), *got);
    blob_hasher.update(piece);
    digests.size += piece.size();
    if (decoder) {
      STRATA_TRY(decoder->decode(piece, tar_out));
    } else {
      STRATA_TRY(tar_out(piece));
    }
  }
  if (decoder) STRATA_TRY(decoder->finish());
  digests.digest = blob_hasher.finish();
  digests.diff_id = tar_hasher.finish();
  return digests;
}

Result<LayerDigests> decode_layer_file(const std::string& path, const ByteSink& tar_sink) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      "cannot open " + path + ": " + std::strerror(errno));
  }
  std::uint8_t head[4] = {};
  const ssize_t head_bytes = ::pread(fd, head, sizeof head, 0);
  const LayerCompression compression =
      detect_compression(ByteSpan(head, head_bytes > 0 ? static_cast<std::size_t>(head_bytes) : 0));
  const ByteSource source = [fd, &path](MutableByteSpan into) -> Result<std::size_t> {
    for (;;) {
      const ssize_t got = ::read(fd, into.data(), into.size());
      if (got >= 0) return static_cast<std::size_t>(got);
      if (errno != EINTR) {
        return make_error(ErrorCode::kIo, "cannot read " + path + ": " + std::strerror(errno));
      }
    }
  };
  auto decoded = decode_layer(compression, source, tar_sink);
  ::close(fd);
  if (!decoded.ok()) {
    return make_error(decoded.error().code, path + ": " + decoded.error().message);
  }
  return decoded;
}

}  // namespace strata::oci
