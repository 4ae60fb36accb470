// A layer blob opened for reading as its uncompressed tar stream. The compression is detected
// from magic bytes (gzip 1f 8b, zstd 28 b5 2f fd or a skippable
// frame 5x 2a 4d 18; xz, bzip2 and lz4 magic are refused as unsupported; anything else is read as
// plain tar), gzip is inflated with ISA-L (every concatenated member, each member's CRC32 and ISIZE
// checked, as Go and containerd do), zstd with libzstd streaming (every frame; skippable frames,
// which zstd:chunked uses for its TOC, are skipped). Trailing bytes that are not another member or
// frame are an error. Decompressed output is capped (bombs, shared/specs/reliability.md §1c,
// §5.2 items 1-15) and the SHA-256 of the compressed bytes (the blob digest) is kept on the side.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/base/byte_source.h"
#include "strata/digest.h"

namespace strata {

enum class LayerCompression : std::uint8_t { kNone, kGzip, kZstd };

// "none" / "gzip" / "zstd".
std::string_view layer_compression_name(LayerCompression compression) noexcept;

struct LayerSourceOptions {
  std::uint64_t max_uncompressed_bytes = 64ULL << 30U;  // 64 GiB
  bool hash_compressed = true;                          // keep the compressed SHA-256
  // Also for a plain (uncompressed) tar, whose blob digest is the SHA-256 of the very bytes read.
  // A reader that hashes the tar anyway (the ingest engine's diff_id) turns this off and saves a
  // second full SHA-256 pass; compressed_digest() then refuses for plain tars.
  bool hash_plain_tar = true;
  // gzip / zstd: decode on a thread of its own, up to 4 MiB ahead of the reader, so decoding
  // overlaps with the reader's work (the ingest's tar parsing and chunking).
  bool decode_ahead = false;
};

class DecodeAhead;

class LayerSource final : public ByteSource {
 public:
  // Opens a file; "-" reads standard input.
  static Result<std::unique_ptr<LayerSource>> open_path(const std::string& path,
                                                        const LayerSourceOptions& options = {});
  // Reads the (possibly compressed) blob from `raw`.
  static Result<std::unique_ptr<LayerSource>> open(std::unique_ptr<ByteSource> raw,
                                                   const LayerSourceOptions& options = {});
  ~LayerSource() override;

  // Uncompressed bytes; 0 at the end of the blob once every member/frame checked out.
  Result<std::size_t> read(MutableByteSpan out) override;

  [[nodiscard]] LayerCompression compression() const noexcept;
  [[nodiscard]] std::uint64_t compressed_bytes() const noexcept;    // read from the blob so far
  [[nodiscard]] std::uint64_t uncompressed_bytes() const noexcept;  // produced so far
  [[nodiscard]] bool finished() const noexcept;                     // read() returned 0
  // SHA-256 of the whole blob: only after finished() and with hash_compressed set.
  Result<Digest> compressed_digest() const;

  struct State;

 private:
  explicit LayerSource(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
  std::unique_ptr<DecodeAhead> decode_ahead_;
};

// SHA-256 and length of everything left in `source` (e.g. a diff_id of a LayerSource).
struct StreamDigest {
  Digest digest;
  std::uint64_t size = 0;
};
Result<StreamDigest> sha256_of_stream(ByteSource& source);

}  // namespace strata
