// The embedded chunk store: a directory holding append-only pack files of checksummed chunk
// records (packs/) and a SQLite index (index.db) of chunks, packs, layers and their references,
// usable by several processes at once. Durability rests on one ordering rule (DESIGN.md §3
// "Nothing lost", shared/specs/reliability.md §3.8 P1-P8): pack bytes are fsync'ed before the one
// SQLite transaction that makes a layer and its chunk references visible, so kill -9 at any moment
// leaves committed layers intact and only unreferenced pack bytes behind, which gc() reclaims.
// docs/STORE.md describes the on-disk layout and the protocol in full.
//
// Staged like the rest of the API: chunk codecs (compress/decompress one independent frame), then
// the store object (open, contains, read), then write sessions, then maintenance (verify, gc).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/buffer.h"
#include "strata/digest.h"
#include "strata/result.h"

namespace strata {

// ---------------------------------------------------------------------------------------------
// 1. Chunk codecs. Values are written to disk (pack records and the index): never renumber.
// ---------------------------------------------------------------------------------------------
enum class Codec : std::uint8_t {
  kRaw = 0,   // stored bytes are the raw bytes
  kZstd = 1,  // one independent zstd frame with the content size in its header (any level)
  // Float tensor bytes split into byte planes, each plane zstd-compressed or stored (model weights,
  // shared/specs/models.md §1); the stored form is self-describing (core/store/byte_group_codec.h).
  kByteGrouped = 2,
  // Delta codecs (DESIGN.md §7): the chunk decodes only together with the raw bytes of one base
  // chunk, whose digest the index records (docs/STORE.md "Delta chunks"). A base is never itself
  // a delta chunk, so every chain has depth 1.
  //   one zstd frame compressed with the base's raw bytes as a prefix (ZSTD_CCtx_refPrefix, like
  //   `zstd --patch-from`);
  kZstdDelta = 3,
  //   float tensor bytes XOR'd with the base's bytes (over the shorter of the two), then stored in
  //   the byte-grouped form of kByteGrouped.
  kXorByteGrouped = 4,
};

[[nodiscard]] std::string_view codec_name(Codec codec) noexcept;
[[nodiscard]] constexpr bool is_delta_codec(Codec codec) noexcept {
  return codec == Codec::kZstdDelta || codec == Codec::kXorByteGrouped;
}

// Largest raw chunk the store accepts and decodes: a bound on memory for hostile records.
inline constexpr std::size_t kMaxStoredChunkBytes = std::size_t{64} << 20U;

// Compresses `raw` into one zstd frame (content size recorded) at `level` (1..19). Thread-safe:
// each thread reuses its own compression context, so the engine may call it from parallel stages.
Result<std::vector<std::uint8_t>> compress_chunk_zstd(ByteSpan raw, int level);
// Same, writing into `out` (resized to the frame size), so a caller can reuse one buffer.
Result<void> compress_chunk_zstd_into(ByteSpan raw, int level, std::vector<std::uint8_t>& out);

// Decodes `stored` (in `codec`) into exactly `raw_length` bytes; any other size, a frame whose
// declared content size differs, trailing bytes, a malformed byte-grouped form or an unknown codec
// is an error (kCorruptInput, kUnsupported). Thread-safe (per-thread decompression contexts).
// A delta codec is kInvalidArgument here: it needs its base (decompress_delta_chunk).
Result<std::vector<std::uint8_t>> decompress_chunk(Codec codec, ByteSpan stored,
                                                   std::size_t raw_length);
// Same, into `raw` (its size is the raw length): a caller that owns a buffer is spared the zero
// fill and the allocation of a fresh vector.
Result<void> decompress_chunk_into(Codec codec, ByteSpan stored, MutableByteSpan raw);

// Codec::kZstdDelta: one zstd frame of `raw` (content size recorded) that may refer back into
// `base` as if it preceded `raw`. The window covers base and raw (capped at 2^27 like decoding).
Result<void> compress_chunk_delta_into(ByteSpan raw, ByteSpan base, int level,
                                       std::vector<std::uint8_t>& out);
// Codec::kXorByteGrouped: `raw` XOR `base` over their common length, byte-grouped as float
// elements of `width` bytes (2 or 4) whose first `phase` bytes finish an element begun earlier.
Result<std::vector<std::uint8_t>> encode_chunk_xor_grouped(ByteSpan raw, ByteSpan base,
                                                           std::uint32_t width, std::uint32_t phase,
                                                           int level);
// Decodes a delta-coded chunk with the raw bytes of its base, under the same strict rules as
// decompress_chunk. kInvalidArgument for a codec that is not a delta codec.
Result<std::vector<std::uint8_t>> decompress_delta_chunk(Codec codec, ByteSpan stored,
                                                         ByteSpan base, std::size_t raw_length);

// ---------------------------------------------------------------------------------------------
// 2. Records the store keeps.
// ---------------------------------------------------------------------------------------------
struct StoreOptions {
  bool create_if_missing = false;
  // A writer seals its pack and starts a new one once the pack reaches this size.
  std::uint64_t max_pack_bytes = std::uint64_t{256} << 20U;
  // put_chunk decodes `stored` and compares it with `raw`, and re-hashes `raw` against the digest,
  // before the chunk can be committed (reliability.md §3.8 P3). Turning it off trusts the caller.
  bool verify_puts = true;
  // How long a SQLite call waits for another process's transaction before failing.
  int busy_timeout_ms = 60000;
};

// A layer as the store records it. The recipe is opaque here (core/recipe* gives it meaning).
struct LayerRecord {
  Digest diff_id;                    // sha256 of the uncompressed tar: the layer's identity
  Digest layer_digest;               // digest of the blob it was ingested from (may equal diff_id)
  std::string media_type;            // media type / format of the source blob
  std::vector<std::uint8_t> recipe;  // serialized recipe
  std::uint64_t size = 0;            // uncompressed tar size in bytes
  std::int64_t created_unix_seconds = 0;  // filled in by the store at commit
};

struct StoredChunk {
  Codec codec = Codec::kRaw;
  std::uint64_t raw_length = 0;
  std::vector<std::uint8_t> bytes;  // the stored bytes (a zstd frame for kZstd), checksum-verified
};

// A chunk's stored form read as one of several (ChunkStore::read_stored_chunks): `bytes` lie in a
// buffer the batch shares, which `owner` keeps alive.
struct StoredChunkView {
  Codec codec = Codec::kRaw;
  std::uint64_t raw_length = 0;
  ByteSpan bytes;
  std::shared_ptr<const void> owner;
};

// A chunk a new chunk can be delta-coded against (ChunkStore::read_delta_base).
struct DeltaBaseChunk {
  Digest digest;                  // a chunk stored whole (never a delta chunk)
  std::vector<std::uint8_t> raw;  // its raw bytes, checked against the index's XXH3-128
  std::uint64_t stored_size = 0;  // its size as the store holds it (its codec's frame)
};

// A chunk's content sketch (four super-features, core/ingest/delta_sketch.h computes them): the
// store keeps it beside a chunk put with one, so a later delta ingest finds bases among a layer's
// chunks by similarity without reading them (DESIGN.md §7 "Finding a base").
struct ChunkSketchWords {
  std::array<std::uint64_t, 4> super{};
};

// A delta chunk as the store holds it (ChunkStore::read_stored_delta): what a delta referrer ships
// (docs/DELTA.md).
struct StoredDelta {
  Codec codec = Codec::kZstdDelta;  // a delta codec
  std::uint64_t raw_length = 0;
  Digest base;                      // the chunk it decodes against (stored whole)
  std::vector<std::uint8_t> bytes;  // the coded bytes, record checksum verified
};

struct StoreStats {
  std::uint64_t chunks = 0;
  std::uint64_t referenced_chunks = 0;  // refcount > 0
  std::uint64_t corrupt_chunks = 0;     // marked by verify(), waiting to be healed
  std::uint64_t delta_chunks = 0;       // stored as a delta against a base chunk
  std::uint64_t raw_bytes = 0;          // sum of raw lengths of all chunks
  std::uint64_t stored_bytes = 0;       // sum of stored lengths of all chunks
  std::uint64_t packs = 0;
  std::uint64_t pack_file_bytes = 0;  // bytes on disk in packs/ (orphans included)
  std::uint64_t layers = 0;
};

struct LayerCommit {
  bool already_present = false;  // a layer with this diff_id was committed before: no change
  std::uint64_t new_chunks = 0;  // chunks this commit added to the index
  std::uint64_t new_stored_bytes = 0;
};

struct VerifyReport {
  std::uint64_t chunks_checked = 0;
  std::uint64_t layers_checked = 0;
  std::uint64_t bytes_read = 0;
  std::vector<Digest> corrupt_chunks;  // failed a checksum, decode, length or SHA-256 check
  std::vector<std::string> problems;   // one line per problem found (corrupt chunks included)
  [[nodiscard]] bool clean() const noexcept { return problems.empty(); }
};

struct GcReport {
  std::uint64_t chunks_removed = 0;
  std::uint64_t packs_deleted = 0;
  std::uint64_t packs_rewritten = 0;
  std::uint64_t orphan_files_removed = 0;
  std::uint64_t bytes_freed = 0;  // pack file bytes given back to the file system
  // Unreferenced chunks were kept because ingest sessions were open (they may reuse them).
  bool deferred_for_active_sessions = false;
};

// XXH3-128 of a chunk's raw bytes: the fast in-process fingerprint (DESIGN.md §1 step 3). Not a
// security boundary: only TrustMode::kLocal ingests name chunks by it.
struct ChunkFingerprint {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  friend bool operator==(const ChunkFingerprint&, const ChunkFingerprint&) = default;
};
[[nodiscard]] ChunkFingerprint fingerprint_of(ByteSpan data);

class ChunkStore;

// ---------------------------------------------------------------------------------------------
// 3. Write sessions. One per ingest, used by one thread. Chunks put through it become visible only
//    with commit_layer; destroying the writer without committing leaves nothing visible.
// ---------------------------------------------------------------------------------------------
class StoreWriter {
 public:
  StoreWriter(StoreWriter&&) noexcept;
  StoreWriter& operator=(StoreWriter&&) noexcept;
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;
  ~StoreWriter();

