// Partial pull of one chunked layer from a registry (shared/specs/layer-formats.md §1, §2, §3):
// the footer / TOC / tar-split are read with single Range GETs through a fastpull::RangeFetcher,
// the planner marks the chunks the store already holds (by SHA-256, the digest zstd:chunked and
// eStargz TOCs name), the remaining ranges are cut into bounded pieces and fetched with
// multi-range GETs (RegistryClient::fetch_ranges falls back to single ranges where a registry
// does not do multi-range), and fastpull::rebuild_chunked_layer verifies every chunk, every file
// and the diff_id before anything reaches the store. Range answers cannot be checked against the
// blob digest; the per-chunk digests and the diff_id are what make them safe to use.
#include "registry/chunked_layer_pull.h"

#include <algorithm>

#include "strata/engine.h"
#include "strata/fastpull.h"
#include "strata/store.h"

namespace strata::registry::detail {
namespace {

// One multi-range request holds this much at most (fetch_ranges keeps the answer in memory), and
// a merged range longer than a piece is split (a cold pull merges a whole layer into one range).
constexpr std::uint64_t kMaxRangePieceBytes = std::uint64_t{16} << 20U;
constexpr std::uint64_t kMaxBatchBytes = std::uint64_t{64} << 20U;
constexpr std::size_t kMaxBatchRanges = 1024;

// Fetches every range of `plan`, returned in plan order, each exactly its length.
Result<std::vector<std::vector<std::uint8_t>>> fetch_plan_ranges(RegistryClient& client,
                                                                 const std::string& repository,
                                                                 const Digest& digest,
                                                                 const fastpull::PullPlan& plan) {
  std::vector<std::vector<std::uint8_t>> out(plan.ranges.size());
  std::vector<ByteRange> batch;
  std::vector<std::size_t> owners;  // plan range each piece of the batch belongs to
  std::uint64_t batch_bytes = 0;
  const auto flush = [&]() -> Result<void> {
    if (batch.empty()) return {};
    auto fetched = client.fetch_ranges(repository, digest, batch);
    if (!fetched.ok()) return std::move(fetched).error();
    if (fetched->size() != batch.size()) {
      return make_error(ErrorCode::kInternal, "fetch_ranges returned a different range count");
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto& bytes = (*fetched)[i];
      if (bytes.size() != batch[i].length) {
        return make_error(ErrorCode::kCorruptInput,
                          repository + "@" + digest.to_string() + ": range at " +
                              std::to_string(batch[i].offset) + " came back with " +
                              std::to_string(bytes.size()) + " of " +
                              std::to_string(batch[i].length) + " bytes");
      }
      auto& owner = out[owners[i]];
      owner.insert(owner.end(), bytes.begin(), bytes.end());
    }
    batch.clear();
    owners.clear();
    batch_bytes = 0;
    return {};
  };
  for (std::size_t i = 0; i < plan.ranges.size(); ++i) {
    const fastpull::ByteRange& range = plan.ranges[i];
    out[i].reserve(range.length);
    for (std::uint64_t done = 0; done < range.length;) {
      const std::uint64_t piece = std::min(kMaxRangePieceBytes, range.length - done);
      if (batch_bytes + piece > kMaxBatchBytes || batch.size() >= kMaxBatchRanges) {
        STRATA_TRY(flush());
      }
      batch.push_back(ByteRange{range.offset + done, piece});
      owners.push_back(i);
      batch_bytes += piece;
      done += piece;
    }
  }
  STRATA_TRY(flush());
  return out;
}

}  // namespace

Result<bool> pull_chunked_layer(RegistryClient& client, const std::string& repository,
                                const oci::Descriptor& descriptor, const Digest& diff_id,
                                ChunkStore& store, std::mutex& store_mutex, PulledLayer& layer) {
  const auto format = fastpull::chunked_format_of(descriptor.annotations);
  if (!format) {
    layer.whole_reason = "not a chunked layer";
    return false;
  }
  std::uint64_t metadata_bytes = 0;
  const fastpull::RangeFetcher fetch_metadata =
      [&](std::uint64_t offset, std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
    auto bytes = client.fetch_range(repository, descriptor.digest, offset, length);
    if (bytes.ok()) metadata_bytes += bytes->size();
    return bytes;
  };
  auto toc = fastpull::read_chunked_toc(descriptor.size, descriptor.annotations, fetch_metadata);
  if (!toc.ok()) {
    layer.bytes_fetched += metadata_bytes;
    layer.whole_reason = "TOC unreadable: " + toc.error().message;
    return false;
  }
  Result<fastpull::PullPlan> plan = make_error(ErrorCode::kInternal, "not planned");
  {
    std::lock_guard lock(store_mutex);
    plan = fastpull::plan_pull(*toc, [&](const Digest& chunk) { return store.contains(chunk); });
  }
  if (!plan.ok()) {
    layer.bytes_fetched += metadata_bytes;
    layer.whole_reason = "TOC not plannable: " + plan.error().message;
    return false;
  }
  auto ranges = fetch_plan_ranges(client, repository, descriptor.digest, *plan);
  if (!ranges.ok()) return std::move(ranges).error();
  std::uint64_t range_bytes = 0;
  for (const auto& bytes : *ranges) range_bytes += bytes.size();
  // The rebuild asks for each plan range once, in order: hand over what was fetched.
  const fastpull::RangeFetcher serve_fetched =
      [&](std::uint64_t offset, std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
    const auto found = std::lower_bound(
        plan->ranges.begin(), plan->ranges.end(), offset,
        [](const fastpull::ByteRange& range, std::uint64_t at) { return range.offset < at; });
    if (found == plan->ranges.end() || found->offset != offset || found->length != length) {
      return make_error(ErrorCode::kInternal, "rebuild asked for a range the plan did not fetch");
    }
    return std::move((*ranges)[static_cast<std::size_t>(found - plan->ranges.begin())]);
  };
  const fastpull::LocalChunkReader read_local = [&](const Digest& chunk) {
    std::lock_guard lock(store_mutex);
    return store.read_chunk(chunk);
  };
  std::vector<std::uint8_t> tar;
  auto rebuilt =
      fastpull::rebuild_chunked_layer(*toc, *plan, serve_fetched, read_local, diff_id, tar);
  if (!rebuilt.ok()) {
    if (rebuilt.error().code != ErrorCode::kUnsupported) {
      return make_error(rebuilt.error().code,
                        "layer " + descriptor.digest.to_string() + ": " + rebuilt.error().message);
    }
    layer.bytes_fetched += metadata_bytes + range_bytes;
    layer.whole_reason = "rebuild unsupported: " + rebuilt.error().message;
    return false;
  }
  {
    std::lock_guard lock(store_mutex);
    auto ingested = ingest_layer_bytes(store, tar, IngestOptions{});
    if (!ingested.ok()) return std::move(ingested).error();
    if (ingested->diff_id != diff_id) {
      return make_error(ErrorCode::kDigestMismatch, "layer " + descriptor.digest.to_string() +
                                                        " rebuilt to " +
                                                        ingested->diff_id.to_string() +
                                                        ", the config says " + diff_id.to_string());
    }
    layer.new_chunks = ingested->new_chunks;
    layer.new_stored_bytes = ingested->new_stored_bytes;
  }
  layer.chunked = true;
  layer.chunked_format = std::string(fastpull::chunked_format_name(*format));
  layer.bytes_fetched += metadata_bytes + range_bytes;
  layer.chunks_local = plan->local_chunks;
  layer.chunks_fetched = plan->missing_chunks;
  return true;
}

}  // namespace strata::registry::detail
