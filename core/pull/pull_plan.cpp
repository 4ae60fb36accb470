// The lazy-pull planner and rebuild (shared/specs/layer-formats.md §1.5, §1.6, §2 "Verification"):
// the TOC's chunks cut the blob's data region into pieces (a chunk's compressed range runs from
// its offset to the next chunk's, or to the file's endOffset; what lies between is tar headers
// and padding). A chunk the store has by SHA-256 (or a "zeros" chunk) is not fetched; every other
// piece is, as ranges merged when adjacent or separated by a small gap and grouped per request.
// The rebuild decodes pieces in blob order, checks each chunk and each file against its digest,
// the tar against the diff_id, the TOC against the tar's entries and the tar-split against the
// tar's bytes (the c/storage consistency rule, containers/storage#2014).
#include "strata/pull_plan.h"

#include <zstd.h>

#include <algorithm>

#include "core/base/byte_source.h"
#include "core/pull/chunked_pull_checks.h"
#include "formats/chunked/toc_json.h"
#include "formats/tar/tar_reader.h"
#include "strata/oci.h"

namespace strata::fastpull {
namespace {

BlobPiece gap_piece(std::uint64_t offset, std::uint64_t end, bool local) {
  BlobPiece piece;
  piece.offset = offset;
  piece.end = end;
  piece.local = local;
  return piece;
}

struct PlannedChunk {
  const TocEntry* entry = nullptr;
  std::string name;
  std::uint64_t offset = 0;
  std::uint64_t chunk_offset = 0;
  std::uint64_t size = 0;
  std::optional<Digest> digest;
  bool zeros = false;
  std::uint64_t end = 0;  // 0: unknown (no endOffset): runs to the next chunk
  std::optional<Digest> file_digest;
  std::uint64_t file_size = 0;
};

Result<std::vector<PlannedChunk>> chunks_of(const ChunkedLayerToc& layer,
                                            const PullPlanOptions& options) {
  std::vector<PlannedChunk> chunks;
  std::uint64_t content_bytes = 0;  // file content the TOC claims, checked before anything runs
  const TocEntry* file = nullptr;
  std::size_t file_first = 0;
  std::uint64_t file_done = 0;
  const auto close_file = [&]() -> Result<void> {
    if (file == nullptr) return {};
    if (file_done != file->size) {
      return make_error(ErrorCode::kCorruptInput, "TOC chunks of '" + file->name + "' cover " +
                                                      std::to_string(file_done) + " of " +
                                                      std::to_string(file->size) + " bytes");
    }
    const std::size_t count = chunks.size() - file_first;
    for (std::size_t i = file_first; i < chunks.size(); ++i) {
      if (!chunks[i].digest && count == 1) chunks[i].digest = file->digest;
      if (!chunks[i].digest) {
        return make_error(ErrorCode::kCorruptInput,
                          "TOC chunk of '" + file->name + "' has no chunkDigest");
      }
      if (i + 1 < chunks.size()) {
        chunks[i].end = chunks[i + 1].offset;
      } else {
        chunks[i].end = file->end_offset;  // 0 when the format has no endOffset
        chunks[i].file_digest = file->digest;
        chunks[i].file_size = file->size;
      }
    }
    file = nullptr;
    return {};
  };
  for (const TocEntry& entry : layer.toc.entries) {
    if (entry.inner_offset != 0) {
      return make_error(ErrorCode::kUnsupported,
                        "TOC entry '" + entry.name + "' uses innerOffset (not supported)");
    }
    const bool is_chunk = entry.type == "chunk";
    if (!is_chunk) STRATA_TRY(close_file());
    if (entry.type == "reg" && entry.size != 0) {
      if (entry.size > options.max_tar_bytes - content_bytes) {
        return make_error(ErrorCode::kLimitExceeded,
                          "TOC files add up to more than " + std::to_string(options.max_tar_bytes) +
                              " bytes (at '" + entry.name.substr(0, 256) + "', " +
                              std::to_string(entry.size) + " bytes)");
      }
      content_bytes += entry.size;
      file = &entry;
      file_first = chunks.size();
      file_done = 0;
    } else if (!is_chunk) {
      continue;
    } else if (file == nullptr || entry.name != file->name) {
      return make_error(ErrorCode::kCorruptInput,
                        "TOC chunk entry '" + entry.name + "' does not follow its file");
    }
    PlannedChunk chunk;
    chunk.entry = &entry;
    chunk.name = entry.name;
    chunk.offset = entry.offset;
    chunk.chunk_offset = entry.chunk_offset;
    if (chunk.chunk_offset != file_done) {
      return make_error(ErrorCode::kCorruptInput, "TOC chunks of '" + entry.name +
                                                      "' are not contiguous at chunkOffset " +
                                                      std::to_string(chunk.chunk_offset));
    }
    chunk.size = entry.chunk_size != 0 ? entry.chunk_size : file->size - file_done;
    if (chunk.size > file->size - file_done || chunk.size == 0) {
      return make_error(ErrorCode::kCorruptInput,
                        "TOC chunk of '" + entry.name + "' runs past the file's size");
    }
    chunk.digest = entry.chunk_digest;
    chunk.zeros = entry.chunk_type == "zeros";
    if (chunk.zeros && chunk.size > options.max_zeros_chunk_bytes) {
      return make_error(ErrorCode::kLimitExceeded,
                        "TOC zeros chunk of '" + entry.name.substr(0, 256) + "' is " +
                            std::to_string(chunk.size) + " bytes, over the " +
                            std::to_string(options.max_zeros_chunk_bytes) + "-byte limit");
    }
    file_done += chunk.size;
    chunks.push_back(std::move(chunk));
  }
  STRATA_TRY(close_file());
  return chunks;
}

bool is_zeros_digest(const Digest& digest, std::uint64_t size, std::vector<std::uint8_t>& out) {
  out.assign(size, 0);
  return sha256_of(out) == digest;
}

Result<std::vector<std::uint8_t>> decompress_piece(ChunkedFormat format, ByteSpan bytes,
                                                   std::uint64_t cap, std::uint64_t at) {
  std::vector<std::uint8_t> out;
  STRATA_TRY(detail::decode_blob_piece(format, bytes, cap, at, [&](ByteSpan piece) -> Result<void> {
    out.insert(out.end(), piece.begin(), piece.end());
    return {};
  }));
  return out;
}

std::string normalized_name(std::string name) {
  while (name.starts_with("./")) name.erase(0, 2);
  while (name.starts_with('/')) name.erase(0, 1);
  while (name.ends_with('/')) name.pop_back();
  return name;
}

// The TOC must describe exactly the tar's entries, and the tar-split must rebuild the tar.
Result<std::uint64_t> check_toc_against_tar(const ChunkedLayerToc& layer, ByteSpan tar) {
  MemoryByteSource source(tar);
  auto entries = detail::read_tar_entries(source);
  if (!entries) return std::move(entries).error();
  auto described = detail::check_toc_against_entries(layer, *entries);
  if (!described) return std::move(described).error();
  if (!layer.tar_split.empty()) {
    auto files = detail::check_tar_split(layer.tar_split, tar);
    if (!files) return std::move(files).error();
    if (files->size() != entries->size()) {
      return make_error(ErrorCode::kCorruptInput,
                        "tar-split lists " + std::to_string(files->size()) +
                            " entries, the tar has " + std::to_string(entries->size()));
    }
    for (std::size_t i = 0; i < entries->size(); ++i) {
      if ((*files)[i].name != (*entries)[i].path) {
        return make_error(ErrorCode::kCorruptInput, "tar-split entry '" + (*files)[i].name +
                                                        "' disagrees with the tar entry '" +
                                                        (*entries)[i].path + "'");
      }
    }
  }
  return *described;
}

}  // namespace

namespace detail {

Result<std::vector<TarEntry>> read_tar_entries(ByteSource& tar) {
  std::vector<TarEntry> entries;
  TarReader reader(tar);
  for (;;) {
    auto event = reader.next();
    if (!event) return make_error(event.error().code, "rebuilt tar: " + event.error().message);
    if (event->kind == TarEventKind::kDone) break;
    if (event->kind != TarEventKind::kHeader) continue;
    entries.push_back(*event->entry);
    // Only the headers are read: bodies are passed over, not produced (a replayed recipe shape
    // would otherwise write the layer's whole content as zeros to be thrown away).
    auto skipped = reader.skip_content();
    if (!skipped)
      return make_error(skipped.error().code, "rebuilt tar: " + skipped.error().message);
  }
  return entries;
}

Result<std::uint64_t> check_toc_against_entries(const ChunkedLayerToc& layer,
                                                std::span<const TarEntry> entries) {
  std::vector<const TarEntry*> described;
  for (const TarEntry& entry : entries) {
    if (entry.type == TarEntryType::kGlobalHeader) continue;
    if (layer.format == ChunkedFormat::kEstargz && entry.path == "stargz.index.json") continue;
    described.push_back(&entry);
  }
  std::vector<const TocEntry*> toc_entries;
  for (const TocEntry& entry : layer.toc.entries) {
    if (entry.type != "chunk") toc_entries.push_back(&entry);
  }
  if (toc_entries.size() != described.size()) {
    return make_error(ErrorCode::kCorruptInput, "TOC lists " + std::to_string(toc_entries.size()) +
                                                    " entries, the tar has " +
                                                    std::to_string(described.size()));
  }
  const bool zstd = layer.format != ChunkedFormat::kEstargz;
  for (std::size_t i = 0; i < described.size(); ++i) {
    const TarEntry& tar_entry = *described[i];
    const TocEntry& toc_entry = *toc_entries[i];
    const auto mismatch = [&](const std::string& field) {
      return make_error(ErrorCode::kCorruptInput, "TOC entry '" + toc_entry.name +
                                                      "' disagrees with the tar entry '" +
                                                      tar_entry.path + "' on " + field);
    };
    if (normalized_name(tar_entry.path) != normalized_name(toc_entry.name)) return mismatch("name");
    if (toc_type_of(tar_entry.type) != toc_entry.type) return mismatch("type");
    const std::uint64_t size = tar_entry.type == TarEntryType::kRegular ? tar_entry.size : 0;
    if (size != toc_entry.size) return mismatch("size");
    if (tar_entry.link_path != toc_entry.link_name &&
        normalized_name(tar_entry.link_path) != normalized_name(toc_entry.link_name)) {
      return mismatch("linkName");
    }
    if (zstd && ((tar_entry.mode & 07777) != (toc_entry.mode & 07777) ||
                 tar_entry.uid != toc_entry.uid || tar_entry.gid != toc_entry.gid)) {
      return mismatch("mode/uid/gid");
    }
  }
  return static_cast<std::uint64_t>(described.size());
}

Result<void> decode_blob_piece(ChunkedFormat format, ByteSpan bytes, std::uint64_t cap,
                               std::uint64_t at, const ByteSink& sink) {
  std::uint64_t produced = 0;
  const std::string where = "blob piece at offset " + std::to_string(at);
  if (format == ChunkedFormat::kEstargz) {
    std::size_t consumed = 0;
    auto decoded = oci::decode_layer(
        oci::LayerCompression::kGzip,
        [&](MutableByteSpan buffer) -> Result<std::size_t> {
          const std::size_t n = std::min(buffer.size(), bytes.size() - consumed);
          std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(consumed), n, buffer.begin());
          consumed += n;
          return n;
        },
        [&](ByteSpan piece) -> Result<void> {
          produced += piece.size();
          return sink(piece);
        },
        cap);
    if (!decoded) return make_error(decoded.error().code, where + ": " + decoded.error().message);
    return {};
  }
  if (bytes.empty()) return {};  // nothing after a chunk's own frame: the usual case
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> context(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!context) return make_error(ErrorCode::kInternal, "zstd: cannot create a context");
  std::vector<std::uint8_t> block(ZSTD_DStreamOutSize());
  ZSTD_inBuffer input{bytes.data(), bytes.size(), 0};
  std::size_t last = 0;
  bool output_full = true;  // the decoder may still hold output while the buffer came back full
  while (input.pos < input.size || output_full) {
    ZSTD_outBuffer output{block.data(), block.size(), 0};
    const std::size_t read_before = input.pos;
    const std::size_t hint = ZSTD_decompressStream(context.get(), &output, &input);
    if (ZSTD_isError(hint) != 0U) {
      return make_error(ErrorCode::kCorruptInput, where + ": zstd: " + ZSTD_getErrorName(hint));
    }
    // A call that neither reads nor writes only asks for the next frame's header.
    if (input.pos == read_before && output.pos == 0) break;
    last = hint;
    if (output.pos > cap - produced) {
      return make_error(ErrorCode::kLimitExceeded,
                        where + " decompresses to more than " + std::to_string(cap) + " bytes");
    }
    produced += output.pos;
    STRATA_TRY(sink(ByteSpan(block).first(output.pos)));
    output_full = output.pos == output.size;
  }
  if (last != 0) return make_error(ErrorCode::kCorruptInput, where + ": ends inside a zstd frame");
  return {};
}

}  // namespace detail