  // Adds a chunk: `raw` its bytes (sha256 = digest), `stored` those bytes encoded with `codec`.
  // Idempotent: a chunk already in the store or in this session is not written again (raw and
  // stored may then be empty). Appends to this writer's own pack through a buffer; no fsync here.
  Result<void> put_chunk(const Digest& digest, ByteSpan raw, ByteSpan stored, Codec codec);
  // The same for a caller that has itself decoded `stored` to `raw` and hashed `raw` to `digest`
  // (P3 done by the caller, e.g. a puller adopting a fetched zstd:chunked frame it just checked):
  // StoreOptions::verify_puts does not repeat it. Size limits still apply.
  Result<void> put_verified_chunk(const Digest& digest, ByteSpan raw, ByteSpan stored, Codec codec);
  // Adds a chunk stored with a delta codec against `base`, a chunk already committed to the store
  // and stored whole; `base_raw` are its raw bytes (hashed against `base` and used to check that
  // `stored` decodes to `raw` when StoreOptions::verify_puts is on). kInvalidArgument when `base`
  // cannot serve (unknown, corrupt, itself a delta, the chunk itself, or `digest` is already the
  // base of another delta): the caller then stores the chunk whole. Commit checks it again.
  Result<void> put_delta_chunk(const Digest& digest, ByteSpan raw, ByteSpan stored, Codec codec,
                               const Digest& base, ByteSpan base_raw);
  // The same for a caller that has itself decoded `stored` through `base_raw` to `raw` and hashed
  // `raw` to `digest` (a puller that just checked a fetched delta): verify_puts does not repeat
  // it. The base is still checked as put_delta_chunk checks it.
  Result<void> put_verified_delta_chunk(const Digest& digest, ByteSpan raw, ByteSpan stored,
                                        Codec codec, const Digest& base, ByteSpan base_raw);

