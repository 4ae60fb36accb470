// Chunked layer formats (zstd:chunked, both variants, and eStargz) as byte layouts: their
// vocabulary (formats, annotation keys, TOC entries), the writers that cut a tar into one frame
// or gzip member per chunk, and the readers of footers, TOC JSON and a whole TOC through a range
// fetcher. Rests on strata's vocabulary (bytes, buffer, digest, result) and oci.h's Annotations;
// no chunk store appears here, so formats/chunked/ implements all of it. strata/pull_plan.h and
// strata/store_pull.h add the planner, the rebuild and the pulls through a store on top. Byte
// layouts: shared/specs/layer-formats.md §1, §2.
//
// Staged like the rest of strata:
//   1. vocabulary: formats, annotation keys, TOC entries
//   2. writing: write_zstd_chunked_layer() (tar + chunk cut points -> blob, TOC, tar-split),
//      write_estargz_layer()
//   3. reading: footers, TOC JSON, read_chunked_toc() through a range fetcher
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/buffer.h"
#include "strata/digest.h"
#include "strata/oci.h"
#include "strata/result.h"

namespace strata::fastpull {

// ---- 1. vocabulary ----------------------------------------------------------------------------

enum class ChunkedFormat : std::uint8_t {
  kZstdChunked,    // current variant: 64-byte footer "GNUlInUx", tar-split, io.github.* keys
  kZstdChunkedV1,  // old variant: 40-byte footer "GnUlInUx", io.containers.* keys, no tar-split
  kEstargz,        // gzip members, stargz.index.json, 51-byte footer
};
std::string_view chunked_format_name(ChunkedFormat format) noexcept;

inline constexpr std::string_view kZstdChunkedManifestChecksumKey =
    "io.github.containers.zstd-chunked.manifest-checksum";
inline constexpr std::string_view kZstdChunkedManifestPositionKey =
    "io.github.containers.zstd-chunked.manifest-position";
inline constexpr std::string_view kZstdChunkedTarSplitPositionKey =
    "io.github.containers.zstd-chunked.tarsplit-position";
inline constexpr std::string_view kZstdChunkedV1ManifestChecksumKey =
    "io.containers.zstd-chunked.manifest-checksum";
inline constexpr std::string_view kZstdChunkedV1ManifestPositionKey =
    "io.containers.zstd-chunked.manifest-position";
inline constexpr std::string_view kEstargzTocDigestKey = "containerd.io/snapshot/stargz/toc.digest";
inline constexpr std::string_view kEstargzUncompressedSizeKey =
    "io.containers.estargz.uncompressed-size";

// c/storage's maxTocSize (layer-formats.md §1.6): a bigger TOC or tar-split is refused.
inline constexpr std::uint64_t kDefaultMaxTocBytes = std::uint64_t{150} << 20U;

// One TOC entry (zstd:chunked minimal.FileMetadata / eStargz TOCEntry); absent fields are 0/empty.
struct TocEntry {
  std::string type;  // reg, hardlink, symlink, dir, char, block, fifo, chunk
  std::string name;
  std::string link_name;
  std::int64_t mode = 0;
  std::uint64_t size = 0;
  std::int64_t uid = 0;
  std::int64_t gid = 0;
  std::string modtime;  // RFC 3339 as written
  std::int64_t dev_major = 0;
  std::int64_t dev_minor = 0;
  std::map<std::string, std::string> xattrs;  // name -> base64 value, as written
  std::optional<Digest> digest;               // whole file
  std::uint64_t offset = 0;                   // compressed offset of the (first) payload frame
  std::uint64_t end_offset = 0;               // zstd:chunked only; 0: absent
  std::uint64_t chunk_size = 0;
  std::uint64_t chunk_offset = 0;
  std::optional<Digest> chunk_digest;
  std::string chunk_type;  // "" data, "zeros"
  std::uint64_t inner_offset = 0;

  friend bool operator==(const TocEntry&, const TocEntry&) = default;
};

struct Toc {
  std::vector<TocEntry> entries;
  std::optional<Digest> tar_split_digest;

