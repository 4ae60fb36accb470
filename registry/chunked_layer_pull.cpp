// Partial pull of one chunked layer from a registry (shared/specs/layer-formats.md §1, §2, §3):
// the footer / TOC / tar-split are read with single Range GETs through a fastpull::RangeFetcher,
// the planner marks the chunks the store already holds (by SHA-256, the digest zstd:chunked and
// eStargz TOCs name), and fastpull::pull_chunked_layer_into_store fetches the remaining ranges in
// bounded batches (one multi-range GET per batch; RegistryClient::fetch_ranges falls back to
// single ranges where a registry does not do multi-range), verifies every chunk, every file and
// the diff_id as the pieces stream by, and commits the layer from the TOC's chunks (zstd:chunked
// frames stored as fetched). Range answers cannot be checked against the blob digest; the
// per-chunk digests and the diff_id are what make them safe to use, and the layer is filed under
// its diff_id only: the blob digest the manifest names is never recorded (docs/THREAT_MODEL.md).
#include "registry/chunked_layer_pull.h"

#include <charconv>
#include <chrono>
#include <optional>

#include "registry/early_stream.h"
#include "strata/chunked_layer.h"
#include "strata/store.h"
#include "strata/store_pull.h"

namespace strata::registry::detail {
namespace {

// Multi-range batches (the short ranges of a layer the store mostly holds) fetched ahead of the
// one being decoded, each on its own pooled connection. Requests in flight at once share the link,
// so each arrives later: on a link-bound pull (v1 of the bench image through a 1 Gbit/s
// forwarder, bench/pull_compare.sh, before long runs were streamed) 3 in flight took 0.48 s, 2
// 0.44 s, 1 0.43 s (skopeo 0.41 s); on loopback all three were alike. One alone would leave the
// link idle for a round trip between requests on a distant registry: 2 keeps one request covering
// the other's round trip. Long runs of missing chunks are streamed instead (StorePullOptions::
// stream), one request at a time and decoded as they arrive.
constexpr std::size_t kBatchesInFlight = 2;

// Bytes an early stream (early_stream.h) holds before the plan asks for them: at 1 Gbit/s that
// is 67 ms of the link, three times what the TOC's read and the plan take on the bench image.
constexpr std::uint64_t kEarlyStreamBufferBytes = std::uint64_t{8} << 20U;
// After the plan's last range, an early stream reads the rest of its region when no more than
// this is left (the tar's end-of-archive frame, a few bytes), waiting this long at most: what a
// pull fetched is then the region whole, as plan_image_pull predicts, whatever the timing.
constexpr std::uint64_t kEarlyStreamRestBytes = std::uint64_t{1} << 20U;
constexpr std::chrono::milliseconds kEarlyStreamRestWait{250};

// The first number of a "offset:length:..." position annotation.
std::optional<std::uint64_t> position_offset(const oci::Annotations& annotations,
                                             std::string_view key) {
  const auto found = annotations.find(std::string(key));
  if (found == annotations.end()) return std::nullopt;
  const std::string& text = found->second;
  std::uint64_t offset = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), offset);
  if (error != std::errc() || end == text.data() || end == text.data() + text.size() ||
      *end != ':') {
    return std::nullopt;
  }
  return offset;
}

// Where the chunk frames of a zstd:chunked blob end, by the manifest's annotations: the TOC and
// tar-split frames follow them, each after an 8-byte skippable frame header (layer-formats.md
// §1.4). nullopt for other formats, or when the annotations do not say. A wrong answer costs
// only bytes: ranges past it are fetched as usual, and every fetched chunk is checked.
std::optional<std::uint64_t> frames_end(const oci::Descriptor& descriptor) {
  const auto& annotations = descriptor.annotations;
  std::optional<std::uint64_t> toc =
      position_offset(annotations, fastpull::kZstdChunkedManifestPositionKey);
  if (!toc) toc = position_offset(annotations, fastpull::kZstdChunkedV1ManifestPositionKey);
  if (!toc) return std::nullopt;
  std::uint64_t end = *toc;
  if (const auto split = position_offset(annotations, fastpull::kZstdChunkedTarSplitPositionKey)) {
    end = std::min(end, *split);
  }
  if (end <= 8) return std::nullopt;
  return std::min(end - 8, descriptor.size);
}