Result<PullPlan> plan_pull(const ChunkedLayerToc& layer, const HaveChunk& have,
                           const PullPlanOptions& options) {
  auto chunks = chunks_of(layer, options);
  if (!chunks) return std::move(chunks).error();
  PullPlan plan;
  plan.format = layer.format;
  plan.blob_size = layer.blob_size;
  plan.metadata_bytes = layer.metadata_bytes;
  // eStargz: the TOC member is part of the tar and already fetched with the TOC.
  plan.headers_from_tar_split = options.headers_from_tar_split && !layer.tar_split.empty() &&
                                layer.format == ChunkedFormat::kZstdChunked;
  const std::uint64_t region_end =
      layer.format == ChunkedFormat::kEstargz ? layer.toc_offset : layer.data_end;
  std::uint64_t position = 0;
  for (std::size_t i = 0; i < chunks->size(); ++i) {
    PlannedChunk& chunk = (*chunks)[i];
    if (chunk.offset < position || chunk.offset >= region_end) {
      return make_error(ErrorCode::kCorruptInput,
                        "TOC chunk of '" + chunk.name + "' at offset " +
                            std::to_string(chunk.offset) +
                            " overlaps another or lies outside the data region");
    }
    const std::uint64_t next = i + 1 < chunks->size() ? (*chunks)[i + 1].offset : region_end;
    bool prefix = false;
    if (chunk.end == 0) {  // no endOffset: the piece may carry the following tar headers
      chunk.end = next;
      prefix = chunk.end != chunk.offset &&
               (i + 1 == chunks->size() || (*chunks)[i + 1].chunk_offset == 0);
    }
    if (chunk.end <= chunk.offset || chunk.end > next) {
      return make_error(ErrorCode::kCorruptInput,
                        "TOC chunk of '" + chunk.name + "' has an end offset outside its range");
    }
    if (chunk.offset > position) {
      plan.pieces.push_back(gap_piece(position, chunk.offset, plan.headers_from_tar_split));
    }
    BlobPiece piece;
    piece.offset = chunk.offset;
    piece.end = chunk.end;
    piece.is_chunk = !prefix;
    piece.chunk_prefix = prefix;
    piece.digest = *chunk.digest;
    piece.chunk_size = chunk.size;
    piece.zeros = chunk.zeros;
    piece.name = chunk.name;
    piece.chunk_offset = chunk.chunk_offset;
    piece.file_digest = chunk.file_digest;
    piece.file_size = chunk.file_size;
    piece.local = !prefix && (chunk.zeros || (have && have(*chunk.digest)));
    ++plan.chunks;
    if (piece.local) {
      ++plan.local_chunks;
      plan.local_chunk_bytes += chunk.size;
    } else {
      ++plan.missing_chunks;
    }
    plan.pieces.push_back(std::move(piece));
    position = chunk.end;
  }
  if (position < region_end) {
    plan.pieces.push_back(gap_piece(position, region_end, plan.headers_from_tar_split));
  }
  if (layer.format == ChunkedFormat::kEstargz && layer.toc_offset < layer.data_end) {
    plan.pieces.push_back(gap_piece(layer.toc_offset, layer.data_end, true));
  }
  detail::fill_plan_ranges(plan, options);
  plan.fetch_bytes_without_deltas = plan.fetch_bytes;
  return plan;
}

