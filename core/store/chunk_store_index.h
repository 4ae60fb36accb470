// A thin RAII layer over SQLite for the chunk store's index.db: one connection, prepared
// statements, IMMEDIATE write transactions retried while another process holds the write lock,
// and SQLite result codes mapped to strata errors (a damaged database file is kCorruptInput, never
// a crash). The schema itself lives in chunk_store_schema.cpp; docs/STORE.md lists it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "strata/buffer.h"
#include "strata/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace strata::store_index {

class Database;

class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Binding indexes count from 1, as in SQLite.
  void bind_int(int index, std::int64_t value);
  void bind_blob(int index, ByteSpan value);
  void bind_text(int index, std::string_view value);

  // Steps once: true when a row is available, false when done.
  Result<bool> step();
  // Steps to completion, expecting no rows.
  Result<void> run();
  // Clears bindings and rewinds, ready for reuse.
  void reset();

  [[nodiscard]] std::int64_t column_int(int index) const;
  [[nodiscard]] ByteSpan column_blob(int index) const;
  [[nodiscard]] std::string column_text(int index) const;

 private:
  friend class Database;
  Statement(sqlite3_stmt* statement, Database* database)
      : statement_(statement), database_(database) {}
  sqlite3_stmt* statement_ = nullptr;
  Database* database_ = nullptr;
};

class Database {
 public:
  // Opens (or creates) `path` in WAL mode with synchronous=FULL and the given busy timeout.
  // `fresh`: a file this call creates, opened with synchronous=OFF so that setting it up costs no
  // syncs; the caller then calls make_durable() once, which turns synchronous=FULL on and syncs
  // what was written.
  static Result<Database> open(const std::string& path, bool create, int busy_timeout_ms,
                               bool fresh = false);
  Result<void> make_durable();

  Database() = default;
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  Result<void> execute(const char* sql);
  Result<Statement> prepare(const char* sql);

  // `sql`, retried while SQLite answers BUSY (its busy handler is not called in every such case),
  // until the busy timeout has passed.
  Result<void> execute_until_not_busy(const char* sql);
  // BEGIN IMMEDIATE, retried while SQLite reports the database busy (up to the busy timeout).
  Result<void> begin_write();
  Result<void> commit();
  void rollback() noexcept;
  // Between relax_commits(true) and relax_commits(false), commits are not synced (WAL with
  // synchronous=NORMAL: visible to every other connection at once; a power loss may drop them,
  // never tear them, and the next synced commit makes them durable too). For bookkeeping other
  // processes must see but a crash makes moot (a writer's lease). Outside a transaction only; no
  // effect on a fresh database (nothing is synced before make_durable()).
  Result<void> relax_commits(bool relax);

  [[nodiscard]] std::int64_t last_insert_rowid() const;
  [[nodiscard]] std::int64_t changes() const;

  // The error for SQLite result `code`, naming `what` was being done and SQLite's message.
  [[nodiscard]] Error error(int code, std::string_view what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  int busy_timeout_ms_ = 0;
  bool synced_commits_ = false;  // synchronous=FULL is on (open without `fresh`, make_durable)
};

// What a write transaction's commit promises: durable once it returns (the default), or only
// visible to other connections (Database::relax_commits).
enum class CommitSync : std::uint8_t { kDurable, kVisible };

// Rolls back an open write transaction unless commit() succeeded.
class WriteTransaction {
 public:
  explicit WriteTransaction(Database& database, CommitSync sync = CommitSync::kDurable)
      : database_(database), sync_(sync) {}
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;
  ~WriteTransaction() {
    if (open_) database_.rollback();
    if (relaxed_) (void)database_.relax_commits(false);
  }
  Result<void> begin() {
    if (sync_ == CommitSync::kVisible) {
      STRATA_TRY(database_.relax_commits(true));
      relaxed_ = true;
    }
    STRATA_TRY(database_.begin_write());
    open_ = true;
    return {};
  }
  Result<void> commit() {
    auto result = database_.commit();
    if (result.ok()) open_ = false;
    if (relaxed_ && result.ok()) {
      relaxed_ = false;
      return database_.relax_commits(false);
    }
    return result;
  }

 private:
  Database& database_;
  CommitSync sync_;
  bool open_ = false;
  bool relaxed_ = false;
};

}  // namespace strata::store_index
