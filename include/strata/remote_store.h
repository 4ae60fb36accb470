// A remote chunk store: a local cache store (an ordinary ChunkStore directory) synchronised with a
// registry repository, so several machines share one store (docs/remote-store.md). Packs of chunk
// records (the pack file format of docs/STORE.md) are pushed as immutable, content-addressed blobs;
// the catalogue (which chunk lives in which pack at which offset, and every layer's recipe) is a
// zstd-compressed binary blob; both are the layers of an OCI artifact manifest tagged
// `strata-store-gen-<N>` and `strata-store-latest` (distribution-spec v1.1,
// shared/specs/layer-formats.md §3), and also `strata-store-pub-<N>-<random>`. Registries have
// no compare-and-swap on tags: a publisher tags its publication, then claims the next generation
// if its tag is free, and merges again when another machine was first; readers merge every
// publication at or above the newest generation, so an overwritten claim loses nothing
// (docs/remote-store.md). Readers trust a chunk only after its record checksum and SHA-256 verify.
//
// Staged: 1. locations ("registry://HOST[:PORT]/REPO"), 2. the catalogue format (pure functions,
// fuzzed), 3. RemoteStore (sync, fetch a layer into the cache, publish, verify).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "strata/digest.h"
#include "strata/registry.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata::registry {

// ---- 1. locations -----------------------------------------------------------------------------

inline constexpr std::string_view kRemoteStoreScheme = "registry://";

struct RemoteStoreLocation {
  std::string registry;    // "127.0.0.1:5000"
  std::string repository;  // "team/store"
};

[[nodiscard]] bool names_remote_store(std::string_view store) noexcept;
// "registry://HOST[:PORT]/REPO" (REPO: lowercase path components as the distribution spec allows).
Result<RemoteStoreLocation> parse_remote_store_location(std::string_view text);
// $XDG_CACHE_HOME/strata/remote/<host>/<repo> (else $HOME/.cache/...); ':' in the host becomes '_'.
Result<std::string> default_remote_cache_directory(const RemoteStoreLocation& location);

// ---- 2. the catalogue -------------------------------------------------------------------------

inline constexpr std::string_view kRemoteStoreArtifactType = "application/vnd.strata.store.v1+json";
inline constexpr std::string_view kMediaTypeStoreCatalogue =
    "application/vnd.strata.store.catalogue.v1+zstd";
inline constexpr std::string_view kMediaTypeStorePack = "application/vnd.strata.store.pack.v1";
inline constexpr std::string_view kRemoteStoreLatestTag = "strata-store-latest";
inline constexpr std::string_view kRemoteStoreGenerationTagPrefix = "strata-store-gen-";
// Every publication also tags its manifest "strata-store-pub-<N>-<nonce>", a tag nobody else
// writes, so a generation tag overwritten by a racing publisher loses nothing
// (docs/remote-store.md).
inline constexpr std::string_view kRemoteStorePublicationTagPrefix = "strata-store-pub-";

// Caps on what a catalogue blob may make us hold (hostile registries).
inline constexpr std::uint64_t kMaxCatalogueBlobBytes = std::uint64_t{256} << 20U;
inline constexpr std::uint64_t kMaxCatalogueDecodedBytes = std::uint64_t{1} << 30U;

struct CataloguePack {
  Digest digest;  // sha256 of the pack blob
  std::uint64_t size = 0;
  friend bool operator==(const CataloguePack&, const CataloguePack&) = default;
};

struct CatalogueChunk {
  Digest digest;                    // sha256 of the raw chunk
  std::uint32_t pack = 0;           // index into StoreCatalogue::packs
  std::uint64_t offset = 0;         // of the chunk's record in the pack blob
  std::uint32_t stored_length = 0;  // payload bytes; the record is pack_record overhead + this
  std::uint32_t raw_length = 0;
  Codec codec = Codec::kRaw;
  friend bool operator==(const CatalogueChunk&, const CatalogueChunk&) = default;
};

struct CatalogueLayer {
  Digest diff_id;
  Digest layer_digest;
  std::string media_type;
  std::uint64_t size = 0;
  std::int64_t created_unix_seconds = 0;
  std::vector<std::uint8_t> recipe;  // serialize_recipe() form
  friend bool operator==(const CatalogueLayer&, const CatalogueLayer&) = default;
};

// Chunks sorted by digest and layers by diff_id, each without repeats (the canonical form that
// encode writes and decode insists on), so equal catalogues give equal blobs.
struct StoreCatalogue {
  std::uint64_t generation = 0;
  std::vector<CataloguePack> packs;
  std::vector<CatalogueChunk> chunks;
  std::vector<CatalogueLayer> layers;
  friend bool operator==(const StoreCatalogue&, const StoreCatalogue&) = default;

