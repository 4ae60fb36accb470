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
  explicit BlobOutput(const ByteSink& sink) : sink_(sink) {}
  Result<void> write(ByteSpan bytes) {
    hash_.update(bytes);
    offset_ += bytes.size();
    return sink_(bytes);
  }
  [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
  Digest finish() { return hash_.finish(); }

 private:
  const ByteSink& sink_;
  Sha256 hash_;
  std::uint64_t offset_ = 0;
};

struct ContextDeleter {
  void operator()(ZSTD_CCtx* context) const noexcept { ZSTD_freeCCtx(context); }
};

// Where the TOC and tar-split frames lie in the blob (past their skippable-frame headers) and
// how long they are compressed and raw: the footer and the annotations name them (§1.4).
struct TrailerPositions {
  std::uint64_t toc_offset = 0;
  std::uint64_t toc_size = 0;
  std::uint64_t toc_raw_size = 0;
  std::uint64_t tar_split_offset = 0;
  std::uint64_t tar_split_size = 0;
  std::uint64_t tar_split_raw_size = 0;
};

// The footer payload: TOC position, manifest type, and for the current variant the tar-split
// position and the "GNUlInUx" magic ("GnUlInUx" for v1 without tar-split).
std::vector<std::uint8_t> footer_of(const TrailerPositions& at, bool with_tar_split) {
  std::vector<std::uint8_t> footer;
  put_u64le(footer, at.toc_offset);
  put_u64le(footer, at.toc_size);
  put_u64le(footer, at.toc_raw_size);
  put_u64le(footer, kManifestTypeCrfs);
  if (with_tar_split) {
    put_u64le(footer, at.tar_split_offset);
    put_u64le(footer, at.tar_split_size);
    put_u64le(footer, at.tar_split_raw_size);
    for (const char c : std::string_view("GNUlInUx"))
      footer.push_back(static_cast<std::uint8_t>(c));
  } else {
    for (const char c : std::string_view("GnUlInUx"))
      footer.push_back(static_cast<std::uint8_t>(c));
  }
  return footer;
}

// The manifest annotations that let a puller find the TOC (and tar-split) without the footer.
void annotate_trailer(ChunkedWriteReport& report, const TrailerPositions& at,
                      const Digest& toc_digest, bool with_tar_split) {
  const std::string position = std::to_string(at.toc_offset) + ":" + std::to_string(at.toc_size) +
                               ":" + std::to_string(at.toc_raw_size) + ":1";
  if (with_tar_split) {
    report.annotations[std::string(kZstdChunkedManifestChecksumKey)] = toc_digest.to_string();
    report.annotations[std::string(kZstdChunkedManifestPositionKey)] = position;
    report.annotations[std::string(kZstdChunkedTarSplitPositionKey)] =
        std::to_string(at.tar_split_offset) + ":" + std::to_string(at.tar_split_size) + ":" +
        std::to_string(at.tar_split_raw_size);
  } else {
    report.annotations[std::string(kZstdChunkedV1ManifestChecksumKey)] = toc_digest.to_string();
    report.annotations[std::string(kZstdChunkedV1ManifestPositionKey)] = position;
  }
}

ByteSpan bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// One zstd:chunked blob being written, in three stages: the tar events (headers and padding into
// frames of their own, tar-split segments), the content units of each regular file (data and
// zeros frames, TOC pieces), and the trailer (TOC, tar-split and footer as skippable frames).
class ZstdChunkedBlobWriter {
 public:
  ZstdChunkedBlobWriter(ZSTD_CCtx* context, const TarChunkLookup& chunks,
                        const ChunkFrameProvider& frames, const ChunkedWriteOptions& options,
                        const std::function<Result<void>(ByteSpan)>& sink)
      : context_(context),
        frames_(frames),
        options_(options),
        with_tar_split_(!options.frames_only && options.format == ChunkedFormat::kZstdChunked),
        out_(sink),
        units_(chunks) {}

  Result<ChunkedWriteReport> write(const TarStreamReader& tar);

