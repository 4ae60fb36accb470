// RemoteStore: a local cache ChunkStore kept in step with a registry repository
// (docs/remote-store.md). Reads find the newest generation tag, merge in the publications at or
// above it, and fill the cache with range GETs of pack records (each record checksum-, decode-
// and SHA-256-verified before use). Publishing packs the chunks the registry lacks into new pack
// blobs (the pack file format of docs/STORE.md, so a blob is a valid pack file), pushes them and a
// merged catalogue, tags it with its own publication tag, then claims generation N+1 if that tag
// is free. Registries offer no compare-and-swap on tags (distribution-spec v1.1,
// shared/specs/layer-formats.md §3): a claim can be overwritten, and the publication tag written
// before the claim is what keeps the overwritten content visible (the argument is in the doc).
#include "strata/remote_store.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "core/store/pack_record.h"
#include "strata/recipe.h"

namespace strata::registry {
namespace {

constexpr std::string_view kGenerationAnnotation = "org.strata.store.generation";
constexpr std::string_view kMediaTypeEmpty = "application/vnd.oci.empty.v1+json";
constexpr std::string_view kEmptyJson = "{}";
// One range GET asks for at most this many record bytes (runs are cut there).
constexpr std::uint64_t kMaxRunBytes = std::uint64_t{16} << 20U;
// One fetch_ranges() call asks for at most this many bytes in all.
constexpr std::uint64_t kMaxBatchBytes = std::uint64_t{64} << 20U;
// More generation tags than this above the latest tag is not a store strata wrote.
constexpr std::uint64_t kMaxGenerationProbes = 4096;
constexpr std::size_t kMaxRememberedCatalogues = 8;
constexpr unsigned kManifestPutAttempts = 5;

// Path components of [a-z0-9._-], each starting and ending with a letter or digit (the
// distribution spec's repository grammar, a little stricter): no "..", no empty components.
bool valid_repository(std::string_view repository) {
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = std::min(repository.find('/', start), repository.size());
    const std::string_view component = repository.substr(start, end - start);
    if (component.empty() || !alnum(component.front()) || !alnum(component.back())) return false;
    for (const char c : component) {
      if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
    }
    if (end == repository.size()) return true;
    start = end + 1;
  }
}

bool valid_host(std::string_view host) {
  if (host.empty() || host.front() == '.' || host.front() == ':') return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == ':' || c == '[' || c == ']';
  });
}

std::string generation_tag(std::uint64_t generation) {
  return std::string(kRemoteStoreGenerationTagPrefix) + std::to_string(generation);
}

// "strata-store-pub-<generation>-<16 hex digits>", the hex random so no two publishers share it.
std::string publication_tag(std::uint64_t generation) {
  std::random_device random;
  const std::uint64_t nonce = (std::uint64_t{random()} << 32U) ^ random();
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(nonce));
  return std::string(kRemoteStorePublicationTagPrefix) + std::to_string(generation) + "-" + hex;
}

// The generation number of a publication tag; nullopt for any other tag.
std::optional<std::uint64_t> publication_number(std::string_view tag) {
  if (!tag.starts_with(kRemoteStorePublicationTagPrefix)) return std::nullopt;
  tag.remove_prefix(kRemoteStorePublicationTagPrefix.size());
  std::uint64_t number = 0;
  std::size_t digits = 0;
  while (digits < tag.size() && tag[digits] >= '0' && tag[digits] <= '9' && digits < 18) {
    number = number * 10 + static_cast<std::uint64_t>(tag[digits] - '0');
    ++digits;
  }
  if (digits == 0 || digits >= tag.size() || tag[digits] != '-') return std::nullopt;
  return number;
}

ByteSpan bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// A run of records of one pack fetched with one range request.
struct RecordRun {
  ByteRange range;
  std::vector<const CatalogueChunk*> chunks;
};

