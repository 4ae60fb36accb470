// Maintenance of the chunk store: remove_layer, verify and gc (docs/STORE.md "Maintenance").
// verify re-reads every record and re-hashes every chunk (reliability.md §3.8 P4) and marks
// failures so a later put heals them (P5); it also cross-checks the index against itself (SQLite
// quick_check; every recipe parses, names only chunks the index holds, the same set layer_chunks
// lists, and adds up to the layer's size; refcounts agree with layer_chunks) and replays every
// layer to re-derive its diff_id, so a bit flip in index.db is reported, not only one in a pack. gc
// follows restic's order (specs/reliability.md §4): drop index rows first, then files; rewrite a
// mostly-dead pack by writing the new pack (temp + fsync + rename + directory fsync), switching
// rows in one transaction, then deleting the old one. gc is lease-aware (P8): while any ingest
// session is open it deletes no chunk row, since a session may have decided to reuse an
// unreferenced chunk without writing it again. A base chunk stays while a live delta chunk needs
// it (chunk_bases), and verify decodes delta chunks through their base.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/store/chunk_store_impl.h"
#include "core/store/pack_record.h"
#include "core/store/recipe_reader.h"
#include "strata/recipe.h"

namespace strata {
namespace {

// The first bytes of a serialized engine recipe (core/store/recipe.cpp).
constexpr std::string_view kRecipeMagic = "STRATARC";

ByteSpan blob_of(const Digest& digest) {
  return ByteSpan(digest.bytes().data(), digest.bytes().size());
}

Digest digest_from_blob(ByteSpan blob) {
  Digest::Bytes bytes{};
  if (blob.size() == Digest::kSize) std::copy(blob.begin(), blob.end(), bytes.begin());
  return Digest(bytes);
}

// An flock on <store>/gc.lock: exclusive for gc, shared for verify, so verify never reads a pack
// that gc is deleting. The kernel drops it when a holder dies, so it never goes stale.
class MaintenanceLock {
 public:
  static Result<MaintenanceLock> acquire(const std::string& root, bool exclusive) {
    const std::string path = root + "/gc.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return make_error(ErrorCode::kIo, "cannot open '" + path + "': " + std::strerror(errno));
    }
    pack_file::FileDescriptor file(fd);
    while (::flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIo, "cannot lock '" + path + "': " + std::strerror(errno));
    }
    return MaintenanceLock(std::move(file));
  }

 private:
  explicit MaintenanceLock(pack_file::FileDescriptor file) : file_(std::move(file)) {}
  pack_file::FileDescriptor file_;  // closing the descriptor releases the lock
};

// Ends a read transaction (statements declared after it are finalized first).
class ReadSnapshot {
 public:
  explicit ReadSnapshot(store_index::Database& db) : db_(db) {}
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;
  ~ReadSnapshot() { db_.rollback(); }

 private:
  store_index::Database& db_;
};

ChunkLocation location_from_row(const store_index::Statement& row, int first_column) {
  ChunkLocation location;
  location.pack_id = row.column_int(first_column);
  location.pack_name = row.column_text(first_column + 1);
  location.offset = static_cast<std::uint64_t>(row.column_int(first_column + 2));
  location.stored_length = static_cast<std::uint32_t>(row.column_int(first_column + 3));
  location.raw_length = static_cast<std::uint32_t>(row.column_int(first_column + 4));
  location.codec = static_cast<std::uint8_t>(row.column_int(first_column + 5));
  const ByteSpan xxh3 = row.column_blob(first_column + 6);
  if (xxh3.size() == location.xxh3.size())
    std::copy(xxh3.begin(), xxh3.end(), location.xxh3.begin());
  location.refcount = row.column_int(first_column + 7);
  location.corrupt = row.column_int(first_column + 8) != 0;
  const ByteSpan base = row.column_blob(first_column + 9);
  location.has_base = base.size() == Digest::kSize;
  if (location.has_base) location.base = digest_from_blob(base);
  return location;
}