 private:
  // Stage 1: the tar, event by event.
  Result<void> write_tar_events(TarReader& reader);
  Result<void> write_header(const TarEvent& event);
  Result<void> write_content(const TarEvent& event);
  void finish_file();
  void finish_tar_split();
  Result<void> flush_pending();
  // Stage 2: a regular file's content units.
  Result<void> write_unit(const detail::ContentUnit& unit);
  Result<void> write_whole_chunk(const detail::ContentUnit& unit, std::size_t leading);
  Result<void> write_split_unit(const detail::ContentUnit& unit, std::size_t leading);
  Result<void> write_data(ByteSpan raw, const Digest* digest);
  Result<void> flush_zeros();
  Result<void> release_held(std::size_t keep);
  Result<void> write_or_hold(ByteSpan data, const Digest* digest, bool last);
  void add_piece(std::uint64_t length, const Digest& digest, bool zeros,
                 std::uint64_t frame_offset);
  // Stage 3: the trailer.
  Result<void> write_trailer();
  Result<std::uint64_t> write_skippable(ByteSpan payload);

  ZSTD_CCtx* context_;
  const ChunkFrameProvider& frames_;
  const ChunkedWriteOptions& options_;
  const bool with_tar_split_;
  ChunkedWriteReport report_;
  BlobOutput out_;
  Toc toc_;
  detail::TarSplitWriter tar_split_;
  detail::ContentUnitAssembler units_;
  std::vector<std::uint8_t> pending_;      // tar bytes waiting for their frame
  std::vector<std::uint8_t> pending_ts_;   // raw bytes of the next tar-split segment
  std::vector<std::uint8_t> trailing_ts_;  // bytes after the end blocks: tar-split's last segment

  // The regular file being written. Its TOC pieces: the first goes into its reg entry, the
  // others become "chunk" entries (layer-formats.md §1.2).
  bool in_file_ = false;
  std::uint64_t file_size_ = 0;
  std::size_t file_index_ = 0;
  std::size_t pieces_ = 0;
  std::uint64_t file_done_ = 0;
  Sha256 file_hash_;
  // A zeros piece still has its frame in the stream (so `zstd -d` gives the tar), a tiny one;
  // only the TOC marks it so pullers make the bytes instead of fetching them (§1.2, §1.5).
  std::uint64_t pending_zeros_ = 0;
  // Data that ends in fewer than kHolesThreshold zeros is held until the next unit shows whether
  // they start a run (so a run across a chunk cut is found whole); `held_digest_`: held is one
  // whole chunk of the caller's, whose frame may be reused.
  std::vector<std::uint8_t> held_;
  std::optional<Digest> held_digest_;

  // The tar-split line of the entry being read: written once its content's CRC-64 is known.
  std::string body_name_;
  std::uint64_t body_size_ = 0;
  std::uint64_t body_left_ = 0;
  std::uint64_t body_crc_ = 0;
};

Result<ChunkedWriteReport> ZstdChunkedBlobWriter::write(const TarStreamReader& tar) {
  HashingByteSource source(tar, options_.hash_tar);
  TarReader reader(source);
  STRATA_TRY(write_tar_events(reader));
  STRATA_TRY(flush_pending());
  finish_tar_split();

  report_.media_type = std::string(oci::kMediaTypeLayerTarZstd);
  if (!options_.frames_only) {
    STRATA_TRY(write_trailer());
    report_.toc_entries = toc_.entries.size();
  }
  report_.size = out_.offset();
  report_.digest = out_.finish();
  report_.diff_id = source.finish();
  report_.uncompressed_size = source.bytes();
  return std::move(report_);
}

Result<void> ZstdChunkedBlobWriter::write_tar_events(TarReader& reader) {
  for (;;) {
    auto event = reader.next();
    if (!event) return std::move(event).error();
    switch (event->kind) {
      case TarEventKind::kHeader: STRATA_TRY(write_header(*event)); break;
      case TarEventKind::kContent: STRATA_TRY(write_content(*event)); break;
      case TarEventKind::kPadding:
      case TarEventKind::kEndOfArchive:
        pending_.insert(pending_.end(), event->bytes.begin(), event->bytes.end());
        pending_ts_.insert(pending_ts_.end(), event->bytes.begin(), event->bytes.end());
        break;
      case TarEventKind::kTrailingBytes:
        pending_.insert(pending_.end(), event->bytes.begin(), event->bytes.end());
        trailing_ts_.insert(trailing_ts_.end(), event->bytes.begin(), event->bytes.end());
        break;
      case TarEventKind::kDone: return {};
    }
  }
}

