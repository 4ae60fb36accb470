// The chunk store: opening a store directory, answering contains()/read_chunk(), and looking up
// layers (layout and protocol in docs/STORE.md; promises from shared/specs/reliability.md §3.8).
//
// Durability protocol, in order, for every layer commit (StoreWriter, chunk_store_writer.cpp):
//   1. chunk records are appended to the writer's own pack file (unique name <lease>-<n>.pack,
//      created O_EXCL; no process appends to another's pack);
//   2. the pack is fsync'ed, and the packs/ directory too when the file is new;
//   3. one SQLite transaction (WAL, synchronous=FULL) inserts the pack row, the new chunk rows, the
//      refcount increments, the layer row and its chunk list — the only moment anything becomes
//      visible.
// kill -9 before 3 leaves pack bytes no row points to (orphans, reclaimed by gc); after 3 the
// layer and all its chunks are durable. Nothing is overwritten in place: packs only grow, gc
// writes replacement packs as temp + fsync + rename + directory fsync before switching rows.
// Reads never trust the index alone: every record is checksummed, decoded, length-checked and
// re-hashed (P4).
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <tuple>

#include "core/store/chunk_store_impl.h"
#include "core/store/pack_record.h"

namespace strata {
namespace {

// 1: the original schema. 2: the same plus delta chunks (chunk_bases rows); written by the first
// commit of a delta chunk, so a strata that does not know deltas (and would collect their bases)
// refuses the store, while stores without deltas stay readable by it.
constexpr std::int64_t kFormatVersion = 1;
constexpr std::int64_t kDeltaFormatVersion = 2;
constexpr std::size_t kMaxCachedPackReaders = 64;
// read_stored_chunk hands a delta chunk out as a plain frame at zstd's default level, the level
// ingest uses by default, so a frame-reusing export matches one made from a store without deltas.
constexpr int kStandaloneFrameLevel = 3;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS packs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  state INTEGER NOT NULL,          -- 0 open (a writer may append), 1 sealed
  size INTEGER NOT NULL,           -- bytes made durable and referenced so far
  lease TEXT NOT NULL,             -- the writer that owns it while open
  created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  digest BLOB NOT NULL UNIQUE,     -- sha256 of the raw bytes
  pack_id INTEGER NOT NULL,
  offset INTEGER NOT NULL,         -- start of the record in the pack
  stored_length INTEGER NOT NULL,
  raw_length INTEGER NOT NULL,
  codec INTEGER NOT NULL,
  xxh3 BLOB NOT NULL,              -- XXH3-128 of the raw bytes
  refcount INTEGER NOT NULL,       -- number of layers referencing it (recomputable)
  corrupt INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack_id);
CREATE TABLE IF NOT EXISTS layers(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  diff_id BLOB NOT NULL UNIQUE,
  layer_digest BLOB NOT NULL,
  media_type TEXT NOT NULL,
  recipe BLOB NOT NULL,
  size INTEGER NOT NULL,
  created INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS layers_by_digest ON layers(layer_digest);
CREATE TABLE IF NOT EXISTS layer_chunks(
  layer_id INTEGER NOT NULL,
  digest BLOB NOT NULL,
  PRIMARY KEY(layer_id, digest)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS layer_blobs(  -- every blob digest a layer was ingested from
  blob_digest BLOB PRIMARY KEY,
  diff_id BLOB NOT NULL,
  media_type TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunk_bases(  -- the base chunk each delta-coded chunk decodes against
  digest BLOB PRIMARY KEY,
  base BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_bases_by_base ON chunk_bases(base);
CREATE TABLE IF NOT EXISTS chunk_sketches(  -- content sketches of chunks, for finding delta bases
  digest BLOB PRIMARY KEY,
  sketch BLOB NOT NULL) WITHOUT ROWID;    -- four super-features, 64-bit little-endian each
CREATE TABLE IF NOT EXISTS leases(
  id TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  started INTEGER NOT NULL,
  heartbeat INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES('format_version', 1);
INSERT OR IGNORE INTO meta(key, value) VALUES('generation', 0);
)sql";

std::string current_host() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

bool path_exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

std::uint64_t file_size_or_zero(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 ? static_cast<std::uint64_t>(info.st_size) : 0;
}

// Pack files in `packs_dir` holding more than their 16-byte header: chunk data some index knew.
std::size_t count_nonempty_packs(const std::string& packs_dir) {
  std::error_code error;
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(packs_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 5 && name.ends_with(".pack") &&
        file_size_or_zero(entry.path().string()) > pack_record::kFileHeaderSize) {
      ++count;
    }
  }
  return count;
}

Digest digest_from_blob(ByteSpan blob) {
  Digest::Bytes bytes{};
  if (blob.size() == Digest::kSize) std::copy(blob.begin(), blob.end(), bytes.begin());
  return Digest(bytes);
}

ByteSpan blob_of(const Digest& digest) {
  return ByteSpan(digest.bytes().data(), digest.bytes().size());
}

}  // namespace

ChunkFingerprint fingerprint_from_blob(ByteSpan blob) {
  ChunkFingerprint fingerprint;
  if (blob.size() != 16) return fingerprint;
  for (std::size_t i = 0; i < 8; ++i) {
    fingerprint.high = (fingerprint.high << 8U) | blob[i];
    fingerprint.low = (fingerprint.low << 8U) | blob[8 + i];
  }
  return fingerprint;
}

SketchBlob sketch_blob(const ChunkSketchWords& sketch) {
  SketchBlob blob{};
  for (std::size_t i = 0; i < blob.size(); ++i) {
    blob[i] = static_cast<std::uint8_t>(sketch.super[i / 8] >> (8U * (i % 8)));
  }
  return blob;
}

std::optional<ChunkSketchWords> sketch_from_blob(ByteSpan blob) {
  ChunkSketchWords sketch;
  if (blob.size() != sizeof(sketch.super)) return std::nullopt;
  for (std::size_t i = 0; i < blob.size(); ++i) {
    sketch.super[i / 8] |= static_cast<std::uint64_t>(blob[i]) << (8U * (i % 8));
  }
  return sketch;
}

ChunkFingerprint fingerprint_of(ByteSpan data) {
  // The canonical (big-endian) form is what the index stores; the struct holds its two halves.
  const XXH128_hash_t hash = XXH3_128bits(data.data(), data.size());
  return ChunkFingerprint{hash.high64, hash.low64};
}

std::array<std::uint8_t, 16> xxh3_128_of(ByteSpan data) {
  const XXH128_hash_t hash = XXH3_128bits(data.data(), data.size());
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  std::array<std::uint8_t, 16> bytes{};
  std::memcpy(bytes.data(), canonical.digest, bytes.size());
  return bytes;
}

std::int64_t unix_now() {
  return static_cast<std::int64_t>(::time(nullptr));
}

std::string describe_chunk(const Digest& digest, const ChunkLocation& location) {
  return "chunk " + digest.to_string() + " in pack " + location.pack_name + " at offset " +
         std::to_string(location.offset);
}

Result<std::vector<std::uint8_t>> decode_checked_record(const Digest& digest,
                                                        const ChunkLocation& location,
                                                        ByteSpan record, ByteSpan base_raw,
                                                        RawCheck check) {
  const ByteSpan payload = record.subspan(pack_record::kRecordHeaderSize, location.stored_length);
  const auto codec = static_cast<Codec>(location.codec);
  auto raw = is_delta_codec(codec)
                 ? decompress_delta_chunk(codec, payload, base_raw, location.raw_length)
                 : decompress_chunk(codec, payload, location.raw_length);
  if (!raw.ok()) {
    return make_error(raw.error().code,
                      describe_chunk(digest, location) + ": " + raw.error().message);
  }
  const ByteSpan raw_bytes(raw->data(), raw->size());
  if (xxh3_128_of(raw_bytes) != location.xxh3) {
    return make_error(ErrorCode::kCorruptInput,
                      describe_chunk(digest, location) + ": XXH3-128 of the decoded bytes differs");
  }
  if (check == RawCheck::kFingerprintAndDigest && sha256_of(raw_bytes) != digest) {
    return make_error(ErrorCode::kDigestMismatch, describe_chunk(digest, location) +
                                                      ": decoded bytes hash to " +
                                                      sha256_of(raw_bytes).to_string());
  }
  return raw;
}

Result<std::int64_t> ChunkStore::Impl::read_generation_locked() {
  auto statement = db.prepare("SELECT value FROM meta WHERE key = 'generation'");
  if (!statement.ok()) return std::move(statement).error();
  auto row = statement->step();
  if (!row.ok()) return std::move(row).error();
  if (!*row) return make_error(ErrorCode::kCorruptInput, "index has no generation record");
  return statement->column_int(0);
}

Result<void> ChunkStore::Impl::bump_generation_locked() {
  return db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'");
}

Result<void> ChunkStore::Impl::refresh_known_locked(std::int64_t generation) {
  const bool full = generation != known_generation;
  auto statement = db.prepare("SELECT id, digest, xxh3 FROM chunks WHERE id > ? AND corrupt = 0");
  if (!statement.ok()) return std::move(statement).error();
  statement->bind_int(1, full ? 0 : known_max_id);
  std::vector<std::pair<Digest, ChunkFingerprint>> found;
  std::int64_t max_id = full ? 0 : known_max_id;
  while (true) {
    auto row = statement->step();
    if (!row.ok()) return std::move(row).error();
    if (!*row) break;
    max_id = std::max(max_id, statement->column_int(0));
    found.emplace_back(digest_from_blob(statement->column_blob(1)),
                       fingerprint_from_blob(statement->column_blob(2)));
  }
  std::unique_lock lock(known_mutex);
  if (full) {
    known.clear();
    known_fingerprints.clear();
  }
  for (const auto& [digest, fingerprint] : found) {
    known.insert(digest);
    known_fingerprints.insert_or_assign(fingerprint, digest);
  }
  known_max_id = max_id;
  known_generation = generation;
  return {};
}

void ChunkStore::Impl::forget_known(const Digest& digest) {
  std::unique_lock lock(known_mutex);
  known.erase(digest);
  std::erase_if(known_fingerprints,
                [&digest](const auto& entry) { return entry.second == digest; });
}

Result<std::vector<std::string>> ChunkStore::Impl::prune_leases_locked() {
  auto select = db.prepare("SELECT id, pid, host, heartbeat FROM leases");
  if (!select.ok()) return std::move(select).error();
  std::vector<std::string> live;
  std::vector<std::string> stale;
  const std::int64_t now = unix_now();
  while (true) {
    auto row = select->step();
    if (!row.ok()) return std::move(row).error();
    if (!*row) break;
    std::string id = select->column_text(0);
    const auto pid = static_cast<pid_t>(select->column_int(1));
    const std::string lease_host = select->column_text(2);
    const std::int64_t heartbeat = select->column_int(3);
    bool alive = false;
    if (lease_host == host) {
      alive = pid == ::getpid() || ::kill(pid, 0) == 0 || errno == EPERM;
    } else {
      alive = now - heartbeat < kLeaseTimeoutSeconds;
    }
    (alive ? live : stale).push_back(std::move(id));
  }
  if (!stale.empty()) {
    auto remove = db.prepare("DELETE FROM leases WHERE id = ?");
    if (!remove.ok()) return std::move(remove).error();
    for (const std::string& id : stale) {
      remove->bind_text(1, id);
      STRATA_TRY(remove->run());
      remove->reset();
    }
  }
  return live;
}

Result<ChunkLocation> ChunkStore::Impl::lookup_chunk(const Digest& digest) const {
  std::lock_guard lock(db_mutex);
  return lookup_chunk_locked(digest);
}

Result<ChunkLocation> ChunkStore::Impl::lookup_chunk_locked(const Digest& digest) const {
  if (!lookup_prepared) {
    auto prepared = db.prepare(
        "SELECT c.pack_id, p.name, c.offset, c.stored_length, c.raw_length, c.codec, c.xxh3, "
        "c.refcount, c.corrupt, b.base FROM chunks c JOIN packs p ON p.id = c.pack_id "
        "LEFT JOIN chunk_bases b ON b.digest = c.digest WHERE c.digest = ?");
    if (!prepared.ok()) return std::move(prepared).error();
    lookup_statement = std::move(*prepared);
    lookup_prepared = true;
  }
  store_index::Statement* statement = &lookup_statement;
  statement->reset();
  statement->bind_blob(1, blob_of(digest));
  auto row = statement->step();
  if (!row.ok()) return std::move(row).error();
  if (!*row) {
    statement->reset();
    return make_error(ErrorCode::kNotFound, "chunk " + digest.to_string() + " is not in the store");
  }
  ChunkLocation location;
  location.pack_id = statement->column_int(0);
  location.pack_name = statement->column_text(1);
  location.offset = static_cast<std::uint64_t>(statement->column_int(2));
  location.stored_length = static_cast<std::uint32_t>(statement->column_int(3));
  location.raw_length = static_cast<std::uint32_t>(statement->column_int(4));
  location.codec = static_cast<std::uint8_t>(statement->column_int(5));
  const ByteSpan xxh3 = statement->column_blob(6);
  if (xxh3.size() == location.xxh3.size())
    std::copy(xxh3.begin(), xxh3.end(), location.xxh3.begin());
  location.refcount = statement->column_int(7);
  location.corrupt = statement->column_int(8) != 0;
  const ByteSpan base = statement->column_blob(9);
  location.has_base = base.size() == Digest::kSize;
  if (location.has_base) location.base = digest_from_blob(base);
  statement->reset();  // ends the read so it does not pin the WAL snapshot
  return location;
}

Result<std::string> ChunkStore::Impl::pack_path(const std::string& name) const {
  if (!pack_file::is_pack_file_name(name, true)) {
    std::string shown = name.substr(0, 200);
    std::replace(shown.begin(), shown.end(), '\0', '?');
    return make_error(ErrorCode::kCorruptInput,
                      "'" + shown + "' is not a pack file name this store makes (packs/" +
                          "<16 hex>-<n>.pack or packs/gc-<16 hex>.pack)");
  }
  return packs_dir + "/" + name;
}

namespace {

Error pack_io_error(const std::string& what, const std::string& path, int error_number) {
  return make_error(error_number == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                    what + " '" + path + "': " + std::strerror(error_number));
}

}  // namespace

Result<pack_file::FileDescriptor> ChunkStore::Impl::open_pack(const std::string& name) const {
  auto path = pack_path(name);
  if (!path.ok()) return std::move(path).error();
  const int fd = ::openat(packs_fd.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return make_error(ErrorCode::kNotFound, "file '" + *path + "' does not exist");
    }
    return pack_io_error("cannot open", *path, errno);
  }
  return pack_file::FileDescriptor(fd);
}

Result<pack_file::FileDescriptor> ChunkStore::Impl::create_pack(const std::string& name) const {
  auto path = pack_path(name);
  if (!path.ok()) return std::move(path).error();
  const int fd = ::openat(packs_fd.get(), name.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(ErrorCode::kIo, "cannot create '" + *path + "': " + std::strerror(errno));
  return pack_file::FileDescriptor(fd);
}

Result<bool> ChunkStore::Impl::unlink_pack(const std::string& name) const {
  auto path = pack_path(name);
  if (!path.ok()) return std::move(path).error();
  if (::unlinkat(packs_fd.get(), name.c_str(), 0) == 0) return true;
  if (errno == ENOENT) return false;
  return make_error(ErrorCode::kIo, "cannot remove '" + *path + "': " + std::strerror(errno));
}

Result<void> ChunkStore::Impl::rename_pack(const std::string& from, const std::string& to) const {
  auto from_path = pack_path(from);
  if (!from_path.ok()) return std::move(from_path).error();
  auto to_path = pack_path(to);
  if (!to_path.ok()) return std::move(to_path).error();
  if (::renameat(packs_fd.get(), from.c_str(), packs_fd.get(), to.c_str()) != 0) {
    return make_error(ErrorCode::kIo, "cannot rename '" + *from_path + "' to '" + *to_path +
                                          "': " + std::strerror(errno));
  }
  return {};
}

Result<std::shared_ptr<pack_file::FileDescriptor>> ChunkStore::Impl::pack_reader(
    const std::string& name) const {
  std::lock_guard lock(pack_fd_mutex);
  if (auto found = pack_fds.find(name); found != pack_fds.end()) return found->second;
  auto opened = open_pack(name);
  if (!opened.ok()) return std::move(opened).error();
  if (pack_fds.size() >= kMaxCachedPackReaders) pack_fds.clear();
  auto reader = std::make_shared<pack_file::FileDescriptor>(std::move(*opened));
  pack_fds.emplace(name, reader);
  return reader;
}

void ChunkStore::Impl::drop_pack_reader(const std::string& name) const {
  std::lock_guard lock(pack_fd_mutex);
  pack_fds.erase(name);
}

Result<std::vector<std::uint8_t>> ChunkStore::Impl::read_record(
    const Digest& digest, const ChunkLocation& location) const {
  if (location.stored_length > kMaxStoredChunkBytes + 1024) {
    return make_error(ErrorCode::kCorruptInput,
                      describe_chunk(digest, location) + ": index records an absurd length");
  }
  auto reader = pack_reader(location.pack_name);
  if (!reader.ok()) {
    return make_error(reader.error().code,
                      describe_chunk(digest, location) + ": " + reader.error().message);
  }
  std::vector<std::uint8_t> record(pack_record::record_size(location.stored_length));
  auto read = pack_file::read_exact_at(**reader, location.offset,
                                       MutableByteSpan(record.data(), record.size()),
                                       packs_dir + "/" + location.pack_name);
  if (!read.ok()) {
    return make_error(read.error().code,
                      describe_chunk(digest, location) + ": " + read.error().message);
  }
  STRATA_TRY(check_read_record(digest, location, ByteSpan(record.data(), record.size())));
  return record;
}

Result<void> ChunkStore::Impl::check_read_record(const Digest& digest,
                                                 const ChunkLocation& location,
                                                 ByteSpan record) const {
  auto header = pack_record::check_record(record);
  if (!header.ok()) {
    return make_error(ErrorCode::kCorruptInput,
                      describe_chunk(digest, location) + ": " + header.error().message);
  }
  if (header->digest != digest || header->codec != location.codec ||
      header->raw_length != location.raw_length) {
    return make_error(ErrorCode::kCorruptInput, describe_chunk(digest, location) +
                                                    ": record header disagrees with the index");
  }
  return {};
}

// ---------------------------------------------------------------------------------------------

ChunkStore::ChunkStore(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChunkStore::ChunkStore(ChunkStore&&) noexcept = default;
ChunkStore& ChunkStore::operator=(ChunkStore&&) noexcept = default;
ChunkStore::~ChunkStore() = default;

const std::string& ChunkStore::path() const {
  return impl_->root;
}

Result<ChunkStore> ChunkStore::open(const std::string& path, const StoreOptions& options) {
  if (path.empty()) return make_error(ErrorCode::kInvalidArgument, "store path is empty");
  if (options.max_pack_bytes < 4096) {
    return make_error(ErrorCode::kInvalidArgument, "max_pack_bytes must be at least 4096");
  }
  auto impl = std::make_shared<Impl>();
  impl->root = path;
  impl->packs_dir = path + "/packs";
  impl->index_path = path + "/index.db";
  impl->host = current_host();
  impl->options = options;

  const bool index_exists = path_exists(impl->index_path);
  // Packs are only written into a store whose index already holds its schema, so an index that
  // is missing or empty (its WAL too) beside non-empty packs was lost or truncated. Opening it
  // would show an empty store, and the next gc would delete every pack as an orphan: refuse.
  // The WAL is looked at before the main file: another process closing the store checkpoints
  // the WAL into index.db and only then deletes it, so in this order a live index never looks
  // empty (the other order raced with that checkpoint: main file read empty, WAL read deleted).
  const std::uint64_t wal_bytes = file_size_or_zero(impl->index_path + "-wal");
  if (wal_bytes == 0 && file_size_or_zero(impl->index_path) == 0 && path_exists(impl->packs_dir)) {
    const std::size_t packs = count_nonempty_packs(impl->packs_dir);
    if (packs > 0) {
      return make_error(ErrorCode::kCorruptInput,
                        "chunk store '" + path + "': index.db is " +
                            (index_exists ? "empty" : "missing") + " but packs/ holds " +
                            std::to_string(packs) +
                            " pack files; refusing to open a store whose index was lost");
    }
  }
  if (!index_exists && !options.create_if_missing) {
    return make_error(ErrorCode::kNotFound, "no chunk store at '" + path + "' (index.db missing)");
  }
  if (options.create_if_missing) {
    STRATA_TRY(pack_file::ensure_directory(impl->root));
    STRATA_TRY(pack_file::ensure_directory(impl->packs_dir));
  } else if (!path_exists(impl->packs_dir)) {
    return make_error(ErrorCode::kCorruptInput, "chunk store '" + path + "' has no packs/ folder");
  }
  const int packs_fd = ::open(impl->packs_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (packs_fd < 0) {
    return make_error(ErrorCode::kIo,
                      "cannot open '" + impl->packs_dir + "': " + std::strerror(errno));
  }
  impl->packs_fd = pack_file::FileDescriptor(packs_fd);

  const bool fresh = !index_exists && options.create_if_missing;
  auto database = store_index::Database::open(impl->index_path, options.create_if_missing,
                                              options.busy_timeout_ms, fresh);
  if (!database.ok()) return std::move(database).error();
  impl->db = std::move(*database);
  {
    store_index::WriteTransaction transaction(impl->db);
    STRATA_TRY(transaction.begin());
    STRATA_TRY(impl->db.execute(kSchema));
    auto version = impl->db.prepare("SELECT value FROM meta WHERE key = 'format_version'");
    if (!version.ok()) return std::move(version).error();
    auto row = version->step();
    if (!row.ok()) return std::move(row).error();
    if (!*row || (version->column_int(0) != kFormatVersion &&
                  version->column_int(0) != kDeltaFormatVersion)) {
      return make_error(ErrorCode::kUnsupported,
                        "chunk store '" + path + "' has an index format strata cannot read");
    }
    version = store_index::Statement();
    STRATA_TRY(transaction.commit());
  }
  if (fresh) STRATA_TRY(impl->db.make_durable());  // one sync for its setup, not one per step
  if (!index_exists) {
    // The new index.db (and packs/) must survive a crash as directory entries too.
    STRATA_TRY(pack_file::sync_directory(impl->root));
  }
  {
    std::lock_guard lock(impl->db_mutex);
    auto generation = impl->read_generation_locked();
    if (!generation.ok()) return std::move(generation).error();
    STRATA_TRY(impl->refresh_known_locked(*generation));
  }
  return ChunkStore(std::move(impl));
}

bool ChunkStore::contains(const Digest& digest) const {
  std::shared_lock lock(impl_->known_mutex);
  return impl_->known.find(digest) != impl_->known.end();
}

bool ChunkStore::holds_no_chunks() const {
  std::shared_lock lock(impl_->known_mutex);
  return impl_->known.empty();
}

std::optional<Digest> ChunkStore::find_by_fingerprint(const ChunkFingerprint& fingerprint) const {
  std::shared_lock lock(impl_->known_mutex);
  const auto found = impl_->known_fingerprints.find(fingerprint);
  if (found == impl_->known_fingerprints.end()) return std::nullopt;
  return found->second;
}

// The chunk's index row and its checksum-verified pack record. gc may move a record between the
// lookup and the read; a second lookup then sees the new place.
Result<LocatedRecord> read_located_record(const ChunkStore::Impl& impl, const Digest& digest) {
  for (int attempt = 0;; ++attempt) {
    auto location = impl.lookup_chunk(digest);
    if (!location.ok()) return std::move(location).error();
    auto record = impl.read_record(digest, *location);
    if (record.ok()) return LocatedRecord{*location, std::move(record).value()};
    if (record.error().code != ErrorCode::kNotFound) return std::move(record).error();
    if (attempt >= 2) return make_error(ErrorCode::kCorruptInput, record.error().message);
    impl.drop_pack_reader(location->pack_name);
  }
}

Result<std::vector<std::uint8_t>> ChunkStore::Impl::decode_record(const Digest& digest,
                                                                  const ChunkLocation& location,
                                                                  ByteSpan record) const {
  const auto codec = static_cast<Codec>(location.codec);
  if (!is_delta_codec(codec)) {
    if (location.has_base) {
      return make_error(ErrorCode::kCorruptInput,
                        describe_chunk(digest, location) + ": index records base chunk " +
                            location.base.to_string() + " for a chunk stored whole (" +
                            std::string(codec_name(codec)) + ")");
    }
    return decode_checked_record(digest, location, record);
  }
  if (!location.has_base) {
    return make_error(ErrorCode::kCorruptInput, describe_chunk(digest, location) + ": " +
                                                    std::string(codec_name(codec)) +
                                                    " chunk has no base chunk in the index");
  }
  const std::string where =
      describe_chunk(digest, location) + ": base chunk " + location.base.to_string();
  if (location.base == digest) {
    return make_error(ErrorCode::kCorruptInput,
                      where + " is the chunk itself (a delta chain loop)");
  }
  auto base = read_located_record(*this, location.base);
  if (!base.ok()) {
    return make_error(
        base.error().code == ErrorCode::kNotFound ? ErrorCode::kCorruptInput : base.error().code,
        where + ": " + base.error().message);
  }
  // Depth 1 (kMaxDeltaDepth): the base must decode alone. A base that is itself a delta (a
  // damaged or planted index, e.g. two chunks naming each other) is refused here, never followed.
  if (is_delta_codec(static_cast<Codec>(base->location.codec)) || base->location.has_base) {
    return make_error(ErrorCode::kCorruptInput,
                      where + " is itself a delta chunk; delta chains deeper than " +
                          std::to_string(kMaxDeltaDepth) + " are refused");
  }
  auto base_raw = decode_checked_record(location.base, base->location,
                                        ByteSpan(base->record.data(), base->record.size()));
  if (!base_raw.ok()) {
    return make_error(ErrorCode::kCorruptInput, where + ": " + base_raw.error().message);
  }
  return decode_checked_record(digest, location, record,
                               ByteSpan(base_raw->data(), base_raw->size()));
}

Result<StoredChunk> ChunkStore::read_stored_chunk(const Digest& digest) const {
  auto found = read_located_record(*impl_, digest);
  if (!found.ok()) return std::move(found).error();
  const ChunkLocation& location = found->location;
  StoredChunk chunk;
  chunk.codec = static_cast<Codec>(location.codec);
  chunk.raw_length = location.raw_length;
  if (is_delta_codec(chunk.codec)) {
    // Only standalone forms leave the store: a delta chunk is decoded through its base (checked
    // by its SHA-256) and handed out as one plain zstd frame.
    auto raw = impl_->decode_record(digest, location,
                                    ByteSpan(found->record.data(), found->record.size()));
    if (!raw.ok()) return std::move(raw).error();
    auto frame = compress_chunk_zstd(ByteSpan(raw->data(), raw->size()), kStandaloneFrameLevel);
    if (!frame.ok()) return std::move(frame).error();
    chunk.codec = Codec::kZstd;
    chunk.bytes = std::move(frame).value();
    return chunk;
  }
  const auto payload = found->record.begin() + pack_record::kRecordHeaderSize;
  chunk.bytes.assign(payload, payload + static_cast<std::ptrdiff_t>(location.stored_length));
  return chunk;
}

std::vector<Result<StoredChunkView>> ChunkStore::read_stored_chunks(
    std::span<const Digest> digests) const {
  // At most this many bytes in one read: runs of adjacent records are cut there.
  constexpr std::uint64_t kMaxRunBytes = std::uint64_t{4} << 20U;
  std::vector<Result<StoredChunkView>> out;
  out.reserve(digests.size());
  std::vector<ChunkLocation> locations(digests.size());
  {
    std::lock_guard lock(impl_->db_mutex);
    for (std::size_t i = 0; i < digests.size(); ++i) {
      auto location = impl_->lookup_chunk_locked(digests[i]);
      if (location.ok()) {
        locations[i] = std::move(*location);
        out.emplace_back(StoredChunkView{});
      } else {
        out.emplace_back(std::move(location).error());
      }
    }
  }
  // The one-chunk path for what a batch does not cover: delta chunks (decoded and framed again),
  // absurd lengths, and records gc moved after the lookup (read_located_record looks again).
  const auto read_alone = [&](std::size_t i) {
    auto chunk = read_stored_chunk(digests[i]);
    if (!chunk.ok()) {
      out[i] = std::move(chunk).error();
      return;
    }
    auto owned = std::make_shared<std::vector<std::uint8_t>>(std::move(chunk->bytes));
    out[i] = StoredChunkView{chunk->codec, chunk->raw_length, ByteSpan(*owned), owned};
  };
  std::vector<std::size_t> batched;
  for (std::size_t i = 0; i < digests.size(); ++i) {
    if (!out[i].ok()) continue;
    const ChunkLocation& location = locations[i];
    if (is_delta_codec(static_cast<Codec>(location.codec)) || location.has_base ||
        location.stored_length > kMaxStoredChunkBytes + 1024) {
      read_alone(i);
    } else {
      batched.push_back(i);
    }
  }
  std::sort(batched.begin(), batched.end(), [&](std::size_t a, std::size_t b) {
    return std::tie(locations[a].pack_id, locations[a].offset) <
           std::tie(locations[b].pack_id, locations[b].offset);
  });
  for (std::size_t first = 0; first < batched.size();) {
    // A run: records back to back in one pack.
    const ChunkLocation& start = locations[batched[first]];
    std::uint64_t end = start.offset + pack_record::record_size(start.stored_length);
    std::size_t last = first + 1;
    while (last < batched.size()) {
      const ChunkLocation& next = locations[batched[last]];
      const std::uint64_t next_end = next.offset + pack_record::record_size(next.stored_length);
      if (next.pack_id != start.pack_id || next.offset != end ||
          next_end - start.offset > kMaxRunBytes) {
        break;
      }
      end = next_end;
      ++last;
    }
    const auto run_bytes = static_cast<std::size_t>(end - start.offset);
    std::shared_ptr<std::uint8_t[]> buffer =
        std::make_shared_for_overwrite<std::uint8_t[]>(run_bytes);
    auto reader = impl_->pack_reader(start.pack_name);
    Result<void> read = make_error(ErrorCode::kNotFound, "no reader");
    if (reader.ok()) {
      read =
          pack_file::read_exact_at(**reader, start.offset, MutableByteSpan(buffer.get(), run_bytes),
                                   impl_->packs_dir + "/" + start.pack_name);
    }
    for (std::size_t k = first; k < last; ++k) {
      const std::size_t i = batched[k];
      const ChunkLocation& location = locations[i];
      if (!read.ok()) {
        read_alone(i);  // names the chunk, or finds it where gc moved it
        continue;
      }
      const ByteSpan record(buffer.get() + (location.offset - start.offset),
                            pack_record::record_size(location.stored_length));
      if (auto checked = impl_->check_read_record(digests[i], location, record); !checked.ok()) {
        out[i] = std::move(checked).error();
        continue;
      }
      out[i] = StoredChunkView{
          static_cast<Codec>(location.codec), location.raw_length,
          record.subspan(pack_record::kRecordHeaderSize, location.stored_length), buffer};
    }
    first = last;
  }
  return out;
}

Result<std::vector<std::uint8_t>> ChunkStore::read_chunk(const Digest& digest) const {
  auto found = read_located_record(*impl_, digest);
  if (!found.ok()) return std::move(found).error();
  return impl_->decode_record(digest, found->location,
                              ByteSpan(found->record.data(), found->record.size()));
}

Result<DeltaBaseChunk> ChunkStore::read_delta_base(const Digest& digest) const {
  auto found = read_located_record(*impl_, digest);
  if (!found.ok()) return std::move(found).error();
  DeltaBaseChunk base;
  base.digest = digest;
  if (found->location.has_base) {  // a delta chunk: its own base serves instead
    base.digest = found->location.base;
    found = read_located_record(*impl_, base.digest);
    if (!found.ok()) return std::move(found).error();
  }
  const ChunkLocation& location = found->location;
  if (is_delta_codec(static_cast<Codec>(location.codec)) || location.has_base) {
    return make_error(ErrorCode::kCorruptInput,
                      describe_chunk(base.digest, location) +
                          ": a delta base must be stored whole, but the index records a delta");
  }
  // The XXH3-128 check names these bytes as the ones the store was given for base.digest (checked
  // by SHA-256 then); a chunk coded against them is itself verified whole before it is stored,
  // so hashing the base again here would only repeat work (a third of a delta ingest's hashing).
  auto raw = decode_checked_record(base.digest, location,
                                   ByteSpan(found->record.data(), found->record.size()), {},
                                   RawCheck::kFingerprint);
  if (!raw.ok()) return std::move(raw).error();
  base.raw = std::move(raw).value();
  base.stored_size = location.stored_length;
  return base;
}

Result<std::vector<std::pair<Digest, ChunkSketchWords>>> ChunkStore::layer_sketches(
    const Digest& layer, std::size_t max_chunks) const {
  std::lock_guard lock(impl_->db_mutex);
  auto select = impl_->db.prepare(
      "SELECT s.digest, s.sketch FROM layers l JOIN layer_chunks c ON c.layer_id = l.id "
      "JOIN chunk_sketches s ON s.digest = c.digest WHERE l.diff_id = ?1 OR l.diff_id = "
      "(SELECT diff_id FROM layer_blobs WHERE blob_digest = ?1) LIMIT ?2");
  if (!select.ok()) return std::move(select).error();
  select->bind_blob(1, blob_of(layer));
  select->bind_int(2, static_cast<std::int64_t>(max_chunks));
  std::vector<std::pair<Digest, ChunkSketchWords>> sketches;
  while (true) {
    auto row = select->step();
    if (!row.ok()) return std::move(row).error();
    if (!*row) break;
    const auto sketch = sketch_from_blob(select->column_blob(1));
    if (!sketch) continue;  // a row this version cannot read
    sketches.emplace_back(digest_from_blob(select->column_blob(0)), *sketch);
  }
  return sketches;
}

Result<std::optional<StoredDelta>> ChunkStore::read_stored_delta(const Digest& digest) const {
  auto found = read_located_record(*impl_, digest);
  if (!found.ok()) return std::move(found).error();
  const ChunkLocation& location = found->location;
  const auto codec = static_cast<Codec>(location.codec);
  if (!is_delta_codec(codec)) return std::optional<StoredDelta>{};
  if (!location.has_base || location.base == digest) {
    return make_error(ErrorCode::kCorruptInput, describe_chunk(digest, location) + ": " +
                                                    std::string(codec_name(codec)) +
                                                    " chunk has no usable base chunk in the index");
  }
  StoredDelta delta;
  delta.codec = codec;
  delta.raw_length = location.raw_length;
  delta.base = location.base;
  const auto payload = found->record.begin() + pack_record::kRecordHeaderSize;
  delta.bytes.assign(payload, payload + static_cast<std::ptrdiff_t>(location.stored_length));
  return std::optional<StoredDelta>(std::move(delta));
}

namespace {

LayerRecord layer_from_row(const store_index::Statement& statement, bool with_recipe) {
  LayerRecord layer;
  layer.diff_id = digest_from_blob(statement.column_blob(0));
  layer.layer_digest = digest_from_blob(statement.column_blob(1));
  layer.media_type = statement.column_text(2);
  layer.size = static_cast<std::uint64_t>(statement.column_int(3));
  layer.created_unix_seconds = statement.column_int(4);
  if (with_recipe) {
    const ByteSpan recipe = statement.column_blob(5);
    layer.recipe.assign(recipe.begin(), recipe.end());
  }
  return layer;
}

}  // namespace

Result<LayerRecord> ChunkStore::find_layer(const Digest& digest) const {
  std::lock_guard lock(impl_->db_mutex);
  // By diff_id, else by the blob it was first ingested from, else by any blob recorded for it.
  auto statement = impl_->db.prepare(
      "SELECT diff_id, layer_digest, media_type, size, created, recipe FROM layers "
      "WHERE diff_id = ?1 OR layer_digest = ?1 OR diff_id = "
      "(SELECT diff_id FROM layer_blobs WHERE blob_digest = ?1) "
      "ORDER BY diff_id = ?1 DESC, layer_digest = ?1 DESC LIMIT 1");
  if (!statement.ok()) return std::move(statement).error();
  statement->bind_blob(1, blob_of(digest));
  auto row = statement->step();
  if (!row.ok()) return std::move(row).error();
  if (!*row) {
    return make_error(ErrorCode::kNotFound, "layer " + digest.to_string() + " is not in the store");
  }
  return layer_from_row(*statement, true);
}

Result<LayerRecord> ChunkStore::find_layer_by_diff_id(const Digest& diff_id) const {
  std::lock_guard lock(impl_->db_mutex);
  auto statement = impl_->db.prepare(
      "SELECT diff_id, layer_digest, media_type, size, created, recipe FROM layers "
      "WHERE diff_id = ?1");
  if (!statement.ok()) return std::move(statement).error();
  statement->bind_blob(1, blob_of(diff_id));
  auto row = statement->step();
  if (!row.ok()) return std::move(row).error();
  if (!*row) {
    return make_error(ErrorCode::kNotFound,
                      "layer with diff_id " + diff_id.to_string() + " is not in the store");
  }
  return layer_from_row(*statement, true);
}

Result<std::vector<LayerRecord>> ChunkStore::list_layers() const {
  std::lock_guard lock(impl_->db_mutex);
  auto statement = impl_->db.prepare(
      "SELECT diff_id, layer_digest, media_type, size, created FROM layers ORDER BY id");
  if (!statement.ok()) return std::move(statement).error();
  std::vector<LayerRecord> layers;
  while (true) {
    auto row = statement->step();
    if (!row.ok()) return std::move(row).error();
    if (!*row) break;
    layers.push_back(layer_from_row(*statement, false));
  }
  return layers;
}

Result<StoreStats> ChunkStore::stats() const {
  StoreStats stats;
  std::vector<std::string> pack_names;
  {
    std::lock_guard lock(impl_->db_mutex);
    auto chunks = impl_->db.prepare(
        "SELECT COUNT(*), TOTAL(refcount > 0), TOTAL(corrupt), TOTAL(raw_length), "
        "TOTAL(stored_length), (SELECT COUNT(*) FROM chunk_bases) FROM chunks");
    if (!chunks.ok()) return std::move(chunks).error();
    auto row = chunks->step();
    if (!row.ok()) return std::move(row).error();
    stats.chunks = static_cast<std::uint64_t>(chunks->column_int(0));
    stats.referenced_chunks = static_cast<std::uint64_t>(chunks->column_int(1));
    stats.corrupt_chunks = static_cast<std::uint64_t>(chunks->column_int(2));
    stats.raw_bytes = static_cast<std::uint64_t>(chunks->column_int(3));
    stats.stored_bytes = static_cast<std::uint64_t>(chunks->column_int(4));
    stats.delta_chunks = static_cast<std::uint64_t>(chunks->column_int(5));
    auto counts =
        impl_->db.prepare("SELECT (SELECT COUNT(*) FROM packs), (SELECT COUNT(*) FROM layers)");
    if (!counts.ok()) return std::move(counts).error();
    row = counts->step();
    if (!row.ok()) return std::move(row).error();
    stats.packs = static_cast<std::uint64_t>(counts->column_int(0));
    stats.layers = static_cast<std::uint64_t>(counts->column_int(1));
  }
  auto listing = pack_file::list_directory(impl_->packs_dir);
  if (!listing.ok()) return std::move(listing).error();
  for (const auto& file : *listing) stats.pack_file_bytes += file.size;
  return stats;
}

}  // namespace strata