  friend bool operator==(const Toc&, const Toc&) = default;
};

// ---- 2. writing -------------------------------------------------------------------------------

// A chunk of file content at a position of the tar stream (as a recipe's chunk segments give it).
struct TarChunk {
  std::uint64_t tar_offset = 0;
  std::uint64_t length = 0;
  Digest digest;
};

// Returns a ready zstd frame of a chunk (e.g. the store's stored frame) or an empty vector when
// there is none; the writer then compresses the chunk itself. A frame that is not exactly one
// zstd frame declaring the chunk's length is not used.
using ChunkFrameProvider =
    std::function<Result<std::vector<std::uint8_t>>(const Digest& digest, ByteSpan raw)>;

struct ChunkedWriteOptions {
  ChunkedFormat format = ChunkedFormat::kZstdChunked;
  int level = 3;  // zstd level for frames the writer compresses (and the TOC, tar-split)
  // zstd:chunked "zeros" chunks (layer-formats.md §1.2: c/storage makes every run of >= 1 KiB of
  // zeros a chunk of its own). Content no caller's chunk covers is always split that way. The
  // caller's chunks are split at zero runs only when this is set: otherwise a chunk is kept whole
  // (so a store that holds it by its digest still dedups it on a pull) and becomes a zeros chunk
  // only when it is all zeros (consecutive ones merged). The zero bytes are in the blob either
  // way, in a tiny frame, so splitting saves a puller almost no bytes.
  bool split_chunks_at_zero_runs = false;
  // zstd formats: write only the frames (no TOC, tar-split or footer), which is a plain multi-frame
  // tar+zstd layer (layer-formats.md §3: any zstd stream that decodes to the tar) made from the
  // same reusable chunk frames; the report then has no annotations.
  bool frames_only = false;
  // false: the caller hashes the tar itself (an ingest feeding the writer), so the writer skips
  // that SHA-256 pass; the report's diff_id is then left empty.
  bool hash_tar = true;
};

struct ChunkedWriteReport {
  std::string media_type;  // application/vnd.oci.image.layer.v1.tar+zstd
  Digest digest;           // of the blob
  std::uint64_t size = 0;
  Digest diff_id;  // of the tar (unchanged for zstd:chunked)
  std::uint64_t uncompressed_size = 0;
  oci::Annotations annotations;
  std::uint64_t toc_entries = 0;
  std::uint64_t reused_frames = 0;      // chunk frames copied from the provider
  std::uint64_t compressed_frames = 0;  // frames compressed here (headers, chunks without a frame)
};

// Writes `tar` as a zstd:chunked blob to `sink`: tar headers and padding in their own frames, each
// chunk of each regular file in its own frame (content not covered by `chunks` becomes chunks of
// at most 8 MiB per uncovered run, and so does a chunk longer than that), then the TOC, the
// tar-split (current variant) and the footer in skippable frames. Runs of >= 1 KiB of zeros
// become "zeros" chunks (tiny frames a puller makes instead of fetching) as
// ChunkedWriteOptions::split_chunks_at_zero_runs says. `chunks` must be sorted by tar_offset and
// lie inside file contents.
Result<ChunkedWriteReport> write_zstd_chunked_layer(ByteSpan tar, std::span<const TarChunk> chunks,
                                                    const ChunkFrameProvider& frames,
                                                    const ChunkedWriteOptions& options,
                                                    const ByteSink& sink);

// Pulls the next tar bytes into `out`; returns how many, 0 only at the end of the tar.
using TarStreamReader = std::function<Result<std::size_t>(MutableByteSpan out)>;

// The caller's chunks handed to a streaming writer one by one, for chunks that are found while
// the tar streams in (a writer fed by an ingest): returns chunk number `index` (in tar_offset
// order) when it starts before tar offset `horizon`, else nullptr; it may wait until it knows.
// The pointer stays valid until the writer returns.
using TarChunkLookup = std::function<const TarChunk*(std::size_t index, std::uint64_t horizon)>;

// The same writer reading the tar as a stream: memory is bounded by the largest chunk plus the
// TOC and tar-split (which grow with the number of entries, not with the content), and every
// frame goes to `sink` as soon as it is made. The blob is byte-identical to the one above.
Result<ChunkedWriteReport> stream_zstd_chunked_layer(const TarStreamReader& tar,
                                                     std::span<const TarChunk> chunks,
                                                     const ChunkFrameProvider& frames,
                                                     const ChunkedWriteOptions& options,
                                                     const ByteSink& sink);
// The same, with the chunks looked up as the tar streams (see TarChunkLookup).
Result<ChunkedWriteReport> stream_zstd_chunked_layer_as_cut(const TarStreamReader& tar,
                                                            const TarChunkLookup& chunks,
                                                            const ChunkFrameProvider& frames,
                                                            const ChunkedWriteOptions& options,
                                                            const ByteSink& sink);

// Writes `tar` as an eStargz blob (layer-formats.md §2): a `.no.prefetch.landmark` entry first,
// a new gzip member (ISA-L, level 0..3) at the first byte of every chunk of every regular file,
// the original entries (its end blocks and trailing bytes are replaced), the TOC as the last tar
// entry `stargz.index.json` in a member of its own, then the 51-byte footer. The tar changes, so
// the report's diff_id is the new one. Chunks as for write_zstd_chunked_layer.
Result<ChunkedWriteReport> write_estargz_layer(ByteSpan tar, std::span<const TarChunk> chunks,
                                               const ChunkedWriteOptions& options,
                                               const ByteSink& sink);
// The same writer reading the tar as a stream (memory bounded by the largest chunk plus the TOC).
Result<ChunkedWriteReport> stream_estargz_layer(const TarStreamReader& tar,
                                                std::span<const TarChunk> chunks,
                                                const ChunkedWriteOptions& options,
                                                const ByteSink& sink);

// ---- 3. reading -------------------------------------------------------------------------------

struct ZstdChunkedFooter {
  ChunkedFormat format = ChunkedFormat::kZstdChunked;
  std::uint64_t toc_offset = 0;
  std::uint64_t toc_compressed_size = 0;
  std::uint64_t toc_size = 0;
  std::uint64_t tar_split_offset = 0;  // current variant only
  std::uint64_t tar_split_compressed_size = 0;
  std::uint64_t tar_split_size = 0;
};
inline constexpr std::size_t kZstdChunkedFooterBytes = 72;    // 8-byte frame header + 64
inline constexpr std::size_t kZstdChunkedV1FooterBytes = 48;  // 8-byte frame header + 40
inline constexpr std::size_t kEstargzFooterBytes = 51;

// Parses the last bytes of a blob (at least 48; the last 72 are looked at for the current
// variant) as a zstd:chunked footer of either variant.
Result<ZstdChunkedFooter> parse_zstd_chunked_footer(ByteSpan tail);
// Parses the 51-byte eStargz footer; returns the TOC offset.
Result<std::uint64_t> parse_estargz_footer(ByteSpan footer);
// Parses TOC JSON (either format's fields). Entries over `max_entries` are refused.
Result<Toc> parse_toc_json(ByteSpan json, std::size_t max_entries = 10'000'000);

// Reads `length` bytes at `offset` of the blob; fewer bytes is an error the reader reports.
using RangeFetcher =
    std::function<Result<std::vector<std::uint8_t>>(std::uint64_t offset, std::uint64_t length)>;

struct TocReadOptions {
  std::uint64_t max_toc_bytes = kDefaultMaxTocBytes;
  // No TOC digest annotation: read the footer and accept the TOC unverified (for local files).
  bool allow_unverified = false;
};

// A chunked layer's TOC, read and checked.
struct ChunkedLayerToc {
  ChunkedFormat format = ChunkedFormat::kZstdChunked;
  Toc toc;
  std::uint64_t blob_size = 0;
  std::uint64_t data_end = 0;  // the tar data occupies [0, data_end) of the blob
  std::uint64_t toc_offset = 0;
  std::uint64_t toc_compressed_size = 0;
  std::vector<std::uint8_t> tar_split;  // decompressed tar-split JSON lines; empty: none
  bool toc_digest_verified = false;     // against the layer's annotation
  std::uint64_t metadata_bytes = 0;     // bytes fetched to get here (footer, TOC, tar-split)
  // eStargz: the TOC's gzip member [toc_offset, data_end) is part of the tar; kept from the fetch.
  std::vector<std::uint8_t> tail_member;
};

// Finds the chunked format from the layer annotations (nullopt: not a chunked layer).
std::optional<ChunkedFormat> chunked_format_of(const oci::Annotations& annotations);

Result<ChunkedLayerToc> read_chunked_toc(std::uint64_t blob_size,
                                         const oci::Annotations& annotations,
                                         const RangeFetcher& fetch,
                                         const TocReadOptions& options = {});

}  // namespace strata::fastpull
