// eStargz writer (shared/specs/layer-formats.md §2): the layer stays a valid tar+gzip blob, a
// concatenation of gzip members, with a new member at the first payload byte of every chunk of
// every regular file so each chunk can be fetched and inflated alone; padding and the following
// headers ride in the member of the file's last chunk (as ctr-remote writes it). The tar gains a
// first entry `.no.prefetch.landmark` (one byte 0x0f: nothing is prioritized) and a last entry
// `stargz.index.json` (the TOC, in its own member), then the 51-byte footer member whose "SG"
// extra field holds the TOC offset. Annotations: toc.digest = sha256 of the uncompressed TOC JSON,
// uncompressed-size = the new tar's length. The tar is read as a stream and each member written as
// it closes: memory is bounded by the largest chunk (content_unit_assembler.h) and the TOC.
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/base/byte_source.h"
#include "formats/chunked/content_unit_assembler.h"
#include "formats/chunked/toc_json.h"
#include "formats/compress/layer_writer_codecs.h"
#include "formats/tar/tar_reader.h"

namespace strata::fastpull {
namespace {

constexpr std::size_t kBlock = 512;

void put_octal(std::uint8_t* field, std::size_t width, std::uint64_t value) {
  char text[32];
  std::snprintf(text, sizeof text, "%0*llo", static_cast<int>(width - 1),
                static_cast<unsigned long long>(value));
  std::memcpy(field, text, width - 1);
  field[width - 1] = 0;
}

// A ustar header of a regular file owned by root with mode 0644 and mtime 0.
std::vector<std::uint8_t> ustar_file_header(std::string_view name, std::uint64_t size) {
  std::vector<std::uint8_t> block(kBlock, 0);
  std::memcpy(block.data(), name.data(), std::min<std::size_t>(name.size(), 100));
  put_octal(block.data() + 100, 8, 0644);
  put_octal(block.data() + 108, 8, 0);
  put_octal(block.data() + 116, 8, 0);
  put_octal(block.data() + 124, 12, size);
  put_octal(block.data() + 136, 12, 0);
  block[156] = '0';
  std::memcpy(block.data() + 257,
              "ustar\0"
              "00",
              8);
  std::memset(block.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (const std::uint8_t b : block) sum += b;
  put_octal(block.data() + 148, 7, sum);
  block[155] = ' ';
  return block;
}

class MemberWriter {
 public:
  MemberWriter(int level, const ByteSink& sink) : level_(level), sink_(sink) {}
  // Tar bytes for the current member.
  void add(ByteSpan bytes) {
    pending_.insert(pending_.end(), bytes.begin(), bytes.end());
    tar_hash_.update(bytes);
    tar_size_ += bytes.size();
  }
  // Ends the current member (if it holds anything); the next bytes start a new one.
  Result<void> close_member() {
    if (pending_.empty()) return {};
    auto encoder = oci::detail::make_isal_gzip_encoder(level_);
    if (!encoder) return std::move(encoder).error();
    STRATA_TRY((*encoder)->encode(pending_, true, [&](ByteSpan out) { return write_raw(out); }));
    pending_.clear();
    return {};
  }
  Result<void> write_raw(ByteSpan bytes) {
    blob_hash_.update(bytes);
    offset_ += bytes.size();
    return sink_(bytes);
  }
  [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
  [[nodiscard]] std::uint64_t tar_size() const noexcept { return tar_size_; }
  Digest finish_tar() { return tar_hash_.finish(); }
  Digest finish_blob() { return blob_hash_.finish(); }

 private:
  int level_;
  const ByteSink& sink_;
  std::vector<std::uint8_t> pending_;
  Sha256 tar_hash_;
  Sha256 blob_hash_;
  std::uint64_t offset_ = 0;
  std::uint64_t tar_size_ = 0;
};

// Adapts a TarStreamReader to the tar reader's ByteSource.
class FunctionByteSource final : public ByteSource {
 public:
  explicit FunctionByteSource(const TarStreamReader& read) : read_(read) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    auto got = read_(out);
    if (got && *got > out.size()) {
      return make_error(ErrorCode::kInvalidArgument, "tar reader returned more than asked");
    }
    return got;
  }

 private:
  const TarStreamReader& read_;
};

}  // namespace

Result<ChunkedWriteReport> write_estargz_layer(ByteSpan tar, std::span<const TarChunk> chunks,
                                               const ChunkedWriteOptions& options,
                                               const ByteSink& sink) {
  MemoryByteSource memory(tar);
  return stream_estargz_layer([&](MutableByteSpan out) { return memory.read(out); }, chunks,
                              options, sink);
}

Result<ChunkedWriteReport> stream_estargz_layer(const TarStreamReader& tar,
                                                std::span<const TarChunk> chunks,
                                                const ChunkedWriteOptions& options,
                                                const ByteSink& sink) {
  if (options.level < 0 || options.level > 3) {
    return make_error(ErrorCode::kInvalidArgument, "eStargz: gzip level must be 0..3 (ISA-L)");
  }
  if (!tar) return make_error(ErrorCode::kInvalidArgument, "eStargz writer needs a tar");
  ChunkedWriteReport report;
  MemberWriter out(options.level, sink);
  Toc toc;

  // The landmark: header in the first member, its byte in a member of its own.
  constexpr std::string_view kLandmark = ".no.prefetch.landmark";
  const std::uint8_t landmark_byte[1] = {0x0f};
  const std::vector<std::uint8_t> padding(kBlock - 1, 0);
  out.add(ustar_file_header(kLandmark, 1));
  STRATA_TRY(out.close_member());
  TocEntry landmark;
  landmark.type = "reg";
  landmark.name = std::string(kLandmark);
  landmark.size = 1;
  landmark.offset = out.offset();
  landmark.digest = sha256_of(landmark_byte);
  landmark.chunk_digest = landmark.digest;
  toc.entries.push_back(std::move(landmark));
  out.add(landmark_byte);
  out.add(padding);

  FunctionByteSource source(tar);
  TarReader reader(source);
  detail::ContentUnitAssembler units(chunks);
  bool in_file = false;
  std::size_t file_index = 0;
  Sha256 file_hash;
  std::string file_path;
  // Each unit starts a member; its bytes, then the padding and the next headers, ride in it.
  const auto write_unit = [&](const detail::ContentUnit& unit) -> Result<void> {
    STRATA_TRY(out.close_member());
    file_hash.update(unit.raw);
    const Digest digest = sha256_of(unit.raw);
    if (unit.file_offset == 0) {
      toc.entries[file_index].offset = out.offset();
      toc.entries[file_index].chunk_digest = digest;
      if (!unit.last) toc.entries[file_index].chunk_size = unit.raw.size();
    } else {
      TocEntry chunk;
      chunk.type = "chunk";
      chunk.name = file_path;
      chunk.offset = out.offset();
      chunk.chunk_offset = unit.file_offset;
      chunk.chunk_size = unit.last ? 0 : unit.raw.size();  // 0: to the end of the file
      chunk.chunk_digest = digest;
      toc.entries.push_back(std::move(chunk));
    }
    out.add(unit.raw);
    if (unit.last) toc.entries[file_index].digest = file_hash.finish();
    return {};
  };
  for (;;) {
    auto event = reader.next();
    if (!event) return std::move(event).error();
    if (event->kind == TarEventKind::kDone || event->kind == TarEventKind::kEndOfArchive) break;
    if (event->kind == TarEventKind::kContent) {
      if (in_file) {
        STRATA_TRY(units.add(event->bytes, write_unit));
      } else {
        out.add(event->bytes);
      }
      continue;
    }
    if (event->kind == TarEventKind::kPadding) {
      out.add(event->bytes);
      continue;
    }
    if (event->kind != TarEventKind::kHeader) continue;
    const TarEntry& entry = *event->entry;
    if (entry.path == "stargz.index.json" || entry.path == "./stargz.index.json") {
      return make_error(ErrorCode::kUnsupported,
                        "eStargz: the layer already holds a stargz.index.json entry");
    }
    out.add(event->bytes);
    TocEntry file;
    file.type = detail::toc_type_of(entry.type);
    file.name = entry.path;
    file.link_name = entry.link_path;
    file.mode = entry.mode & 07777;
    file.uid = entry.uid;
    file.gid = entry.gid;
    file.modtime = detail::rfc3339(entry.mtime);
    file.dev_major = entry.dev_major;
    file.dev_minor = entry.dev_minor;
    for (const auto& [key, value] : entry.xattrs) {
      file.xattrs[key] = detail::base64_encode(
          ByteSpan(reinterpret_cast<const std::uint8_t*>(value.data()), value.size()));
    }
    in_file = entry.type == TarEntryType::kRegular && entry.size != 0;
    if (entry.type == TarEntryType::kRegular) {
      file.size = entry.size;
      file.digest = sha256_of(ByteSpan());
    }
    if (!in_file) {
      if (!file.type.empty()) toc.entries.push_back(std::move(file));
      continue;
    }
    file_index = toc.entries.size();
    file_path = entry.path;
    toc.entries.push_back(std::move(file));
    units.begin_file(event->offset + event->bytes.size(), entry.size);
  }
  STRATA_TRY(out.close_member());

  // The TOC entry, then the end blocks, in a member of its own.
  const std::string json = detail::write_toc_json(toc);
  const ByteSpan json_bytes(reinterpret_cast<const std::uint8_t*>(json.data()), json.size());
  const std::uint64_t toc_offset = out.offset();
  out.add(ustar_file_header("stargz.index.json", json.size()));
  out.add(json_bytes);
  const std::vector<std::uint8_t> zeros(kBlock * 2 + (kBlock - json.size() % kBlock) % kBlock, 0);
  out.add(zeros);
  STRATA_TRY(out.close_member());

  // Footer: an empty gzip member whose extra field "SG" says where the TOC member starts.
  std::vector<std::uint8_t> footer = {0x1f, 0x8b, 0x08, 0x04, 0,   0,   0,  0,
                                      0,    0xff, 26,   0,    'S', 'G', 22, 0};
  char offset_text[17];
  std::snprintf(offset_text, sizeof offset_text, "%016llx",
                static_cast<unsigned long long>(toc_offset));
  footer.insert(footer.end(), offset_text, offset_text + 16);
  for (const char c : std::string_view("STARGZ")) footer.push_back(static_cast<std::uint8_t>(c));
  const std::uint8_t stored_empty_block[5] = {0x01, 0x00, 0x00, 0xff, 0xff};
  footer.insert(footer.end(), stored_empty_block, stored_empty_block + 5);
  footer.insert(footer.end(), 8, 0);
  STRATA_TRY(out.write_raw(footer));

  report.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  report.size = out.offset();
  report.digest = out.finish_blob();
  report.uncompressed_size = out.tar_size();
  report.diff_id = out.finish_tar();
  report.toc_entries = toc.entries.size();
  report.annotations[std::string(kEstargzTocDigestKey)] = sha256_of(json_bytes).to_string();
  report.annotations[std::string(kEstargzUncompressedSizeKey)] = std::to_string(out.tar_size());
  return report;
}

}  // namespace strata::fastpull