  [[nodiscard]] const CatalogueChunk* find_chunk(const Digest& digest) const;
  // By diff_id or layer digest.
  [[nodiscard]] const CatalogueLayer* find_layer(const Digest& digest) const;
};

// Sorts chunks and layers into canonical order; kInvalidArgument on a repeated digest or a chunk
// naming a pack that does not exist.
Result<void> canonicalize_catalogue(StoreCatalogue& catalogue);
// Adds to `into` (canonical) every pack, chunk and layer of `from` it lacks (a chunk held by both
// keeps `into`'s copy); the generation becomes the larger one. Union is what makes concurrent
// publications commute: the store only grows between gc's.
Result<void> merge_store_catalogue(StoreCatalogue& into, const StoreCatalogue& from);
// The blob: one zstd frame (content size declared) of the binary form in docs/remote-store.md.
Result<std::vector<std::uint8_t>> encode_store_catalogue(const StoreCatalogue& catalogue);
// Refuses (kCorruptInput / kLimitExceeded / kUnsupported, naming the field) anything but a
// canonical catalogue: truncation, trailing bytes, counts larger than the bytes present, unsorted
// or repeated entries, chunks outside their pack, recipes that do not parse or that name a chunk
// the catalogue lacks, a decoded size above `max_decoded_bytes`.
Result<StoreCatalogue> decode_store_catalogue(
    ByteSpan blob, std::uint64_t max_decoded_bytes = kMaxCatalogueDecodedBytes);

// ---- 3. the remote store ----------------------------------------------------------------------

struct RemoteFetchReport {
  bool already_cached = false;
  std::uint64_t chunks_fetched = 0;
  std::uint64_t stored_bytes_fetched = 0;  // record bytes asked for with range GETs
  std::uint64_t range_requests = 0;        // ranges asked for (merged runs of records)
};

struct RemotePublishReport {
  std::uint64_t generation = 0;  // the generation that now holds this machine's layers
  std::uint64_t layers_published = 0;
  std::uint64_t chunks_pushed = 0;        // chunks the registry did not hold yet
  std::uint64_t chunks_deduplicated = 0;  // chunks of the new layers the registry already held
  std::uint64_t packs_pushed = 0;
  std::uint64_t pack_bytes_pushed = 0;
  std::uint64_t catalogue_bytes_pushed = 0;
  std::uint64_t attempts = 0;  // 1 + generations lost to another publisher
};

struct RemoteStoreOptions {
  std::string cache_directory;  // empty: default_remote_cache_directory()
  StoreOptions cache;           // create_if_missing is forced on
  std::uint64_t max_pack_bytes = std::uint64_t{128} << 20U;
  unsigned max_publish_attempts = 16;
  // Records closer than this in one pack are fetched in one range (the gap is read and dropped).
  std::uint64_t max_range_gap = std::uint64_t{64} << 10U;
};

class RemoteStore {
 public:
  // Opens (creating) the cache and reads the latest generation's catalogue.
  static Result<RemoteStore> open(RegistryClient client, const RemoteStoreLocation& location,
                                  const RemoteStoreOptions& options = {});
  RemoteStore(RemoteStore&&) noexcept;
  RemoteStore& operator=(RemoteStore&&) noexcept;
  RemoteStore(const RemoteStore&) = delete;
  RemoteStore& operator=(const RemoteStore&) = delete;
  ~RemoteStore();

  [[nodiscard]] ChunkStore& cache();
  [[nodiscard]] const std::string& cache_directory() const;
  [[nodiscard]] const StoreCatalogue& catalogue() const;  // as of the last sync
  [[nodiscard]] TransferCounters counters() const;

  // Reads the newest generation (the latest tag is a hint: later generation tags are probed) and
  // merges in the publications numbered at or above it.
  Result<void> sync();
  // Puts the layer (diff_id or layer digest) and the chunks it needs into the cache: the chunks
  // the cache lacks are fetched with range GETs from their packs, each verified (record checksum,
  // decode, SHA-256) before it is stored.
  Result<RemoteFetchReport> fetch_layer(const Digest& layer);
  // Publishes every cached layer the newest generation's catalogue lacks: new chunks as new
  // packs, then a merged catalogue as a publication and generation N+1 (again on a lost race).
  Result<RemotePublishReport> publish();
  // Re-reads every pack record named by the catalogue (range GETs) and checks checksum, decoding,
  // length and SHA-256; checks every pack blob exists with its recorded size.
  Result<VerifyReport> verify();

  struct Impl;

 private:
  explicit RemoteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::registry
