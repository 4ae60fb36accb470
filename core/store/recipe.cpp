// Layer recipes (include/strata/recipe.h): building, replaying (through the one recipe reader,
// core/store/recipe_reader.h, each chunk checked by length and SHA-256), and the binary form.
// Layout, version 1 (varints are unsigned LEB128, shortest form only):
//   "STRATARC" | u8 version=1 | body | u64le XXH3-64 of every byte before it, where body is
//   varint total_size | diff_id[32] | varint raw_size | varint segment_count |
//   segment_count x (u8 kind | varint length | kind 1: digest[32]) | raw bytes[raw_size]
// Version 2 (what serialize_recipe writes) holds the same body as one zstd frame (level 3, content
// size in its header):
//   "STRATARC" | u8 version=2 | varint body_size | zstd frame of body | u64le XXH3-64
// The raw area is tar headers and padding, which compress ~14x (a Python image's recipe: 2.2 MB
// to ~0.15 MB), and a delta-coded update's recipe was most of its store growth. Both versions are
// read.
// Raw segments take their bytes from the raw area in order, so no offsets are stored. Canonical
// body: no empty segment, no two adjacent raw segments, lengths summing to total_size; the parser
// refuses anything else. serialize_recipe is deterministic (equal recipes give equal bytes).
#include "strata/recipe.h"

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string_view>

#include "core/store/recipe_reader.h"

namespace strata {
namespace {

constexpr std::string_view kMagic = "STRATARC";
constexpr std::uint8_t kPlainVersion = 1;
constexpr std::uint8_t kCompressedVersion = 2;
constexpr int kBodyLevel = 3;
// The largest body a version-2 recipe may announce: LayerRecipeLimits' 256 MiB of inline bytes
// plus the segments of a layer of millions of chunks. The body is decoded into a buffer that grows
// with what the frame really produces, so a hostile announcement costs no memory up front.
constexpr std::uint64_t kMaxBodyBytes = std::uint64_t{1} << 30U;
constexpr std::size_t kChecksumSize = 8;
constexpr std::size_t kMinSegmentBytes = 2;             // kind + one-byte varint
constexpr std::uint64_t kMaxChunkLength = 1ULL << 32U;  // far above any chunker maximum

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(value | 0x80U));
    value >>= 7U;
  }
  out.push_back(static_cast<std::uint8_t>(value));
}

Error corrupt(const std::string& why) {
  return make_error(ErrorCode::kCorruptInput, "recipe: " + why);
}

class Reader {
 public:
  explicit Reader(ByteSpan bytes) : bytes_(bytes) {}

  [[nodiscard]] std::size_t remaining() const { return bytes_.size() - position_; }
  [[nodiscard]] std::size_t position() const { return position_; }

  Result<std::uint64_t> varint(std::string_view what) {
    std::uint64_t value = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (position_ >= bytes_.size()) return corrupt("truncated in " + std::string(what));
      const std::uint8_t byte = bytes_[position_++];
      if (shift == 63 && byte > 1) return corrupt(std::string(what) + " overflows 64 bits");
      value |= static_cast<std::uint64_t>(byte & 0x7FU) << shift;
      if ((byte & 0x80U) == 0) {
        if (byte == 0 && shift > 0) return corrupt(std::string(what) + " is not in shortest form");
        return value;
      }
    }
    return corrupt(std::string(what) + " is longer than 10 bytes");
  }

  Result<ByteSpan> take(std::size_t count, std::string_view what) {
    if (remaining() < count) return corrupt("truncated in " + std::string(what));
    const ByteSpan span = bytes_.subspan(position_, count);
    position_ += count;
    return span;
  }

 private:
  ByteSpan bytes_;
  std::size_t position_ = 0;
};

Result<Digest> take_digest(Reader& reader, std::string_view what) {
  auto span = reader.take(Digest::kSize, what);
  if (!span.ok()) return std::move(span).error();
  Digest::Bytes bytes{};
  std::memcpy(bytes.data(), span->data(), Digest::kSize);
  return Digest(bytes);
}

}  // namespace

std::vector<Digest> Recipe::distinct_chunks() const {
  std::vector<Digest> digests;
  for (const RecipeSegment& segment : segments_) {
    if (segment.kind == RecipeSegmentKind::kChunk) digests.push_back(segment.digest);
  }
  std::sort(digests.begin(), digests.end());
  digests.erase(std::unique(digests.begin(), digests.end()), digests.end());
  return digests;
}

void RecipeBuilder::add_raw(ByteSpan bytes) {
  if (bytes.empty()) return;
  auto& segments = recipe_.segments_;
  if (segments.empty() || segments.back().kind != RecipeSegmentKind::kRaw) {
    segments.push_back(RecipeSegment{RecipeSegmentKind::kRaw, 0, recipe_.raw_bytes_.size(), {}});
  }
  segments.back().length += bytes.size();
  recipe_.raw_bytes_.insert(recipe_.raw_bytes_.end(), bytes.begin(), bytes.end());
  recipe_.total_size_ += bytes.size();
}

