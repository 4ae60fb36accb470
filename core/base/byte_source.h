// A pull stream of bytes: the one interface between where layer bytes come from (a file, a pipe,
// memory, a decompressor) and who parses them (the tar reader). Reads are large (the callers ask
// for about 1 MiB at a time), so the single virtual call per read costs nothing per byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "strata/buffer.h"
#include "strata/result.h"

namespace strata {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  ByteSource() = default;
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  // Fills up to out.size() bytes and returns how many. Returns 0 only at the end of the stream
  // (or when out is empty); a short read does not mean the end.
  virtual Result<std::size_t> read(MutableByteSpan out) = 0;

  // Passes over up to `count` bytes without handing them out and returns how many; fewer only at
  // the end of the stream. The default reads them into a scratch buffer; a source that can move
  // without producing the bytes (a replayed shape, a memory span) overrides it.
  virtual Result<std::uint64_t> skip(std::uint64_t count);
};

// Reads from a memory span the caller keeps alive.
class MemoryByteSource final : public ByteSource {
 public:
  explicit MemoryByteSource(ByteSpan bytes) : bytes_(bytes) {}
  Result<std::size_t> read(MutableByteSpan out) override;
  Result<std::uint64_t> skip(std::uint64_t count) override;

 private:
  ByteSpan bytes_;
  std::size_t position_ = 0;
};

// Reads from a file descriptor (a file, a pipe, stdin), retrying EINTR.
class FdByteSource final : public ByteSource {
 public:
  // Opens `path` read-only; "-" means standard input (not closed at the end).
  static Result<FdByteSource> open(const std::string& path);
  // Wraps an open descriptor; closes it on destruction when `owns` is true.
  FdByteSource(int fd, bool owns) : fd_(fd), owns_(owns) {}
  FdByteSource(FdByteSource&& other) noexcept;
  FdByteSource& operator=(FdByteSource&&) = delete;
  ~FdByteSource() override;

  Result<std::size_t> read(MutableByteSpan out) override;

 private:
  int fd_ = -1;
  bool owns_ = false;
};

// Reads until `out` is full or the stream ends; returns the number of bytes read.
Result<std::size_t> read_fully(ByteSource& source, MutableByteSpan out);

}  // namespace strata
