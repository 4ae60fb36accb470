// Write sessions of the chunk store: a StoreWriter owns a lease row (so gc keeps chunks it may
// reuse) and its own pack files, buffers chunk records in memory, and on commit_layer runs the
// durability protocol of docs/STORE.md: flush + fsync the packs (+ the packs/ directory for new
// files), then one SQLite transaction that makes the layer and its references visible
// (shared/specs/reliability.md §3.8 P1, P2, P3, P6). A failed fsync poisons the writer: its packs
// are never referenced, since the kernel may already have dropped the unwritten pages (P2).
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <functional>
#include <future>
#include <optional>

#include "core/store/chunk_store_impl.h"
#include "core/store/pack_record.h"

namespace strata {
namespace {

// Pack bytes are written out (and their writeback started) once this many are buffered: a pull
// that stores a few MiB then writes them while it waits for chunks, not at commit (a 2.5 MB
// update's commit had 6 ms of writes on the critical path with 4 MiB here).
constexpr std::size_t kFlushThreshold = std::size_t{1} << 20U;

ByteSpan blob_of(const Digest& digest) {
  return ByteSpan(digest.bytes().data(), digest.bytes().size());
}

const Digest& empty_digest() {
  static const Digest digest = sha256_of(ByteSpan());
  return digest;
}

bool known_codec(Codec codec) {
  return codec == Codec::kRaw || codec == Codec::kZstd || codec == Codec::kByteGrouped ||
         is_delta_codec(codec);
}

// What the index says of a would-be delta pair: whether `base` is a good chunk, whether it is
// itself a delta (by codec or by a chunk_bases row), and whether `digest` is already some delta's
// base. A delta is allowed only when base_good && !base_in_chain && !digest_is_base (depth 1).
struct DeltaPairState {
  bool base_good = false;
  bool base_in_chain = false;
  bool digest_is_base = false;
  ChunkFingerprint base_fingerprint;  // the base's XXH3-128 as the index records it
};

// Caller holds store.db_mutex.
Result<DeltaPairState> delta_pair_state(const ChunkStore::Impl& store, const Digest& digest,
                                        const Digest& base) {
  if (!store.delta_pair_prepared) {
    auto prepared = store.db.prepare(
        "SELECT COALESCE((SELECT codec FROM chunks WHERE digest = ?1 AND corrupt = 0), -1), "
        "EXISTS(SELECT 1 FROM chunk_bases WHERE digest = ?1), "
        "EXISTS(SELECT 1 FROM chunk_bases WHERE base = ?2), "
        "(SELECT xxh3 FROM chunks WHERE digest = ?1 AND corrupt = 0)");
    if (!prepared.ok()) return std::move(prepared).error();
    store.delta_pair_statement = std::move(*prepared);
    store.delta_pair_prepared = true;
  }
  store_index::Statement& check = store.delta_pair_statement;
  check.reset();
  check.bind_blob(1, blob_of(base));
  check.bind_blob(2, blob_of(digest));
  auto row = check.step();
  if (!row.ok()) return std::move(row).error();
  DeltaPairState state;
  const auto codec = check.column_int(0);
  state.base_good = codec >= 0;
  state.base_in_chain =
      check.column_int(1) != 0 || (codec >= 0 && is_delta_codec(static_cast<Codec>(codec)));
  state.digest_is_base = check.column_int(2) != 0;
  if (state.base_good) state.base_fingerprint = fingerprint_from_blob(check.column_blob(3));
  check.reset();
  return state;
}

}  // namespace

struct StoreWriter::Session {
  std::shared_ptr<ChunkStore::Impl> store;
  std::string lease_id;
  std::optional<Error> poisoned;

  // A pack this session writes. Its row is inserted by the first commit that references it.
  struct OpenPack {
    std::string name;
    std::string path;  // store->pack_path(name), for messages
    pack_file::FileDescriptor file;
    std::uint64_t size = 0;    // bytes appended (buffered or written)
    std::uint64_t synced = 0;  // bytes known durable
    bool full = false;         // reached max_pack_bytes: sealed at the next commit
    bool registered = false;   // has a packs row
  };
  std::vector<OpenPack> packs;       // the last one receives new records
  std::vector<std::uint8_t> buffer;  // records not yet written to packs.back()
  int next_pack_number = 0;
  bool directory_dirty = false;

