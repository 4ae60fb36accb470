// POSIX file helpers for pack files and the store directory, on core/base/file_io.h (the one owning
// descriptor, looping writes and reads): writes, exact reads of records and fsync of files and
// directories that go through the fault-injection hook, and unique file names. Every failure
// comes back as a kIo error naming the path and the errno text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/file_io.h"
#include "strata/buffer.h"
#include "strata/result.h"

namespace strata::pack_file {

using strata::FileDescriptor;

// Opens for reading; kNotFound when the file does not exist.
Result<FileDescriptor> open_for_reading(const std::string& path);
// Creates a new file that must not exist yet (O_EXCL), opened for writing.
Result<FileDescriptor> create_exclusive(const std::string& path);

// Writes all of `data` at the current position (append for pack files); the kPackWrite fault
// point tears the write.
Result<void> write_all(const FileDescriptor& file, ByteSpan data, const std::string& path);
// Reads exactly `buffer.size()` bytes at `offset`; a short file is kCorruptInput.
Result<void> read_exact_at(const FileDescriptor& file, std::uint64_t offset, MutableByteSpan buffer,
                           const std::string& path);

Result<void> sync_file(const FileDescriptor& file, const std::string& path);
// Asks the kernel to start writing `length` bytes at `offset` to the device now (Linux's
// sync_file_range with SYNC_FILE_RANGE_WRITE; nothing elsewhere), so the sync_file at commit has
// little left to wait for. Durability still comes from sync_file alone: this is a hint, and an
// error here is left for sync_file to report.
void start_writeback(const FileDescriptor& file, std::uint64_t offset, std::uint64_t length);
Result<void> sync_directory(const std::string& path);

// Creates `path` as a directory unless it exists; kIo when it cannot.
Result<void> ensure_directory(const std::string& path);

struct DirectoryEntry {
  std::string name;
  std::uint64_t size = 0;
};
// Regular files directly in `path` (no recursion), in no particular order.
Result<std::vector<DirectoryEntry>> list_directory(const std::string& path);

// Lease and pack names use the one random token of core/base/file_io.h.
using strata::random_hex_token;

// Whether `name` is a pack file name the store makes (docs/STORE.md): "<lease>-<n>.pack" (an
// ingest session's; lease = 16 lowercase hex digits, n decimal) or "gc-<16 hex>.pack" (gc's), and
// with `allow_temporary` also gc's "<that>.tmp" being written. Anything else, "../x" included,
// is never turned into a path under packs/.
bool is_pack_file_name(std::string_view name, bool allow_temporary);

}  // namespace strata::pack_file