  // Keeps `sketch` for `digest`, a chunk put in this session, with its index row when the layer
  // that references it commits. kNotFound when this session put no such chunk.
  Result<void> put_sketch(const Digest& digest, const ChunkSketchWords& sketch);
  // True when put_chunk would not need the bytes: the chunk is known good in the store or was
  // already put in this session. Lets the engine skip compressing a repeat within one layer.
  [[nodiscard]] bool contains(const Digest& digest) const;
  // The digest of a known good chunk with this XXH3-128, as last seen by this process.
  [[nodiscard]] std::optional<Digest> find_by_fingerprint(
      const ChunkFingerprint& fingerprint) const;

  // Makes `layer` and its references to `chunks` (in any order, repeats allowed) durable and
  // visible at once: flush + fsync the pack, then one SQLite transaction. Every referenced chunk
  // must be in the store or put in this session. After a failed fsync the writer is unusable
  // (kIo); open a new one and put the chunks again. The writer may commit further layers.
  Result<LayerCommit> commit_layer(const LayerRecord& layer, std::span<const Digest> chunks);
  // The same for a caller still checking the layer: `verified_recipe` runs inside the transaction
  // once the chunk references are written, before anything commits, and returns the layer's
  // recipe (layer.recipe is not used); an error from it rolls everything back and is returned. A
  // puller thus writes the index rows while its last checks (the diff_id's last bytes, the tar
  // headers) run on another thread. The store's index is locked for the writers and readers of
  // this process while `verified_recipe` runs: it should only wait for checks already under way.
  Result<LayerCommit> commit_layer(
      const LayerRecord& layer, std::span<const Digest> chunks,
      const std::function<Result<std::vector<std::uint8_t>>()>& verified_recipe);

