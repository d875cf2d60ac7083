#include "sqlite_migrations.hpp"

#include <array>
#include <string>

namespace chat::infra::sqlite {
namespace {

struct Migration {
  int version;
  const char* sql;
};

// The numbered files of migrations/, embedded at build time (cmake/embed_migrations.cmake):
// kMigrations, an array of Migration in version order.
#include "sqlite_migrations_sql.hpp"

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
