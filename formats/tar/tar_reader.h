// Streaming, hardened tar reader (ustar, POSIX pax, GNU long names and links, base-256 numbers).
// The caller pulls events one at a time: an entry's header group (the exact raw 512-byte blocks of
// every pax 'x', GNU 'L'/'K' meta header plus the entry's own header) with the parsed entry, then
// its content in pieces (spans into the reader's buffer: no copy of file data), its padding,
// and at the end the two end-of-archive blocks and every trailing byte after them. Concatenating
// the bytes of all events gives back the input exactly, so a recipe can reproduce the tar.
//
// Interpretation follows Go archive/tar (what containerd and Docker use), so strata sees the same
// entries as the runtimes (shared/specs/reliability.md §1b): pax size wins over the ustar size;
// a pax 'x' header applies to the next real entry, across 'L'/'K' headers; header-only types
// (links, devices, directories, fifos) carry no content whatever their size field says; a '\0'
// typeflag whose name ends in '/' is a directory; a second 'x' before an entry replaces the first;
// pax 'g' headers are reported as their own entry and not applied; the archive may end with
// two zero blocks, a lone zero block, or none at all (at an entry boundary). Empty input, a
// zero block followed by a non-zero one, or input ending inside any block is an error. GNU sparse
// entries (type 'S' or GNU.sparse.* records) are refused (OCI: sparse files SHOULD NOT be used).
// Paths are kept byte-exact and only flagged when absolute or containing '..' (never used as
// filesystem paths).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/base/byte_source.h"
#include "strata/buffer.h"
#include "strata/result.h"

namespace strata {

enum class TarEntryType : std::uint8_t {
  kRegular,       // '0', '\0', '7' (contiguous file)
  kHardLink,      // '1'
  kSymlink,       // '2'
  kCharDevice,    // '3'
  kBlockDevice,   // '4'
  kDirectory,     // '5' (or '\0' with a trailing '/')
  kFifo,          // '6'
  kGlobalHeader,  // pax 'g': records for the archive, reported but not applied
  kOther,         // any other typeflag (e.g. GNU 'D', 'V'): content kept opaque
};

struct TarEntry {
  TarEntryType type = TarEntryType::kRegular;
  char typeflag = '0';     // the raw typeflag byte of the entry's own header
  std::string path;        // effective: pax path > GNU 'L' > ustar prefix/name
  std::string link_path;   // effective: pax linkpath > GNU 'K' > ustar linkname
  std::uint64_t size = 0;  // content bytes that follow the header group
  std::int64_t mode = 0;
  std::int64_t uid = 0;
  std::int64_t gid = 0;
  std::string uname;
  std::string gname;
  std::int64_t mtime = 0;  // whole seconds since the epoch
  std::string pax_mtime;   // the pax mtime text as written ("1700000000.25"), if any
  std::int64_t dev_major = 0;
  std::int64_t dev_minor = 0;
  // SCHILY.xattr.<name> records, in archive order (values are raw bytes).
  std::vector<std::pair<std::string, std::string>> xattrs;
  // Every pax record of the 'x' (or 'g') header, in order, as written.
  std::vector<std::pair<std::string, std::string>> pax_records;
  bool whiteout = false;            // basename starts with ".wh." (OCI whiteout)
  bool opaque_whiteout = false;     // basename is ".wh..wh..opq"
  bool unsafe_path = false;         // path is absolute or has a ".." component
  bool unsafe_link = false;         // link path (hard or symbolic) is absolute or has ".."
  std::uint64_t header_offset = 0;  // stream offset of the first block of the header group
};

struct TarLimits {
  std::uint64_t max_entry_size = 1ULL << 40U;  // content bytes of one entry (1 TiB)
  std::size_t max_header_bytes = 1U << 20U;    // header group incl. pax/GNU data (Go's 1 MiB)
  std::size_t max_path_length = 64U << 10U;    // path and link path, bytes
  std::uint64_t max_entries = 10'000'000;      // entries per archive (entry-count bombs)
};

enum class TarEventKind : std::uint8_t {
  kHeader,         // bytes = the header group; entry is set
  kContent,        // bytes = the next piece of the current entry's content
  kPadding,        // bytes = zero to 511 bytes filling the content to a 512-byte boundary
  kEndOfArchive,   // bytes = the end-of-archive zero blocks (two, or one at the very end)
  kTrailingBytes,  // bytes = a piece of what follows the end blocks (record padding, anything)
  kDone,           // the stream is finished; bytes empty
};

struct TarEvent {
  TarEventKind kind = TarEventKind::kDone;
  ByteSpan bytes;                   // valid until the next call to next()
  const TarEntry* entry = nullptr;  // kHeader only; valid until the next kHeader
  std::uint64_t offset = 0;         // stream offset of bytes[0]
};

// Buffers the reader reads into, lent by its caller (the ingest pipeline's batches own them), so
// the spans of the reader's events lie in storage the caller keeps after the reader moves on.
// Without one the reader uses a 1 MiB buffer of its own and moves what is left to its front.
class TarReadBuffers {
 public:
  TarReadBuffers() = default;
  TarReadBuffers(const TarReadBuffers&) = delete;
  TarReadBuffers& operator=(const TarReadBuffers&) = delete;
  virtual ~TarReadBuffers() = default;