  struct PendingChunk {
    std::size_t pack_index = 0;
    std::uint64_t offset = 0;
    std::uint32_t stored_length = 0;
    std::uint32_t raw_length = 0;
    Codec codec = Codec::kRaw;
    std::array<std::uint8_t, 16> xxh3{};
    bool has_base = false;  // a delta chunk: decodes against `base`
    Digest base;
    std::optional<ChunkSketchWords> sketch;  // put_sketch: kept in chunk_sketches at commit
  };
  std::unordered_map<Digest, PendingChunk, DigestHash> pending;

  Error poison(Error error) {
    poisoned = error;
    return error;
  }

  static const std::string& pack_path(const OpenPack& pack) { return pack.path; }

  Result<void> flush_buffer() {
    if (buffer.empty()) return {};
    OpenPack& pack = packs.back();
    auto written =
        pack_file::write_all(pack.file, ByteSpan(buffer.data(), buffer.size()), pack_path(pack));
    if (!written.ok()) {
      buffer.clear();
      return poison(std::move(written).error());
    }
    // The device starts on these bytes now, while the session goes on: the fsync at commit then
    // waits for the last few MiB instead of the whole pack.
    pack_file::start_writeback(pack.file, pack.size - buffer.size(), buffer.size());
    buffer.clear();
    return {};
  }

  Result<void> start_pack() {
    OpenPack pack;
    pack.name = lease_id + "-" + std::to_string(next_pack_number++) + ".pack";
    auto path = store->pack_path(pack.name);
    if (!path.ok()) return poison(std::move(path).error());
    pack.path = std::move(*path);
    auto created = store->create_pack(pack.name);
    if (!created.ok()) return poison(std::move(created).error());
    pack.file = std::move(*created);
    buffer = pack_record::encode_file_header();
    pack.size = buffer.size();
    packs.push_back(std::move(pack));
    directory_dirty = true;
    return {};
  }

  // Makes the records written so far durable (the caller has flushed the buffer). Touches only
  // each pack's `synced` and directory_dirty, so it may run beside commit_locked; the caller
  // poisons on failure.
  Result<void> sync_written_packs() {
    for (OpenPack& pack : packs) {
      if (pack.synced == pack.size) continue;
      STRATA_TRY(pack_file::sync_file(pack.file, pack_path(pack)));
      pack.synced = pack.size;
    }
    if (directory_dirty) {
      STRATA_TRY(pack_file::sync_directory(store->packs_dir));
      directory_dirty = false;
    }
    return {};
  }

  Result<std::vector<std::int64_t>> register_packs_locked() {
    auto upsert = store->db.prepare(
        "INSERT INTO packs(name, state, size, lease, created) VALUES(?, ?, ?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET state = excluded.state, size = excluded.size "
        "RETURNING id");
    if (!upsert.ok()) return std::move(upsert).error();
    std::vector<std::int64_t> ids;
    for (const OpenPack& pack : packs) {
      upsert->bind_text(1, pack.name);
      upsert->bind_int(2, pack.full ? 1 : 0);
      // Written whole (flush_buffer) and durable before this transaction commits.
      upsert->bind_int(3, static_cast<std::int64_t>(pack.size));
      upsert->bind_text(4, lease_id);
      upsert->bind_int(5, unix_now());
      auto row = upsert->step();
      if (!row.ok()) return std::move(row).error();
      ids.push_back(upsert->column_int(0));
      STRATA_TRY(upsert->run());
      upsert->reset();
    }
    return ids;
  }

  // The chunk rows of a committing layer, inside commit_locked's transaction: each digest (in key
  // order) gains a reference, or is inserted, or healed, from what this session put. Returns
  // whether a delta base was recorded.
  // The digests back to back, and how many: what the statements below take as ?1 and ?2 (one
  // statement for thousands of rows instead of one each).
  static std::vector<std::uint8_t> digests_blob(std::span<const Digest> digests) {
    std::vector<std::uint8_t> blob;
    blob.reserve(digests.size() * Digest::kSize);
    for (const Digest& digest : digests) {
      const ByteSpan bytes = blob_of(digest);
      blob.insert(blob.end(), bytes.begin(), bytes.end());
    }
    return blob;
  }

