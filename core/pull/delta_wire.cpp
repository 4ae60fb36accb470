// Deltas over the wire (docs/DELTA.md, DESIGN.md §7): the delta referrer of an image, an OCI
// artifact manifest whose subject is the image manifest (OCI image-spec v1.1 manifest.md
// "subject", "artifactType"; distribution-spec v1.1 "Listing Referrers" and the "Referrers Tag
// Schema" fallback tag sha256-<hex>, shared/specs/layer-formats.md §3), holding one frames blob
// (the store's coded deltas back to back) and one index blob (per chunk: digest, base, codec,
// offset and length in the frames blob, raw length). Here: the index's JSON (written, and parsed
// with every count, size and offset checked before anything is allocated or fetched for it), the
// planner step that turns missing chunk pieces into delta pieces, and the push side's
// write_delta_referrer(), which reads the image's zstd:chunked TOCs from the layout and asks the
// store for each chunk's delta record (ChunkStore::read_stored_delta).
#include <fcntl.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/base/digest_hash.h"
#include "core/base/file_io.h"
#include "core/ingest/delta_base.h"
#include "core/pull/chunked_pull_checks.h"
#include "strata/pull_plan.h"
#include "strata/store_pull.h"

namespace strata::fastpull {
namespace {

// Version 1: rows of 6 elements. Version 2 (written when a row has a prefix): a row may carry a
// 7th element, its prefix chunks. Both parse.
constexpr int kDeltaIndexVersion = 1;
constexpr int kDeltaIndexPrefixVersion = 2;

Result<Codec> parse_delta_codec(std::string_view name) {
  if (name == codec_name(Codec::kZstdDelta)) return Codec::kZstdDelta;
  if (name == codec_name(Codec::kXorByteGrouped)) return Codec::kXorByteGrouped;
  return make_error(ErrorCode::kCorruptInput, "unknown delta codec");
}

Result<std::uint64_t> unsigned_of(const nlohmann::json& value) {
  if (!value.is_number_unsigned()) return make_error(ErrorCode::kCorruptInput, "not an unsigned");
  return value.get<std::uint64_t>();
}

Result<Digest> digest_of(const nlohmann::json& value) {
  if (!value.is_string()) return make_error(ErrorCode::kCorruptInput, "digest is not a string");
  return Digest::parse(value.get_ref<const std::string&>());
}

ByteSpan as_span(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// A row's 7th element: 1..kMaxDeltaPrefixChunks chunk digests, the base among them, the chunk
// not, for a zstd-delta frame only.
Result<std::vector<Digest>> parse_prefix(const nlohmann::json& value, const DeltaEntry& entry,
                                         const std::string& named) {
  if (!value.is_array() || value.empty() || value.size() > kMaxDeltaPrefixChunks) {
    return make_error(ErrorCode::kCorruptInput, named + ": prefix is not an array of 1.." +
                                                    std::to_string(kMaxDeltaPrefixChunks) +
                                                    " chunks");
  }
  if (entry.codec != Codec::kZstdDelta) {
    return make_error(ErrorCode::kCorruptInput, named + ": a prefix needs codec zstd-delta");
  }
  std::vector<Digest> prefix;
  prefix.reserve(value.size());
  for (const nlohmann::json& item : value) {
    auto digest = digest_of(item);
    if (!digest) return make_error(ErrorCode::kCorruptInput, named + ": malformed prefix digest");
    if (*digest == entry.chunk) {
      return make_error(ErrorCode::kCorruptInput, named + " names itself in its prefix");
    }
    prefix.push_back(*digest);
  }
  if (std::find(prefix.begin(), prefix.end(), entry.base) == prefix.end()) {
    return make_error(ErrorCode::kCorruptInput, named + ": its base is not in its prefix");
  }
  return prefix;
}

}  // namespace

const DeltaEntry* DeltaIndex::find(const Digest& chunk) const {
  const auto found = std::lower_bound(
      entries.begin(), entries.end(), chunk,
      [](const DeltaEntry& entry, const Digest& wanted) { return entry.chunk < wanted; });
  if (found == entries.end() || found->chunk != chunk) return nullptr;
  return &*found;
}

std::string write_delta_index(const DeltaIndex& index) {
  nlohmann::json chunks = nlohmann::json::array();
  bool prefixes = false;
  for (const DeltaEntry& entry : index.entries) {
    nlohmann::json row = {entry.chunk.to_string(),
                          entry.base.to_string(),
                          std::string(codec_name(entry.codec)),
                          entry.offset,
                          entry.length,
                          entry.raw_length};
    if (!entry.prefix.empty()) {
      prefixes = true;
      nlohmann::json prefix = nlohmann::json::array();
      for (const Digest& digest : entry.prefix) prefix.push_back(digest.to_string());
      row.push_back(std::move(prefix));
    }
    chunks.push_back(std::move(row));
  }
  const nlohmann::json json = {
      {"schemaVersion", prefixes ? kDeltaIndexPrefixVersion : kDeltaIndexVersion},
      {"mediaType", std::string(kMediaTypeDeltaIndex)},
      {"frames", {{"digest", index.frames_digest.to_string()}, {"size", index.frames_size}}},
      {"count", index.entries.size()},
      {"chunks", std::move(chunks)}};
  return json.dump();
}

Result<DeltaIndex> parse_delta_index(ByteSpan json, const DeltaIndexLimits& limits) {
  if (json.size() > limits.max_json_bytes) {
    return make_error(ErrorCode::kLimitExceeded, "delta index is " + std::to_string(json.size()) +
                                                     " bytes, over the limit of " +
                                                     std::to_string(limits.max_json_bytes));
  }
  const nlohmann::json doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return make_error(ErrorCode::kCorruptInput, "delta index is not a JSON object");
  }
  const auto field = [&](const char* name) -> const nlohmann::json* {
    const auto found = doc.find(name);
    return found == doc.end() ? nullptr : &*found;
  };
  const nlohmann::json* version = field("schemaVersion");
  if (version == nullptr || !version->is_number_integer() ||
      (version->get<std::int64_t>() != kDeltaIndexVersion &&
       version->get<std::int64_t>() != kDeltaIndexPrefixVersion)) {
    return make_error(ErrorCode::kUnsupported, "delta index schemaVersion is not 1 or 2");
  }
  const bool prefixes = version->get<std::int64_t>() == kDeltaIndexPrefixVersion;
  DeltaIndex index;
  const nlohmann::json* frames = field("frames");
  if (frames == nullptr || !frames->is_object() || !frames->contains("digest") ||
      !frames->contains("size")) {
    return make_error(ErrorCode::kCorruptInput, "delta index has no frames digest and size");
  }
  auto frames_digest = digest_of(frames->at("digest"));
  auto frames_size = unsigned_of(frames->at("size"));
  if (!frames_digest || !frames_size) {
    return make_error(ErrorCode::kCorruptInput, "delta index frames digest or size is malformed");
  }
  index.frames_digest = *frames_digest;
  index.frames_size = *frames_size;
  const nlohmann::json* count = field("count");
  const nlohmann::json* chunks = field("chunks");
  if (count == nullptr || chunks == nullptr || !chunks->is_array()) {
    return make_error(ErrorCode::kCorruptInput, "delta index has no count and chunks array");
  }
  auto declared = unsigned_of(*count);
  if (!declared) return make_error(ErrorCode::kCorruptInput, "delta index count is malformed");
  // The counts are checked before the entries are reserved or read.
  if (*declared > limits.max_entries || chunks->size() > limits.max_entries) {
    return make_error(ErrorCode::kLimitExceeded,
                      "delta index lists " +
                          std::to_string(std::max<std::uint64_t>(*declared, chunks->size())) +
                          " chunks, over the limit of " + std::to_string(limits.max_entries));
  }
  if (*declared != chunks->size()) {
    return make_error(ErrorCode::kCorruptInput, "delta index count " + std::to_string(*declared) +
                                                    " differs from its " +
                                                    std::to_string(chunks->size()) + " chunks");
  }
  index.entries.reserve(chunks->size());
  for (std::size_t i = 0; i < chunks->size(); ++i) {
    const nlohmann::json& row = (*chunks)[i];
    const std::string where = "delta index chunk " + std::to_string(i);
    if (!row.is_array() || (row.size() != 6 && !(prefixes && row.size() == 7))) {
      return make_error(
          ErrorCode::kCorruptInput,
          where + (prefixes ? " is not a 6- or 7-element array" : " is not a 6-element array"));
    }
    auto chunk = digest_of(row[0]);
    auto base = digest_of(row[1]);
    if (!chunk || !base) {
      return make_error(ErrorCode::kCorruptInput, where + ": malformed chunk or base digest");
    }
    const std::string named = where + " (" + chunk->to_string() + ")";
    if (!row[2].is_string()) return make_error(ErrorCode::kCorruptInput, named + ": codec");
    auto codec = parse_delta_codec(row[2].get_ref<const std::string&>());
    if (!codec) {
      return make_error(
          ErrorCode::kCorruptInput,
          named + ": codec '" + row[2].get<std::string>().substr(0, 64) + "' is not a delta codec");
    }
    auto offset = unsigned_of(row[3]);
    auto length = unsigned_of(row[4]);
    auto raw_length = unsigned_of(row[5]);
    if (!offset || !length || !raw_length) {
      return make_error(ErrorCode::kCorruptInput, named + ": offset, length or raw length");
    }
    if (*raw_length == 0 || *raw_length > kMaxStoredChunkBytes) {
      return make_error(ErrorCode::kLimitExceeded,
                        named + ": raw length " + std::to_string(*raw_length) + " is outside 1.." +
                            std::to_string(kMaxStoredChunkBytes));
    }
    if (*length == 0 || *length > *raw_length) {
      return make_error(ErrorCode::kCorruptInput,
                        named + ": delta length " + std::to_string(*length) +
                            " is 0 or more than the chunk's " + std::to_string(*raw_length));
    }
    if (*offset > index.frames_size || *length > index.frames_size - *offset) {
      return make_error(ErrorCode::kCorruptInput, named + ": bytes [" + std::to_string(*offset) +
                                                      ", +" + std::to_string(*length) +
                                                      ") lie past the frames blob's " +
                                                      std::to_string(index.frames_size) + " bytes");
    }
    if (*base == *chunk) {
      return make_error(ErrorCode::kCorruptInput, named + " names itself as its base");
    }
    DeltaEntry entry{*chunk, *base, *codec, *offset, *length, *raw_length, {}};
    if (row.size() == 7) {
      auto prefix = parse_prefix(row[6], entry, named);
      if (!prefix) return std::move(prefix).error();
      entry.prefix = std::move(*prefix);
    }
    index.entries.push_back(std::move(entry));
  }
  std::sort(index.entries.begin(), index.entries.end(),
            [](const DeltaEntry& a, const DeltaEntry& b) { return a.chunk < b.chunk; });
  for (std::size_t i = 1; i < index.entries.size(); ++i) {
    if (index.entries[i].chunk == index.entries[i - 1].chunk) {
      return make_error(ErrorCode::kCorruptInput,
                        "delta index lists chunk " + index.entries[i].chunk.to_string() + " twice");
    }
  }
  // Depth 1, as in the store: a base must be a chunk the receiver holds whole, never another
  // delta of this index (that would be a chain, or a cycle of chunks naming each other).
  for (const DeltaEntry& entry : index.entries) {
    if (index.find(entry.base) != nullptr) {
      return make_error(ErrorCode::kCorruptInput,
                        "delta index chunk " + entry.chunk.to_string() + " has base " +
                            entry.base.to_string() +
                            ", itself a delta of the index (chains and cycles are refused)");
    }
    for (const Digest& part : entry.prefix) {
      if (index.find(part) != nullptr) {
        return make_error(ErrorCode::kCorruptInput,
                          "delta index chunk " + entry.chunk.to_string() + " has prefix chunk " +
                              part.to_string() +
                              ", itself a delta of the index (chains and cycles are refused)");
      }
    }
  }
  return index;
}

Result<void> apply_delta_index(PullPlan& plan, const DeltaIndex& index, const HaveChunk& have,
                               const PullPlanOptions& options) {
  plan.fetch_bytes_without_deltas = plan.fetch_bytes;
  plan.delta_ranges.clear();
  plan.delta_fetch_bytes = 0;
  plan.delta_chunks = 0;
  plan.repeat_chunks = 0;
  std::vector<ByteRange> wanted;
  // Missing chunks already asked for by an earlier piece, and the raw bytes kept for repeats.
  std::unordered_map<Digest, std::uint64_t, DigestHash> asked;
  std::set<Digest> kept;
  std::uint64_t kept_bytes = 0;
  for (BlobPiece& piece : plan.pieces) {
    piece.delta.reset();
    piece.repeat = false;
    if (!piece.is_chunk || piece.local || piece.zeros) continue;
    const auto [first, added] = asked.try_emplace(piece.digest, piece.chunk_size);
    if (!added && first->second == piece.chunk_size && piece.chunk_size <= kMaxStoredChunkBytes &&
        (kept.contains(piece.digest) ||
         kept_bytes + piece.chunk_size <= options.max_repeat_bytes)) {
      if (kept.insert(piece.digest).second) kept_bytes += piece.chunk_size;
      piece.repeat = true;
      ++plan.repeat_chunks;
      continue;
    }
    const DeltaEntry* entry = index.find(piece.digest);
    if (entry == nullptr || entry->raw_length != piece.chunk_size ||
        entry->length >= piece.end - piece.offset || entry->base == piece.digest) {
      continue;
    }
    // The base must be in the store: a base that is a missing chunk of this pull (or unknown)
    // means the chunk comes whole.
    if (!have || !have(entry->base) ||
        !std::all_of(entry->prefix.begin(), entry->prefix.end(), have)) {
      continue;
    }
    piece.delta = *entry;
    ++plan.delta_chunks;
    wanted.push_back(ByteRange{entry->offset, entry->length});
  }
  detail::fill_plan_ranges(plan, options);
  // Pieces are consumed in blob order, and the pusher writes deltas in that order, so the frames
  // ranges are asked for in the same order: merged only with their successor, never reordered.
  for (const ByteRange& range : wanted) {
    if (!plan.delta_ranges.empty()) {
      ByteRange& last = plan.delta_ranges.back();
      const std::uint64_t last_end = last.offset + last.length;
      if (range.offset >= last_end && range.offset - last_end < options.gap_bridge_bytes) {
        last.length = range.offset + range.length - last.offset;
        continue;
      }
    }
    plan.delta_ranges.push_back(range);
  }
  for (const ByteRange& range : plan.delta_ranges) plan.delta_fetch_bytes += range.length;
  return {};
}

namespace {

// Where each chunk of the store's base layers sits in its file, for the prefix of a delta: the
// newest `max_layers` layers of the store that are not layers of the image itself (a v1 holder
// has them; the image's own chunks are what it lacks). Recipes only: no chunk is read here.
class BaseNeighbours {
 public:
  static Result<BaseNeighbours> of(const ChunkStore& store, std::span<const Digest> own_layers,
                                   std::size_t max_layers) {
    BaseNeighbours neighbours;
    if (max_layers == 0) return neighbours;
    auto layers = store.list_layers();
    if (!layers) return std::move(layers).error();
    const std::set<Digest> own(own_layers.begin(), own_layers.end());
    neighbours.layers_.reserve(max_layers);  // File pointers into them stay valid
    for (auto layer = layers->rbegin();
         layer != layers->rend() && neighbours.layers_.size() < max_layers; ++layer) {
      if (own.contains(layer->diff_id)) continue;
      auto index = DeltaBaseIndex::build(store, layer->diff_id);
      if (!index) continue;  // a layer whose recipe does not parse only gives no neighbours
      neighbours.layers_.push_back(std::move(*index));
      for (const auto& [path, file] : neighbours.layers_.back().all_files()) {
        for (std::size_t i = 0; i < file.chunks.size(); ++i) {
          neighbours.at_.try_emplace(file.chunks[i].digest, &file, i);
        }
      }
    }
    return neighbours;
  }

