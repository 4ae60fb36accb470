// SQLite wrapper for the chunk store index (core/store/chunk_store_index.h). WAL mode lets readers
// run beside one writer across processes; synchronous=FULL makes a committed transaction survive
// power loss, which the store's "committed layers stay committed" promise needs (reliability.md
// §3.8 P6).
#include "core/store/chunk_store_index.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace strata::store_index {
namespace {

ErrorCode code_for(int sqlite_code) {
  switch (sqlite_code & 0xFF) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT: return ErrorCode::kCorruptInput;
    case SQLITE_NOMEM:
    case SQLITE_MISUSE:
    case SQLITE_RANGE: return ErrorCode::kInternal;
    case SQLITE_CONSTRAINT: return ErrorCode::kInvalidArgument;
    default: return ErrorCode::kIo;  // IOERR, FULL, CANTOPEN, READONLY, BUSY, LOCKED, PERM...
  }
}

}  // namespace

Statement::Statement(Statement&& other) noexcept
    : statement_(other.statement_), database_(other.database_) {
  other.statement_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(statement_);
    statement_ = other.statement_;
    database_ = other.database_;
    other.statement_ = nullptr;
  }
  return *this;
}

Statement::~Statement() {
  sqlite3_finalize(statement_);
}

void Statement::bind_int(int index, std::int64_t value) {
  sqlite3_bind_int64(statement_, index, value);
}

void Statement::bind_blob(int index, ByteSpan value) {
  // A zero-length blob must still bind as a blob, not NULL: give SQLite a valid pointer.
  static constexpr std::uint8_t kEmpty = 0;
  sqlite3_bind_blob64(statement_, index, value.empty() ? &kEmpty : value.data(), value.size(),
                      SQLITE_TRANSIENT);
}

void Statement::bind_text(int index, std::string_view value) {
  sqlite3_bind_text64(statement_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

Result<bool> Statement::step() {
  const int code = sqlite3_step(statement_);
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  Error failure = database_->error(code, sqlite3_sql(statement_));
  sqlite3_reset(statement_);
  return failure;
}

Result<void> Statement::run() {
  while (true) {
    auto row = step();
    if (!row.ok()) return std::move(row).error();
    if (!*row) return {};
  }
}

void Statement::reset() {
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
}

std::int64_t Statement::column_int(int index) const {
  return sqlite3_column_int64(statement_, index);
}

ByteSpan Statement::column_blob(int index) const {
  const void* data = sqlite3_column_blob(statement_, index);
  const int size = sqlite3_column_bytes(statement_, index);
  if (data == nullptr || size <= 0) return {};
  return ByteSpan(static_cast<const std::uint8_t*>(data), static_cast<std::size_t>(size));
}

std::string Statement::column_text(int index) const {
  const unsigned char* text = sqlite3_column_text(statement_, index);
  const int size = sqlite3_column_bytes(statement_, index);
  if (text == nullptr || size <= 0) return {};
  return std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(size));
}

Result<Database> Database::open(const std::string& path, bool create, int busy_timeout_ms,
                                bool fresh) {
  Database database;
  database.path_ = path;
  database.busy_timeout_ms_ = busy_timeout_ms;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  const int code = sqlite3_open_v2(path.c_str(), &database.db_, flags, nullptr);
  if (code != SQLITE_OK) {
    if (database.db_ == nullptr) return make_error(ErrorCode::kInternal, "cannot allocate SQLite");
    return database.error(code, "open");
  }
  sqlite3_extended_result_codes(database.db_, 1);
  sqlite3_busy_timeout(database.db_, busy_timeout_ms);
  if (fresh) STRATA_TRY(database.execute("PRAGMA synchronous=OFF"));
  // Switching to WAL needs the file to itself for a moment: several processes opening a new store
  // at once can get BUSY here without the busy handler being called, so it is retried like
  // BEGIN IMMEDIATE.
  STRATA_TRY(database.execute_until_not_busy("PRAGMA journal_mode=WAL"));
  if (!fresh) {
    STRATA_TRY(database.execute("PRAGMA synchronous=FULL"));
    database.synced_commits_ = true;
  }
  // A 16 MiB page cache, not SQLite's 2 MiB: a layer's commit (its recipe's pages, thousands of
  // chunk rows) stays in memory until the commit writes it to the WAL once, instead of spilling
  // pages mid-transaction and writing them again (a 153 MB layer: 1295 -> 721 WAL frames).
  STRATA_TRY(database.execute("PRAGMA cache_size=-16384"));
  // Temporary tables and indices (a commit's statements over all of a layer's chunk digests) in
  // memory, not in a temp file created, written and deleted per commit (a 3.8 K-chunk layer's
  // commit wrote ~300 KB there in 120 writes).
  STRATA_TRY(database.execute("PRAGMA temp_store=MEMORY"));
  return database;
}

// A new index was set up without syncs (its journal-mode switch and schema). A full checkpoint
// with synchronous=FULL syncs the WAL, copies it into the file and syncs the file: two syncs
// through SQLite's own handles (another descriptor closed on the file would drop SQLite's POSIX
// locks), and every later commit syncs its WAL.
Result<void> Database::make_durable() {
  STRATA_TRY(execute("PRAGMA synchronous=FULL"));
  synced_commits_ = true;
  return execute("PRAGMA wal_checkpoint(FULL)");
}

Result<void> Database::relax_commits(bool relax) {
  if (!synced_commits_) return {};
  return execute(relax ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
}

Database::Database(Database&& other) noexcept
    : db_(other.db_),
      path_(std::move(other.path_)),
      busy_timeout_ms_(other.busy_timeout_ms_),
      synced_commits_(other.synced_commits_) {
  other.db_ = nullptr;
}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    sqlite3_close(db_);
    db_ = other.db_;
    path_ = std::move(other.path_);
    busy_timeout_ms_ = other.busy_timeout_ms_;
    synced_commits_ = other.synced_commits_;
    other.db_ = nullptr;
  }
  return *this;
}