namespace detail {

void fill_plan_ranges(PullPlan& plan, const PullPlanOptions& options) {
  plan.ranges.clear();
  plan.requests.clear();
  plan.fetch_bytes = 0;
  for (const BlobPiece& piece : plan.pieces) {
    if (piece.local || piece.delta || piece.repeat) continue;
    if (!plan.ranges.empty()) {
      ByteRange& last = plan.ranges.back();
      if (piece.offset - (last.offset + last.length) < options.gap_bridge_bytes) {
        last.length = piece.end - last.offset;
        continue;
      }
    }
    plan.ranges.push_back(ByteRange{piece.offset, piece.end - piece.offset});
  }
  const std::size_t per_request = std::max<std::size_t>(1, options.max_ranges_per_request);
  for (const ByteRange& range : plan.ranges) {
    if (plan.requests.empty() || plan.requests.back().size() == per_request) {
      plan.requests.emplace_back();
    }
    plan.requests.back().push_back(range);
    plan.fetch_bytes += range.length;
  }
}

}  // namespace detail

Result<RebuildReport> rebuild_chunked_layer(const ChunkedLayerToc& layer, const PullPlan& plan,
                                            const RangeFetcher& fetch,
                                            const LocalChunkReader& local,
                                            const std::optional<Digest>& expected_diff_id,
                                            std::vector<std::uint8_t>& tar,
                                            std::uint64_t max_tar_bytes) {
  RebuildReport report;
  tar.clear();
  std::vector<std::vector<std::uint8_t>> fetched;
  fetched.reserve(plan.ranges.size());
  for (const ByteRange& range : plan.ranges) {
    if (range.offset > layer.blob_size || range.length > layer.blob_size - range.offset) {
      return make_error(ErrorCode::kInvalidArgument, "plan range outside the blob");
    }
    auto bytes = fetch(range.offset, range.length);
    if (!bytes) return std::move(bytes).error();
    if (bytes->size() != range.length) {
      return make_error(ErrorCode::kIo, "range at " + std::to_string(range.offset) + ": fetched " +
                                            std::to_string(bytes->size()) + " of " +
                                            std::to_string(range.length) + " bytes");
    }
    report.fetched_bytes += bytes->size();
    fetched.push_back(std::move(*bytes));
  }
  const auto bytes_of = [&](const BlobPiece& piece) -> Result<ByteSpan> {
    const auto it = std::upper_bound(
        plan.ranges.begin(), plan.ranges.end(), piece.offset,
        [](std::uint64_t offset, const ByteRange& range) { return offset < range.offset; });
    if (it == plan.ranges.begin()) {
      return make_error(ErrorCode::kInvalidArgument, "plan does not fetch a piece it needs");
    }
    const std::size_t index = static_cast<std::size_t>(it - plan.ranges.begin()) - 1;
    const ByteRange& range = plan.ranges[index];
    if (piece.end > range.offset + range.length) {
      return make_error(ErrorCode::kInvalidArgument, "plan does not fetch a piece it needs");
    }
    return ByteSpan(fetched[index]).subspan(piece.offset - range.offset, piece.end - piece.offset);
  };
  Sha256 file_hash;
  std::vector<std::uint8_t> scratch;
  for (const BlobPiece& piece : plan.pieces) {
    const std::uint64_t room = max_tar_bytes - tar.size();
    std::vector<std::uint8_t> out;
    if (piece.local && piece.is_chunk) {
      if (piece.zeros) {
        if (piece.chunk_size > room) {
          return make_error(ErrorCode::kLimitExceeded, "rebuilt tar larger than the cap");
        }
        if (!is_zeros_digest(piece.digest, piece.chunk_size, out)) {
          return make_error(ErrorCode::kDigestMismatch,
                            "zeros chunk of '" + piece.name + "' has a digest that is not zeros'");
        }
      } else {
        auto chunk = local(piece.digest);
        if (!chunk) return std::move(chunk).error();
        out = std::move(*chunk);
      }
      ++report.local_chunks;
    } else if (piece.local && plan.headers_from_tar_split) {
      continue;                // tar headers and padding: taken from the tar-split below
    } else if (piece.local) {  // the eStargz TOC member, fetched with the TOC
      auto decoded = decompress_piece(layer.format, layer.tail_member, room, piece.offset);
      if (!decoded) return std::move(decoded).error();
      out = std::move(*decoded);
    } else {
      auto bytes = bytes_of(piece);
      if (!bytes) return std::move(bytes).error();
      const std::uint64_t cap = piece.is_chunk ? std::min(room, piece.chunk_size) : room;
      auto decoded = decompress_piece(layer.format, *bytes, cap, piece.offset);
      if (!decoded) return std::move(decoded).error();
      out = std::move(*decoded);
    }
    if (piece.is_chunk || piece.chunk_prefix) {
      if (out.size() < piece.chunk_size || (piece.is_chunk && out.size() != piece.chunk_size)) {
        return make_error(ErrorCode::kCorruptInput,
                          "chunk of '" + piece.name + "' at chunkOffset " +
                              std::to_string(piece.chunk_offset) + " decompresses to " +
                              std::to_string(out.size()) + " bytes, not " +
                              std::to_string(piece.chunk_size));
      }
      const ByteSpan chunk = ByteSpan(out).first(piece.chunk_size);
      if (sha256_of(chunk) != piece.digest) {
        return make_error(ErrorCode::kDigestMismatch,
                          "chunk of '" + piece.name + "' at chunkOffset " +
                              std::to_string(piece.chunk_offset) + " does not match its digest " +
                              piece.digest.to_string());
      }
      file_hash.update(chunk);
      if (piece.file_size != 0) {
        const Digest file_digest = file_hash.finish();
        if (piece.file_digest && file_digest != *piece.file_digest) {
          return make_error(ErrorCode::kDigestMismatch,
                            "file '" + piece.name + "' does not match its TOC digest");
        }
      }
    }
    if (plan.headers_from_tar_split && (piece.is_chunk || piece.chunk_prefix)) {
      out.resize(piece.chunk_size);  // only file bodies: the tar-split holds everything else
    }
    if (out.size() > room) {
      return make_error(ErrorCode::kLimitExceeded, "rebuilt tar larger than the cap");
    }
    tar.insert(tar.end(), out.begin(), out.end());
  }
  if (plan.headers_from_tar_split) {
    // `tar` holds the file bodies in order; the tar-split puts the headers around them.
    auto assembled = detail::assemble_tar_from_tar_split(layer.tar_split, tar, max_tar_bytes);
    if (!assembled) return std::move(assembled).error();
    tar = std::move(*assembled);
  }
  report.tar_bytes = tar.size();
  report.diff_id = sha256_of(tar);
  if (expected_diff_id && report.diff_id != *expected_diff_id) {
    return make_error(ErrorCode::kDigestMismatch, "rebuilt layer " + report.diff_id.to_string() +
                                                      " differs from diff_id " +
                                                      expected_diff_id->to_string());
  }
  auto entries = check_toc_against_tar(layer, tar);
  if (!entries) return std::move(entries).error();
  report.entries_checked = *entries;
  return report;
}