  // A buffer of at least TarReader::kMinLentBuffer bytes for the reader to read into next. The
  // reader never writes to the previous buffer again: it copies the previous buffer's unread bytes
  // (less than two blocks, or what give_back() returned: at most half a buffer) to the front of
  // this one and appends to it, so the bytes of earlier content, padding, end and trailing events
  // stay where they were (header groups are gathered in a buffer of the reader's own). A buffer
  // too small is an error of the next read.
  virtual MutableByteSpan next_buffer() = 0;
};

class TarReader {
 public:
  static constexpr std::size_t kBlockSize = 512;
  static constexpr std::size_t kBufferSize = 1U << 20U;
  static constexpr std::size_t kMinLentBuffer = 4U * kBlockSize;

  // `buffers`: where to read (kept by the caller, who outlives the reader); null: a buffer of the
  // reader's own.
  explicit TarReader(ByteSource& source, const TarLimits& limits = {},
                     TarReadBuffers* buffers = nullptr);

  // The next event. After an error every later call returns the same error.
  Result<TarEvent> next();

  // Hands the last `count` bytes of the content event just returned out again, at the start of
  // the next content event, which then holds at least one byte more (so a caller that cuts only
  // what is certain, as a chunker does, needs no buffer of its own). Only with lent buffers and
  // `count` at most half the current buffer (the next one holds them with room to spare); false,
  // and nothing changes, otherwise.
  bool give_back(std::size_t count);

  // Passes over what is left of the current entry's content without content events (the source
  // skips what the reader has not read yet, ByteSource::skip); the next event is the entry's
  // padding or the next header. Does nothing outside content. A stream that ends inside the
  // content is the same error next() would give.
  Result<void> skip_content();

  // Bytes consumed from the source so far (the offset after the last event).
  [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
  [[nodiscard]] std::uint64_t entry_count() const noexcept { return entries_; }

 private:
  enum class State : std::uint8_t { kHeader, kContent, kPadding, kTrailing, kDone, kFailed };

  Result<TarEvent> read_header_group();
  Result<TarEvent> read_content();
  Result<TarEvent> read_padding();
  Result<TarEvent> read_trailing();
  Result<TarEvent> finish_end_of_archive(std::uint64_t block_offset);

  // Makes at least `count` (<= kBufferSize) bytes available; false at end of stream.
  Result<bool> fill(std::size_t count);
  // fill()'s room for `count` bytes from begin_: the unread bytes moved to the front of the own
  // buffer, or copied to the next lent one when the lent buffer has no room left for them.
  Result<void> make_room(std::size_t count);
  // Appends the next `count` bytes to header_bytes_; error when the stream ends first.
  Result<void> take_header_bytes(std::size_t count, std::string_view what);
  ByteSpan consume(std::size_t count);
  Error fail(Error error);
  Error truncated(std::string_view what) const;

  ByteSource& source_;
  TarLimits limits_;
  TarReadBuffers* lent_;              // null: buffer_ is the reader's own
  std::vector<std::uint8_t> buffer_;  // the own buffer (empty with lent buffers)
  MutableByteSpan data_;              // the buffer read into: buffer_ or the current lent one
  std::size_t begin_ = 0;             // first unconsumed byte in data_
  std::size_t end_ = 0;               // one past the last valid byte in data_
  bool source_ended_ = false;
  std::uint64_t offset_ = 0;
  std::uint64_t entries_ = 0;
  State state_ = State::kHeader;
  std::uint64_t content_left_ = 0;
  std::size_t returnable_ = 0;  // bytes of the last event give_back() may hand out again
  std::size_t want_ = 1;        // bytes the next content event needs at least (give_back)
  std::size_t padding_ = 0;
  std::vector<std::uint8_t> header_bytes_;
  TarEntry entry_;
  Error error_;
};

}  // namespace strata