// Statements are finalized by their owners first; sqlite3_close then releases the connection (and
// checkpoints the WAL when this is the last connection).
Database::~Database() {
  sqlite3_close(db_);
}

Result<void> Database::execute(const char* sql) {
  const int code = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (code != SQLITE_OK) return error(code, sql);
  return {};
}

Result<Statement> Database::prepare(const char* sql) {
  sqlite3_stmt* statement = nullptr;
  const int code = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr);
  if (code != SQLITE_OK) return error(code, sql);
  return Statement(statement, this);
}

Result<void> Database::begin_write() {
  // The busy handler already waits inside BEGIN IMMEDIATE; the retries cover the cases where
  // SQLite returns BUSY without calling it (e.g. while another connection recovers the WAL).
  return execute_until_not_busy("BEGIN IMMEDIATE");
}

Result<void> Database::execute_until_not_busy(const char* sql) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms_);
  while (true) {
    const int code = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (code == SQLITE_OK) return {};
    if ((code & 0xFF) != SQLITE_BUSY || std::chrono::steady_clock::now() >= deadline) {
      return error(code, sql);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Result<void> Database::commit() {
  const int code = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  if (code != SQLITE_OK) return error(code, "COMMIT");
  return {};
}

void Database::rollback() noexcept {
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

std::int64_t Database::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

std::int64_t Database::changes() const {
  return sqlite3_changes64(db_);
}

Error Database::error(int code, std::string_view what) const {
  std::string message = "index '" + path_ + "': ";
  // First line only: a multi-statement script (the schema) would otherwise fill the message.
  message += std::string(what.substr(0, std::min<std::size_t>(what.find('\n'), 100)));
  message += ": ";
  message += db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(code);
  return make_error(code_for(code), std::move(message));
}

}  // namespace strata::store_index