std::vector<RecordRun> plan_runs(std::vector<const CatalogueChunk*> chunks, std::uint64_t max_gap) {
  std::sort(chunks.begin(), chunks.end(),
            [](const CatalogueChunk* a, const CatalogueChunk* b) { return a->offset < b->offset; });
  std::vector<RecordRun> runs;
  for (const CatalogueChunk* chunk : chunks) {
    const std::uint64_t end = chunk->offset + pack_record::record_size(chunk->stored_length);
    if (!runs.empty()) {
      RecordRun& run = runs.back();
      const std::uint64_t run_end = run.range.offset + run.range.length;
      if (chunk->offset >= run_end && chunk->offset - run_end <= max_gap &&
          end - run.range.offset <= kMaxRunBytes) {
        run.range.length = end - run.range.offset;
        run.chunks.push_back(chunk);
        continue;
      }
    }
    runs.push_back(RecordRun{ByteRange{chunk->offset, end - chunk->offset}, {chunk}});
  }
  return runs;
}

// Checks one record against what the catalogue says of it; returns the raw bytes (verified) and
// leaves the stored payload in `stored`.
Result<std::vector<std::uint8_t>> verify_record(const CatalogueChunk& chunk, ByteSpan record,
                                                const CataloguePack& pack, ByteSpan& stored) {
  const std::string where =
      "chunk " + chunk.digest.to_string() + " in pack " + pack.digest.to_string();
  auto header = pack_record::check_record(record);
  if (!header.ok()) {
    return make_error(header.error().code, where + ": " + header.error().message);
  }
  if (header->digest != chunk.digest || header->codec != static_cast<std::uint8_t>(chunk.codec) ||
      header->raw_length != chunk.raw_length || header->stored_length != chunk.stored_length) {
    return make_error(ErrorCode::kCorruptInput,
                      where + ": the record's header does not match the catalogue");
  }
  stored = record.subspan(pack_record::kRecordHeaderSize, chunk.stored_length);
  auto raw = decompress_chunk(chunk.codec, stored, chunk.raw_length);
  if (!raw.ok()) return make_error(raw.error().code, where + ": " + raw.error().message);
  if (sha256_of(*raw) != chunk.digest) {
    return make_error(ErrorCode::kDigestMismatch,
                      where + ": bytes hash to " + sha256_of(*raw).to_string());
  }
  return raw;
}

}  // namespace

// ---- locations --------------------------------------------------------------------------------

bool names_remote_store(std::string_view store) noexcept {
  return store.starts_with(kRemoteStoreScheme);
}

Result<RemoteStoreLocation> parse_remote_store_location(std::string_view text) {
  if (!names_remote_store(text)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + std::string(text) + "' is not a registry://HOST/REPO store");
  }
  const std::string_view rest = text.substr(kRemoteStoreScheme.size());
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos || !valid_host(rest.substr(0, slash)) ||
      !valid_repository(rest.substr(slash + 1))) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + std::string(text) +
                          "': expected registry://HOST[:PORT]/REPO with a lowercase repository "
                          "path");
  }
  return RemoteStoreLocation{std::string(rest.substr(0, slash)),
                             std::string(rest.substr(slash + 1))};
}

Result<std::string> default_remote_cache_directory(const RemoteStoreLocation& location) {
  std::string base;
  if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache != nullptr && cache[0] == '/') {
    base = cache;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') {
    base = std::string(home) + "/.cache";
  } else {
    return make_error(ErrorCode::kInvalidArgument,
                      "neither $XDG_CACHE_HOME nor $HOME is set: name a cache directory");
  }
  std::string host = location.registry;
  std::replace(host.begin(), host.end(), ':', '_');
  return base + "/strata/remote/" + host + "/" + location.repository;
}

// ---- the remote store -------------------------------------------------------------------------

struct RemoteStore::Impl {
  RegistryClient client;
  RemoteStoreLocation location;
  RemoteStoreOptions options;
  std::string cache_directory;
  ChunkStore cache;
  StoreCatalogue catalogue;
  // Catalogues already decoded, by blob digest: a sync that finds the same blob again (the publish
  // loop, publications equal to a generation) does not download it again.
  std::map<Digest, StoreCatalogue> decoded_catalogues;
  // The layers of the newest generation tag's own catalogue (publications not merged). Content
  // that a generation tag has held is durable (docs/remote-store.md); content only in
  // publications is not until some publisher claims a generation with it, so publish() decides
  // what is still missing from this set alone.
  std::set<Digest> generation_layers;