// A header group: its bytes join the pending frame and close a tar-split segment; a regular
// file with content starts its own frames (the pending ones are flushed first).
Result<void> ZstdChunkedBlobWriter::write_header(const TarEvent& event) {
  const TarEntry& entry = *event.entry;
  pending_.insert(pending_.end(), event.bytes.begin(), event.bytes.end());
  pending_ts_.insert(pending_ts_.end(), event.bytes.begin(), event.bytes.end());
  if (with_tar_split_) tar_split_.add_segment(pending_ts_);
  pending_ts_.clear();
  in_file_ = entry.type == TarEntryType::kRegular && entry.size != 0;
  body_name_ = entry.path;
  body_size_ = entry.size;
  body_left_ = entry.size;
  body_crc_ = 0;
  if (with_tar_split_ && entry.size == 0) tar_split_.add_file_crc(entry.path, 0, 0);
  TocEntry file = toc_entry_of(entry);
  if (!in_file_) {
    if (!file.type.empty()) toc_.entries.push_back(std::move(file));
    return {};
  }
  STRATA_TRY(flush_pending());
  file.offset = out_.offset();
  file_index_ = toc_.entries.size();
  toc_.entries.push_back(std::move(file));
  pieces_ = 0;
  file_done_ = 0;
  file_size_ = entry.size;
  units_.begin_file(event.offset + event.bytes.size(), entry.size);
  return {};
}

Result<void> ZstdChunkedBlobWriter::write_content(const TarEvent& event) {
  body_left_ -= event.bytes.size();
  if (with_tar_split_) {
    body_crc_ = detail::crc64_iso(body_crc_, event.bytes);
    if (body_left_ == 0) tar_split_.add_file_crc(body_name_, body_size_, body_crc_);
  }
  if (!in_file_) {
    pending_.insert(pending_.end(), event.bytes.begin(), event.bytes.end());
    return {};
  }
  STRATA_TRY(units_.add(event.bytes,
                        [this](const detail::ContentUnit& unit) { return write_unit(unit); }));
  if (file_done_ == file_size_) finish_file();
  return {};
}

// The file is complete: its digest, end, and the chunk fields only a chunked file has.
void ZstdChunkedBlobWriter::finish_file() {
  TocEntry& file = toc_.entries[file_index_];
  file.digest = file_hash_.finish();
  file.end_offset = out_.offset();
  if (pieces_ == 1) {
    file.chunk_size = 0;
    file.chunk_digest.reset();
    file.chunk_type.clear();
  }
  in_file_ = false;
}

void ZstdChunkedBlobWriter::finish_tar_split() {
  if (!with_tar_split_) return;
  // Go's archive/tar hands the end blocks (with the last padding) as one segment, then
  // tar-split adds whatever follows them as a last segment, empty or not.
  tar_split_.add_segment(pending_ts_);
  tar_split_.add_segment(trailing_ts_);
}

Result<void> ZstdChunkedBlobWriter::flush_pending() {
  if (pending_.empty()) return {};
  auto frame = compress_frame(context_, pending_, options_.level);
  if (!frame) return std::move(frame).error();
  ++report_.compressed_frames;
  pending_.clear();
  return out_.write(*frame);
}

// Splits a content unit at its zero runs of kHolesThreshold bytes or more (content no caller's
// chunk covers, or every unit when split_chunks_at_zero_runs is set); a run touching the
// unit's end stays open in pending_zeros_, so runs across unit boundaries become one chunk.
Result<void> ZstdChunkedBlobWriter::write_unit(const detail::ContentUnit& unit) {
  file_hash_.update(unit.raw);
  const std::size_t leading = count_leading_zeros(unit.raw);
  if (unit.digest != nullptr && !options_.split_chunks_at_zero_runs) {
    return write_whole_chunk(unit, leading);
  }
  return write_split_unit(unit, leading);
}

// A caller's chunk is kept whole (a store holds it by that digest); only when it is all zeros
// does it become (part of) a zeros chunk.
Result<void> ZstdChunkedBlobWriter::write_whole_chunk(const detail::ContentUnit& unit,
                                                      std::size_t leading) {
  const ByteSpan raw = unit.raw;
  STRATA_TRY(release_held(held_.size()));
  if (leading == raw.size() && (pending_zeros_ != 0 || leading >= kHolesThreshold)) {
    pending_zeros_ += leading;
  } else {
    STRATA_TRY(flush_zeros());
    STRATA_TRY(write_data(raw, unit.digest));
  }
  if (unit.last) STRATA_TRY(flush_zeros());
  return {};
}