// Adds a problem when a pack file does not start with a pack header strata can read (a missing
// file shows up on its records instead).
Result<void> check_pack_header(const ChunkStore::Impl& store, const std::string& name,
                               VerifyReport& report) {
  auto reader = store.pack_reader(name);
  if (!reader.ok()) return {};
  std::array<std::uint8_t, pack_record::kFileHeaderSize> header{};
  auto read = pack_file::read_exact_at(**reader, 0, MutableByteSpan(header.data(), header.size()),
                                       store.packs_dir + "/" + name);
  Result<void> checked =
      read.ok() ? pack_record::check_file_header(ByteSpan(header.data(), header.size()))
                : std::move(read);
  if (!checked.ok()) report.problems.push_back("pack " + name + ": " + checked.error().message);
  return {};
}

constexpr const char* kChunkColumns =
    "c.digest, c.pack_id, p.name, c.offset, c.stored_length, c.raw_length, c.codec, c.xxh3, "
    "c.refcount, c.corrupt, (SELECT b.base FROM chunk_bases b WHERE b.digest = c.digest)";

// Calls `on_row` for every row `statement` steps to.
template <typename OnRow>
Result<void> for_each_row(store_index::Statement& statement, const OnRow& on_row) {
  while (true) {
    auto row = statement.step();
    if (!row.ok()) return std::move(row).error();
    if (!*row) return {};
    on_row();
  }
}

// What verify reads from the index in one snapshot, then checks without holding the lock.
struct VerifiedChunkRow {
  Digest digest;
  ChunkLocation location;
  bool pack_known = true;
};
struct VerifiedLayerRow {
  std::int64_t id = 0;
  Digest diff_id;
  std::int64_t size = 0;
  std::vector<std::uint8_t> recipe;
  std::set<Digest> listed_chunks;  // from layer_chunks
};
struct IndexSnapshot {
  std::vector<VerifiedChunkRow> chunks;
  std::map<Digest, std::int64_t> references;  // layer_chunks rows per digest
  std::vector<VerifiedLayerRow> layers;
};

Result<void> run_quick_check(store_index::Database& db, VerifyReport& report) {
  auto check = db.prepare("PRAGMA quick_check");
  if (!check.ok()) return std::move(check).error();
  return for_each_row(*check, [&] {
    const std::string line = check->column_text(0);
    if (line != "ok") report.problems.push_back("index.db: " + line);
  });
}

Result<void> read_chunk_rows(store_index::Database& db, IndexSnapshot& snapshot) {
  auto chunks = db.prepare(
      (std::string("SELECT ") + kChunkColumns +
       " FROM chunks c LEFT JOIN packs p ON p.id = c.pack_id ORDER BY c.pack_id, c.offset")
          .c_str());
  if (!chunks.ok()) return std::move(chunks).error();
  return for_each_row(*chunks, [&] {
    VerifiedChunkRow entry{digest_from_blob(chunks->column_blob(0)), location_from_row(*chunks, 1),
                           true};
    entry.pack_known = !entry.location.pack_name.empty();
    snapshot.chunks.push_back(std::move(entry));
  });
}

// Every packs row names a file inside packs/ (no path tricks).
Result<void> check_pack_names(const ChunkStore::Impl& store, store_index::Database& db,
                              VerifyReport& report) {
  auto named = db.prepare("SELECT id, name FROM packs ORDER BY id");
  if (!named.ok()) return std::move(named).error();
  return for_each_row(*named, [&] {
    auto path = store.pack_path(named->column_text(1));
    if (!path.ok()) {
      report.problems.push_back("packs row " + std::to_string(named->column_int(0)) + ": " +
                                path.error().message);
    }
  });
}

Result<void> count_references(store_index::Database& db, IndexSnapshot& snapshot) {
  auto counted = db.prepare("SELECT digest, COUNT(*) FROM layer_chunks GROUP BY digest");
  if (!counted.ok()) return std::move(counted).error();
  return for_each_row(*counted, [&] {
    snapshot.references[digest_from_blob(counted->column_blob(0))] = counted->column_int(1);
  });
}

Result<void> check_referenced_chunks_exist(store_index::Database& db, VerifyReport& report) {
  auto missing = db.prepare(
      "SELECT l.diff_id, lc.digest FROM layer_chunks lc JOIN layers l ON l.id = lc.layer_id "
      "LEFT JOIN chunks c ON c.digest = lc.digest WHERE c.id IS NULL");
  if (!missing.ok()) return std::move(missing).error();
  return for_each_row(*missing, [&] {
    report.problems.push_back(
        "layer " + digest_from_blob(missing->column_blob(0)).to_string() + " references chunk " +
        digest_from_blob(missing->column_blob(1)).to_string() + ", which is not in the store");
  });
}