// The early stream of a layer's pull, when it has one: the region it streams, [0, end).
std::optional<std::uint64_t> early_stream_end(bool first_pull, const oci::Descriptor& descriptor) {
  if (!first_pull) return std::nullopt;
  return frames_end(descriptor);
}

}  // namespace

std::uint64_t early_stream_extra_bytes(bool first_pull, const oci::Descriptor& descriptor,
                                       const fastpull::PullPlan& plan) {
  const auto end = early_stream_end(first_pull, descriptor);
  if (!end) return 0;
  // Every plan range inside the region is served from it, in blob order; the rest of it is read
  // and dropped (finish()), when little is left after the last range.
  std::uint64_t served = 0;
  std::uint64_t last_end = 0;
  for (const ByteRange& range : plan.ranges) {
    if (range.offset >= last_end && range.offset <= *end && range.length <= *end - range.offset) {
      served += range.length;
      last_end = range.offset + range.length;
    }
  }
  if (*end - last_end > kEarlyStreamRestBytes) return 0;  // not predictable: stopped early
  return *end - served;
}

std::optional<ChunkedLayerPlan> plan_chunked_layer(
    RegistryClient& client, const std::string& repository, const oci::Descriptor& descriptor,
    const ChunkStore& store, std::uint64_t& metadata_bytes, std::string& whole_reason) {
  const auto format = fastpull::chunked_format_of(descriptor.annotations);
  if (!format) {
    whole_reason = "not a chunked layer";
    return std::nullopt;
  }
  const fastpull::RangeFetcher fetch_metadata =
      [&](std::uint64_t offset, std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
    auto bytes = client.fetch_range(repository, descriptor.digest, offset, length);
    if (bytes.ok()) metadata_bytes += bytes->size();
    return bytes;
  };
  auto toc = fastpull::read_chunked_toc(descriptor.size, descriptor.annotations, fetch_metadata);
  if (!toc.ok()) {
    whole_reason = "TOC unreadable: " + toc.error().message;
    return std::nullopt;
  }
  auto plan = fastpull::plan_pull(*toc, [&](const Digest& chunk) { return store.contains(chunk); });
  if (!plan.ok()) {
    whole_reason = "TOC not plannable: " + plan.error().message;
    return std::nullopt;
  }
  return ChunkedLayerPlan{*format, std::move(*toc), std::move(*plan)};
}