  // Runs `sql` (which names the i-th of `digests` as substr(?1, i * 32 + 1, 32) for i from the
  // recursive table n, and may take ?3 = `third`) once for all of them; returns SQLite's change
  // count. Nothing runs for no digests.
  Result<std::int64_t> run_for_each_digest(const char* sql, std::span<const Digest> digests,
                                           std::optional<std::int64_t> third = {}) {
    if (digests.empty()) return std::int64_t{0};
    auto statement = store->db.prepare(sql);
    if (!statement.ok()) return std::move(statement).error();
    const std::vector<std::uint8_t> blob = digests_blob(digests);
    statement->bind_blob(1, ByteSpan(blob.data(), blob.size()));
    statement->bind_int(2, static_cast<std::int64_t>(digests.size()));
    if (third) statement->bind_int(3, *third);
    STRATA_TRY(statement->run());
    return store->db.changes();
  }

  Result<bool> reference_chunks_locked(const LayerRecord& layer, const std::vector<Digest>& sorted,
                                       const std::vector<std::int64_t>& pack_ids,
                                       LayerCommit& outcome) {
    store_index::Database& db = store->db;
    auto select = db.prepare("SELECT corrupt FROM chunks WHERE digest = ?");
    auto insert = db.prepare(
        "INSERT INTO chunks(digest, pack_id, offset, stored_length, raw_length, codec, xxh3, "
        "refcount, corrupt) VALUES(?, ?, ?, ?, ?, ?, ?, 1, 0) ON CONFLICT(digest) DO NOTHING");
    auto heal = db.prepare(
        "UPDATE chunks SET pack_id = ?2, offset = ?3, stored_length = ?4, raw_length = ?5, "
        "codec = ?6, xxh3 = ?7, corrupt = 0, refcount = refcount + 1 WHERE digest = ?1");
    auto keep_sketch =
        db.prepare("INSERT OR REPLACE INTO chunk_sketches(digest, sketch) VALUES(?, ?)");
    if (!keep_sketch.ok()) return std::move(keep_sketch).error();
    auto record_base = db.prepare("INSERT INTO chunk_bases(digest, base) VALUES(?, ?)");
    if (!record_base.ok()) return std::move(record_base).error();
    bool recorded_bases = false;
    if (!select.ok()) return std::move(select).error();
    if (!insert.ok()) return std::move(insert).error();
    if (!heal.ok()) return std::move(heal).error();

    const auto bind_location = [&](store_index::Statement& write, const Digest& digest,
                                   const PendingChunk& chunk) {
      write.bind_blob(1, blob_of(digest));
      write.bind_int(2, pack_ids[chunk.pack_index]);
      write.bind_int(3, static_cast<std::int64_t>(chunk.offset));
      write.bind_int(4, chunk.stored_length);
      write.bind_int(5, chunk.raw_length);
      write.bind_int(6, static_cast<std::int64_t>(chunk.codec));
      write.bind_blob(7, ByteSpan(chunk.xxh3.data(), chunk.xxh3.size()));
    };
    // Chunks put here are inserted first (most often new to the store: all of a first
    // version's); every other digest, and any put here that the store had already, gains a
    // reference in one statement over all of them (most of a second version's).
    std::vector<Digest> added;  // inserted or healed from what this session put
    std::vector<Digest> to_reference;
    for (const Digest& digest : sorted) {
      const auto pending_chunk = pending.find(digest);
      if (pending_chunk == pending.end()) {
        to_reference.push_back(digest);
        continue;
      }
      bind_location(*insert, digest, pending_chunk->second);
      STRATA_TRY(insert->run());
      insert->reset();
      if (db.changes() == 1) {
        added.push_back(digest);
      } else {
        to_reference.push_back(digest);
      }
    }
    auto referenced = run_for_each_digest(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2) "
        "UPDATE chunks SET refcount = refcount + 1 WHERE corrupt = 0 AND digest IN "
        "(SELECT substr(?1, i * 32 + 1, 32) FROM n)",
        to_reference);
    if (!referenced.ok()) return std::move(referenced).error();
    if (*referenced != static_cast<std::int64_t>(to_reference.size())) {
      // Some are missing or marked corrupt (the good ones have their reference now): healed when
      // this session put them, an error (which rolls the transaction back) otherwise.
      for (const Digest& digest : to_reference) {
        select->bind_blob(1, blob_of(digest));
        auto row = select->step();
        if (!row.ok()) return std::move(row).error();
        const bool exists = *row;
        const bool corrupt = exists && select->column_int(0) != 0;
        select->reset();
        if (exists && !corrupt) continue;
        const auto pending_chunk = pending.find(digest);
        if (pending_chunk == pending.end()) {
          store->forget_known(digest);
          if (corrupt) {
            return make_error(ErrorCode::kCorruptInput,
                              "chunk " + digest.to_string() +
                                  " is marked corrupt in the store; put it again to heal it");
          }
          return make_error(ErrorCode::kNotFound,
                            "chunk " + digest.to_string() + " referenced by layer " +
                                layer.diff_id.to_string() +
                                " is neither in the store nor put in this session");
        }
        // Marked corrupt (a row the insert above found): healed with the record put here.
        bind_location(*heal, digest, pending_chunk->second);
        STRATA_TRY(heal->run());
        heal->reset();
        added.push_back(digest);
      }
    }
    // A chunk stored here whole decodes against nothing: any base row left for it goes, in one
    // statement for all of them (one each was a third of a first version's commit).
    auto unbased = run_for_each_digest(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2) "
        "DELETE FROM chunk_bases WHERE digest IN (SELECT substr(?1, i * 32 + 1, 32) FROM n)",
        added);
    if (!unbased.ok()) return std::move(unbased).error();
    for (const Digest& digest : added) {
      const PendingChunk& chunk = pending.at(digest);
      if (chunk.has_base) {
        STRATA_TRY(record_base_locked(digest, chunk.base, *record_base));
        recorded_bases = true;
      }
      if (chunk.sketch) {
        const SketchBlob blob = sketch_blob(*chunk.sketch);
        keep_sketch->bind_blob(1, blob_of(digest));
        keep_sketch->bind_blob(2, ByteSpan(blob.data(), blob.size()));
        STRATA_TRY(keep_sketch->run());
        keep_sketch->reset();
      }
      ++outcome.new_chunks;
      outcome.new_stored_bytes += chunk.stored_length;
    }
    return recorded_bases;
  }

  // The packs' sync (commit_layer_with), waited for before anything commits; a failure poisons.
  Result<void> wait_for_sync(std::future<Result<void>>& synced) {
    Result<void> result = synced.get();
    if (!result.ok()) return poison(std::move(result).error());
    return {};
  }

  // The transaction of commit_layer. Caller holds db_mutex. With `verified_recipe` set, the
  // layer's row is written with an empty recipe, the caller's checks are waited for once every
  // row is written, and the recipe they return replaces it just before the commit. `synced` is
  // the packs' sync, waited for before anything commits.
  Result<LayerCommit> commit_locked(
      const LayerRecord& layer, const std::vector<Digest>& digests,
      const std::function<Result<std::vector<std::uint8_t>>()>* verified_recipe,
      std::future<Result<void>>& synced) {
    store_index::Database& db = store->db;
    store_index::WriteTransaction transaction(db);
    STRATA_TRY(transaction.begin());

    LayerCommit outcome;
    auto existing_layer = db.prepare("SELECT 1 FROM layers WHERE diff_id = ?");
    if (!existing_layer.ok()) return std::move(existing_layer).error();
    existing_layer->bind_blob(1, blob_of(layer.diff_id));
    auto found = existing_layer->step();
    if (!found.ok()) return std::move(found).error();
    if (*found) {
      // The tar is stored; only the blob it came in (another compression) may be new.
      if (verified_recipe != nullptr) {
        auto verified = (*verified_recipe)();
        if (!verified.ok()) return std::move(verified).error();
      }
      outcome.already_present = true;
      STRATA_TRY(record_blob_locked(layer));
      STRATA_TRY(wait_for_sync(synced));
      STRATA_TRY(transaction.commit());
      return outcome;
    }

    // A lease that another host's gc judged expired may have lost its packs: never commit then.
    auto heartbeat = db.prepare("UPDATE leases SET heartbeat = ? WHERE id = ?");
    if (!heartbeat.ok()) return std::move(heartbeat).error();
    heartbeat->bind_int(1, unix_now());
    heartbeat->bind_text(2, lease_id);
    STRATA_TRY(heartbeat->run());
    if (db.changes() != 1) {
      return poison(make_error(ErrorCode::kIo, "ingest session " + lease_id +
                                                   " lost its lease (expired); start a new one"));
    }

    auto pack_ids = register_packs_locked();
    if (!pack_ids.ok()) return std::move(pack_ids).error();

    // Digests in key order: the index pages each insert or update touches are the ones the one
    // before touched (a layer of thousands of chunks otherwise dirties pages all over the
    // B-trees, which the WAL then writes and syncs).
    std::vector<Digest> sorted(digests.begin(), digests.end());
    std::sort(sorted.begin(), sorted.end());
    auto recorded_bases = reference_chunks_locked(layer, sorted, *pack_ids, outcome);
    if (!recorded_bases.ok()) return std::move(recorded_bases).error();

    auto insert_layer = db.prepare(
        "INSERT INTO layers(diff_id, layer_digest, media_type, recipe, size, created) "
        "VALUES(?, ?, ?, ?, ?, ?)");
    if (!insert_layer.ok()) return std::move(insert_layer).error();
    insert_layer->bind_blob(1, blob_of(layer.diff_id));
    insert_layer->bind_blob(2, blob_of(layer.layer_digest));
    insert_layer->bind_text(3, layer.media_type);
    insert_layer->bind_blob(4, verified_recipe != nullptr
                                   ? ByteSpan()
                                   : ByteSpan(layer.recipe.data(), layer.recipe.size()));
    insert_layer->bind_int(5, static_cast<std::int64_t>(layer.size));
    insert_layer->bind_int(6, unix_now());
    STRATA_TRY(insert_layer->run());
    const std::int64_t layer_id = db.last_insert_rowid();

    auto listed = run_for_each_digest(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2) "
        "INSERT INTO layer_chunks(layer_id, digest) SELECT ?3, substr(?1, i * 32 + 1, 32) FROM n",
        sorted, layer_id);
    if (!listed.ok()) return std::move(listed).error();

    // A store holding deltas is format 2: a strata that does not know them would collect bases.
    if (*recorded_bases) {
      STRATA_TRY(
          db.execute("UPDATE meta SET value = 2 WHERE key = 'format_version' AND value < 2"));
    }
    STRATA_TRY(record_blob_locked(layer));
    if (verified_recipe != nullptr) {
      auto recipe = (*verified_recipe)();
      if (!recipe.ok()) return std::move(recipe).error();
      auto set_recipe = db.prepare("UPDATE layers SET recipe = ? WHERE id = ?");
      if (!set_recipe.ok()) return std::move(set_recipe).error();
      set_recipe->bind_blob(1, ByteSpan(recipe->data(), recipe->size()));
      set_recipe->bind_int(2, layer_id);
      STRATA_TRY(set_recipe->run());
    }
    STRATA_TRY(wait_for_sync(synced));
    STRATA_TRY(transaction.commit());
    return outcome;
  }

  // Records that `digest` decodes against `base`, after checking in this transaction what
  // put_delta_chunk checked before: the base is a good chunk stored whole, and `digest` is no
  // other delta's base. So every chain has depth 1 (kMaxDeltaDepth) whatever ran in between.
  // `insert` is the commit's prepared INSERT INTO chunk_bases.
  Result<void> record_base_locked(const Digest& digest, const Digest& base,
                                  store_index::Statement& insert) {
    auto state = delta_pair_state(*store, digest, base);
    if (!state.ok()) return std::move(state).error();
    const auto name = [&] {
      return "delta chunk " + digest.to_string() + " (base " + base.to_string() + ")";
    };
    if (!state->base_good) {
      store->forget_known(base);
      return make_error(ErrorCode::kNotFound,
                        name() + ": the base is not a good chunk of the store; put it again whole");
    }
    if (state->base_in_chain || state->digest_is_base || base == digest) {
      return make_error(ErrorCode::kInvalidArgument,
                        name() + ": would make a delta chain deeper than " +
                            std::to_string(kMaxDeltaDepth) + "; put it again whole");
    }
    insert.bind_blob(1, blob_of(digest));
    insert.bind_blob(2, blob_of(base));
    STRATA_TRY(insert.run());
    insert.reset();
    return {};
  }

  // Remembers which blob a layer arrived in, so find_layer answers to every blob digest of it.
  // Callers pass only a blob digest they hashed (docs/THREAT_MODEL.md), so it replaces whatever
  // an older strata filed under that digest without checking it (a partial pull recorded the
  // manifest's word): a whole, verified pull of the honest blob heals such a store.
  Result<void> record_blob_locked(const LayerRecord& layer) {
    if (layer.layer_digest == layer.diff_id || layer.layer_digest == Digest()) return {};
    auto insert = store->db.prepare(
        "INSERT OR REPLACE INTO layer_blobs(blob_digest, diff_id, media_type) VALUES(?, ?, ?)");
    if (!insert.ok()) return std::move(insert).error();
    insert->bind_blob(1, blob_of(layer.layer_digest));
    insert->bind_blob(2, blob_of(layer.diff_id));
    insert->bind_text(3, layer.media_type);
    STRATA_TRY(insert->run());
    auto demote = store->db.prepare(
        "UPDATE layers SET layer_digest = diff_id WHERE layer_digest = ? AND diff_id != ?");
    if (!demote.ok()) return std::move(demote).error();
    demote->bind_blob(1, blob_of(layer.layer_digest));
    demote->bind_blob(2, blob_of(layer.diff_id));
    return demote->run();
  }

  // Best effort on destruction: seal registered packs, delete the lease, and remove a pack file no
  // commit ever referenced (nothing can point into it). Failures leave work for gc, never damage.
  void close() noexcept {
    if (!store) return;
    std::lock_guard lock(store->db_mutex);
    bool any_registered = false;
    for (const OpenPack& pack : packs) any_registered = any_registered || pack.registered;
    // Not synced: a lease lost to a power cut is as expired as one left by a crash, and an open
    // pack whose lease is gone is treated as sealed (gc, chunk_store_maintenance.cpp).
    store_index::WriteTransaction transaction(store->db, store_index::CommitSync::kVisible);
    if (!transaction.begin().ok()) return;
    if (any_registered) {
      auto seal = store->db.prepare("UPDATE packs SET state = 1 WHERE name = ?");
      if (seal.ok()) {
        for (const OpenPack& pack : packs) {
          if (!pack.registered) continue;
          seal->bind_text(1, pack.name);
          (void)seal->run();
          seal->reset();
        }
      }
    }
    auto remove = store->db.prepare("DELETE FROM leases WHERE id = ?");
    if (!remove.ok()) return;
    remove->bind_text(1, lease_id);
    if (!remove->run().ok()) return;
    if (!transaction.commit().ok()) return;
    for (const OpenPack& pack : packs) {
      if (!pack.registered) (void)store->unlink_pack(pack.name);
    }
  }
};