Result<void> read_layer_rows(store_index::Database& db, IndexSnapshot& snapshot) {
  auto layers = db.prepare("SELECT id, diff_id, size, recipe FROM layers ORDER BY id");
  if (!layers.ok()) return std::move(layers).error();
  return for_each_row(*layers, [&] {
    const ByteSpan recipe = layers->column_blob(3);
    snapshot.layers.push_back(
        VerifiedLayerRow{layers->column_int(0),
                         digest_from_blob(layers->column_blob(1)),
                         layers->column_int(2),
                         std::vector<std::uint8_t>(recipe.begin(), recipe.end()),
                         {}});
  });
}

// Each layer's layer_chunks rows, for the check against its recipe; rows of unknown layers are
// problems.
Result<void> read_listed_chunks(store_index::Database& db, IndexSnapshot& snapshot,
                                VerifyReport& report) {
  auto listed = db.prepare("SELECT layer_id, digest FROM layer_chunks");
  if (!listed.ok()) return std::move(listed).error();
  std::map<std::int64_t, VerifiedLayerRow*> by_id;
  for (VerifiedLayerRow& layer : snapshot.layers) by_id[layer.id] = &layer;
  return for_each_row(*listed, [&] {
    const auto layer = by_id.find(listed->column_int(0));
    if (layer == by_id.end()) {
      report.problems.push_back("layer_chunks lists chunk " +
                                digest_from_blob(listed->column_blob(1)).to_string() +
                                " for layer id " + std::to_string(listed->column_int(0)) +
                                ", which the index does not hold");
      return;
    }
    layer->second->listed_chunks.insert(digest_from_blob(listed->column_blob(1)));
  });
}

// One read transaction: chunk rows, layer lists and refcounts come from one WAL snapshot, so a
// commit in another process between two queries cannot look like a mismatch.
Result<IndexSnapshot> read_index_snapshot(ChunkStore::Impl& store, VerifyReport& report) {
  std::lock_guard lock(store.db_mutex);
  store_index::Database& db = store.db;
  STRATA_TRY(db.execute("BEGIN"));
  const ReadSnapshot transaction(db);
  IndexSnapshot snapshot;
  STRATA_TRY(run_quick_check(db, report));
  STRATA_TRY(read_chunk_rows(db, snapshot));
  STRATA_TRY(check_pack_names(store, db, report));
  STRATA_TRY(count_references(db, snapshot));
  STRATA_TRY(check_referenced_chunks_exist(db, report));
  STRATA_TRY(read_layer_rows(db, snapshot));
  STRATA_TRY(read_listed_chunks(db, snapshot, report));
  report.layers_checked = snapshot.layers.size();
  return snapshot;
}

// Checks each chunk's refcount and re-reads and re-hashes its record; returns the chunks found
// corrupt that the index does not mark yet.
Result<std::vector<const VerifiedChunkRow*>> check_chunk_records(const ChunkStore::Impl& store,
                                                                 const IndexSnapshot& snapshot,
                                                                 VerifyReport& report) {
  std::vector<const VerifiedChunkRow*> newly_corrupt;
  std::int64_t last_pack_id = -1;
  for (const VerifiedChunkRow& entry : snapshot.chunks) {
    ++report.chunks_checked;
    const auto referenced = snapshot.references.find(entry.digest);
    const std::int64_t expected = referenced == snapshot.references.end() ? 0 : referenced->second;
    if (entry.location.refcount != expected) {
      report.problems.push_back("chunk " + entry.digest.to_string() + " has refcount " +
                                std::to_string(entry.location.refcount) + " but " +
                                std::to_string(expected) + " layers reference it");
    }
    if (!entry.pack_known) {
      report.problems.push_back("chunk " + entry.digest.to_string() + " points to pack id " +
                                std::to_string(entry.location.pack_id) +
                                ", which the index does not list");
      report.corrupt_chunks.push_back(entry.digest);
      if (!entry.location.corrupt) newly_corrupt.push_back(&entry);
      continue;
    }
    if (entry.location.pack_id != last_pack_id) {
      last_pack_id = entry.location.pack_id;
      STRATA_TRY(check_pack_header(store, entry.location.pack_name, report));
    }
    auto record = store.read_record(entry.digest, entry.location);
    Result<std::vector<std::uint8_t>> raw =
        record.ok() ? store.decode_record(entry.digest, entry.location,
                                          ByteSpan(record->data(), record->size()))
                    : Result<std::vector<std::uint8_t>>(std::move(record).error());
    report.bytes_read += pack_record::record_size(entry.location.stored_length);
    if (!raw.ok()) {
      report.problems.push_back(raw.error().message);
      report.corrupt_chunks.push_back(entry.digest);
      if (!entry.location.corrupt) newly_corrupt.push_back(&entry);
    }
  }
  return newly_corrupt;
}