  // `base` and up to `count` chunks either side of it in its file, in file order; empty when
  // `base` is in none of the layers or its file has no other chunk.
  [[nodiscard]] std::vector<Digest> around(const Digest& base, std::size_t count) const {
    const auto found = at_.find(base);
    if (found == at_.end() || count == 0) return {};
    const auto& [file, at] = found->second;
    const std::size_t first = at - std::min(at, count);
    const std::size_t last = std::min(file->chunks.size() - 1, at + count);
    if (first == last) return {};
    std::vector<Digest> prefix;
    for (std::size_t i = first; i <= last && prefix.size() < kMaxDeltaPrefixChunks; ++i) {
      prefix.push_back(file->chunks[i].digest);
    }
    return prefix;
  }

 private:
  std::vector<DeltaBaseIndex> layers_;
  std::unordered_map<Digest, std::pair<const DeltaBaseIndex::File*, std::size_t>, DigestHash> at_;
};

// A zstd-delta frame of `raw` against the concatenated raw bytes of `prefix` (each read and
// checked by read_chunk), checked to decode back to `raw`; nullopt when a prefix chunk cannot be
// read or the prefix would pass the store's chunk limit.
Result<std::optional<std::vector<std::uint8_t>>> code_with_prefix(const ChunkStore& store,
                                                                  ByteSpan raw,
                                                                  std::span<const Digest> prefix,
                                                                  int level) {
  std::vector<std::uint8_t> joined;
  for (const Digest& part : prefix) {
    auto bytes = store.read_chunk(part);
    if (!bytes || joined.size() + bytes->size() > kMaxStoredChunkBytes) {
      return std::optional<std::vector<std::uint8_t>>();
    }
    joined.insert(joined.end(), bytes->begin(), bytes->end());
  }
  std::vector<std::uint8_t> coded;
  STRATA_TRY(compress_chunk_delta_into(raw, joined, level, coded));
  auto back = decompress_delta_chunk(Codec::kZstdDelta, coded, joined, raw.size());
  if (!back || !std::equal(back->begin(), back->end(), raw.begin(), raw.end())) {
    return make_error(ErrorCode::kInternal, "a delta with a prefix does not decode back");
  }
  return std::optional<std::vector<std::uint8_t>>(std::move(coded));
}

// The delta the referrer ships for `candidate`, or nothing when the store holds it whole or its
// delta is no smaller than its frame in the layer. What the receiver will check is checked here
// first: the chunk decodes, through its base, to its SHA-256 (read_chunk). A zstd-delta frame is
// coded again at options.level with the base as prefix, and the smaller of the two is shipped:
// the store's frames are made at the ingest's fast level, the wire's are made once per push.
Result<std::optional<DeltaEntry>> referrer_delta(const ChunkStore& store,
                                                 const DeltaCandidate& candidate,
                                                 const BaseNeighbours& neighbours,
                                                 const DeltaReferrerOptions& options,
                                                 std::vector<std::uint8_t>& bytes) {
  auto delta = store.read_stored_delta(candidate.chunk);
  if (!delta) return std::move(delta).error();
  if (!*delta || (*delta)->raw_length != candidate.raw_length) return std::optional<DeltaEntry>();
  auto raw = store.read_chunk(candidate.chunk);
  if (!raw) return std::move(raw).error();
  StoredDelta& stored = **delta;
  DeltaEntry entry{candidate.chunk, stored.base, stored.codec, 0, 0, stored.raw_length, {}};
  bytes = std::move(stored.bytes);
  if (options.level != 0 && stored.codec == Codec::kZstdDelta) {
    // The base with its neighbours when it has any (that prefix holds the base, so it codes about
    // as small or smaller), else the base alone; kept when smaller than the store's frame.
    std::vector<Digest> prefix = neighbours.around(stored.base, options.prefix_neighbours);
    const bool wide = !prefix.empty();
    if (!wide) prefix.push_back(stored.base);
    auto coded = code_with_prefix(store, *raw, prefix, options.level);
    if (!coded) return std::move(coded).error();
    if (*coded && (*coded)->size() < bytes.size()) {
      bytes = std::move(**coded);
      if (wide) entry.prefix = std::move(prefix);
    }
  }
  if (bytes.size() >= candidate.fetch_length) return std::optional<DeltaEntry>();
  entry.length = bytes.size();
  return std::optional<DeltaEntry>(std::move(entry));
}

// referrer_delta for candidates [first, last), on up to options.threads threads.
struct ReferrerDelta {
  DeltaEntry entry;  // offset not yet set
  std::vector<std::uint8_t> bytes;
};

Result<std::vector<std::optional<ReferrerDelta>>> referrer_deltas(
    const ChunkStore& store, std::span<const DeltaCandidate> candidates,
    const BaseNeighbours& neighbours, const DeltaReferrerOptions& options) {
  std::vector<std::optional<ReferrerDelta>> out(candidates.size());
  std::vector<std::optional<Error>> errors(candidates.size());
  std::atomic<std::size_t> next{0};
  const auto work = [&] {
    for (std::size_t i = next++; i < candidates.size(); i = next++) {
      std::vector<std::uint8_t> bytes;
      auto coded = referrer_delta(store, candidates[i], neighbours, options, bytes);
      if (coded && *coded) {
        out[i] = ReferrerDelta{std::move(**coded), std::move(bytes)};
      } else if (!coded) {
        errors[i] = std::move(coded).error();
      }
    }
  };
  const unsigned threads = std::clamp<unsigned>(
      options.threads == 0 ? std::thread::hardware_concurrency() : options.threads, 1, 64);
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads && t < candidates.size(); ++t) workers.emplace_back(work);
  work();
  for (std::thread& worker : workers) worker.join();
  for (std::optional<Error>& error : errors) {
    if (error) return std::move(*error);
  }
  return out;
}

}  // namespace

