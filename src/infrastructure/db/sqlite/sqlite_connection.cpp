#include "sqlite_connection.hpp"

#include <sqlite3.h>

namespace chat::infra::sqlite {

namespace {
[[noreturn]] void fail(sqlite3* db, int rc, std::string_view what) {
  throw SqliteError(std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)), rc);
}
}  // namespace

void Statement::check(int rc) const {
  if (rc != SQLITE_OK) fail(db_, rc, "sqlite bind");
}

Statement& Statement::bind(int i, std::int64_t v) {
  check(sqlite3_bind_int64(stmt_, i, v));
  return *this;
}

Statement& Statement::bind(int i, std::string_view v) {
  check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

Statement& Statement::bind_unowned(int i, std::string_view v) {
  check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8));
  return *this;
}

Statement& Statement::bind(int i, const std::optional<std::string>& v) {
  if (v) return bind(i, std::string_view(*v));
  check(sqlite3_bind_null(stmt_, i));
  return *this;
}

Statement& Statement::bind(int i, const std::optional<std::int64_t>& v) {
  if (v) return bind(i, *v);
  check(sqlite3_bind_null(stmt_, i));
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3_reset(stmt_);
  fail(db_, rc, "sqlite step");
}

void Statement::run() {
  while (step()) {
  }
}

std::int64_t Statement::int64(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Statement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}

std::optional<std::string> Statement::opt_text(int col) const {
  if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
  return text(col);
}

std::optional<std::int64_t> Statement::opt_int64(int col) const {
  if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
  return int64(col);
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Connection::Connection(const std::string& path) {
  const int rc = sqlite3_open_v2(path.c_str(), &db_,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw SqliteError("cannot open " + path + ": " + msg, rc);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, 5000);
}

Connection::~Connection() {
  cache_.clear();
  for (auto& [sql, stmt] : raw_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

void Connection::exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw SqliteError(std::string("sqlite exec: ") + msg, rc);
  }
}

Statement& Connection::prepare(const char* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    it->second->reset();
    return *it->second;
  }
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) fail(db_, rc, "sqlite prepare");
  raw_[sql] = stmt;
  auto& ref = cache_[sql];
  ref = std::make_unique<Statement>(db_, stmt);
  return *ref;
}

std::int64_t Connection::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

int Connection::changes() const { return sqlite3_changes(db_); }

}  // namespace chat::infra::sqlite