// Marks the chunks so a later put heals them (reliability.md §3.8 P5).
Result<void> mark_corrupt(ChunkStore::Impl& store,
                          const std::vector<const VerifiedChunkRow*>& newly_corrupt) {
  if (newly_corrupt.empty()) return {};
  std::lock_guard lock(store.db_mutex);
  store_index::WriteTransaction transaction(store.db);
  STRATA_TRY(transaction.begin());
  // Only the copy that was read: a heal committed meanwhile has moved the row elsewhere.
  auto mark = store.db.prepare(
      "UPDATE chunks SET corrupt = 1 WHERE digest = ? AND pack_id = ? AND offset = ?");
  if (!mark.ok()) return std::move(mark).error();
  for (const VerifiedChunkRow* entry : newly_corrupt) {
    mark->bind_blob(1, blob_of(entry->digest));
    mark->bind_int(2, entry->location.pack_id);
    mark->bind_int(3, static_cast<std::int64_t>(entry->location.offset));
    STRATA_TRY(mark->run());
    mark->reset();
  }
  // Other processes reload their known-chunk sets when the generation moves.
  STRATA_TRY(store.bump_generation_locked());
  return transaction.commit();
}

// An engine recipe parses, names only chunks the index holds, the same set layer_chunks lists,
// and adds up to the layer's size; replaying it re-derives the diff_id.
void check_layer_recipe(const ChunkStore& chunk_store, const VerifiedLayerRow& layer,
                        const std::set<Digest>& indexed, VerifyReport& report) {
  // The store keeps recipes opaque (store.h); only the engine's own are checked and replayed.
  if (layer.recipe.size() < kRecipeMagic.size() ||
      !std::equal(kRecipeMagic.begin(), kRecipeMagic.end(), layer.recipe.begin())) {
    return;
  }
  const std::string name = "layer " + layer.diff_id.to_string();
  auto recipe = parse_recipe(layer.recipe);
  if (!recipe.ok()) {
    report.problems.push_back(name + ": recipe: " + recipe.error().message);
    return;
  }
  std::set<Digest> referenced;
  std::uint64_t length = 0;
  for (const RecipeSegment& segment : recipe->segments()) {
    length += segment.length;
    if (segment.kind == RecipeSegmentKind::kChunk) referenced.insert(segment.digest);
  }
  for (const Digest& digest : referenced) {
    if (!indexed.count(digest)) {
      report.problems.push_back(name + ": recipe names chunk " + digest.to_string() +
                                ", which is not in the store");
    }
  }
  if (referenced != layer.listed_chunks) {
    report.problems.push_back(name + ": recipe references " + std::to_string(referenced.size()) +
                              " chunks, layer_chunks lists " +
                              std::to_string(layer.listed_chunks.size()) + " (not the same set)");
  }
  if (layer.size < 0 || length != static_cast<std::uint64_t>(layer.size)) {
    report.problems.push_back(name + ": recipe adds up to " + std::to_string(length) +
                              " bytes, the index records " + std::to_string(layer.size));
  }
  // Replaying the recipe re-derives the diff_id from the chunks (each re-hashed on read).
  auto replayed = replay_stored_layer(
      chunk_store, layer.diff_id, [](ByteSpan) -> Result<void> { return {}; }, 0);
  if (!replayed.ok()) report.problems.push_back(name + ": replay: " + replayed.error().message);
}

}  // namespace