void RecipeBuilder::add_chunk(const Digest& digest, std::uint64_t length) {
  if (length == 0) return;
  recipe_.segments_.push_back(RecipeSegment{RecipeSegmentKind::kChunk, length, 0, digest});
  recipe_.total_size_ += length;
}

Recipe RecipeBuilder::finish() {
  Recipe recipe = std::move(recipe_);
  recipe_ = Recipe();
  return recipe;
}

Result<void> replay(const Recipe& recipe, const ChunkProvider& provider, const ByteSink& sink) {
  RecipeReaderOptions options;
  options.batch_bytes = 0;  // one segment a batch: the provider's span lives until its next call
  RecipeReader reader(recipe, provided_chunks(provider), options);
  return reader.write_to(sink);
}

namespace {

std::vector<std::uint8_t> recipe_body(const Recipe& recipe) {
  std::vector<std::uint8_t> out;
  out.reserve(64 + recipe.raw_bytes().size() + recipe.segments().size() * 40);
  put_varint(out, recipe.total_size());
  out.insert(out.end(), recipe.diff_id().bytes().begin(), recipe.diff_id().bytes().end());
  put_varint(out, recipe.raw_bytes().size());
  put_varint(out, recipe.segments().size());
  for (const RecipeSegment& segment : recipe.segments()) {
    out.push_back(static_cast<std::uint8_t>(segment.kind));
    put_varint(out, segment.length);
    if (segment.kind == RecipeSegmentKind::kChunk) {
      out.insert(out.end(), segment.digest.bytes().begin(), segment.digest.bytes().end());
    }
  }
  out.insert(out.end(), recipe.raw_bytes().begin(), recipe.raw_bytes().end());
  return out;
}

void append_checksum(std::vector<std::uint8_t>& out) {
  const std::uint64_t checksum = XXH3_64bits(out.data(), out.size());
  for (unsigned i = 0; i < kChecksumSize; ++i) {
    out.push_back(static_cast<std::uint8_t>(checksum >> (8U * i)));
  }
}

// The version-2 body: one zstd frame that must decode to exactly `announced` bytes.
Result<std::vector<std::uint8_t>> decompress_body(ByteSpan frame, std::uint64_t announced) {
  if (announced > kMaxBodyBytes) {
    return corrupt("body of " + std::to_string(announced) + " bytes exceeds the " +
                   std::to_string(kMaxBodyBytes) + "-byte limit");
  }
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> context(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!context) return make_error(ErrorCode::kInternal, "cannot allocate a zstd context");
  std::vector<std::uint8_t> body(
      static_cast<std::size_t>(std::min<std::uint64_t>(announced, std::uint64_t{1} << 20U)));
  ZSTD_inBuffer input{frame.data(), frame.size(), 0};
  std::size_t produced = 0;
  for (;;) {
    if (produced == body.size() && body.size() < announced) {
      body.resize(static_cast<std::size_t>(std::min<std::uint64_t>(announced, body.size() * 2)));
    }
    // A full body leaves only the frame's end to read: a one-byte probe shows whether more comes.
    std::uint8_t probe = 0;
    const bool full = produced == body.size();
    ZSTD_outBuffer output =
        full ? ZSTD_outBuffer{&probe, 1, 0} : ZSTD_outBuffer{body.data(), body.size(), produced};
    const std::size_t input_before = input.pos;
    const std::size_t status = ZSTD_decompressStream(context.get(), &output, &input);
    if (ZSTD_isError(status)) {
      return corrupt(std::string("body does not decode: ") + ZSTD_getErrorName(status));
    }
    if (full && output.pos != 0) {
      return corrupt("body decodes to more than the " + std::to_string(announced) +
                     " bytes announced");
    }
    const bool progressed = input.pos != input_before || (!full && output.pos != produced);
    if (!full) produced = output.pos;
    if (status == 0) break;  // the frame is complete
    if (!progressed && input.pos == input.size) return corrupt("body frame is truncated");
  }
  if (produced != announced) {
    return corrupt("body decodes to " + std::to_string(produced) + " bytes, not the " +
                   std::to_string(announced) + " announced");
  }
  if (input.pos != input.size) {
    return corrupt(std::to_string(input.size - input.pos) + " bytes after the body frame");
  }
  return body;
}

}  // namespace

std::vector<std::uint8_t> serialize_recipe(const Recipe& recipe) {
  const std::vector<std::uint8_t> body = recipe_body(recipe);
  std::vector<std::uint8_t> out(kMagic.begin(), kMagic.end());
  out.push_back(kCompressedVersion);
  put_varint(out, body.size());
  const std::size_t frame_at = out.size();
  out.resize(frame_at + ZSTD_compressBound(body.size()) + kChecksumSize);
  // A fresh context per call at a fixed level, single-threaded: the same body always gives the
  // same frame. ZSTD_compress cannot fail on a buffer of ZSTD_compressBound bytes.
  const std::size_t written = ZSTD_compress(out.data() + frame_at, out.size() - frame_at,
                                            body.data(), body.size(), kBodyLevel);
  out.resize(frame_at + (ZSTD_isError(written) ? 0 : written));
  append_checksum(out);
  return out;
}