  Result<std::optional<ManifestResponse>> fetch_tag(const std::string& tag) {
    auto response = client.fetch_manifest(location.repository, tag);
    if (response.ok()) return std::optional<ManifestResponse>(std::move(*response));
    if (response.error().code == ErrorCode::kNotFound) return std::optional<ManifestResponse>();
    return std::move(response).error();
  }

  Result<std::pair<oci::Manifest, std::uint64_t>> parse_generation(const ManifestResponse& response,
                                                                   const std::string& tag) const {
    auto manifest = oci::parse_manifest(response.bytes);
    if (!manifest.ok()) return std::move(manifest).error();
    const auto annotation = manifest->annotations.find(std::string(kGenerationAnnotation));
    if (manifest->artifact_type != kRemoteStoreArtifactType || manifest->layers.empty() ||
        manifest->layers.front().media_type != kMediaTypeStoreCatalogue ||
        annotation == manifest->annotations.end()) {
      return make_error(ErrorCode::kCorruptInput, "tag " + tag + " of " + location.repository +
                                                      " is not a strata store generation");
    }
    std::uint64_t generation = 0;
    for (const char c : annotation->second) {
      if (c < '0' || c > '9' || generation > (std::uint64_t{1} << 60U)) {
        return make_error(ErrorCode::kCorruptInput,
                          "tag " + tag + ": bad generation '" + annotation->second + "'");
      }
      generation = generation * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return std::make_pair(std::move(*manifest), generation);
  }

  Result<void> sync() {
    auto latest = fetch_tag(std::string(kRemoteStoreLatestTag));
    if (!latest.ok()) return std::move(latest).error();
    std::uint64_t hint = 0;
    if (latest->has_value()) {
      auto parsed = parse_generation(**latest, std::string(kRemoteStoreLatestTag));
      if (!parsed.ok()) return std::move(parsed).error();
      hint = parsed->second;
    }
    // Generation tags are authoritative; the latest tag only says where to start. It may lag (a
    // slower publisher moved it back) or name a manifest whose generation tag another publisher
    // overwrote, so the hint's own tag is read again and later tags are probed.
    std::optional<std::pair<oci::Manifest, std::uint64_t>> newest;
    std::optional<Digest> newest_digest;
    for (std::uint64_t generation = std::max<std::uint64_t>(hint, 1);; ++generation) {
      if (generation - std::max<std::uint64_t>(hint, 1) == kMaxGenerationProbes) {
        return make_error(ErrorCode::kLimitExceeded,
                          "more than " + std::to_string(kMaxGenerationProbes) +
                              " generation tags above strata-store-latest");
      }
      const std::string tag = generation_tag(generation);
      auto next = fetch_tag(tag);
      if (!next.ok()) return std::move(next).error();
      if (!next->has_value()) {
        if (generation == hint) {
          return make_error(ErrorCode::kCorruptInput, "strata-store-latest names generation " +
                                                          std::to_string(hint) + " but tag " + tag +
                                                          " does not exist");
        }
        break;
      }
      auto parsed = parse_generation(**next, tag);
      if (!parsed.ok()) return std::move(parsed).error();
      if (parsed->second != generation) {
        return make_error(ErrorCode::kCorruptInput,
                          "tag " + tag + " holds generation " + std::to_string(parsed->second));
      }
      newest = std::move(*parsed);
      newest_digest = (**next).digest;
    }
    StoreCatalogue view;
    const std::uint64_t generation = newest ? newest->second : 0;
    if (newest) {
      auto loaded = load_catalogue(newest->first, generation);
      if (!loaded.ok()) return std::move(loaded).error();
      view = std::move(*loaded);
    }
    generation_layers.clear();
    for (const CatalogueLayer& layer : view.layers) generation_layers.insert(layer.diff_id);
    // A generation tag can be overwritten by a racing publisher; its publication tag cannot.
    // Every publication numbered at or above the newest generation is merged in (one below it is
    // already in that generation: its publisher saw that generation's tag free after tagging it,
    // so whoever wrote the generation after it listed it).
    auto tags = client.list_tags(location.repository);
    // A repository nobody has pushed to yet is unknown to the registry (404 NAME_UNKNOWN).
    if (!tags.ok() && tags.error().code == ErrorCode::kNotFound) tags = std::vector<std::string>();
    if (!tags.ok()) return std::move(tags).error();
    std::uint64_t merged = 0;
    for (const std::string& tag : *tags) {
      const std::optional<std::uint64_t> number = publication_number(tag);
      if (!number || *number < generation) continue;
      if (++merged > kMaxGenerationProbes) {
        return make_error(ErrorCode::kLimitExceeded,
                          "more than " + std::to_string(kMaxGenerationProbes) +
                              " publications above generation " + std::to_string(generation));
      }
      auto response = fetch_tag(tag);
      if (!response.ok()) return std::move(response).error();
      if (!response->has_value() || (**response).digest == newest_digest) continue;
      auto parsed = parse_generation(**response, tag);
      if (!parsed.ok()) return std::move(parsed).error();
      if (parsed->second != *number) {
        return make_error(ErrorCode::kCorruptInput,
                          "tag " + tag + " holds generation " + std::to_string(parsed->second));
      }
      auto loaded = load_catalogue(parsed->first, parsed->second);
      if (!loaded.ok()) return std::move(loaded).error();
      STRATA_TRY(merge_store_catalogue(view, *loaded));
    }
    view.generation = generation;
    catalogue = std::move(view);
    return {};
  }

  // The catalogue of a generation manifest (decoded once per blob digest in this process).
  Result<StoreCatalogue> load_catalogue(const oci::Manifest& manifest, std::uint64_t generation) {
    const oci::Descriptor& blob = manifest.layers.front();
    if (const auto known = decoded_catalogues.find(blob.digest);
        known != decoded_catalogues.end()) {
      return known->second;
    }
    if (blob.size > kMaxCatalogueBlobBytes) {
      return make_error(
          ErrorCode::kLimitExceeded,
          "store catalogue of " + std::to_string(blob.size) + " bytes exceeds the cap");
    }
    auto bytes = client.fetch_blob(location.repository, blob.digest, kMaxCatalogueBlobBytes);
    if (!bytes.ok()) return std::move(bytes).error();
    auto decoded = decode_store_catalogue(*bytes);
    if (!decoded.ok()) return std::move(decoded).error();
    if (decoded->generation != generation) {
      return make_error(ErrorCode::kCorruptInput,
                        "catalogue of generation " + std::to_string(generation) +
                            " says it is generation " + std::to_string(decoded->generation));
    }
    // The manifest must reference every pack, or the registry's own gc could drop one.
    std::set<Digest> listed;
    for (const oci::Descriptor& layer : manifest.layers) listed.insert(layer.digest);
    for (const CataloguePack& pack : decoded->packs) {
      if (listed.count(pack.digest) == 0) {
        return make_error(ErrorCode::kCorruptInput, "generation " + std::to_string(generation) +
                                                        " does not reference its pack " +
                                                        pack.digest.to_string());
      }
    }
    if (decoded_catalogues.size() >= kMaxRememberedCatalogues) decoded_catalogues.clear();
    decoded_catalogues.emplace(blob.digest, *decoded);
    return std::move(*decoded);
  }

  // Fetches the records of `chunks` (all in pack `pack_index`) and hands each one to `use`.
  Result<void> for_each_record(
      std::uint32_t pack_index, std::vector<const CatalogueChunk*> chunks,
      const std::function<Result<void>(const CatalogueChunk&, ByteSpan record)>& use,
      RemoteFetchReport& report) {
    const CataloguePack& pack = catalogue.packs[pack_index];
    const std::vector<RecordRun> runs = plan_runs(std::move(chunks), options.max_range_gap);
    for (std::size_t first = 0; first < runs.size();) {
      std::vector<ByteRange> ranges;
      std::uint64_t batch_bytes = 0;
      std::size_t last = first;
      while (last < runs.size() &&
             (ranges.empty() || batch_bytes + runs[last].range.length <= kMaxBatchBytes)) {
        ranges.push_back(runs[last].range);
        batch_bytes += runs[last].range.length;
        ++last;
      }
      auto fetched = client.fetch_ranges(location.repository, pack.digest, ranges);
      if (!fetched.ok()) return std::move(fetched).error();
      for (std::size_t i = first; i < last; ++i) {
        const std::vector<std::uint8_t>& bytes = (*fetched)[i - first];
        if (bytes.size() != runs[i].range.length) {
          return make_error(ErrorCode::kCorruptInput,
                            "pack " + pack.digest.to_string() + " answered a range short");
        }
        for (const CatalogueChunk* chunk : runs[i].chunks) {
          const ByteSpan record = ByteSpan(bytes).subspan(
              static_cast<std::size_t>(chunk->offset - runs[i].range.offset),
              pack_record::record_size(chunk->stored_length));
          STRATA_TRY(use(*chunk, record));
        }
        report.range_requests += 1;
        report.stored_bytes_fetched += runs[i].range.length;
      }
      first = last;
    }
    return {};
  }

  std::map<std::uint32_t, std::vector<const CatalogueChunk*>> group_by_pack(
      const std::vector<const CatalogueChunk*>& chunks) const {
    std::map<std::uint32_t, std::vector<const CatalogueChunk*>> by_pack;
    for (const CatalogueChunk* chunk : chunks) by_pack[chunk->pack].push_back(chunk);
    return by_pack;
  }

  Result<RemoteFetchReport> fetch_layer(const Digest& digest) {
    RemoteFetchReport report;
    if (cache.find_layer(digest).ok()) {
      report.already_cached = true;
      return report;
    }
    const CatalogueLayer* layer = catalogue.find_layer(digest);
    if (layer == nullptr) {
      STRATA_TRY(sync());
      layer = catalogue.find_layer(digest);
    }
    if (layer == nullptr) {
      return make_error(ErrorCode::kNotFound, "layer " + digest.to_string() +
                                                  " is not in the remote store registry://" +
                                                  location.registry + "/" + location.repository);
    }
    auto recipe = parse_recipe(layer->recipe);
    if (!recipe.ok()) return std::move(recipe).error();
    const std::vector<Digest> chunks = recipe->distinct_chunks();
    std::vector<const CatalogueChunk*> missing;
    for (const Digest& chunk : chunks) {
      if (cache.contains(chunk)) continue;
      const CatalogueChunk* entry = catalogue.find_chunk(chunk);
      if (entry == nullptr) {
        return make_error(ErrorCode::kCorruptInput, "catalogue lacks chunk " + chunk.to_string());
      }
      missing.push_back(entry);
    }
    auto writer = cache.writer();
    if (!writer.ok()) return std::move(writer).error();
    for (auto& [pack_index, pack_chunks] : group_by_pack(missing)) {
      const CataloguePack& pack = catalogue.packs[pack_index];
      STRATA_TRY(for_each_record(
          pack_index, std::move(pack_chunks),
          [&](const CatalogueChunk& chunk, ByteSpan record) -> Result<void> {
            ByteSpan stored;
            auto raw = verify_record(chunk, record, pack, stored);
            if (!raw.ok()) return std::move(raw).error();
            report.chunks_fetched += 1;
            return writer->put_chunk(chunk.digest, *raw, stored, chunk.codec);
          },
          report));
    }
    LayerRecord record;
    record.diff_id = layer->diff_id;
    record.layer_digest = layer->layer_digest;
    record.media_type = layer->media_type;
    record.recipe = layer->recipe;
    record.size = layer->size;
    auto committed = writer->commit_layer(record, chunks);
    if (!committed.ok()) return std::move(committed).error();
    return report;
  }

  // PUT of a manifest, tried again a few times when the registry refuses it for a blob it cannot
  // read yet: docker-registry's filesystem backend rewrites a blob's link file in place when
  // several clients push the same blob (the empty config) at once, and a manifest PUT verifying
  // the blob meanwhile reads it half-written (400 DIGEST_INVALID / MANIFEST_BLOB_UNKNOWN).
  Result<Digest> put_manifest(const std::string& tag, std::string_view json) {
    for (unsigned attempt = 1;; ++attempt) {
      auto pushed = client.push_manifest(location.repository, tag, oci::kMediaTypeImageManifest,
                                         bytes_of(json));
      const bool blob_race = !pushed.ok() && attempt < kManifestPutAttempts &&
                             (pushed.error().message.find("DIGEST_INVALID") != std::string::npos ||
                              pushed.error().message.find("BLOB_UNKNOWN") != std::string::npos);
      if (!blob_race) return pushed;
      std::this_thread::sleep_for(std::chrono::milliseconds(50U << attempt));
    }
  }

  Result<void> push_blob_bytes(const Digest& digest, ByteSpan bytes, std::uint64_t& pushed) {
    auto present = client.stat_blob(location.repository, digest);
    if (!present.ok()) return std::move(present).error();
    if (present->has_value() && (*present)->size == bytes.size()) return {};
    STRATA_TRY(client.push_blob(
        location.repository, digest, bytes.size(),
        [bytes](std::uint64_t offset, MutableByteSpan out) -> Result<std::size_t> {
          if (offset > bytes.size()) {
            return make_error(ErrorCode::kInternal, "upload read past the end of a blob");
          }
          const std::size_t count =
              std::min(out.size(), bytes.size() - static_cast<std::size_t>(offset));
          std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(offset), count, out.begin());
          return count;
        }));
    pushed += bytes.size();
    return {};
  }