Result<void> ChunkStore::remove_layer(const Digest& diff_id) {
  std::lock_guard lock(impl_->db_mutex);
  store_index::Database& db = impl_->db;
  store_index::WriteTransaction transaction(db);
  STRATA_TRY(transaction.begin());
  auto find = db.prepare("SELECT id FROM layers WHERE diff_id = ?");
  if (!find.ok()) return std::move(find).error();
  find->bind_blob(1, blob_of(diff_id));
  auto row = find->step();
  if (!row.ok()) return std::move(row).error();
  if (!*row) {
    return make_error(ErrorCode::kNotFound,
                      "layer " + diff_id.to_string() + " is not in the store");
  }
  const std::int64_t layer_id = find->column_int(0);
  find = store_index::Statement();
  auto release = db.prepare(
      "UPDATE chunks SET refcount = refcount - 1 "
      "WHERE digest IN (SELECT digest FROM layer_chunks WHERE layer_id = ?)");
  auto drop_references = db.prepare("DELETE FROM layer_chunks WHERE layer_id = ?");
  auto drop_layer = db.prepare("DELETE FROM layers WHERE id = ?");
  if (!release.ok()) return std::move(release).error();
  if (!drop_references.ok()) return std::move(drop_references).error();
  if (!drop_layer.ok()) return std::move(drop_layer).error();
  for (store_index::Statement* statement : {&*release, &*drop_references, &*drop_layer}) {
    statement->bind_int(1, layer_id);
    STRATA_TRY(statement->run());
  }
  auto drop_blobs = db.prepare("DELETE FROM layer_blobs WHERE diff_id = ?");
  if (!drop_blobs.ok()) return std::move(drop_blobs).error();
  drop_blobs->bind_blob(1, blob_of(diff_id));
  STRATA_TRY(drop_blobs->run());
  return transaction.commit();
}

Result<VerifyReport> ChunkStore::verify() {
  auto maintenance = MaintenanceLock::acquire(impl_->root, false);
  if (!maintenance.ok()) return std::move(maintenance).error();
  VerifyReport report;
  auto snapshot = read_index_snapshot(*impl_, report);
  if (!snapshot.ok()) return std::move(snapshot).error();
  auto newly_corrupt = check_chunk_records(*impl_, *snapshot, report);
  if (!newly_corrupt.ok()) return std::move(newly_corrupt).error();
  STRATA_TRY(mark_corrupt(*impl_, *newly_corrupt));
  for (const Digest& digest : report.corrupt_chunks) impl_->forget_known(digest);

  std::set<Digest> indexed;
  for (const VerifiedChunkRow& entry : snapshot->chunks) indexed.insert(entry.digest);
  for (const VerifiedLayerRow& layer : snapshot->layers) {
    check_layer_recipe(*this, layer, indexed, report);
  }
  return report;
}

namespace {

struct PackRow {
  std::int64_t id = 0;
  std::string name;
  bool sealed = false;
  std::string lease;
  std::uint64_t live_chunks = 0;
  std::uint64_t live_stored_bytes = 0;
};

std::string lease_of_pack_name(const std::string& name) {
  return name.substr(0, name.find('-'));
}

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

namespace {

// Copies the live records of whole packs into new packs of up to max_pack_bytes: each output is
// written as <name>.tmp, fsync'ed, renamed and its directory fsync'ed, and only then do the rows
// move (one transaction per output) and emptied source packs get deleted.
class PackCompactor {
 public:
  PackCompactor(ChunkStore::Impl& store, GcReport& report,
                std::map<std::string, std::uint64_t>& file_sizes)
      : store_(store), report_(report), file_sizes_(file_sizes) {}