Result<void> ZstdChunkedBlobWriter::write_split_unit(const detail::ContentUnit& unit,
                                                     std::size_t leading) {
  const ByteSpan raw = unit.raw;
  if (!held_.empty()) {
    const std::size_t tail =
        held_.size() - static_cast<std::size_t>(std::find_if(held_.rbegin(), held_.rend(),
                                                             [](std::uint8_t b) { return b != 0; })
                                                    .base() -
                                                held_.begin());
    const bool joins = tail + leading >= kHolesThreshold;
    STRATA_TRY(release_held(joins ? held_.size() - tail : held_.size()));
    if (joins) pending_zeros_ = tail;
  }
  std::size_t start = 0;
  if (pending_zeros_ != 0 || leading >= kHolesThreshold) {
    pending_zeros_ += leading;
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
        pending_zeros_ = run.length;
        at = run_start + run.length;
        if (at < raw.size()) STRATA_TRY(flush_zeros());
      }
      if (at < raw.size()) STRATA_TRY(write_or_hold(raw.subspan(at), nullptr, unit.last));
    }
  }
  if (unit.last) STRATA_TRY(flush_zeros());
  return {};
}

// A data piece: the caller's frame for a whole chunk of theirs (`digest` set), or compressed here.
Result<void> ZstdChunkedBlobWriter::write_data(ByteSpan raw, const Digest* digest) {
  const Digest computed = digest != nullptr ? Digest() : sha256_of(raw);
  const Digest& chunk_digest = digest != nullptr ? *digest : computed;
  std::vector<std::uint8_t> frame;
  if (frames_ && digest != nullptr) {
    auto provided = frames_(*digest, raw);
    if (!provided) return std::move(provided).error();
    frame = std::move(*provided);
  }
  if (is_single_frame_of(frame, raw.size())) {
    ++report_.reused_frames;
  } else {
    auto compressed = compress_frame(context_, raw, options_.level);
    if (!compressed) return std::move(compressed).error();
    frame = std::move(*compressed);
    ++report_.compressed_frames;
  }
  const std::uint64_t frame_offset = out_.offset();
  STRATA_TRY(out_.write(frame));
  add_piece(raw.size(), chunk_digest, false, frame_offset);
  return {};
}

Result<void> ZstdChunkedBlobWriter::flush_zeros() {
  if (pending_zeros_ == 0) return {};
  auto frame = compress_zeros_frame(context_, pending_zeros_, options_.level);
  if (!frame) return std::move(frame).error();
  ++report_.compressed_frames;
  const std::uint64_t frame_offset = out_.offset();
  STRATA_TRY(out_.write(*frame));
  add_piece(pending_zeros_, digest_of_zeros(pending_zeros_), true, frame_offset);
  pending_zeros_ = 0;
  return {};
}

Result<void> ZstdChunkedBlobWriter::release_held(std::size_t keep) {
  if (keep == held_.size() && held_digest_) {
    STRATA_TRY(write_data(held_, &*held_digest_));
  } else if (keep != 0) {
    STRATA_TRY(write_data(ByteSpan(held_).first(keep), nullptr));
  }
  held_.clear();
  held_digest_.reset();
  return {};
}

Result<void> ZstdChunkedBlobWriter::write_or_hold(ByteSpan data, const Digest* digest, bool last) {
  if (last || data.back() != 0) return write_data(data, digest);
  held_.assign(data.begin(), data.end());
  if (digest != nullptr) held_digest_ = *digest;
  return {};
}

void ZstdChunkedBlobWriter::add_piece(std::uint64_t length, const Digest& digest, bool zeros,
                                      std::uint64_t frame_offset) {
  if (pieces_ == 0) {
    toc_.entries[file_index_].chunk_size = length;
    toc_.entries[file_index_].chunk_digest = digest;
    if (zeros) toc_.entries[file_index_].chunk_type = std::string(kZerosChunkType);
  } else {
    TocEntry chunk;
    chunk.type = "chunk";
    chunk.name = toc_.entries[file_index_].name;
    chunk.offset = frame_offset;
    chunk.chunk_size = length;
    chunk.chunk_offset = file_done_;
    chunk.chunk_digest = digest;
    if (zeros) chunk.chunk_type = std::string(kZerosChunkType);
    toc_.entries.push_back(std::move(chunk));
  }
  ++pieces_;
  file_done_ += length;
}