  // Packs `digests` (sorted, none in the catalogue) into pack blobs of at most max_pack_bytes,
  // pushes them, and adds them and their chunks to `next`.
  Result<void> push_new_packs(const std::vector<Digest>& digests, StoreCatalogue& next,
                              RemotePublishReport& report) {
    std::vector<std::uint8_t> pack;
    std::vector<CatalogueChunk> pending;
    const auto seal = [&]() -> Result<void> {
      if (pending.empty()) return {};
      const Digest digest = sha256_of(pack);
      std::uint64_t pushed = 0;
      STRATA_TRY(push_blob_bytes(digest, pack, pushed));
      report.packs_pushed += pushed != 0 ? 1 : 0;
      report.pack_bytes_pushed += pushed;
      const auto index = static_cast<std::uint32_t>(next.packs.size());
      next.packs.push_back(CataloguePack{digest, pack.size()});
      for (CatalogueChunk& chunk : pending) {
        chunk.pack = index;
        next.chunks.push_back(chunk);
      }
      pending.clear();
      pack.clear();
      return {};
    };
    for (const Digest& digest : digests) {
      auto stored = cache.read_stored_chunk(digest);
      if (!stored.ok()) return std::move(stored).error();
      const std::uint64_t record = pack_record::record_size(stored->bytes.size());
      if (!pending.empty() && pack.size() + record > options.max_pack_bytes) STRATA_TRY(seal());
      if (pack.empty()) pack = pack_record::encode_file_header();
      CatalogueChunk chunk;
      chunk.digest = digest;
      chunk.offset = pack.size();
      chunk.stored_length = static_cast<std::uint32_t>(stored->bytes.size());
      chunk.raw_length = static_cast<std::uint32_t>(stored->raw_length);
      chunk.codec = stored->codec;
      pack_record::append_record(digest, stored->codec, chunk.raw_length, stored->bytes, pack);
      pending.push_back(chunk);
      report.chunks_pushed += 1;
    }
    return seal();
  }

