// zstd:chunked writer (shared/specs/layer-formats.md §1.1-§1.4): the tar is cut into zstd frames
// so that every chunk of every regular file is a frame of its own (a puller fetches and decodes
// it alone) and the tar headers and padding between files form frames of their own; then the TOC,
// the tar-split (current variant) and the footer follow as skippable frames, which plain zstd
// decoders skip, so `zstd -d` of the blob gives back the tar byte for byte. Chunk frames the
// caller already holds (the store's) are copied after checking they are one frame of the right
// content size: no recompression. Runs of 1 KiB or more of zeros inside file content become
// chunks of type "zeros" (c/storage's hole finder, §1.2): their frame stays in the stream, tiny,
// so `zstd -d` still gives the tar, and the TOC tells pullers to make them rather than fetch them.
// The tar is read as a stream and each chunk is written as it completes, so memory is bounded by
// the largest chunk (content_unit_assembler.h), not the layer.
#include <zstd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <ctime>

#include "core/base/byte_source.h"
#include "formats/chunked/content_unit_assembler.h"
#include "formats/chunked/toc_json.h"
#include "formats/tar/tar_reader.h"
#include "strata/oci.h"

namespace strata::fastpull {
namespace {

constexpr std::uint32_t kSkippableMagic = 0x184D2A50U;
constexpr std::uint64_t kManifestTypeCrfs = 1;
// c/storage's holesThreshold: a zero run at least this long is a chunk of its own (§1.2).
constexpr std::size_t kHolesThreshold = 1024;
constexpr std::string_view kZerosChunkType = "zeros";
constexpr std::size_t kZeroBlockBytes = std::size_t{64} << 10U;
constexpr std::uint8_t kZeroBlock[kZeroBlockBytes] = {};

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

// One frame of `length` zero bytes, fed from a fixed zero block: nothing of `length` is allocated.
Result<std::vector<std::uint8_t>> compress_zeros_frame(ZSTD_CCtx* context, std::uint64_t length,
                                                       int level) {
  ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setPledgedSrcSize(context, length);
  std::vector<std::uint8_t> out;
  std::vector<std::uint8_t> block(ZSTD_CStreamOutSize());
  std::uint64_t left = length;
  for (;;) {
    const std::size_t take =
        static_cast<std::size_t>(std::min<std::uint64_t>(left, kZeroBlockBytes));
    const ZSTD_EndDirective mode = take == left ? ZSTD_e_end : ZSTD_e_continue;
    ZSTD_inBuffer input{kZeroBlock, take, 0};
    std::size_t remaining = 0;
    do {
      ZSTD_outBuffer output{block.data(), block.size(), 0};
      remaining = ZSTD_compressStream2(context, &output, &input, mode);
      if (ZSTD_isError(remaining) != 0U) {
        return make_error(ErrorCode::kInternal,
                          std::string("zstd: ") + ZSTD_getErrorName(remaining));
      }
      out.insert(out.end(), block.begin(), block.begin() + static_cast<std::ptrdiff_t>(output.pos));
    } while (mode == ZSTD_e_end ? remaining != 0 : input.pos < input.size);
    left -= take;
    if (mode == ZSTD_e_end) return out;
  }
}

Digest digest_of_zeros(std::uint64_t length) {
  Sha256 hash;
  for (std::uint64_t left = length; left != 0;) {
    const std::size_t take =
        static_cast<std::size_t>(std::min<std::uint64_t>(left, kZeroBlockBytes));
    hash.update(ByteSpan(kZeroBlock, take));
    left -= take;
  }
  return hash.finish();
}

std::uint64_t load_word(const std::uint8_t* at) {
  std::uint64_t word = 0;
  std::memcpy(&word, at, sizeof word);
  return word;
}

std::size_t count_leading_zeros(ByteSpan bytes) {
  std::size_t at = 0;
  while (at + 8 <= bytes.size() && load_word(bytes.data() + at) == 0) at += 8;
  while (at < bytes.size() && bytes[at] == 0) ++at;
  return at;
}

struct ZeroRun {
  std::size_t offset = 0;
  std::size_t length = 0;
};

// The runs of at least kHolesThreshold zero bytes, in order. Words are tested eight bytes at a
// time; after a non-zero word the scan resumes just past its last non-zero byte.
std::vector<ZeroRun> find_zero_runs(ByteSpan bytes) {
  std::vector<ZeroRun> runs;
  std::size_t at = 0;
  while (at < bytes.size()) {
    if (at + 8 <= bytes.size()) {
      const std::uint64_t word = load_word(bytes.data() + at);
      if (word != 0) {
        const int last_nonzero = std::endian::native == std::endian::little
                                     ? 7 - std::countl_zero(word) / 8
                                     : 7 - std::countr_zero(word) / 8;
        at += static_cast<std::size_t>(last_nonzero) + 1;
        continue;
      }
    } else if (bytes[at] != 0) {
      ++at;
      continue;
    }
    const std::size_t length = count_leading_zeros(bytes.subspan(at));
    if (length >= kHolesThreshold) runs.push_back(ZeroRun{at, length});
    at += length;
  }
  return runs;
}

// Hashes and counts the tar bytes as the tar reader pulls them (the diff_id).
class HashingByteSource final : public ByteSource {
 public:
  HashingByteSource(const TarStreamReader& read, bool hash) : read_(read), hash_tar_(hash) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    auto got = read_(out);
    if (!got) return got;
    if (*got > out.size()) {
      return make_error(ErrorCode::kInvalidArgument, "tar reader returned more than asked");
    }
    if (hash_tar_) hash_.update(ByteSpan(out.data(), *got));
    bytes_ += *got;
    return got;
  }
  Digest finish() { return hash_tar_ ? hash_.finish() : Digest(); }
  [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  const TarStreamReader& read_;
  const bool hash_tar_;
  Sha256 hash_;
  std::uint64_t bytes_ = 0;
};

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
  std::size_t position = 0;
  return stream_zstd_chunked_layer(
      [&](MutableByteSpan out) -> Result<std::size_t> {
        const std::size_t n = std::min(out.size(), tar.size() - position);
        if (n != 0)
          std::copy_n(tar.begin() + static_cast<std::ptrdiff_t>(position), n, out.begin());
        position += n;
        return n;
      },
      chunks, frames, options, sink);
}

Result<ChunkedWriteReport> stream_zstd_chunked_layer(
    const TarStreamReader& tar, std::span<const TarChunk> chunks, const ChunkFrameProvider& frames,
    const ChunkedWriteOptions& options, const std::function<Result<void>(ByteSpan)>& sink) {
  return stream_zstd_chunked_layer_as_cut(
      tar,
      [chunks](std::size_t index, std::uint64_t horizon) -> const TarChunk* {
        if (index >= chunks.size() || chunks[index].tar_offset >= horizon) return nullptr;
        return &chunks[index];
      },
      frames, options, sink);
}

Result<ChunkedWriteReport> stream_zstd_chunked_layer_as_cut(
    const TarStreamReader& tar, const TarChunkLookup& chunks, const ChunkFrameProvider& frames,
    const ChunkedWriteOptions& options, const std::function<Result<void>(ByteSpan)>& sink) {
  if (!chunks) return make_error(ErrorCode::kInvalidArgument, "zstd:chunked writer needs chunks");
  if (options.format == ChunkedFormat::kEstargz) {
    return make_error(ErrorCode::kInvalidArgument, "write_zstd_chunked_layer: not a zstd format");
  }
  if (!tar) return make_error(ErrorCode::kInvalidArgument, "zstd:chunked writer needs a tar");
  const std::unique_ptr<ZSTD_CCtx, ContextDeleter> context(ZSTD_createCCtx());
  if (!context) return make_error(ErrorCode::kInternal, "zstd: cannot create a context");
  const bool with_tar_split = !options.frames_only && options.format == ChunkedFormat::kZstdChunked;

  ChunkedWriteReport report;
  BlobOutput out(sink);
  Toc toc;
  detail::TarSplitWriter tar_split;
  std::vector<std::uint8_t> pending;      // tar bytes waiting for their frame
  std::vector<std::uint8_t> pending_ts;   // raw bytes of the next tar-split segment
  std::vector<std::uint8_t> trailing_ts;  // bytes after the end blocks: tar-split's last segment

  const auto flush_pending = [&]() -> Result<void> {
    if (pending.empty()) return {};
    auto frame = compress_frame(context.get(), pending, options.level);
    if (!frame) return std::move(frame).error();
    ++report.compressed_frames;
    pending.clear();
    return out.write(*frame);
  };

  // The TOC pieces of the file being written: the first goes into its reg entry, the others
  // become "chunk" entries (layer-formats.md §1.2).
  std::size_t file_index = 0;
  std::size_t pieces = 0;
  std::uint64_t file_done = 0;
  Sha256 file_hash;
  const auto add_piece = [&](std::uint64_t length, const Digest& digest, bool zeros,
                             std::uint64_t frame_offset) {
    if (pieces == 0) {
      toc.entries[file_index].chunk_size = length;
      toc.entries[file_index].chunk_digest = digest;
      if (zeros) toc.entries[file_index].chunk_type = std::string(kZerosChunkType);
    } else {
      TocEntry chunk;
      chunk.type = "chunk";
      chunk.name = toc.entries[file_index].name;
      chunk.offset = frame_offset;
      chunk.chunk_size = length;
      chunk.chunk_offset = file_done;
      chunk.chunk_digest = digest;
      if (zeros) chunk.chunk_type = std::string(kZerosChunkType);
      toc.entries.push_back(std::move(chunk));
    }
    ++pieces;
    file_done += length;
  };
  // A data piece: the caller's frame for a whole chunk of theirs (`digest` set), or compressed
  // here.
  const auto write_data = [&](ByteSpan raw, const Digest* digest) -> Result<void> {
    const Digest computed = digest != nullptr ? Digest() : sha256_of(raw);
    const Digest& chunk_digest = digest != nullptr ? *digest : computed;
    std::vector<std::uint8_t> frame;
    if (frames && digest != nullptr) {
      auto provided = frames(*digest, raw);
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
    const std::uint64_t frame_offset = out.offset();
    STRATA_TRY(out.write(frame));
    add_piece(raw.size(), chunk_digest, false, frame_offset);
    return {};
  };
  // A zeros piece still has its frame in the stream (so `zstd -d` gives the tar), a tiny one;
  // only the TOC marks it so pullers make the bytes instead of fetching them (§1.2, §1.5).
  std::uint64_t pending_zeros = 0;
  const auto flush_zeros = [&]() -> Result<void> {
    if (pending_zeros == 0) return {};
    auto frame = compress_zeros_frame(context.get(), pending_zeros, options.level);
    if (!frame) return std::move(frame).error();
    ++report.compressed_frames;
    const std::uint64_t frame_offset = out.offset();
    STRATA_TRY(out.write(*frame));
    add_piece(pending_zeros, digest_of_zeros(pending_zeros), true, frame_offset);
    pending_zeros = 0;
    return {};
  };
  // Data that ends in fewer than kHolesThreshold zeros is held until the next unit shows whether
  // they start a run (so a run across a chunk cut is found whole); `held_digest`: held is one
  // whole chunk of the caller's, whose frame may be reused.
  std::vector<std::uint8_t> held;
  std::optional<Digest> held_digest;
  const auto release_held = [&](std::size_t keep) -> Result<void> {
    if (keep == held.size() && held_digest) {
      STRATA_TRY(write_data(held, &*held_digest));
    } else if (keep != 0) {
      STRATA_TRY(write_data(ByteSpan(held).first(keep), nullptr));
    }
    held.clear();
    held_digest.reset();
    return {};
  };
  const auto write_or_hold = [&](ByteSpan data, const Digest* digest, bool last) -> Result<void> {
    if (last || data.back() != 0) return write_data(data, digest);
    held.assign(data.begin(), data.end());
    if (digest != nullptr) held_digest = *digest;
    return {};
  };
  // Splits a content unit at its zero runs of kHolesThreshold bytes or more (content no caller's
  // chunk covers, or every unit when split_chunks_at_zero_runs is set); a run touching the
  // unit's end stays open in pending_zeros, so runs across unit boundaries become one chunk.
  const auto write_unit = [&](const detail::ContentUnit& unit) -> Result<void> {
    const ByteSpan raw = unit.raw;
    file_hash.update(raw);
    const std::size_t leading = count_leading_zeros(raw);
    if (unit.digest != nullptr && !options.split_chunks_at_zero_runs) {
      // A caller's chunk is kept whole (a store holds it by that digest); only when it is all
      // zeros does it become (part of) a zeros chunk.
      STRATA_TRY(release_held(held.size()));
      if (leading == raw.size() && (pending_zeros != 0 || leading >= kHolesThreshold)) {
        pending_zeros += leading;
      } else {
        STRATA_TRY(flush_zeros());
        STRATA_TRY(write_data(raw, unit.digest));
      }
      if (unit.last) STRATA_TRY(flush_zeros());
      return {};
    }
    if (!held.empty()) {
      const std::size_t tail =
          held.size() - static_cast<std::size_t>(std::find_if(held.rbegin(), held.rend(),
                                                              [](std::uint8_t b) { return b != 0; })
                                                     .base() -
                                                 held.begin());
      const bool joins = tail + leading >= kHolesThreshold;
      STRATA_TRY(release_held(joins ? held.size() - tail : held.size()));
      if (joins) pending_zeros = tail;
    }
    std::size_t start = 0;
    if (pending_zeros != 0 || leading >= kHolesThreshold) {
      pending_zeros += leading;
      start = leading;
      if (start < raw.size()) STRATA_TRY(flush_zeros());
    }
    if (start < raw.size()) {
      const auto runs = find_zero_runs(raw.subspan(start));
      if (start == 0 && runs.empty()) {
        STRATA_TRY(write_or_hold(raw, unit.digest, unit.last));
      } else {
        std::size_t at = start;
        for (const ZeroRun& run : runs) {
          const std::size_t run_start = start + run.offset;
          if (run_start > at) STRATA_TRY(write_data(raw.subspan(at, run_start - at), nullptr));
          pending_zeros = run.length;
          at = run_start + run.length;
          if (at < raw.size()) STRATA_TRY(flush_zeros());
        }
        if (at < raw.size()) STRATA_TRY(write_or_hold(raw.subspan(at), nullptr, unit.last));
      }
    }
    if (unit.last) STRATA_TRY(flush_zeros());
    return {};
  };

  HashingByteSource source(tar, options.hash_tar);
  TarReader reader(source);
  detail::ContentUnitAssembler units(chunks);
  bool in_file = false;
  std::uint64_t file_size = 0;
  // The tar-split line of the entry being read: written once its content's CRC-64 is known.
  std::string body_name;
  std::uint64_t body_size = 0;
  std::uint64_t body_left = 0;
  std::uint64_t body_crc = 0;
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
        in_file = entry.type == TarEntryType::kRegular && entry.size != 0;
        body_name = entry.path;
        body_size = entry.size;
        body_left = entry.size;
        body_crc = 0;
        if (with_tar_split && entry.size == 0) tar_split.add_file_crc(entry.path, 0, 0);
        TocEntry file = toc_entry_of(entry);
        if (!in_file) {
          if (!file.type.empty()) toc.entries.push_back(std::move(file));
          break;
        }
        STRATA_TRY(flush_pending());
        file.offset = out.offset();
        file_index = toc.entries.size();
        toc.entries.push_back(std::move(file));
        pieces = 0;
        file_done = 0;
        file_size = entry.size;
        units.begin_file(event->offset + event->bytes.size(), entry.size);
        break;
      }
      case TarEventKind::kContent:
        body_left -= event->bytes.size();
        if (with_tar_split) {
          body_crc = detail::crc64_iso(body_crc, event->bytes);
          if (body_left == 0) tar_split.add_file_crc(body_name, body_size, body_crc);
        }
        if (!in_file) {
          pending.insert(pending.end(), event->bytes.begin(), event->bytes.end());
          break;
        }
        STRATA_TRY(units.add(event->bytes, write_unit));
        if (file_done == file_size) {
          // The file is complete: its digest, end, and the chunk fields only a chunked file has.
          TocEntry& file = toc.entries[file_index];
          file.digest = file_hash.finish();
          file.end_offset = out.offset();
          if (pieces == 1) {
            file.chunk_size = 0;
            file.chunk_digest.reset();
            file.chunk_type.clear();
          }
          in_file = false;
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

  report.media_type = std::string(oci::kMediaTypeLayerTarZstd);
  if (options.frames_only) {
    report.size = out.offset();
    report.digest = out.finish();
    report.diff_id = source.finish();
    report.uncompressed_size = source.bytes();
    return report;
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
  report.size = out.offset();
  report.digest = out.finish();
  report.diff_id = source.finish();
  report.uncompressed_size = source.bytes();
  report.toc_entries = toc.entries.size();
  return report;
}

}  // namespace strata::fastpull