StoreWriter::StoreWriter(std::unique_ptr<Session> session) : session_(std::move(session)) {}
StoreWriter::StoreWriter(StoreWriter&&) noexcept = default;
StoreWriter& StoreWriter::operator=(StoreWriter&& other) noexcept {
  if (this != &other) {
    if (session_) session_->close();
    session_ = std::move(other.session_);
  }
  return *this;
}
StoreWriter::~StoreWriter() {
  if (session_) session_->close();
}

Result<StoreWriter> ChunkStore::writer() {
  auto session = std::make_unique<StoreWriter::Session>();
  session->store = impl_;
  session->lease_id = pack_file::random_hex_token();
  Result<void> refreshed;
  {
    std::lock_guard lock(impl_->db_mutex);
    std::int64_t generation = 0;
    {
      // Visible to gc at once (that is what the lease is for), not synced: after a power cut
      // there is no writer left to protect, and the layer's own commit is synced.
      store_index::WriteTransaction transaction(impl_->db, store_index::CommitSync::kVisible);
      STRATA_TRY(transaction.begin());
      auto live = impl_->prune_leases_locked();
      if (!live.ok()) return std::move(live).error();
      auto insert = impl_->db.prepare(
          "INSERT INTO leases(id, pid, host, started, heartbeat) VALUES(?, ?, ?, ?, ?)");
      if (!insert.ok()) return std::move(insert).error();
      insert->bind_text(1, session->lease_id);
      insert->bind_int(2, ::getpid());
      insert->bind_text(3, impl_->host);
      insert->bind_int(4, unix_now());
      insert->bind_int(5, unix_now());
      STRATA_TRY(insert->run());
      auto read = impl_->read_generation_locked();
      if (!read.ok()) return std::move(read).error();
      generation = *read;
      STRATA_TRY(transaction.commit());
    }
    // From here on gc keeps every chunk row (the lease is visible to it), so what `known` holds
    // after this refresh stays valid for the whole session.
    refreshed = impl_->refresh_known_locked(generation);
  }
  // Built outside the lock: on failure its destructor takes the lock to drop the lease.
  StoreWriter writer(std::move(session));
  if (!refreshed.ok()) return std::move(refreshed).error();
  return writer;
}

