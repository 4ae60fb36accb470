// Internal streaming encoders and decoders behind LayerWriter and decode_layer(): gzip with ISA-L
// (igzip) or zlib, zstd with libzstd. Each takes input in pieces and hands output to a sink in
// blocks of bounded size; none of them owns a whole layer in memory.
#pragma once

#include <memory>

#include "strata/oci.h"

namespace strata::oci::detail {

class StreamEncoder {
 public:
  virtual ~StreamEncoder() = default;
  // Compresses `input`; with `last` set, also ends the stream (trailer, checksum).
  virtual Result<void> encode(ByteSpan input, bool last, const ByteSink& out) = 0;
};

class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;
  virtual Result<void> decode(ByteSpan input, const ByteSink& out) = 0;
  // Checks that the stream ended where the input did (no truncation, no trailing bytes).
  virtual Result<void> finish() = 0;
};

// Both gzip encoders write a header without name or mtime (mtime 0), so the output depends on
// neither the machine's clock nor file names: ISA-L's with OS 255 (unknown), zlib's own with
// OS 3 (Unix) and XFL from the level, the header `gzip -n` writes.
Result<std::unique_ptr<StreamEncoder>> make_isal_gzip_encoder(int level);
Result<std::unique_ptr<StreamEncoder>> make_zlib_gzip_encoder(int level);
Result<std::unique_ptr<StreamEncoder>> make_zstd_encoder(int level, unsigned threads);
Result<std::unique_ptr<StreamDecoder>> make_gzip_decoder();
Result<std::unique_ptr<StreamDecoder>> make_zstd_decoder();

}  // namespace strata::oci::detail
