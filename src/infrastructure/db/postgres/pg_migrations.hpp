#pragma once
/// Numbered schema migrations of the PostgreSQL backend, embedded in the binary and tracked in
/// the table `schema_migrations`. They run in one transaction under a transaction-level
/// advisory lock, so two processes migrating at once are safe (the second waits, then finds
/// nothing to do); a database newer than the binary is refused.

#include "pg_connection.hpp"

namespace chat::infra::pg {

/// Applies pending migrations; returns how many were applied. Throws PgError on failure
/// (including a schema newer than this binary).
int migrate(Connection& c);
/// The schema version recorded in the database (0: none).
int schema_version(Connection& c);
/// Throws PgError unless the database is at exactly the version this binary knows (used when
/// serving without migrating).
void check_schema(Connection& c);
/// The newest migration this binary knows.
int latest_migration();

}  // namespace chat::infra::pg