Result<RebuildReport> verify_chunked_blob(ByteSpan blob, const oci::Annotations& annotations,
                                          const std::optional<Digest>& expected_diff_id) {
  const RangeFetcher fetch = [&](std::uint64_t offset,
                                 std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
    if (offset > blob.size() || length > blob.size() - offset) {
      return make_error(ErrorCode::kCorruptInput, "range outside the blob");
    }
    const auto piece = blob.subspan(offset, length);
    return std::vector<std::uint8_t>(piece.begin(), piece.end());
  };
  auto layer = read_chunked_toc(blob.size(), annotations, fetch);
  if (!layer) return std::move(layer).error();
  if (layer->format != ChunkedFormat::kEstargz) {
    // The footer is not what pullers read, but a blob whose footer disagrees is refused here.
    auto footer = parse_zstd_chunked_footer(blob.last(std::min<std::size_t>(blob.size(), 72)));
    if (!footer) return std::move(footer).error();
    if (footer->toc_offset != layer->toc_offset ||
        footer->toc_compressed_size != layer->toc_compressed_size) {
      return make_error(ErrorCode::kCorruptInput,
                        "zstd:chunked footer disagrees with the manifest-position annotation");
    }
  }
  auto plan = plan_pull(*layer, {});
  if (!plan) return std::move(plan).error();
  std::vector<std::uint8_t> tar;
  return rebuild_chunked_layer(
      *layer, *plan, fetch,
      [](const Digest& digest) -> Result<std::vector<std::uint8_t>> {
        return make_error(ErrorCode::kNotFound, "no local chunk " + digest.to_string());
      },
      expected_diff_id, tar);
}

}  // namespace strata::fastpull