  // One attempt at generation N+1 holding every cached layer the catalogue lacks. False when
  // another publisher took the generation first.
  Result<bool> publish_generation(const std::vector<LayerRecord>& layers,
                                  RemotePublishReport& report) {
    StoreCatalogue next = catalogue;
    next.generation += 1;
    std::set<Digest> new_chunks;
    std::uint64_t deduplicated = 0;
    for (const LayerRecord& listed : layers) {
      auto layer = cache.find_layer(listed.diff_id);
      if (!layer.ok()) return std::move(layer).error();
      auto recipe = parse_recipe(layer->recipe);
      if (!recipe.ok()) return std::move(recipe).error();
      for (const Digest& chunk : recipe->distinct_chunks()) {
        if (catalogue.find_chunk(chunk) != nullptr) {
          deduplicated += 1;
        } else {
          new_chunks.insert(chunk);
        }
      }
      // A layer merged in from another publication is claimed again with this generation.
      if (next.find_layer(layer->diff_id) != nullptr) continue;
      next.layers.push_back(CatalogueLayer{layer->diff_id, layer->layer_digest, layer->media_type,
                                           layer->size, layer->created_unix_seconds,
                                           std::move(layer->recipe)});
    }
    RemotePublishReport attempt;
    STRATA_TRY(
        push_new_packs(std::vector<Digest>(new_chunks.begin(), new_chunks.end()), next, attempt));
    STRATA_TRY(canonicalize_catalogue(next));
    auto blob = encode_store_catalogue(next);
    if (!blob.ok()) return std::move(blob).error();
    STRATA_TRY(push_blob_bytes(sha256_of(*blob), *blob, attempt.catalogue_bytes_pushed));
    std::uint64_t config_pushed = 0;
    STRATA_TRY(
        push_blob_bytes(sha256_of(bytes_of(kEmptyJson)), bytes_of(kEmptyJson), config_pushed));

    oci::Manifest manifest;
    manifest.artifact_type = std::string(kRemoteStoreArtifactType);
    manifest.config = oci::describe_bytes(kMediaTypeEmpty, bytes_of(kEmptyJson));
    manifest.layers.push_back(oci::describe_bytes(kMediaTypeStoreCatalogue, *blob));
    for (const CataloguePack& pack : next.packs) {
      oci::Descriptor descriptor;
      descriptor.media_type = std::string(kMediaTypeStorePack);
      descriptor.digest = pack.digest;
      descriptor.size = pack.size;
      manifest.layers.push_back(std::move(descriptor));
    }
    manifest.annotations[std::string(kGenerationAnnotation)] = std::to_string(next.generation);
    const std::string json = oci::write_manifest(manifest);
    const std::string tag = generation_tag(next.generation);

    report.pack_bytes_pushed += attempt.pack_bytes_pushed;
    report.packs_pushed += attempt.packs_pushed;
    report.catalogue_bytes_pushed += attempt.catalogue_bytes_pushed;
    report.chunks_pushed = attempt.chunks_pushed;
    report.chunks_deduplicated = deduplicated;
    report.layers_published = layers.size();

    // The publication tag first, then the claim: the order the argument in docs/remote-store.md
    // rests on.
    auto published = put_manifest(publication_tag(next.generation), json);
    if (!published.ok()) return std::move(published).error();
    auto taken = fetch_tag(tag);
    if (!taken.ok()) return std::move(taken).error();
    if (taken->has_value()) return false;
    auto pushed = put_manifest(tag, json);
    if (!pushed.ok()) return std::move(pushed).error();
    auto moved = put_manifest(std::string(kRemoteStoreLatestTag), json);
    if (!moved.ok()) return std::move(moved).error();
    report.generation = next.generation;
    return true;
  }