bool StoreWriter::contains(const Digest& digest) const {
  if (session_->pending.count(digest) != 0) return true;
  std::shared_lock lock(session_->store->known_mutex);
  return session_->store->known.count(digest) != 0;
}

Result<void> StoreWriter::put_chunk(const Digest& digest, ByteSpan raw, ByteSpan stored,
                                    Codec codec) {
  return put_chunk_checked(digest, raw, stored, codec, session_->store->options.verify_puts);
}

Result<void> StoreWriter::put_verified_chunk(const Digest& digest, ByteSpan raw, ByteSpan stored,
                                             Codec codec) {
  return put_chunk_checked(digest, raw, stored, codec, false);
}

Result<void> StoreWriter::put_delta_chunk(const Digest& digest, ByteSpan raw, ByteSpan stored,
                                          Codec codec, const Digest& base, ByteSpan base_raw) {
  return put_chunk_checked(digest, raw, stored, codec, session_->store->options.verify_puts, &base,
                           base_raw);
}

Result<void> StoreWriter::put_verified_delta_chunk(const Digest& digest, ByteSpan raw,
                                                   ByteSpan stored, Codec codec, const Digest& base,
                                                   ByteSpan base_raw) {
  return put_chunk_checked(digest, raw, stored, codec, false, &base, base_raw);
}