Result<DeltaReferrerReport> write_delta_referrer(const ChunkStore& store, oci::OciLayout& layout,
                                                 std::string_view tag,
                                                 const DeltaReferrerOptions& options) {
  auto image = layout.load_image(tag);
  if (!image) return std::move(image).error();
  std::vector<DeltaCandidate> candidates;
  std::uint64_t no_toc_layers = 0;
  for (const oci::Descriptor& layer : image->manifest.layers) {
    if (!chunked_format_of(layer.annotations)) {
      ++no_toc_layers;
      continue;
    }
    const std::string path = layout.blob_path(layer.digest);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open", path, errno);
    const FileDescriptor file(fd);
    const RangeFetcher fetch = [&](std::uint64_t offset,
                                   std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
      std::vector<std::uint8_t> bytes(static_cast<std::size_t>(length));
      auto read = pread_all(fd, offset, bytes, path);
      if (!read) return std::move(read).error();
      bytes.resize(*read);
      return bytes;
    };
    auto toc = read_chunked_toc(layer.size, layer.annotations, fetch);
    auto plan = toc ? plan_pull(*toc, {}) : Result<PullPlan>(std::move(toc).error());
    if (!plan) {
      ++no_toc_layers;
      continue;
    }
    for (const BlobPiece& piece : plan->pieces) {
      if (!piece.is_chunk || piece.zeros) continue;
      candidates.push_back(
          DeltaCandidate{piece.digest, piece.chunk_size, piece.end - piece.offset});
    }
  }
  oci::Descriptor subject = image->manifest_descriptor;
  if (subject.media_type.empty()) subject.media_type = std::string(oci::kMediaTypeImageManifest);
  // Prefix neighbours come from the store's other layers, never the image's own.
  DeltaReferrerOptions coding = options;
  coding.own_layers = image->config.diff_ids;
  auto report = write_delta_referrer_for_chunks(store, layout, subject, candidates, coding);
  if (!report) return report;
  report->no_toc_layers = no_toc_layers;
  STRATA_TRY(layout.set_tag("sha256-" + subject.digest.hex(), report->referrer));
  return report;
}