// Skippable frames: TOC, tar-split (current variant only), footer; then the annotations.
Result<void> ZstdChunkedBlobWriter::write_trailer() {
  TrailerPositions at;
  std::vector<std::uint8_t> tar_split_frame;
  if (with_tar_split_) {
    auto compressed = compress_frame(context_, bytes_of(tar_split_.text()), options_.level);
    if (!compressed) return std::move(compressed).error();
    tar_split_frame = std::move(*compressed);
    toc_.tar_split_digest = sha256_of(tar_split_frame);
  }
  const std::string toc_json = detail::write_toc_json(toc_);
  auto toc_frame = compress_frame(context_, bytes_of(toc_json), options_.level);
  if (!toc_frame) return std::move(toc_frame).error();
  if (toc_frame->size() > 0xFFFFFFFFULL || tar_split_frame.size() > 0xFFFFFFFFULL) {
    return make_error(ErrorCode::kLimitExceeded, "zstd:chunked TOC or tar-split over 4 GiB");
  }
  auto toc_offset = write_skippable(*toc_frame);
  if (!toc_offset) return std::move(toc_offset).error();
  at.toc_offset = *toc_offset;
  at.toc_size = toc_frame->size();
  at.toc_raw_size = toc_json.size();
  if (with_tar_split_) {
    auto tar_split_offset = write_skippable(tar_split_frame);
    if (!tar_split_offset) return std::move(tar_split_offset).error();
    at.tar_split_offset = *tar_split_offset;
  }
  at.tar_split_size = tar_split_frame.size();
  at.tar_split_raw_size = tar_split_.text().size();
  auto footer_at = write_skippable(footer_of(at, with_tar_split_));
  if (!footer_at) return std::move(footer_at).error();
  annotate_trailer(report_, at, sha256_of(*toc_frame), with_tar_split_);
  return {};
}

Result<std::uint64_t> ZstdChunkedBlobWriter::write_skippable(ByteSpan payload) {
  std::vector<std::uint8_t> header;
  put_u32le(header, kSkippableMagic);
  put_u32le(header, static_cast<std::uint32_t>(payload.size()));
  STRATA_TRY(out_.write(header));
  const std::uint64_t at = out_.offset();
  STRATA_TRY(out_.write(payload));
  return at;
}

}  // namespace

Result<ChunkedWriteReport> write_zstd_chunked_layer(ByteSpan tar, std::span<const TarChunk> chunks,
                                                    const ChunkFrameProvider& frames,
                                                    const ChunkedWriteOptions& options,
                                                    const ByteSink& sink) {
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

Result<ChunkedWriteReport> stream_zstd_chunked_layer(const TarStreamReader& tar,
                                                     std::span<const TarChunk> chunks,
                                                     const ChunkFrameProvider& frames,
                                                     const ChunkedWriteOptions& options,
                                                     const ByteSink& sink) {
  return stream_zstd_chunked_layer_as_cut(
      tar,
      [chunks](std::size_t index, std::uint64_t horizon) -> const TarChunk* {
        if (index >= chunks.size() || chunks[index].tar_offset >= horizon) return nullptr;
        return &chunks[index];
      },
      frames, options, sink);
}

Result<ChunkedWriteReport> stream_zstd_chunked_layer_as_cut(const TarStreamReader& tar,
                                                            const TarChunkLookup& chunks,
                                                            const ChunkFrameProvider& frames,
                                                            const ChunkedWriteOptions& options,
                                                            const ByteSink& sink) {
  if (!chunks) return make_error(ErrorCode::kInvalidArgument, "zstd:chunked writer needs chunks");
  if (options.format == ChunkedFormat::kEstargz) {
    return make_error(ErrorCode::kInvalidArgument, "write_zstd_chunked_layer: not a zstd format");
  }
  if (!tar) return make_error(ErrorCode::kInvalidArgument, "zstd:chunked writer needs a tar");
  const std::unique_ptr<ZSTD_CCtx, ContextDeleter> context(ZSTD_createCCtx());
  if (!context) return make_error(ErrorCode::kInternal, "zstd: cannot create a context");
  ZstdChunkedBlobWriter writer(context.get(), chunks, frames, options, sink);
  return writer.write(tar);
}

}  // namespace strata::fastpull