Result<void> StoreWriter::put_chunk_checked(const Digest& digest, ByteSpan raw, ByteSpan stored,
                                            Codec codec, bool verify, const Digest* base,
                                            ByteSpan base_raw) {
  Session& session = *session_;
  if (session.poisoned) return *session.poisoned;
  if (session.pending.count(digest) != 0) return {};
  {
    ChunkStore::Impl& store = *session.store;
    std::shared_lock lock(store.known_mutex);
    if (store.known.count(digest) != 0) return {};
  }
  if (!known_codec(codec)) {
    return make_error(
        ErrorCode::kUnsupported,
        "chunk codec " + std::to_string(static_cast<int>(codec)) + " is not supported");
  }
  if (is_delta_codec(codec) != (base != nullptr)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "chunk " + digest.to_string() + ": codec " + std::string(codec_name(codec)) +
                          (base != nullptr ? " is not a delta codec" : " needs a base chunk"));
  }
  if (base != nullptr) STRATA_TRY(check_delta_base(digest, *base, base_raw));
  if (raw.size() > kMaxStoredChunkBytes || stored.size() > kMaxStoredChunkBytes + 1024) {
    return make_error(ErrorCode::kLimitExceeded,
                      "chunk " + digest.to_string() + " exceeds the store's chunk size limit");
  }
  if (raw.empty() && stored.empty() && digest != empty_digest()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "chunk " + digest.to_string() + " is not in the store: its bytes are needed");
  }
  if (verify) {
    if (sha256_of(raw) != digest) {
      return make_error(ErrorCode::kDigestMismatch, "chunk announced as " + digest.to_string() +
                                                        " hashes to " + sha256_of(raw).to_string());
    }
    auto decoded = base != nullptr ? decompress_delta_chunk(codec, stored, base_raw, raw.size())
                                   : decompress_chunk(codec, stored, raw.size());
    if (!decoded.ok() || !std::equal(decoded->begin(), decoded->end(), raw.begin(), raw.end())) {
      return make_error(ErrorCode::kCorruptInput,
                        "stored bytes of chunk " + digest.to_string() +
                            " do not decode to its raw bytes" +
                            (decoded.ok() ? std::string() : ": " + decoded.error().message));
    }
  }
  if (session.packs.empty() || session.packs.back().full) STRATA_TRY(session.start_pack());

  Session::OpenPack& pack = session.packs.back();
  Session::PendingChunk chunk;
  chunk.pack_index = session.packs.size() - 1;
  chunk.offset = pack.size;
  chunk.stored_length = static_cast<std::uint32_t>(stored.size());
  chunk.raw_length = static_cast<std::uint32_t>(raw.size());
  chunk.codec = codec;
  chunk.xxh3 = xxh3_128_of(raw);
  if (base != nullptr) {
    chunk.has_base = true;
    chunk.base = *base;
  }
  pack_record::append_record(digest, codec, chunk.raw_length, stored, session.buffer);
  pack.size += pack_record::record_size(stored.size());
  session.pending.emplace(digest, chunk);

  if (session.buffer.size() >= kFlushThreshold) STRATA_TRY(session.flush_buffer());
  if (pack.size >= session.store->options.max_pack_bytes) {
    STRATA_TRY(session.flush_buffer());
    pack.full = true;
  }
  return {};
}

