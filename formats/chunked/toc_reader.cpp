// Reading a chunked layer's TOC through a range fetcher, the way a lazy puller does
// (shared/specs/layer-formats.md §1.5 step 2, §1.6, §2): zstd:chunked is located by the
// manifest-position annotation and checked against manifest-checksum (sha256 of the compressed
// TOC), its tar-split by tarsplit-position and the TOC's tarSplitDigest; eStargz by its 51-byte
// footer, the TOC JSON checked against the toc.digest annotation (sha256 of the uncompressed
// JSON). Every offset is checked against the blob size and every size against a cap before
// anything is fetched or allocated.
#include <zstd.h>

#include <charconv>
#include <future>
#include <optional>

#include "core/base/byte_source.h"
#include "formats/chunked/toc_json.h"
#include "formats/tar/tar_reader.h"
#include "strata/oci.h"

namespace strata::fastpull {
namespace {

Result<std::vector<std::uint8_t>> fetch_exact(const RangeFetcher& fetch, std::uint64_t offset,
                                              std::uint64_t length, std::uint64_t blob_size,
                                              const std::string& what) {
  if (offset > blob_size || length > blob_size - offset) {
    return make_error(ErrorCode::kCorruptInput, what + " at " + std::to_string(offset) + "+" +
                                                    std::to_string(length) + " lies outside the " +
                                                    std::to_string(blob_size) + "-byte blob");
  }
  auto bytes = fetch(offset, length);
  if (!bytes) return std::move(bytes).error();
  if (bytes->size() != length) {
    return make_error(ErrorCode::kIo, what + ": fetched " + std::to_string(bytes->size()) +
                                          " bytes instead of " + std::to_string(length));
  }
  return bytes;
}

Result<std::vector<std::uint64_t>> parse_position(const std::string& text, std::size_t fields,
                                                  const std::string& what) {
  std::vector<std::uint64_t> values;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  while (p <= end) {
    std::uint64_t value = 0;
    const auto [next, ec] = std::from_chars(p, end, value);
    if (ec != std::errc() || next == p) break;
    values.push_back(value);
    if (next == end) {
      p = end + 1;
      break;
    }
    if (*next != ':') break;
    p = next + 1;
  }
  if (p != end + 1 || values.size() != fields) {
    return make_error(
        ErrorCode::kCorruptInput,
        what + " '" + text + "' is not " + std::to_string(fields) + " colon-separated numbers");
  }
  return values;
}

Result<std::vector<std::uint8_t>> zstd_decompress_capped(ByteSpan frame, std::uint64_t cap,
                                                         const std::string& what) {
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> context(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!context) return make_error(ErrorCode::kInternal, "zstd: cannot create a context");
  std::vector<std::uint8_t> out;
  // A frame that declares its size within the cap (what every writer of these formats does) is
  // decoded in one call straight into its buffer; one that does not decode to exactly that size
  // (or holds more frames) is decoded again below, which names what is wrong.
  const unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR &&
      declared <= cap) {
    out.resize(static_cast<std::size_t>(declared));
    const std::size_t produced =
        ZSTD_decompressDCtx(context.get(), out.data(), out.size(), frame.data(), frame.size());
    if (ZSTD_isError(produced) == 0U && produced == declared) return out;
    out.clear();
    ZSTD_DCtx_reset(context.get(), ZSTD_reset_session_and_parameters);
  }
  std::vector<std::uint8_t> block(ZSTD_DStreamOutSize());
  ZSTD_inBuffer input{frame.data(), frame.size(), 0};
  std::size_t last = 1;
  while (input.pos < input.size || last != 0) {
    ZSTD_outBuffer output{block.data(), block.size(), 0};
    last = ZSTD_decompressStream(context.get(), &output, &input);
    if (ZSTD_isError(last) != 0U) {
      return make_error(ErrorCode::kCorruptInput,
                        what + ": zstd: " + std::string(ZSTD_getErrorName(last)));
    }
    if (out.size() + output.pos > cap) {
      return make_error(ErrorCode::kLimitExceeded,
                        what + " decompresses to more than " + std::to_string(cap) + " bytes");
    }
    out.insert(out.end(), block.begin(), block.begin() + static_cast<std::ptrdiff_t>(output.pos));
    if (input.pos == input.size && output.pos == 0 && last != 0) {
      return make_error(ErrorCode::kCorruptInput, what + ": truncated zstd frame");
    }
  }
  return out;
}

std::string annotation(const oci::Annotations& annotations, std::string_view key) {
  const auto it = annotations.find(std::string(key));
  return it == annotations.end() ? std::string() : it->second;
}

// The one range that holds both the TOC and the tar-split frames, when both lie inside the blob
// (past the first frame header) with at most kAdjacentGapBytes between them; nullopt otherwise.
constexpr std::uint64_t kAdjacentGapBytes = std::uint64_t{64} << 10U;
std::optional<ByteRange> adjacent_span(const ZstdChunkedFooter& where, std::uint64_t blob_size) {
  const auto inside = [blob_size](std::uint64_t offset, std::uint64_t length) {
    return offset >= 8 && offset <= blob_size && length <= blob_size - offset;
  };
  if (where.tar_split_compressed_size == 0 || where.toc_compressed_size == 0 ||
      !inside(where.toc_offset, where.toc_compressed_size) ||
      !inside(where.tar_split_offset, where.tar_split_compressed_size)) {
    return std::nullopt;
  }
  const std::uint64_t toc_end = where.toc_offset + where.toc_compressed_size;
  const std::uint64_t split_end = where.tar_split_offset + where.tar_split_compressed_size;
  const std::uint64_t start = std::min(where.toc_offset, where.tar_split_offset);
  const std::uint64_t end = std::max(toc_end, split_end);
  const std::uint64_t gap =
      where.toc_offset < where.tar_split_offset
          ? (where.tar_split_offset > toc_end ? where.tar_split_offset - toc_end : 0)
          : (where.toc_offset > split_end ? where.toc_offset - split_end : 0);
  if (gap > kAdjacentGapBytes) return std::nullopt;
  return ByteRange{start, end - start};
}

Result<ChunkedLayerToc> read_zstd_chunked(std::uint64_t blob_size,
                                          const oci::Annotations& annotations, ChunkedFormat format,
                                          const RangeFetcher& fetch,
                                          const TocReadOptions& options) {
  ChunkedLayerToc layer;
  layer.format = format;
  layer.blob_size = blob_size;
  const bool current = format == ChunkedFormat::kZstdChunked;
  const std::string position_text = annotation(
      annotations, current ? kZstdChunkedManifestPositionKey : kZstdChunkedV1ManifestPositionKey);
  const std::string checksum_text = annotation(
      annotations, current ? kZstdChunkedManifestChecksumKey : kZstdChunkedV1ManifestChecksumKey);
  ZstdChunkedFooter where;
  where.format = format;
  if (!position_text.empty()) {
    auto fields = parse_position(position_text, 4, "zstd:chunked manifest-position");
    if (!fields) return std::move(fields).error();
    if ((*fields)[3] != 1) {
      return make_error(ErrorCode::kUnsupported, "zstd:chunked manifest type is not 1");
    }
    where.toc_offset = (*fields)[0];
    where.toc_compressed_size = (*fields)[1];
    where.toc_size = (*fields)[2];
    if (current) {
      const std::string split_text = annotation(annotations, kZstdChunkedTarSplitPositionKey);
      if (!split_text.empty()) {
        auto split = parse_position(split_text, 3, "zstd:chunked tarsplit-position");
        if (!split) return std::move(split).error();
        where.tar_split_offset = (*split)[0];
        where.tar_split_compressed_size = (*split)[1];
        where.tar_split_size = (*split)[2];
      }
    }
  } else {
    if (!options.allow_unverified) {
      return make_error(ErrorCode::kCorruptInput, "zstd:chunked layer without manifest-position");
    }
    const std::uint64_t tail = std::min<std::uint64_t>(blob_size, kZstdChunkedFooterBytes);
    auto bytes = fetch_exact(fetch, blob_size - tail, tail, blob_size, "zstd:chunked footer");
    if (!bytes) return std::move(bytes).error();
    layer.metadata_bytes += tail;
    auto footer = parse_zstd_chunked_footer(*bytes);
    if (!footer) return std::move(footer).error();
    where = *footer;
    layer.format = footer->format;
  }
  Digest checksum;
  if (!checksum_text.empty()) {
    auto parsed = Digest::parse(checksum_text);
    if (!parsed) {
      return make_error(ErrorCode::kCorruptInput, "zstd:chunked manifest-checksum is not a digest");
    }
    checksum = *parsed;
  } else if (!options.allow_unverified) {
    return make_error(ErrorCode::kCorruptInput, "zstd:chunked layer without manifest-checksum");
  }
  if (where.toc_compressed_size > options.max_toc_bytes || where.toc_size > options.max_toc_bytes ||
      where.tar_split_compressed_size > options.max_toc_bytes ||
      where.tar_split_size > options.max_toc_bytes) {
    return make_error(ErrorCode::kLimitExceeded, "zstd:chunked TOC or tar-split larger than the " +
                                                     std::to_string(options.max_toc_bytes) +
                                                     "-byte cap");
  }
  if (where.toc_offset < 8) {
    return make_error(ErrorCode::kCorruptInput, "zstd:chunked TOC offset before its frame header");
  }
  // The TOC and tar-split frames lie side by side before the footer (c/storage and strata write
  // them back to back): when both are located in the blob near each other, one request brings
  // both, and the tar-split is decoded on another thread while the TOC is parsed (it is used only
  // once its digest matches the TOC's tarSplitDigest).
  std::optional<std::vector<std::uint8_t>> split_frame;
  std::future<Result<std::vector<std::uint8_t>>> split_text;
  Result<std::vector<std::uint8_t>> toc_frame = make_error(ErrorCode::kInternal, "not fetched");
  if (const auto both = adjacent_span(where, blob_size)) {
    auto bytes =
        fetch_exact(fetch, both->offset, both->length, blob_size, "zstd:chunked TOC and tar-split");
    if (!bytes) return std::move(bytes).error();
    layer.metadata_bytes += bytes->size();
    const auto slice = [&](std::uint64_t offset, std::uint64_t length) {
      const auto from = bytes->begin() + static_cast<std::ptrdiff_t>(offset - both->offset);
      return std::vector<std::uint8_t>(from, from + static_cast<std::ptrdiff_t>(length));
    };
    toc_frame = slice(where.toc_offset, where.toc_compressed_size);
    split_frame = slice(where.tar_split_offset, where.tar_split_compressed_size);
    split_text = std::async(std::launch::async, [&split_frame, &options] {
      return zstd_decompress_capped(*split_frame, options.max_toc_bytes, "zstd:chunked tar-split");
    });
  } else {
    toc_frame = fetch_exact(fetch, where.toc_offset, where.toc_compressed_size, blob_size,
                            "zstd:chunked TOC");
    if (!toc_frame) return std::move(toc_frame).error();
    layer.metadata_bytes += toc_frame->size();
  }
  if (!checksum_text.empty()) {
    if (sha256_of(*toc_frame) != checksum) {
      return make_error(ErrorCode::kDigestMismatch,
                        "zstd:chunked TOC digest " + sha256_of(*toc_frame).to_string() +
                            " differs from the manifest-checksum annotation " + checksum_text);
    }
    layer.toc_digest_verified = true;
  }
  auto json = zstd_decompress_capped(*toc_frame, where.toc_size, "zstd:chunked TOC");
  if (!json) return std::move(json).error();
  if (json->size() != where.toc_size) {
    return make_error(ErrorCode::kCorruptInput, "zstd:chunked TOC is not its announced " +
                                                    std::to_string(where.toc_size) + " bytes");
  }
  auto toc = parse_toc_json(*json);
  if (!toc) return std::move(toc).error();
  layer.toc = std::move(*toc);
  layer.toc_offset = where.toc_offset;
  layer.toc_compressed_size = where.toc_compressed_size;
  layer.data_end = where.toc_offset - 8;

  if (where.tar_split_compressed_size != 0 && layer.toc.tar_split_digest) {
    if (where.tar_split_offset < 8) {
      return make_error(ErrorCode::kCorruptInput, "zstd:chunked tar-split offset before its frame");
    }
    if (!split_frame) {
      auto frame = fetch_exact(fetch, where.tar_split_offset, where.tar_split_compressed_size,
                               blob_size, "zstd:chunked tar-split");
      if (!frame) return std::move(frame).error();
      layer.metadata_bytes += frame->size();
      split_frame = std::move(*frame);
    }
    if (sha256_of(*split_frame) != *layer.toc.tar_split_digest) {
      return make_error(ErrorCode::kDigestMismatch,
                        "zstd:chunked tar-split digest differs from the TOC's tarSplitDigest");
    }
    auto text = split_text.valid() ? split_text.get()
                                   : zstd_decompress_capped(*split_frame, options.max_toc_bytes,
                                                            "zstd:chunked tar-split");
    if (!text) return std::move(text).error();
    layer.tar_split = std::move(*text);
    layer.data_end = std::min(layer.data_end, where.tar_split_offset - 8);
  } else if (layer.toc.tar_split_digest) {
    return make_error(ErrorCode::kCorruptInput,
                      "zstd:chunked TOC names a tar-split the annotations do not locate");
  }
  return layer;
}

Result<ChunkedLayerToc> read_estargz(std::uint64_t blob_size, const oci::Annotations& annotations,
                                     const RangeFetcher& fetch, const TocReadOptions& options) {
  ChunkedLayerToc layer;
  layer.format = ChunkedFormat::kEstargz;
  layer.blob_size = blob_size;
  const std::string digest_text = annotation(annotations, kEstargzTocDigestKey);
  if (digest_text.empty() && !options.allow_unverified) {
    return make_error(ErrorCode::kCorruptInput, "eStargz layer without a toc.digest annotation");
  }
  if (blob_size < kEstargzFooterBytes) {
    return make_error(ErrorCode::kCorruptInput, "eStargz blob shorter than its footer");
  }
  const std::uint64_t footer_at = blob_size - kEstargzFooterBytes;
  auto footer = fetch_exact(fetch, footer_at, kEstargzFooterBytes, blob_size, "eStargz footer");
  if (!footer) return std::move(footer).error();
  layer.metadata_bytes += footer->size();
  auto toc_offset = parse_estargz_footer(*footer);
  if (!toc_offset) return std::move(toc_offset).error();
  if (*toc_offset >= footer_at) {
    return make_error(
        ErrorCode::kCorruptInput,
        "eStargz TOC offset " + std::to_string(*toc_offset) + " is not before the footer");
  }
  if (footer_at - *toc_offset > options.max_toc_bytes) {
    return make_error(ErrorCode::kLimitExceeded, "eStargz TOC member larger than the cap");
  }
  auto member = fetch_exact(fetch, *toc_offset, footer_at - *toc_offset, blob_size, "eStargz TOC");
  if (!member) return std::move(member).error();
  layer.metadata_bytes += member->size();
  std::vector<std::uint8_t> tar;
  std::size_t consumed = 0;
  auto decoded = oci::decode_layer(
      oci::LayerCompression::kGzip,
      [&](MutableByteSpan out) -> Result<std::size_t> {
        const std::size_t n = std::min(out.size(), member->size() - consumed);
        std::copy_n(member->begin() + static_cast<std::ptrdiff_t>(consumed), n, out.begin());
        consumed += n;
        return n;
      },
      [&](ByteSpan bytes) -> Result<void> {
        tar.insert(tar.end(), bytes.begin(), bytes.end());
        return {};
      },
      options.max_toc_bytes + 4096);
  if (!decoded) {
    return make_error(decoded.error().code, "eStargz TOC member: " + decoded.error().message);
  }
  MemoryByteSource source(tar);
  TarReader reader(source);
  auto event = reader.next();
  if (!event) return make_error(event.error().code, "eStargz TOC tar: " + event.error().message);
  if (event->kind != TarEventKind::kHeader || event->entry->path != "stargz.index.json") {
    return make_error(ErrorCode::kCorruptInput,
                      "eStargz TOC member does not start with stargz.index.json");
  }
  const std::uint64_t json_at = event->offset + event->bytes.size();
  const std::uint64_t json_size = event->entry->size;
  if (json_size > tar.size() - json_at) {
    return make_error(ErrorCode::kCorruptInput, "eStargz TOC entry is truncated");
  }
  const ByteSpan json = ByteSpan(tar).subspan(json_at, json_size);
  if (!digest_text.empty()) {
    if (sha256_of(json).to_string() != digest_text) {
      return make_error(ErrorCode::kDigestMismatch,
                        "eStargz TOC digest " + sha256_of(json).to_string() +
                            " differs from the toc.digest annotation " + digest_text);
    }
    layer.toc_digest_verified = true;
  }
  auto toc = parse_toc_json(json);
  if (!toc) return std::move(toc).error();
  layer.toc = std::move(*toc);
  layer.toc_offset = *toc_offset;
  layer.toc_compressed_size = member->size();
  layer.data_end = footer_at;
  layer.tail_member = std::move(*member);
  return layer;
}

}  // namespace

Result<ChunkedLayerToc> read_chunked_toc(std::uint64_t blob_size,
                                         const oci::Annotations& annotations,
                                         const RangeFetcher& fetch, const TocReadOptions& options) {
  const auto format = chunked_format_of(annotations);
  if (!format) {
    if (!options.allow_unverified) {
      return make_error(ErrorCode::kUnsupported, "layer has no zstd:chunked or eStargz annotation");
    }
    // No annotations (a local file): the footer says which format it is.
    auto zstd =
        read_zstd_chunked(blob_size, annotations, ChunkedFormat::kZstdChunked, fetch, options);
    if (zstd) return zstd;
    return read_estargz(blob_size, annotations, fetch, options);
  }
  if (*format == ChunkedFormat::kEstargz) {
    return read_estargz(blob_size, annotations, fetch, options);
  }
  return read_zstd_chunked(blob_size, annotations, *format, fetch, options);
}

}  // namespace strata::fastpull