Result<Recipe> parse_recipe(ByteSpan bytes) {
  if (bytes.size() < kMagic.size() + 1 + kChecksumSize) {
    return corrupt("only " + std::to_string(bytes.size()) + " bytes, too short to be a recipe");
  }
  if (std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    return corrupt("bad magic (not a strata recipe)");
  }
  const std::uint8_t version = bytes[kMagic.size()];
  if (version != kPlainVersion && version != kCompressedVersion) {
    return make_error(ErrorCode::kUnsupported, "recipe: format version " + std::to_string(version) +
                                                   " is not supported (expected 1 or 2)");
  }
  const ByteSpan checked = bytes.first(bytes.size() - kChecksumSize);
  std::uint64_t stored = 0;
  for (unsigned i = 0; i < kChecksumSize; ++i) {
    stored |= static_cast<std::uint64_t>(bytes[checked.size() + i]) << (8U * i);
  }
  if (XXH3_64bits(checked.data(), checked.size()) != stored) return corrupt("checksum mismatch");
  ByteSpan body = checked.subspan(kMagic.size() + 1);
  std::vector<std::uint8_t> decompressed;
  if (version == kCompressedVersion) {
    Reader header(body);
    auto announced = header.varint("body size");
    if (!announced.ok()) return std::move(announced).error();
    auto decoded = decompress_body(body.subspan(header.position()), *announced);
    if (!decoded.ok()) return std::move(decoded).error();
    decompressed = std::move(decoded).value();
    body = ByteSpan(decompressed);
  }
  Reader reader(body);
  Recipe recipe;
  auto total = reader.varint("total size");
  if (!total.ok()) return std::move(total).error();
  auto diff_id = take_digest(reader, "diff_id");
  if (!diff_id.ok()) return std::move(diff_id).error();
  auto raw_size = reader.varint("raw size");
  if (!raw_size.ok()) return std::move(raw_size).error();
  if (*raw_size > reader.remaining()) {
    return corrupt("raw size " + std::to_string(*raw_size) + " exceeds the " +
                   std::to_string(reader.remaining()) + " bytes present");
  }
  auto count = reader.varint("segment count");
  if (!count.ok()) return std::move(count).error();
  if (*count > (reader.remaining() - *raw_size) / kMinSegmentBytes) {
    return corrupt("segment count " + std::to_string(*count) + " cannot fit in " +
                   std::to_string(reader.remaining()) + " bytes");
  }
  recipe.segments_.reserve(static_cast<std::size_t>(*count));
  std::uint64_t raw_offset = 0;
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < *count; ++i) {
    const std::string where = "segment " + std::to_string(i);
    auto kind = reader.take(1, where);
    if (!kind.ok()) return std::move(kind).error();
    auto length = reader.varint(where + " length");
    if (!length.ok()) return std::move(length).error();
    if (*length == 0) return corrupt(where + " is empty");
    if (*length > *total - sum) return corrupt("segment lengths exceed the total size");
    RecipeSegment segment;
    segment.length = *length;
    if ((*kind)[0] == static_cast<std::uint8_t>(RecipeSegmentKind::kRaw)) {
      if (!recipe.segments_.empty() && recipe.segments_.back().kind == RecipeSegmentKind::kRaw) {
        return corrupt(where + " is raw and follows a raw segment (not canonical)");
      }
      if (*length > *raw_size - raw_offset) return corrupt(where + " runs past the raw bytes");
      segment.kind = RecipeSegmentKind::kRaw;
      segment.raw_offset = raw_offset;
      raw_offset += *length;
    } else if ((*kind)[0] == static_cast<std::uint8_t>(RecipeSegmentKind::kChunk)) {
      if (*length > kMaxChunkLength) return corrupt(where + " is an absurdly long chunk");
      auto digest = take_digest(reader, where + " digest");
      if (!digest.ok()) return std::move(digest).error();
      segment.kind = RecipeSegmentKind::kChunk;
      segment.digest = *digest;
    } else {
      return corrupt(where + " has unknown kind " + std::to_string((*kind)[0]));
    }
    sum += *length;
    recipe.segments_.push_back(segment);
  }
  if (sum != *total) return corrupt("segment lengths do not add up to the total size");
  if (raw_offset != *raw_size) return corrupt("raw segments do not cover the raw bytes");
  if (reader.remaining() < *raw_size) return corrupt("truncated in raw bytes");
  if (reader.remaining() > *raw_size) {
    return corrupt(std::to_string(reader.remaining() - *raw_size) +
                   " unexpected bytes after the segments");
  }
  auto raw = reader.take(static_cast<std::size_t>(*raw_size), "raw bytes");
  if (!raw.ok()) return std::move(raw).error();
  recipe.raw_bytes_.assign(raw->begin(), raw->end());
  recipe.total_size_ = *total;
  recipe.diff_id_ = *diff_id;
  return recipe;
}

}  // namespace strata
