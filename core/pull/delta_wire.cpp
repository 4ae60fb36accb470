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

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/base/file_io.h"
#include "core/pull/chunked_pull_checks.h"
#include "strata/pull_plan.h"
#include "strata/store_pull.h"

namespace strata::fastpull {
namespace {

constexpr int kDeltaIndexVersion = 1;

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
  for (const DeltaEntry& entry : index.entries) {
    chunks.push_back({entry.chunk.to_string(), entry.base.to_string(),
                      std::string(codec_name(entry.codec)), entry.offset, entry.length,
                      entry.raw_length});
  }
  const nlohmann::json json = {
      {"schemaVersion", kDeltaIndexVersion},
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
      version->get<std::int64_t>() != kDeltaIndexVersion) {
    return make_error(ErrorCode::kUnsupported, "delta index schemaVersion is not 1");
  }
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
    if (!row.is_array() || row.size() != 6) {
      return make_error(ErrorCode::kCorruptInput, where + " is not a 6-element array");
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
    index.entries.push_back(DeltaEntry{*chunk, *base, *codec, *offset, *length, *raw_length});
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
  }
  return index;
}

Result<void> apply_delta_index(PullPlan& plan, const DeltaIndex& index, const HaveChunk& have,
                               const PullPlanOptions& options) {
  plan.fetch_bytes_without_deltas = plan.fetch_bytes;
  plan.delta_ranges.clear();
  plan.delta_fetch_bytes = 0;
  plan.delta_chunks = 0;
  std::vector<ByteRange> wanted;
  for (BlobPiece& piece : plan.pieces) {
    piece.delta.reset();
    if (!piece.is_chunk || piece.local || piece.zeros) continue;
    const DeltaEntry* entry = index.find(piece.digest);
    if (entry == nullptr || entry->raw_length != piece.chunk_size ||
        entry->length >= piece.end - piece.offset || entry->base == piece.digest) {
      continue;
    }
    // The base must be in the store: a base that is a missing chunk of this pull (or unknown)
    // means the chunk comes whole.
    if (!have || !have(entry->base)) continue;
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

Result<DeltaReferrerReport> write_delta_referrer(const ChunkStore& store, oci::OciLayout& layout,
                                                 std::string_view tag) {
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
    if (!toc) {
      ++no_toc_layers;
      continue;
    }
    auto plan = plan_pull(*toc, {});
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
  auto report = write_delta_referrer_for_chunks(store, layout, subject, candidates);
  if (!report) return report;
  report->no_toc_layers = no_toc_layers;
  STRATA_TRY(layout.set_tag("sha256-" + subject.digest.hex(), report->referrer));
  return report;
}

Result<DeltaReferrerReport> write_delta_referrer_for_chunks(
    const ChunkStore& store, oci::OciLayout& layout, const oci::Descriptor& subject,
    std::span<const DeltaCandidate> chunks) {
  DeltaReferrerReport report;
  report.subject = subject.digest;
  auto frames_writer = layout.begin_blob();
  if (!frames_writer) return std::move(frames_writer).error();
  DeltaIndex index;
  std::set<Digest> seen;
  for (const DeltaCandidate& candidate : chunks) {
    if (!seen.insert(candidate.chunk).second) continue;
    ++report.chunks;
    if (!store.contains(candidate.chunk)) continue;
    auto delta = store.read_stored_delta(candidate.chunk);
    if (!delta) return std::move(delta).error();
    if (!*delta || (*delta)->raw_length != candidate.raw_length ||
        (*delta)->bytes.size() >= candidate.fetch_length) {
      continue;
    }
    // What the receiver will check: the delta decodes, through its base, to the chunk.
    auto raw = store.read_chunk(candidate.chunk);
    if (!raw) return std::move(raw).error();
    STRATA_TRY(frames_writer->write((*delta)->bytes));
    index.entries.push_back(DeltaEntry{candidate.chunk, (*delta)->base, (*delta)->codec,
                                       report.frames_bytes, (*delta)->bytes.size(),
                                       (*delta)->raw_length});
    report.frames_bytes += (*delta)->bytes.size();
    report.delta_raw_bytes += (*delta)->raw_length;
  }
  // A base that is itself shipped as a delta would be a chain: the store keeps depth 1, so this
  // only drops entries of a store damaged in that way (the receiver's parser would refuse them).
  std::sort(index.entries.begin(), index.entries.end(),
            [](const DeltaEntry& a, const DeltaEntry& b) { return a.chunk < b.chunk; });
  std::set<Digest> shipped;
  for (const DeltaEntry& entry : index.entries) shipped.insert(entry.chunk);
  std::erase_if(index.entries,
                [&](const DeltaEntry& entry) { return shipped.contains(entry.base); });
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
