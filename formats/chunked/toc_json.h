// Internal helpers shared by the zstd:chunked writer and the chunked-layer reader: the TOC JSON
// writer (c/storage minimal.TOC field names and order, shared/specs/layer-formats.md §1.2), the
// tar-split writer and checker (vbatts/tar-split JSONPacker lines, §1.3) with Go's CRC-64/ISO, and
// base64.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/tar/tar_reader.h"
#include "strata/chunked_layer.h"

namespace strata::fastpull::detail {

// {"version":1,"entries":[...],"tarSplitDigest":...}: compact, fields in c/storage's order.
std::string write_toc_json(const Toc& toc);
// TOC "modtime": RFC 3339 in UTC, whole seconds (what containers/storage and stargz write).
std::string rfc3339(std::int64_t seconds);
// TOC "type" of a tar entry ("reg", "dir", ...); empty for entries a TOC does not list.
std::string toc_type_of(TarEntryType type);

std::string base64_encode(ByteSpan bytes);
Result<std::vector<std::uint8_t>> base64_decode(std::string_view text);
// Same, into `out` (its capacity reused; cleared on error).
Result<void> base64_decode_into(std::string_view text, std::vector<std::uint8_t>& out);

// Go hash/crc64 with the ISO table (what tar-split stores per file body).
std::uint64_t crc64_iso(std::uint64_t crc, ByteSpan bytes);

// Builds tar-split JSON lines in stream order.
class TarSplitWriter {
 public:
  void add_segment(ByteSpan raw);  // type 2: raw bytes kept verbatim
  void add_file(const std::string& name, std::uint64_t size, ByteSpan content);  // type 1
  // Type 1 with the body's CRC-64 already computed (crc64_iso over the body, for streaming).
  void add_file_crc(const std::string& name, std::uint64_t size, std::uint64_t crc);
  [[nodiscard]] const std::string& text() const noexcept { return text_; }

 private:
  std::string text_;
  std::uint64_t position_ = 0;
};

struct TarSplitFile {
  std::string name;
  std::uint64_t size = 0;
};

// One tar-split line: type 2 a segment (`payload` its raw bytes), type 1 a file (`file`, and
// `payload` the 8-byte CRC-64 of its body when it has one).
struct TarSplitLine {
  std::int64_t type = 0;
  std::vector<std::uint8_t> payload;
  TarSplitFile file;
  std::uint64_t line_number = 0;
  // "tar-split line N: ", to begin an error message about this line.
  [[nodiscard]] std::string where() const {
    return "tar-split line " + std::to_string(line_number) + ": ";
  }
};

// The two readers behind parse_toc_json, for the tests and the fuzz target that hold them to
// each other: the plain-JSON fast path (nullopt: not a TOC it reads) and nlohmann's DOM.
std::optional<Toc> parse_plain_toc_json(ByteSpan json_bytes, std::size_t max_entries);
Result<Toc> parse_toc_json_in_full(ByteSpan json_bytes, std::size_t max_entries);

// The two readers behind for_each_tar_split_line, likewise: a line as JSONPacker writes it
// (false: not one it reads; `out` must start cleared) and nlohmann's parser.
bool parse_packed_tar_split_line(ByteSpan line, TarSplitLine& out);
Result<void> parse_tar_split_line_in_full(ByteSpan line, TarSplitLine& out);

// Parses every line and hands it to `visit` in order (malformed lines are kCorruptInput).
Result<void> for_each_tar_split_line(ByteSpan tar_split,
                                     const std::function<Result<void>(TarSplitLine&)>& visit);

// Checks that `tar_split` rebuilds `tar` byte for byte (segments equal, file bodies' CRC-64
// equal, nothing left over) and returns its file entries in order.
Result<std::vector<TarSplitFile>> check_tar_split(ByteSpan tar_split, ByteSpan tar);

// Rebuilds a tar from tar-split lines and the concatenated bodies of its file entries (what
// `tar-split asm` does with a directory); every body's CRC-64 is checked, all bodies must be used.
Result<std::vector<std::uint8_t>> assemble_tar_from_tar_split(ByteSpan tar_split, ByteSpan bodies,
                                                              std::uint64_t max_tar_bytes);

}  // namespace strata::fastpull::detail