  Result<RemotePublishReport> publish() {
    RemotePublishReport report;
    for (;;) {
      STRATA_TRY(sync());
      auto cached = cache.list_layers();
      if (!cached.ok()) return std::move(cached).error();
      std::vector<LayerRecord> missing;
      for (LayerRecord& layer : *cached) {
        if (generation_layers.count(layer.diff_id) == 0) missing.push_back(std::move(layer));
      }
      if (missing.empty()) {
        report.generation = catalogue.generation;
        return report;
      }
      if (report.attempts == options.max_publish_attempts) {
        return make_error(ErrorCode::kIo,
                          "gave up publishing to " + location.repository + " after " +
                              std::to_string(report.attempts) +
                              " attempts: other publishers kept taking the next generation");
      }
      report.attempts += 1;
      auto won = publish_generation(missing, report);
      if (!won.ok()) return std::move(won).error();
      if (*won) return report;
    }
  }

  Result<VerifyReport> verify() {
    STRATA_TRY(sync());
    VerifyReport report;
    std::vector<std::vector<const CatalogueChunk*>> by_pack(catalogue.packs.size());
    for (const CatalogueChunk& chunk : catalogue.chunks) by_pack[chunk.pack].push_back(&chunk);
    for (std::uint32_t index = 0; index < catalogue.packs.size(); ++index) {
      const CataloguePack& pack = catalogue.packs[index];
      auto info = client.stat_blob(location.repository, pack.digest);
      if (!info.ok()) return std::move(info).error();
      if (!info->has_value() || (*info)->size != pack.size) {
        report.problems.push_back("pack " + pack.digest.to_string() +
                                  (info->has_value() ? " has the wrong size" : " is missing"));
        for (const CatalogueChunk* chunk : by_pack[index]) {
          report.corrupt_chunks.push_back(chunk->digest);
        }
        continue;
      }
      RemoteFetchReport fetched;
      STRATA_TRY(for_each_record(
          index, by_pack[index],
          [&](const CatalogueChunk& chunk, ByteSpan record) -> Result<void> {
            ByteSpan stored;
            auto raw = verify_record(chunk, record, pack, stored);
            report.chunks_checked += 1;
            if (!raw.ok()) {
              report.corrupt_chunks.push_back(chunk.digest);
              report.problems.push_back(raw.error().message);
            }
            return {};
          },
          fetched));
      report.bytes_read += fetched.stored_bytes_fetched;
    }
    // Recipes were parsed and their chunks found in the catalogue when it was decoded.
    report.layers_checked = catalogue.layers.size();
    return report;
  }
};