Result<void> StoreWriter::put_sketch(const Digest& digest, const ChunkSketchWords& sketch) {
  const auto pending = session_->pending.find(digest);
  if (pending == session_->pending.end()) {
    return make_error(ErrorCode::kNotFound,
                      "chunk " + digest.to_string() + " was not put by this ingest session");
  }
  pending->second.sketch = sketch;
  return {};
}

Result<void> StoreWriter::check_delta_base(const Digest& digest, const Digest& base,
                                           ByteSpan base_raw) const {
  ChunkStore::Impl& store = *session_->store;
  const auto name = [&] {
    return "delta chunk " + digest.to_string() + " (base " + base.to_string() + ")";
  };
  if (base == digest) {
    return make_error(ErrorCode::kInvalidArgument, name() + ": a chunk cannot be its own base");
  }
  {
    std::shared_lock lock(store.known_mutex);
    if (store.known.count(base) == 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        name() + ": the base is not a committed chunk of the store");
    }
  }
  if (base_raw.size() > kMaxStoredChunkBytes) {
    return make_error(ErrorCode::kInvalidArgument, name() + ": the base bytes given are too large");
  }
  std::lock_guard lock(store.db_mutex);
  auto state = delta_pair_state(store, digest, base);
  if (!state.ok()) return std::move(state).error();
  if (!state->base_good) {
    return make_error(ErrorCode::kInvalidArgument, name() + ": the base is not a good chunk");
  }
  // The base bytes a caller gives come from this store's own reads (ChunkStore::read_delta_base,
  // read_chunk), which checked them against the base digest (SHA-256) already, so no input a
  // hostile layer or registry controls reaches this check. Comparing them with the XXH3-128 the
  // index keeps for the base catches a wrong buffer at a fraction of the cost of hashing them
  // again here, in the serial writer.
  if (!(fingerprint_of(base_raw) == state->base_fingerprint)) {
    return make_error(ErrorCode::kInvalidArgument,
                      name() + ": the base bytes given are not the stored base's bytes");
  }
  if (state->base_in_chain || state->digest_is_base) {
    return make_error(
        ErrorCode::kInvalidArgument,
        name() + ": would make a delta chain deeper than " + std::to_string(kMaxDeltaDepth));
  }
  return {};
}

