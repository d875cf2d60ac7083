#pragma once
/// A thin RAII layer over one sqlite3 connection and its prepared statements.
/// Not thread-safe: a Connection belongs to one thread at a time. Errors throw SqliteError.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace chat::infra::sqlite {

struct SqliteError : std::runtime_error {
  SqliteError(const std::string& what, int rc) : std::runtime_error(what), code(rc) {}
  int code;
};

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement& bind(int i, std::int64_t v);
  Statement& bind(int i, std::string_view v);
  Statement& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, const std::optional<std::string>& v);
  Statement& bind(int i, const std::optional<std::int64_t>& v);
  /// Binds without copying: `v` must outlive the statement's next reset.
  Statement& bind_unowned(int i, std::string_view v);
  /// True while a row is available.
  bool step();
  /// Steps to completion (for statements that return no rows).
  void run();
  std::int64_t int64(int col) const;
  std::string text(int col) const;
  std::optional<std::string> opt_text(int col) const;
  std::optional<std::int64_t> opt_int64(int col) const;
  /// Resets and clears bindings; called automatically by Connection::prepare.
  void reset();

 private:
  void check(int rc) const;
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Connection {
 public:
  /// `path` is a file path or ":memory:". Opens read-write, creating the file if needed (its
  /// directory must exist).
  explicit Connection(const std::string& path);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void exec(const char* sql);
  /// A cached prepared statement, reset and ready to bind.
  Statement& prepare(const char* sql);
  std::int64_t last_insert_rowid() const;
  int changes() const;
  sqlite3* raw() { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, std::unique_ptr<Statement>> cache_;
  std::unordered_map<const char*, sqlite3_stmt*> raw_;
};

}  // namespace chat::infra::sqlite
