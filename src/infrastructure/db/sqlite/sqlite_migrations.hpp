#pragma once
/// Numbered schema migrations of the SQLite backend, embedded in the binary and tracked in
/// the table `schema_migrations`. Applying takes the database's write lock (BEGIN IMMEDIATE),
/// so two processes migrating at once are safe; a database newer than the binary is refused.

#include "sqlite_connection.hpp"

namespace chat::infra::sqlite {

/// Applies pending migrations; returns how many were applied. Throws on failure.
int migrate(Connection& c);
/// The newest migration this binary knows.
int latest_migration();

}  // namespace chat::infra::sqlite