  Result<void> add(const PackRow& pack) {
    std::vector<std::pair<Digest, ChunkLocation>> rows;
    {
      std::lock_guard lock(store_.db_mutex);
      auto select =
          store_.db.prepare((std::string("SELECT ") + kChunkColumns +
                             " FROM chunks c JOIN packs p ON p.id = c.pack_id WHERE c.pack_id = ?")
                                .c_str());
      if (!select.ok()) return std::move(select).error();
      select->bind_int(1, pack.id);
      while (true) {
        auto row = select->step();
        if (!row.ok()) return std::move(row).error();
        if (!*row) break;
        rows.emplace_back(digest_from_blob(select->column_blob(0)), location_from_row(*select, 1));
      }
    }
    std::vector<std::uint8_t> records;
    std::vector<Move> moves;
    for (const auto& [digest, location] : rows) {
      auto record = store_.read_record(digest, location);
      // A damaged record stays where it is, for verify to report; so does its whole pack.
      if (!record.ok()) return {};
      moves.push_back({digest, pack.id, location.offset, records.size()});
      records.insert(records.end(), record->begin(), record->end());
    }
    if (moves.empty()) return {};
    if (!output_.valid()) STRATA_TRY(start_output());
    for (Move& move : moves) move.new_offset += output_size_;
    STRATA_TRY(pack_file::write_all(output_, ByteSpan(records.data(), records.size()),
                                    output_path_ + ".tmp"));
    output_size_ += records.size();
    moves_.insert(moves_.end(), moves.begin(), moves.end());
    sources_.push_back(&pack);
    if (output_size_ >= store_.options.max_pack_bytes) STRATA_TRY(finish());
    return {};
  }

  Result<void> finish() {
    if (!output_.valid()) return {};
    STRATA_TRY(pack_file::sync_file(output_, output_path_ + ".tmp"));
    output_ = pack_file::FileDescriptor();
    STRATA_TRY(store_.rename_pack(output_name_ + ".tmp", output_name_));
    STRATA_TRY(pack_file::sync_directory(store_.packs_dir));

    std::vector<const PackRow*> emptied;
    {
      std::lock_guard lock(store_.db_mutex);
      store_index::Database& db = store_.db;
      store_index::WriteTransaction transaction(db);
      STRATA_TRY(transaction.begin());
      auto insert = db.prepare(
          "INSERT INTO packs(name, state, size, lease, created) VALUES(?, 1, ?, 'gc', ?) "
          "RETURNING id");
      if (!insert.ok()) return std::move(insert).error();
      insert->bind_text(1, output_name_);
      insert->bind_int(2, static_cast<std::int64_t>(output_size_));
      insert->bind_int(3, unix_now());
      auto row = insert->step();
      if (!row.ok()) return std::move(row).error();
      const std::int64_t new_id = insert->column_int(0);
      STRATA_TRY(insert->run());
      // Rows that changed since they were read (a heal moved them) keep their new place.
      auto move = db.prepare(
          "UPDATE chunks SET pack_id = ?, offset = ? WHERE digest = ? AND pack_id = ? AND "
          "offset = ?");
      if (!move.ok()) return std::move(move).error();
      for (const Move& entry : moves_) {
        move->bind_int(1, new_id);
        move->bind_int(2, static_cast<std::int64_t>(entry.new_offset));
        move->bind_blob(3, blob_of(entry.digest));
        move->bind_int(4, entry.source_pack_id);
        move->bind_int(5, static_cast<std::int64_t>(entry.old_offset));
        STRATA_TRY(move->run());
        move->reset();
      }
      auto remaining = db.prepare("SELECT COUNT(*) FROM chunks WHERE pack_id = ?");
      auto drop = db.prepare("DELETE FROM packs WHERE id = ?");
      if (!remaining.ok()) return std::move(remaining).error();
      if (!drop.ok()) return std::move(drop).error();
      for (const PackRow* source : sources_) {
        remaining->bind_int(1, source->id);
        row = remaining->step();
        if (!row.ok()) return std::move(row).error();
        const bool empty = remaining->column_int(0) == 0;
        remaining->reset();
        if (!empty) continue;
        drop->bind_int(1, source->id);
        STRATA_TRY(drop->run());
        drop->reset();
        emptied.push_back(source);
      }
      STRATA_TRY(transaction.commit());
    }
    report_.packs_rewritten += sources_.size();
    std::uint64_t released = 0;
    for (const PackRow* source : emptied) {
      store_.drop_pack_reader(source->name);
      // As before the names were checked: a file that cannot be removed stays for the next gc.
      if (auto unlinked = store_.unlink_pack(source->name); unlinked.ok() && *unlinked) {
        released += file_sizes_[source->name];
      }
    }
    if (!emptied.empty()) STRATA_TRY(pack_file::sync_directory(store_.packs_dir));
    report_.bytes_freed += released - std::min(released, output_size_);
    moves_.clear();
    sources_.clear();
    return {};
  }