 private:
  friend class ChunkStore;
  struct Session;
  explicit StoreWriter(std::unique_ptr<Session> session);
  Result<void> put_chunk_checked(const Digest& digest, ByteSpan raw, ByteSpan stored, Codec codec,
                                 bool verify, const Digest* base = nullptr, ByteSpan base_raw = {});
  Result<void> check_delta_base(const Digest& digest, const Digest& base, ByteSpan base_raw) const;
  Result<LayerCommit> commit_layer_with(
      const LayerRecord& layer, std::span<const Digest> chunks,
      const std::function<Result<std::vector<std::uint8_t>>()>* verified_recipe);
  std::unique_ptr<Session> session_;
};

// ---------------------------------------------------------------------------------------------
// 4. The store. Thread-safe: any number of threads may call contains/read concurrently.
// ---------------------------------------------------------------------------------------------
class ChunkStore {
 public:
  static Result<ChunkStore> open(const std::string& path, const StoreOptions& options = {});

  ChunkStore(ChunkStore&&) noexcept;
  ChunkStore& operator=(ChunkStore&&) noexcept;
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;
  ~ChunkStore();

  // Starts an ingest session: registers a lease (so gc keeps what it may reuse) and refreshes the
  // set of known chunks from the index.
  Result<StoreWriter> writer();

  // True when the chunk is known good in the index as last seen by this process. Answers from
  // memory; a stale "false" only costs a duplicate write that commit_layer folds away.
  [[nodiscard]] bool contains(const Digest& digest) const;
  // True when contains() is false for every digest: the store holds no chunk, as last seen by
  // this process (a puller then knows it will fetch every chunk before it reads any TOC).
  [[nodiscard]] bool holds_no_chunks() const;
  // The digest of a known good chunk with this XXH3-128, as last seen by this process.
  [[nodiscard]] std::optional<Digest> find_by_fingerprint(
      const ChunkFingerprint& fingerprint) const;

  // The chunk's raw bytes, after checking the record checksum, decoding, the raw length and the
  // SHA-256. Any failure names the chunk and its pack (kCorruptInput / kDigestMismatch).
  Result<std::vector<std::uint8_t>> read_chunk(const Digest& digest) const;
  // The chunk in a form that decodes alone (e.g. its zstd frame, for exporters that reuse frames);
  // record checksum verified, payload not decoded. A delta-coded chunk never leaves as such: it is
  // decoded through its base (SHA-256 checked) and returned as one zstd frame (Codec::kZstd).
  Result<StoredChunk> read_stored_chunk(const Digest& digest) const;
  // read_stored_chunk for each of `digests`, with the same checks and errors (one result each, in
  // order), for less per chunk: one index pass under the lock, and records that lie back to back
  // in a pack read with one read.
  std::vector<Result<StoredChunkView>> read_stored_chunks(std::span<const Digest> digests) const;
  // What a new chunk similar to `digest` can be delta-coded against: the chunk itself when it is
  // stored whole, else the base it is coded against (chains stay at depth 1), with its raw bytes.
  Result<DeltaBaseChunk> read_delta_base(const Digest& digest) const;
  // The kept sketches of the chunks of stored layer `layer` (diff_id or a blob digest it was
  // ingested from), at most `max_chunks` of
  // them; empty for a layer whose chunks were put without sketches (e.g. by an older strata).
  Result<std::vector<std::pair<Digest, ChunkSketchWords>>> layer_sketches(
      const Digest& layer, std::size_t max_chunks) const;
  // The coded bytes and base of a chunk stored as a delta (record checksum verified, payload not
  // decoded: read_chunk checks that it decodes), or nullopt when the chunk is stored whole.
  Result<std::optional<StoredDelta>> read_stored_delta(const Digest& digest) const;

  // Finds a layer by diff_id, or by the digest of any blob it was ingested from (a gzip and a
  // zstd:chunked blob of the same tar are the same layer).
  Result<LayerRecord> find_layer(const Digest& digest) const;
  // Finds a layer by its diff_id only (the SHA-256 of the tar, hashed by whoever stored it). Pulls
  // use this: a digest named by a manifest or config must match what the store hashed, never a
  // blob digest row (docs/THREAT_MODEL.md).
  Result<LayerRecord> find_layer_by_diff_id(const Digest& diff_id) const;
  Result<std::vector<LayerRecord>> list_layers() const;  // recipes left empty, by creation order
  Result<StoreStats> stats() const;

  // Drops a layer and its chunk references; its chunks stay until gc() finds them unreferenced.
  Result<void> remove_layer(const Digest& diff_id);

  // Re-reads and re-hashes every chunk record, checks the index's integrity, that every layer's
  // chunks exist and that refcounts equal the references recomputed from layers. Corrupt chunks
  // are marked so contains() forgets them and a later put of the same content heals them.
  Result<VerifyReport> verify();

  // Removes unreferenced chunks, deletes packs with no live record, rewrites packs that are mostly
  // dead, removes orphan pack files of crashed writers. One gc at a time per store.
  Result<GcReport> gc();

  [[nodiscard]] const std::string& path() const;

  struct Impl;

 private:
  explicit ChunkStore(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace strata
