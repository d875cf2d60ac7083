#include "pg_migrations.hpp"

#include <array>
#include <string>

namespace chat::infra::pg {
namespace {

struct Migration {
  int version;
  const char* sql;
};

// The numbered files of migrations/, embedded at build time (cmake/embed_migrations.cmake):
// kMigrations, an array of Migration in version order.
#include "pg_migrations_sql.hpp"

// Any fixed number, the same in every process of this service: "chatbot\0" as a bigint.
constexpr const char* kLock = "SELECT pg_advisory_xact_lock(7163082359828345856)";
constexpr const char* kCreateTracking =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
    "applied_at timestamptz NOT NULL DEFAULT now())";
constexpr const char* kCurrentVersion = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
constexpr const char* kTrackingExists = "SELECT to_regclass('schema_migrations') IS NOT NULL";
constexpr const char* kRecord = "INSERT INTO schema_migrations(version) VALUES($1::integer)";

[[noreturn]] void newer(int current) {
  throw PgError("database schema version " + std::to_string(current) +
                    " is newer than this binary supports (" +
                    std::to_string(latest_migration()) + "); upgrade the binary",
                "", false);
}

}  // namespace

int latest_migration() { return kMigrations.back().version; }

int schema_version(Connection& c) {
  if (c.exec(kTrackingExists).view(0, 0) != "t") return 0;
  return static_cast<int>(c.exec(kCurrentVersion).int64(0, 0));
}

void check_schema(Connection& c) {
  const int v = schema_version(c);
  if (v > latest_migration()) newer(v);
  if (v < latest_migration())
    throw PgError("database schema version " + std::to_string(v) + " is older than this binary's (" +
                      std::to_string(latest_migration()) + "); run `chatbot migrate`",
                  "", false);
}

int migrate(Connection& c) {
  c.exec("BEGIN");
  try {
    // Migrations may take longer than a request; the lock wait is bounded all the same.
    c.exec("SET LOCAL statement_timeout = '10min'");
    c.exec(kLock);
    c.exec(kCreateTracking);
    const int current = static_cast<int>(c.exec(kCurrentVersion).int64(0, 0));
    if (current > latest_migration()) newer(current);
    int applied = 0;
    for (const auto& m : kMigrations) {
      if (m.version <= current) continue;
      c.exec(m.sql);
      c.query(kRecord, Params().add(std::int64_t{m.version}));
      ++applied;
    }
    c.exec("COMMIT");
    return applied;
  } catch (...) {
    try {
      if (c.ok()) c.exec("ROLLBACK");
    } catch (...) {
    }
    throw;
  }
}

}  // namespace chat::infra::pg
