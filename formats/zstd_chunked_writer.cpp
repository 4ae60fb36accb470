// zstd:chunked writer (shared/specs/layer-formats.md §1.1-§1.4): the tar is cut into zstd frames
// so that every chunk of every regular file is a frame of its own (a puller fetches and decodes
// it alone) and the tar headers and padding between files form frames of their own; then the TOC,
// the tar-split (current variant) and the footer follow as skippable frames, which plain zstd
// decoders skip, so `zstd -d` of the blob gives back the tar byte for byte. Chunk frames the
// caller already holds (the store's) are copied after checking they are one frame of the right
// content size: no recompression.
#include <zstd.h>

#include <ctime>

#include "formats/byte_source.h"
#include "formats/tar_reader.h"
#include "formats/toc_json.h"
#include "strata/oci.h"

namespace strata::fastpull {
namespace {

constexpr std::uint32_t kSkippableMagic = 0x184D2A50U;
constexpr std::uint64_t kManifestTypeCrfs = 1;

void put_u32le(std::vector<std::uint8_t>& out, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}
void put_u64le(std::vector<std::uint8_t>& out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

Result<std::vector<std::uint8_t>> compress_frame(ZSTD_CCtx* context, ByteSpan raw, int level) {
  std::vector<std::uint8_t> out(ZSTD_compressBound(raw.size()));
  ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1);
  const std::size_t size = ZSTD_compress2(context, out.data(), out.size(), raw.data(), raw.size());
  if (ZSTD_isError(size) != 0U) {
    return make_error(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(size));
  }
  out.resize(size);
  return out;
}

bool is_single_frame_of(ByteSpan frame, std::uint64_t raw_length) {
  if (frame.empty()) return false;
  if (ZSTD_findFrameCompressedSize(frame.data(), frame.size()) != frame.size()) return false;
  return ZSTD_getFrameContentSize(frame.data(), frame.size()) == raw_length;
}

TocEntry toc_entry_of(const TarEntry& tar) {
  TocEntry entry;
  entry.type = detail::toc_type_of(tar.type);
  entry.name = tar.path;
  entry.link_name = tar.link_path;
  entry.mode = tar.mode;
  entry.uid = tar.uid;
  entry.gid = tar.gid;
  entry.modtime = detail::rfc3339(tar.mtime);
  entry.dev_major = tar.dev_major;
  entry.dev_minor = tar.dev_minor;
  for (const auto& [key, value] : tar.xattrs) {
    entry.xattrs[key] = detail::base64_encode(
        ByteSpan(reinterpret_cast<const std::uint8_t*>(value.data()), value.size()));
  }
  if (tar.type == TarEntryType::kRegular) entry.size = tar.size;
  return entry;
}

// Appends frames to the sink while counting the blob offset and hashing the blob.
class BlobOutput {
 public:
  explicit BlobOutput(const std::function<Result<void>(ByteSpan)>& sink) : sink_(sink) {}
  Result<void> write(ByteSpan bytes) {
    hash_.update(bytes);
    offset_ += bytes.size();
    return sink_(bytes);
  }
  [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
  Digest finish() { return hash_.finish(); }

 private:
  const std::function<Result<void>(ByteSpan)>& sink_;
  Sha256 hash_;
  std::uint64_t offset_ = 0;
};

struct ContextDeleter {
  void operator()(ZSTD_CCtx* context) const noexcept { ZSTD_freeCCtx(context); }
};

}  // namespace

Result<ChunkedWriteReport> write_zstd_chunked_layer(
    ByteSpan tar, std::span<const TarChunk> chunks, const ChunkFrameProvider& frames,
    const ChunkedWriteOptions& options, const std::function<Result<void>(ByteSpan)>& sink) {
  if (options.format == ChunkedFormat::kEstargz) {
    return make_error(ErrorCode::kInvalidArgument, "write_zstd_chunked_layer: not a zstd format");
  }
  const std::unique_ptr<ZSTD_CCtx, ContextDeleter> context(ZSTD_createCCtx());
  if (!context) return make_error(ErrorCode::kInternal, "zstd: cannot create a context");
  const bool with_tar_split = options.format == ChunkedFormat::kZstdChunked;

  ChunkedWriteReport report;
  BlobOutput out(sink);
  Toc toc;
  detail::TarSplitWriter tar_split;
  std::vector<std::uint8_t> pending;      // tar bytes waiting for their frame
  std::vector<std::uint8_t> pending_ts;   // raw bytes of the next tar-split segment
  std::vector<std::uint8_t> trailing_ts;  // bytes after the end blocks: tar-split's last segment
  std::size_t next_chunk = 0;

  const auto flush_pending = [&]() -> Result<void> {
    if (pending.empty()) return {};
    auto frame = compress_frame(context.get(), pending, options.level);
    if (!frame) return std::move(frame).error();
    ++report.compressed_frames;
    pending.clear();
    return out.write(*frame);
  };
  const auto write_chunk = [&](ByteSpan raw, const Digest& digest) -> Result<void> {
    std::vector<std::uint8_t> frame;
    if (frames) {
      auto provided = frames(digest, raw);
      if (!provided) return std::move(provided).error();
      frame = std::move(*provided);
    }
    if (is_single_frame_of(frame, raw.size())) {
      ++report.reused_frames;
    } else {
      auto compressed = compress_frame(context.get(), raw, options.level);
      if (!compressed) return std::move(compressed).error();
      frame = std::move(*compressed);
      ++report.compressed_frames;
    }
    return out.write(frame);
  };

  MemoryByteSource source(tar);
  TarReader reader(source);
  bool skip_content = false;
  for (;;) {
    auto event = reader.next();
    if (!event) return std::move(event).error();
    if (event->kind == TarEventKind::kDone) break;
    switch (event->kind) {
      case TarEventKind::kHeader: {
        const TarEntry& entry = *event->entry;
        pending.insert(pending.end(), event->bytes.begin(), event->bytes.end());
        pending_ts.insert(pending_ts.end(), event->bytes.begin(), event->bytes.end());
        if (with_tar_split) tar_split.add_segment(pending_ts);
        pending_ts.clear();
        const std::uint64_t content_start = event->offset + event->bytes.size();
        const ByteSpan content = tar.subspan(content_start, entry.size);
        if (with_tar_split) tar_split.add_file(entry.path, entry.size, content);
        skip_content = entry.type == TarEntryType::kRegular && entry.size != 0;
        TocEntry file = toc_entry_of(entry);
        if (!skip_content) {
          if (!file.type.empty()) toc.entries.push_back(std::move(file));
          break;
        }
        STRATA_TRY(flush_pending());
        file.digest = sha256_of(content);
        file.offset = out.offset();
        const std::size_t file_index = toc.entries.size();
        toc.entries.push_back(std::move(file));
        // Chunks inside this file, in order; runs not covered become chunks of their own.
        while (next_chunk < chunks.size() && chunks[next_chunk].tar_offset < content_start) {
          ++next_chunk;
        }
        std::uint64_t done = 0;
        std::size_t pieces = 0;
        while (done < entry.size) {
          std::uint64_t length = 0;
          Digest digest;
          const std::uint64_t at = content_start + done;
          if (next_chunk < chunks.size() && chunks[next_chunk].tar_offset == at &&
              chunks[next_chunk].length <= entry.size - done && chunks[next_chunk].length != 0) {
            length = chunks[next_chunk].length;
            digest = chunks[next_chunk].digest;
            ++next_chunk;
          } else {
            const std::uint64_t limit =
                next_chunk < chunks.size() && chunks[next_chunk].tar_offset > at &&
                        chunks[next_chunk].tar_offset < content_start + entry.size
                    ? chunks[next_chunk].tar_offset
                    : content_start + entry.size;
            length = limit - at;
            digest = sha256_of(tar.subspan(at, length));
          }
          const ByteSpan raw = tar.subspan(at, length);
          const std::uint64_t frame_offset = out.offset();
          STRATA_TRY(write_chunk(raw, digest));
          if (pieces == 0) {
            toc.entries[file_index].chunk_size = length;
            toc.entries[file_index].chunk_digest = digest;
          } else {
            TocEntry chunk;
            chunk.type = "chunk";
            chunk.name = entry.path;
            chunk.offset = frame_offset;
            chunk.chunk_size = length;
            chunk.chunk_offset = done;
            chunk.chunk_digest = digest;
            toc.entries.push_back(std::move(chunk));
          }
          ++pieces;
          done += length;
        }
        toc.entries[file_index].end_offset = out.offset();
        if (pieces == 1) {
          // A single-chunk file carries no chunk fields (c/storage, layer-formats.md §1.2).
          toc.entries[file_index].chunk_size = 0;
          toc.entries[file_index].chunk_digest.reset();
        }
        break;
      }
      case TarEventKind::kContent:
        if (!skip_content) {
          pending.insert(pending.end(), event->bytes.begin(), event->bytes.end());
        }
        break;
      case TarEventKind::kPadding:
      case TarEventKind::kEndOfArchive:
        pending.insert(pending.end(), event->bytes.begin(), event->bytes.end());
        pending_ts.insert(pending_ts.end(), event->bytes.begin(), event->bytes.end());
        break;
      case TarEventKind::kTrailingBytes:
        pending.insert(pending.end(), event->bytes.begin(), event->bytes.end());
        trailing_ts.insert(trailing_ts.end(), event->bytes.begin(), event->bytes.end());
        break;
      case TarEventKind::kDone: break;
    }
  }
  STRATA_TRY(flush_pending());
  if (with_tar_split) {
    // Go's archive/tar hands the end blocks (with the last padding) as one segment, then
    // tar-split adds whatever follows them as a last segment, empty or not.
    tar_split.add_segment(pending_ts);
    tar_split.add_segment(trailing_ts);
  }

  // Skippable frames: TOC, tar-split, footer.
  const auto write_skippable = [&](ByteSpan payload) -> Result<std::uint64_t> {
    std::vector<std::uint8_t> header;
    put_u32le(header, kSkippableMagic);
    put_u32le(header, static_cast<std::uint32_t>(payload.size()));
    STRATA_TRY(out.write(header));
    const std::uint64_t at = out.offset();
    STRATA_TRY(out.write(payload));
    return at;
  };
  std::vector<std::uint8_t> tar_split_frame;
  if (with_tar_split) {
    const std::string& text = tar_split.text();
    auto compressed = compress_frame(
        context.get(), ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()),
        options.level);
    if (!compressed) return std::move(compressed).error();
    tar_split_frame = std::move(*compressed);
    toc.tar_split_digest = sha256_of(tar_split_frame);
  }
  const std::string toc_json = detail::write_toc_json(toc);
  auto toc_frame = compress_frame(
      context.get(),
      ByteSpan(reinterpret_cast<const std::uint8_t*>(toc_json.data()), toc_json.size()),
      options.level);
  if (!toc_frame) return std::move(toc_frame).error();
  if (toc_frame->size() > 0xFFFFFFFFULL || tar_split_frame.size() > 0xFFFFFFFFULL) {
    return make_error(ErrorCode::kLimitExceeded, "zstd:chunked TOC or tar-split over 4 GiB");
  }
  auto toc_offset = write_skippable(*toc_frame);
  if (!toc_offset) return std::move(toc_offset).error();
  std::uint64_t tar_split_offset = 0;
  if (with_tar_split) {
    auto at = write_skippable(tar_split_frame);
    if (!at) return std::move(at).error();
    tar_split_offset = *at;
  }
  std::vector<std::uint8_t> footer;
  put_u64le(footer, *toc_offset);
  put_u64le(footer, toc_frame->size());
  put_u64le(footer, toc_json.size());
  put_u64le(footer, kManifestTypeCrfs);
  if (with_tar_split) {
    put_u64le(footer, tar_split_offset);
    put_u64le(footer, tar_split_frame.size());
    put_u64le(footer, tar_split.text().size());
    for (const char c : std::string_view("GNUlInUx"))
      footer.push_back(static_cast<std::uint8_t>(c));
  } else {
    for (const char c : std::string_view("GnUlInUx"))
      footer.push_back(static_cast<std::uint8_t>(c));
  }
  auto footer_at = write_skippable(footer);
  if (!footer_at) return std::move(footer_at).error();

  const Digest toc_digest = sha256_of(*toc_frame);
  const std::string position = std::to_string(*toc_offset) + ":" +
                               std::to_string(toc_frame->size()) + ":" +
                               std::to_string(toc_json.size()) + ":1";
  if (with_tar_split) {
    report.annotations[std::string(kZstdChunkedManifestChecksumKey)] = toc_digest.to_string();
    report.annotations[std::string(kZstdChunkedManifestPositionKey)] = position;
    report.annotations[std::string(kZstdChunkedTarSplitPositionKey)] =
        std::to_string(tar_split_offset) + ":" + std::to_string(tar_split_frame.size()) + ":" +
        std::to_string(tar_split.text().size());
  } else {
    report.annotations[std::string(kZstdChunkedV1ManifestChecksumKey)] = toc_digest.to_string();
    report.annotations[std::string(kZstdChunkedV1ManifestPositionKey)] = position;
  }
  report.media_type = std::string(oci::kMediaTypeLayerTarZstd);
  report.size = out.offset();
  report.digest = out.finish();
  report.diff_id = sha256_of(tar);
  report.uncompressed_size = tar.size();
  report.toc_entries = toc.entries.size();
  return report;
}

}  // namespace strata::fastpull