Result<RemoteStore> RemoteStore::open(RegistryClient client, const RemoteStoreLocation& location,
                                      const RemoteStoreOptions& options) {
  std::string directory = options.cache_directory;
  if (directory.empty()) {
    auto chosen = default_remote_cache_directory(location);
    if (!chosen.ok()) return std::move(chosen).error();
    directory = std::move(*chosen);
  }
  StoreOptions cache_options = options.cache;
  cache_options.create_if_missing = true;
  auto cache = ChunkStore::open(directory, cache_options);
  if (!cache.ok()) return std::move(cache).error();
  auto impl = std::make_unique<Impl>(Impl{std::move(client),
                                          location,
                                          options,
                                          directory,
                                          std::move(*cache),
                                          StoreCatalogue{},
                                          {},
                                          {}});
  STRATA_TRY(impl->sync());
  return RemoteStore(std::move(impl));
}

RemoteStore::RemoteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RemoteStore::RemoteStore(RemoteStore&&) noexcept = default;
RemoteStore& RemoteStore::operator=(RemoteStore&&) noexcept = default;
RemoteStore::~RemoteStore() = default;

ChunkStore& RemoteStore::cache() {
  return impl_->cache;
}
const std::string& RemoteStore::cache_directory() const {
  return impl_->cache_directory;
}
const StoreCatalogue& RemoteStore::catalogue() const {
  return impl_->catalogue;
}
TransferCounters RemoteStore::counters() const {
  return impl_->client.counters();
}
Result<void> RemoteStore::sync() {
  return impl_->sync();
}
Result<RemoteFetchReport> RemoteStore::fetch_layer(const Digest& layer) {
  return impl_->fetch_layer(layer);
}
Result<RemotePublishReport> RemoteStore::publish() {
  return impl_->publish();
}
Result<VerifyReport> RemoteStore::verify() {
  return impl_->verify();
}

}  // namespace strata::registry
