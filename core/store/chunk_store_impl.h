// Internal state shared by the chunk store's translation units (chunk_store.cpp: open, reads and
// write sessions; chunk_store_maintenance.cpp: verify, gc, remove_layer). Not a public header.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/base/digest_hash.h"
#include "core/store/chunk_store_index.h"
#include "core/store/pack_file.h"
#include "strata/store.h"

namespace strata {

struct ChunkFingerprintHash {
  std::size_t operator()(const ChunkFingerprint& fingerprint) const noexcept {
    return static_cast<std::size_t>(fingerprint.low ^ (fingerprint.high * 0x9E3779B97F4A7C15ULL));
  }
};

// Where a chunk's record lives, as the index says.
struct ChunkLocation {
  std::int64_t pack_id = 0;
  std::string pack_name;
  std::uint64_t offset = 0;
  std::uint32_t stored_length = 0;
  std::uint32_t raw_length = 0;
  std::uint8_t codec = 0;
  std::array<std::uint8_t, 16> xxh3{};
  std::int64_t refcount = 0;
  bool corrupt = false;
  // The chunk_bases row of a delta chunk: the base it decodes against (docs/STORE.md).
  bool has_base = false;
  Digest base;
};

// Chains of delta chunks have depth 1: a base is stored whole (DESIGN.md §7).
inline constexpr int kMaxDeltaDepth = 1;

// A lease is live while its process runs (same host) or while its heartbeat is recent (others).
inline constexpr std::int64_t kLeaseTimeoutSeconds = 30 * 60;

struct ChunkStore::Impl {
  std::string root;
  std::string packs_dir;
  std::string index_path;
  std::string host;
  StoreOptions options;

  // One SQLite connection per open store, used under db_mutex (SQLite connections are not shared
  // between threads without serialization; transactions are short).
  mutable std::mutex db_mutex;
  mutable store_index::Database db;
  // read_chunk's row lookup, prepared once (declared after db: destroyed before it).
  mutable store_index::Statement lookup_statement;
  mutable bool lookup_prepared = false;
  // The writer's delta-pair check (StoreWriter::check_delta_base and the commit), run once per
  // delta chunk: prepared once, like lookup_statement (preparing it per chunk cost ~6 % of a
  // delta ingest's CPU).
  mutable store_index::Statement delta_pair_statement;
  mutable bool delta_pair_prepared = false;

  // Digests known good in the index, so contains() answers from memory. generation mirrors
  // meta.generation (bumped whenever chunks disappear or turn corrupt): a change forces a full
  // reload; otherwise new rows are picked up by id.
  mutable std::shared_mutex known_mutex;
  std::unordered_set<Digest, DigestHash> known;
  // XXH3-128 of the same chunks, for TrustMode::kLocal ingests (engine.h).
  std::unordered_map<ChunkFingerprint, Digest, ChunkFingerprintHash> known_fingerprints;
  std::int64_t known_max_id = 0;
  std::int64_t known_generation = -1;

  // Read descriptors per pack name. Records are immutable and names never reused, so a descriptor
  // stays valid even after gc unlinked its file.
  mutable std::mutex pack_fd_mutex;
  mutable std::unordered_map<std::string, std::shared_ptr<pack_file::FileDescriptor>> pack_fds;

  // packs/, opened once (O_PATH): every pack file is reached relative to it.
  pack_file::FileDescriptor packs_fd;

  // The one door from a pack file name (a packs row, a packs/ entry, or one just generated) to a
  // file: kCorruptInput unless pack_file::is_pack_file_name accepts it (".tmp" allowed), so a row
  // named "../x" never becomes a path. The operations act relative to packs_fd and never follow
  // a symlink. pack_path is the checked path, for messages and fsync bookkeeping.
  [[nodiscard]] Result<std::string> pack_path(const std::string& name) const;
  Result<pack_file::FileDescriptor> open_pack(const std::string& name) const;    // read-only
  Result<pack_file::FileDescriptor> create_pack(const std::string& name) const;  // O_EXCL
  Result<bool> unlink_pack(const std::string& name) const;  // false: it did not exist
  Result<void> rename_pack(const std::string& from, const std::string& to) const;

  // Reloads `known` (all rows when the generation moved, else rows newer than known_max_id).
  // Caller holds db_mutex.
  Result<void> refresh_known_locked(std::int64_t generation);
  Result<std::int64_t> read_generation_locked();
  Result<void> bump_generation_locked();
  void forget_known(const Digest& digest);

  Result<ChunkLocation> lookup_chunk(const Digest& digest) const;
  Result<ChunkLocation> lookup_chunk_locked(const Digest& digest) const;  // holding db_mutex
  // The one place stored chunks are decoded: a checked record payload to raw bytes, fetching and
  // decoding the base of a delta chunk first (refusing a base that is itself a delta: chains have
  // depth kMaxDeltaDepth), then checking raw length, XXH3-128 and SHA-256 against the index.
  Result<std::vector<std::uint8_t>> decode_record(const Digest& digest,
                                                  const ChunkLocation& location,
                                                  ByteSpan record) const;
  // Reads and checks the record at `location` (checksum, header fields against the index row).
  Result<std::vector<std::uint8_t>> read_record(const Digest& digest,
                                                const ChunkLocation& location) const;
  // read_record's checks of a record read into `record` (its record_size bytes).
  Result<void> check_read_record(const Digest& digest, const ChunkLocation& location,
                                 ByteSpan record) const;
  Result<std::shared_ptr<pack_file::FileDescriptor>> pack_reader(const std::string& name) const;
  void drop_pack_reader(const std::string& name) const;

  // Deletes lease rows of writers that are gone; returns the ids of the live ones. Caller holds
  // db_mutex inside a write transaction.
  Result<std::vector<std::string>> prune_leases_locked();
};

// "chunk sha256:… in pack P at offset O: <reason>"
std::string describe_chunk(const Digest& digest, const ChunkLocation& location);

// What decode_checked_record checks the decoded bytes against: the index's XXH3-128 and the
// digest (SHA-256), or the XXH3-128 alone where the caller's own result is checked by SHA-256
// later anyway (a delta base: the chunk coded against it is verified whole).
enum class RawCheck { kFingerprintAndDigest, kFingerprint };

// Decodes a checked record payload (with `base_raw` for a delta codec) and checks raw length,
// XXH3-128 and (unless `check` says otherwise) SHA-256 against the index. Impl::decode_record
// is the caller.
Result<std::vector<std::uint8_t>> decode_checked_record(
    const Digest& digest, const ChunkLocation& location, ByteSpan record, ByteSpan base_raw = {},
    RawCheck check = RawCheck::kFingerprintAndDigest);

// The record and its location, looked up again when gc moved it meanwhile.
struct LocatedRecord {
  ChunkLocation location;
  std::vector<std::uint8_t> record;
};
Result<LocatedRecord> read_located_record(const ChunkStore::Impl& impl, const Digest& digest);

std::array<std::uint8_t, 16> xxh3_128_of(ByteSpan data);
// The index's 16-byte canonical XXH3-128 column as a fingerprint (zero when malformed).
ChunkFingerprint fingerprint_from_blob(ByteSpan blob);
// A chunk_sketches row's sketch column: the four super-features, 64-bit little-endian each.
using SketchBlob = std::array<std::uint8_t, sizeof(ChunkSketchWords::super)>;
SketchBlob sketch_blob(const ChunkSketchWords& sketch);
// The sketch of such a column; empty when the column is not that size.
std::optional<ChunkSketchWords> sketch_from_blob(ByteSpan blob);
std::int64_t unix_now();

}  // namespace strata