Result<DeltaReferrerReport> write_delta_referrer_for_chunks(const ChunkStore& store,
                                                            oci::OciLayout& layout,
                                                            const oci::Descriptor& subject,
                                                            std::span<const DeltaCandidate> chunks,
                                                            const DeltaReferrerOptions& options) {
  if (options.level != 0 && (options.level < 1 || options.level > ZSTD_maxCLevel())) {
    return make_error(ErrorCode::kInvalidArgument,
                      "delta level " + std::to_string(options.level) + " is outside 1.." +
                          std::to_string(ZSTD_maxCLevel()) + " (0: as stored)");
  }
  DeltaReferrerReport report;
  report.subject = subject.digest;
  // Each distinct chunk the store holds, in the order given (a pull asks in that order).
  std::vector<DeltaCandidate> held;
  std::set<Digest> seen;
  for (const DeltaCandidate& candidate : chunks) {
    if (!seen.insert(candidate.chunk).second) continue;
    ++report.chunks;
    if (store.contains(candidate.chunk)) held.push_back(candidate);
  }
  auto neighbours = BaseNeighbours::of(
      store, options.own_layers,
      options.level != 0 && options.prefix_neighbours != 0 ? options.max_base_layers : 0);
  if (!neighbours) return std::move(neighbours).error();
  auto frames_writer = layout.begin_blob();
  if (!frames_writer) return std::move(frames_writer).error();
  DeltaIndex index;
  // A window of candidates at a time: bounded memory, frames still written in pull order.
  constexpr std::size_t kWindow = 1024;
  const std::span<const DeltaCandidate> all(held);
  for (std::size_t first = 0; first < all.size(); first += kWindow) {
    const auto window = all.subspan(first, std::min(kWindow, all.size() - first));
    auto deltas = referrer_deltas(store, window, *neighbours, options);
    if (!deltas) return std::move(deltas).error();
    for (std::optional<ReferrerDelta>& delta : *deltas) {
      if (!delta) continue;
      STRATA_TRY(frames_writer->write(delta->bytes));
      delta->entry.offset = report.frames_bytes;
      report.frames_bytes += delta->bytes.size();
      report.delta_raw_bytes += delta->entry.raw_length;
      report.prefix_chunks += delta->entry.prefix.empty() ? 0 : 1;
      index.entries.push_back(std::move(delta->entry));
    }
  }
  // A base that is itself shipped as a delta would be a chain: the store keeps depth 1, so this
  // only drops entries of a store damaged in that way (the receiver's parser would refuse them).
  std::sort(index.entries.begin(), index.entries.end(),
            [](const DeltaEntry& a, const DeltaEntry& b) { return a.chunk < b.chunk; });
  std::set<Digest> shipped;
  for (const DeltaEntry& entry : index.entries) shipped.insert(entry.chunk);
  std::erase_if(index.entries, [&](const DeltaEntry& entry) {
    return shipped.contains(entry.base) ||
           std::any_of(entry.prefix.begin(), entry.prefix.end(),
                       [&](const Digest& part) { return shipped.contains(part); });
  });
  report.delta_chunks = index.entries.size();
  auto frames = frames_writer->commit(kMediaTypeDeltaFrames);
  if (!frames) return std::move(frames).error();
  index.frames_digest = frames->digest;
  index.frames_size = frames->size;
  const std::string index_json = write_delta_index(index);
  report.index_bytes = index_json.size();
  auto index_blob = layout.write_blob(kMediaTypeDeltaIndex, as_span(index_json));
  if (!index_blob) return std::move(index_blob).error();
  auto empty = layout.write_blob("application/vnd.oci.empty.v1+json", as_span("{}"));
  if (!empty) return std::move(empty).error();
  oci::Manifest referrer;
  referrer.artifact_type = std::string(kArtifactTypeDelta);
  referrer.config = *empty;
  referrer.layers = {*index_blob, *frames};
  oci::Descriptor named;
  named.media_type = subject.media_type;
  named.digest = subject.digest;
  named.size = subject.size;
  referrer.subject = named;
  auto written =
      layout.write_blob(oci::kMediaTypeImageManifest, as_span(oci::write_manifest(referrer)));
  if (!written) return std::move(written).error();
  written->artifact_type = std::string(kArtifactTypeDelta);
  report.referrer = *written;
  return report;
}

}  // namespace strata::fastpull