Result<LayerCommit> StoreWriter::commit_layer(const LayerRecord& layer,
                                              std::span<const Digest> chunks) {
  return commit_layer_with(layer, chunks, nullptr);
}

Result<LayerCommit> StoreWriter::commit_layer(
    const LayerRecord& layer, std::span<const Digest> chunks,
    const std::function<Result<std::vector<std::uint8_t>>()>& verified_recipe) {
  return commit_layer_with(layer, chunks, &verified_recipe);
}

Result<LayerCommit> StoreWriter::commit_layer_with(
    const LayerRecord& layer, std::span<const Digest> chunks,
    const std::function<Result<std::vector<std::uint8_t>>()>* verified_recipe) {
  Session& session = *session_;
  if (session.poisoned) return *session.poisoned;
  std::vector<Digest> digests(chunks.begin(), chunks.end());
  std::sort(digests.begin(), digests.end());
  digests.erase(std::unique(digests.begin(), digests.end()), digests.end());

  // Step 1 and 2 of the protocol: every byte a row may point to is durable before the rows
  // commit. The last records are written here and synced on another thread while the
  // transaction writes its rows, which commit only once the sync has succeeded (a v2 pull's
  // commit: 3-8 ms of fsync no longer ahead of its index work).
  STRATA_TRY(session.flush_buffer());
  auto synced = std::async(std::launch::async, [&session] { return session.sync_written_packs(); });

  Result<LayerCommit> outcome = LayerCommit{};
  {
    std::lock_guard lock(session.store->db_mutex);
    outcome = session.commit_locked(layer, digests, verified_recipe, synced);
  }
  // A failed sync (waited for by the commit, or now when the transaction ended before it) makes
  // the writer unusable: the kernel may already have dropped the unwritten pages (P2).
  if (synced.valid()) {
    Result<void> sync_result = synced.get();
    if (!sync_result.ok()) return session.poison(std::move(sync_result).error());
  }
  if (!outcome.ok()) return outcome;
  if (!outcome->already_present) {
    for (auto& pack : session.packs) pack.registered = true;
    {
      std::unique_lock lock(session.store->known_mutex);
      session.store->known.insert(digests.begin(), digests.end());
    }
    // Referenced chunks are now good index rows; a sealed pack's descriptor can go.
    for (const Digest& digest : digests) session.pending.erase(digest);
    if (session.packs.size() > 1) {
      std::vector<Session::OpenPack> kept;
      for (auto& pack : session.packs) {
        if (!pack.full) kept.push_back(std::move(pack));
      }
      // Pending entries refer to packs by index; only drop sealed packs when none remain pending.
      if (session.pending.empty()) session.packs = std::move(kept);
    }
  }
  return outcome;
}

}  // namespace strata