 private:
  struct Move {
    Digest digest;
    std::int64_t source_pack_id = 0;
    std::uint64_t old_offset = 0;
    std::uint64_t new_offset = 0;
  };

  Result<void> start_output() {
    output_name_ = "gc-" + pack_file::random_hex_token() + ".pack";
    auto path = store_.pack_path(output_name_);
    if (!path.ok()) return std::move(path).error();
    output_path_ = std::move(*path);
    auto created = store_.create_pack(output_name_ + ".tmp");
    if (!created.ok()) return std::move(created).error();
    output_ = std::move(*created);
    const std::vector<std::uint8_t> header = pack_record::encode_file_header();
    STRATA_TRY(pack_file::write_all(output_, ByteSpan(header.data(), header.size()),
                                    output_path_ + ".tmp"));
    output_size_ = header.size();
    return {};
  }

  ChunkStore::Impl& store_;
  GcReport& report_;
  std::map<std::string, std::uint64_t>& file_sizes_;
  pack_file::FileDescriptor output_;
  std::string output_name_;
  std::string output_path_;
  std::uint64_t output_size_ = 0;
  std::vector<Move> moves_;
  std::vector<const PackRow*> sources_;
};

}  // namespace

Result<GcReport> ChunkStore::gc() {
  auto maintenance = MaintenanceLock::acquire(impl_->root, true);
  if (!maintenance.ok()) return std::move(maintenance).error();
  GcReport report;
  Impl& store = *impl_;

  // Listed before the transaction: a file created after it belongs to a lease that the
  // transaction below already sees (leases are inserted before their packs are created).
  auto listing = pack_file::list_directory(store.packs_dir);
  if (!listing.ok()) return std::move(listing).error();

  std::vector<PackRow> packs;
  std::set<std::string> live_leases;
  std::vector<std::string> unlink_names;
  {
    std::lock_guard lock(store.db_mutex);
    store_index::Database& db = store.db;
    store_index::WriteTransaction transaction(db);
    STRATA_TRY(transaction.begin());
    auto live = store.prune_leases_locked();
    if (!live.ok()) return std::move(live).error();
    live_leases.insert(live->begin(), live->end());

    // A chunk no layer references is dead unless it is the base of a live delta chunk (bases are
    // stored whole, so one pass finds every base a live chunk needs).
    constexpr const char* kDead =
        "refcount <= 0 AND digest NOT IN (SELECT b.base FROM chunk_bases b "
        "JOIN chunks d ON d.digest = b.digest WHERE d.refcount > 0)";
    auto dead = db.prepare((std::string("SELECT COUNT(*) FROM chunks WHERE ") + kDead).c_str());
    if (!dead.ok()) return std::move(dead).error();
    auto row = dead->step();
    if (!row.ok()) return std::move(row).error();
    const auto dead_chunks = static_cast<std::uint64_t>(dead->column_int(0));
    if (!live_leases.empty()) {
      report.deferred_for_active_sessions = dead_chunks > 0;
    } else if (dead_chunks > 0) {
      STRATA_TRY(db.execute((std::string("DELETE FROM chunks WHERE ") + kDead).c_str()));
      STRATA_TRY(
          db.execute("DELETE FROM chunk_bases WHERE digest NOT IN (SELECT digest FROM chunks)"));
      STRATA_TRY(
          db.execute("DELETE FROM chunk_sketches WHERE digest NOT IN (SELECT digest FROM chunks)"));
      STRATA_TRY(store.bump_generation_locked());
      report.chunks_removed = dead_chunks;
    }

    auto select = db.prepare(
        "SELECT p.id, p.name, p.state, p.lease, COUNT(c.id), TOTAL(c.stored_length) "
        "FROM packs p LEFT JOIN chunks c ON c.pack_id = p.id GROUP BY p.id");
    if (!select.ok()) return std::move(select).error();
    while (true) {
      row = select->step();
      if (!row.ok()) return std::move(row).error();
      if (!*row) break;
      PackRow pack;
      pack.id = select->column_int(0);
      pack.name = select->column_text(1);
      pack.sealed = select->column_int(2) != 0;
      pack.lease = select->column_text(3);
      pack.live_chunks = static_cast<std::uint64_t>(select->column_int(4));
      pack.live_stored_bytes = static_cast<std::uint64_t>(select->column_int(5));
      packs.push_back(std::move(pack));
    }
    // A name that is not one the store makes ("../victim.pack": a damaged or planted row) would
    // turn an unlink into one outside packs/: refuse the whole run, rolling back what it did.
    std::string refused;
    for (const PackRow& pack : packs) {
      if (pack_file::is_pack_file_name(pack.name, false)) continue;
      std::string shown = pack.name.substr(0, 200);
      std::replace(shown.begin(), shown.end(), '\0', '?');
      refused +=
          (refused.empty() ? "row " : ", row ") + std::to_string(pack.id) + " '" + shown + "'";
    }
    if (!refused.empty()) {
      return make_error(ErrorCode::kCorruptInput,
                        "index.db: packs " + refused +
                            ": not pack file names this store makes; gc changed nothing "
                            "(strata store verify lists the damage)");
    }
    auto drop_pack = db.prepare("DELETE FROM packs WHERE id = ?");
    if (!drop_pack.ok()) return std::move(drop_pack).error();
    for (const PackRow& pack : packs) {
      const bool writable = !pack.sealed && live_leases.count(pack.lease) != 0;
      if (pack.live_chunks != 0 || writable) continue;
      drop_pack->bind_int(1, pack.id);
      STRATA_TRY(drop_pack->run());
      drop_pack->reset();
      unlink_names.push_back(pack.name);
    }
    STRATA_TRY(transaction.commit());
    auto generation = store.read_generation_locked();
    if (!generation.ok()) return std::move(generation).error();
    STRATA_TRY(store.refresh_known_locked(*generation));
  }

  std::map<std::string, std::uint64_t> file_sizes;
  for (const auto& file : *listing) file_sizes[file.name] = file.size;
  std::set<std::string> indexed;
  for (const PackRow& pack : packs) indexed.insert(pack.name);
  for (const auto& file : *listing) {
    if (indexed.count(file.name) != 0) continue;
    // Files the store did not make are not its to delete.
    if (!pack_file::is_pack_file_name(file.name, true)) continue;
    const bool temporary = ends_with(file.name, ".tmp");
    if (!temporary && live_leases.count(lease_of_pack_name(file.name)) != 0) continue;
    unlink_names.push_back(file.name);
    ++report.orphan_files_removed;
  }
  bool removed_any = false;
  for (const std::string& name : unlink_names) {
    store.drop_pack_reader(name);
    if (auto unlinked = store.unlink_pack(name); unlinked.ok() && *unlinked) {
      removed_any = true;
      report.bytes_freed += file_sizes[name];
    }
  }
  report.packs_deleted = unlink_names.size() - report.orphan_files_removed;
  if (removed_any) STRATA_TRY(pack_file::sync_directory(store.packs_dir));

  // Compact: rewrite packs that are mostly dead (orphan tails of crashed or abandoned writers,
  // records of collected chunks) and merge small packs (one per ingest session) into full-size
  // ones. Packs a live writer may still append to are left alone.
  const std::uint64_t small_pack_bytes = store.options.max_pack_bytes / 4;
  std::vector<const PackRow*> mostly_dead;
  std::vector<const PackRow*> small;
  for (const PackRow& pack : packs) {
    if (pack.live_chunks == 0) continue;
    if (!pack.sealed && live_leases.count(pack.lease) != 0) continue;
    const auto size = file_sizes.find(pack.name);
    if (size == file_sizes.end()) continue;
    const std::uint64_t live =
        pack.live_stored_bytes + pack.live_chunks * pack_record::kRecordOverhead;
    const std::uint64_t content =
        size->second - std::min<std::uint64_t>(size->second, pack_record::kFileHeaderSize);
    if (content > live && content - live > live) {
      mostly_dead.push_back(&pack);
    } else if (size->second < small_pack_bytes) {
      small.push_back(&pack);
    }
  }
  // A lone small pack stays: rewriting it would not reduce the pack count.
  if (small.size() >= 2) mostly_dead.insert(mostly_dead.end(), small.begin(), small.end());
  PackCompactor compactor(store, report, file_sizes);
  for (const PackRow* pack : mostly_dead) STRATA_TRY(compactor.add(*pack));
  STRATA_TRY(compactor.finish());
  return report;
}

}  // namespace strata