Result<bool> pull_chunked_layer(RegistryClient& client, const std::string& repository,
                                const oci::Descriptor& descriptor, const Digest& diff_id,
                                ChunkStore& store, const DeltasWhenPlanned& deltas_when_planned,
                                std::uint64_t stream_batch_bytes, bool first_pull,
                                PulledLayer& layer) {
  std::uint64_t metadata_bytes = 0;
  const auto stream_range = [&](const ByteRange& range, const fastpull::RangeSink& sink) {
    return client.stream_range(repository, descriptor.digest, range.offset, range.length, sink);
  };
  // A store that holds no chunk fetches every chunk frame: they start on the wire now, while the
  // TOC is read and planned, and the plan's streamed ranges take them from there.
  std::optional<EarlyStream> early;
  if (const auto end = early_stream_end(first_pull, descriptor)) {
    early.emplace(stream_range, *end, kEarlyStreamBufferBytes);
  }
  const auto early_unused = [&]() -> std::uint64_t {
    return early ? early->finish(kEarlyStreamRestBytes, kEarlyStreamRestWait) : 0;
  };
  const auto toc_start = std::chrono::steady_clock::now();
  auto planned =
      plan_chunked_layer(client, repository, descriptor, store, metadata_bytes, layer.whole_reason);
  layer.stages.toc +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - toc_start).count();
  if (!planned) {
    layer.bytes_fetched += metadata_bytes + early_unused();
    return false;
  }
  const auto& toc = planned->toc;
  auto& plan = planned->plan;
  const auto format = planned->format;
  const fastpull::RangeBatchFetcher fetch_batch =
      [&](std::span<const ByteRange> ranges) -> Result<std::vector<std::vector<std::uint8_t>>> {
    std::vector<ByteRange> request;
    request.reserve(ranges.size());
    for (const ByteRange& range : ranges) {
      request.push_back(ByteRange{range.offset, range.length});
    }
    auto fetched = client.fetch_ranges(repository, descriptor.digest, request);
    if (!fetched.ok()) return std::move(fetched).error();
    for (std::size_t i = 0; i < fetched->size() && i < request.size(); ++i) {
      if ((*fetched)[i].size() != request[i].length) {
        return make_error(ErrorCode::kCorruptInput,
                          repository + "@" + descriptor.digest.to_string() + ": range at " +
                              std::to_string(request[i].offset) + " came back with " +
                              std::to_string((*fetched)[i].size()) + " of " +
                              std::to_string(request[i].length) + " bytes");
      }
    }
    return fetched;
  };
  fastpull::StorePullOptions options;
  options.media_type = descriptor.media_type;
  // The client is thread-safe and pools its connections: a few batches travel at once.
  options.batches_in_flight = kBatchesInFlight;
  // Long runs of missing chunks stream in: one request per stream batch, decoded as it arrives.
  options.stream = [&](const ByteRange& range, const fastpull::RangeSink& sink) {
    if (early && early->serves(range)) return early->serve(range, sink);
    return stream_range(range, sink);
  };
  options.stream_batch_bytes = stream_batch_bytes;
  options.stream_every_range = early.has_value();
  layer.bytes_fetched_without_deltas = metadata_bytes + plan.fetch_bytes;
  fastpull::DeltaPullSource delta_source;
  const FoundDeltas* deltas = deltas_when_planned ? deltas_when_planned() : nullptr;
  if (deltas != nullptr && deltas->index) {
    STRATA_TRY(fastpull::apply_delta_index(
        plan, *deltas->index, [&](const Digest& chunk) { return store.contains(chunk); }));
  }
  if (plan.delta_chunks != 0) {
    const Digest frames = deltas->frames.digest;
    delta_source.frames_size = deltas->frames.size;
    delta_source.fetch =
        [&client, &repository, frames](
            std::span<const ByteRange> ranges) -> Result<std::vector<std::vector<std::uint8_t>>> {
      std::vector<ByteRange> request;
      request.reserve(ranges.size());
      for (const ByteRange& range : ranges) {
        request.push_back(ByteRange{range.offset, range.length});
      }
      return client.fetch_ranges(repository, frames, request);
    };
    delta_source.fetch_chunk = [&](std::uint64_t offset, std::uint64_t length) {
      return client.fetch_range(repository, descriptor.digest, offset, length);
    };
    options.deltas = &delta_source;
  }
  auto pulled =
      fastpull::pull_chunked_layer_into_store(store, toc, plan, fetch_batch, diff_id, options);
  // Bytes the early stream dropped, or had when the pull ended: fetched with or without deltas.
  const std::uint64_t early_extra = early_unused();
  layer.bytes_fetched += early_extra;
  layer.bytes_fetched_without_deltas += early_extra;
  if (!pulled.ok()) {
    if (pulled.error().code != ErrorCode::kUnsupported) {
      return make_error(pulled.error().code,
                        "layer " + descriptor.digest.to_string() + ": " + pulled.error().message);
    }
    layer.bytes_fetched += metadata_bytes;
    layer.whole_reason = "pull unsupported: " + pulled.error().message;
    return false;
  }
  layer.new_chunks = pulled->new_chunks;
  layer.new_stored_bytes = pulled->new_stored_bytes;
  layer.already_present = pulled->already_present;
  layer.chunked = true;
  layer.chunked_format = std::string(fastpull::chunked_format_name(format));
  layer.bytes_fetched += metadata_bytes + pulled->fetched_bytes;
  layer.chunks_local = plan.local_chunks;
  layer.chunks_fetched = plan.missing_chunks - plan.repeat_chunks;
  layer.repeat_chunks = pulled->repeat_chunks;
  layer.frames_adopted = pulled->adopted_frames;
  layer.fetch_batches = pulled->batches;
  layer.max_batch_bytes = pulled->max_batch_bytes;
  layer.metadata_bytes = metadata_bytes;
  layer.delta_chunks = pulled->delta_chunks;
  layer.delta_bytes_fetched = pulled->delta_fetched_bytes;
  layer.delta_stored_chunks = pulled->delta_stored_chunks;
  layer.delta_fallbacks = pulled->delta_fallbacks;
  layer.stages += pulled->stages;
  return true;
}

}  // namespace strata::registry::detail
