#include "sqlite_migrations.hpp"

#include <array>
#include <string>

namespace chat::infra::sqlite {
namespace {

struct Migration {
  int version;
  const char* sql;
};

constexpr std::array kMigrations{
    Migration{1, R"sql(
CREATE TABLE users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);
CREATE TABLE threads (
  no INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  title TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX threads_by_user ON threads(user_id, no);
CREATE TABLE runs (
  no INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
  message_id TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued','running','done','error','canceled')),
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  error TEXT
);
CREATE INDEX runs_by_thread ON runs(thread_id, no);
CREATE INDEX runs_active ON runs(status, no) WHERE status IN ('queued','running');
CREATE TABLE messages (
  no INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
  role TEXT NOT NULL CHECK (role IN ('user','assistant')),
  content TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  run_id TEXT
);
CREATE INDEX messages_by_thread ON messages(thread_id);
CREATE TABLE run_events (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE idempotency_keys (
  thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  response TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (thread_id, key)
) WITHOUT ROWID;
)sql"},
};

constexpr const char* kCreateTracking =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
    "applied_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)))";
constexpr const char* kCurrentVersion = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
constexpr const char* kRecord = "INSERT INTO schema_migrations(version) VALUES(?1)";

}  // namespace

int latest_migration() { return kMigrations.back().version; }

int migrate(Connection& c) {
  c.exec("BEGIN IMMEDIATE");
  try {
    c.exec(kCreateTracking);
    auto& s = c.prepare(kCurrentVersion);
    const auto current = s.step() ? s.int64(0) : 0;
    s.reset();
    if (current > latest_migration())
      throw SqliteError("database schema version " + std::to_string(current) +
                            " is newer than this binary supports (" +
                            std::to_string(latest_migration()) + "); upgrade the binary",
                        0);
    int applied = 0;
    for (const auto& m : kMigrations) {
      if (m.version <= current) continue;
      c.exec(m.sql);
      c.prepare(kRecord).bind(1, std::int64_t{m.version}).run();
      ++applied;
    }
    c.exec("COMMIT");
    return applied;
  } catch (...) {
    c.exec("ROLLBACK");
    throw;
  }
}

}  // namespace chat::infra::sqlite
