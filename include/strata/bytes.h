// strata's byte vocabulary, defined once for every layer above it: read-only and writable byte
// spans, a half-open range of a blob, and the sink that receives a byte stream in pieces. Rests on
// the standard library and strata/result.h only, so the lowest folders (core/base, formats/) can
// use it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "strata/result.h"

namespace strata {

using ByteSpan = std::span<const std::uint8_t>;
using MutableByteSpan = std::span<std::uint8_t>;

// Half-open byte range of a blob: [offset, offset + length). Pull plans and registry range
// requests (RFC 9110 Range) speak of blobs in these.
struct ByteRange {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

// Receives a byte stream in order, in pieces of any size; an error stops the producer, which
// returns it unchanged.
using ByteSink = std::function<Result<void>(ByteSpan bytes)>;

}  // namespace strata
