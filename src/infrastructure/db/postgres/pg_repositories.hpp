#pragma once
/// The domain repositories on one PostgreSQL session. Not thread-safe: used by the thread that
/// owns the connection, inside the transaction it manages.
///
/// Semantics match the SQLite repositories exactly (orderings, cursors, guards, cascades). Two
/// differences of mechanism: `events.append` only buffers the row (the session sends all
/// buffered rows as one INSERT before its next statement or COMMIT, so a duplicate (run_id,
/// seq) surfaces there, failing the job's transaction); and an id that is not a UUID is never
/// sent to the server — lookups by it find nothing, as they would on SQLite.

#include <memory>

#include "domain/repositories.hpp"
#include "pg_session.hpp"

namespace chat::infra::pg {

class PgRepositories {
 public:
  explicit PgRepositories(Session& s);
  PgRepositories(const PgRepositories&) = delete;
  PgRepositories& operator=(const PgRepositories&) = delete;
  ~PgRepositories();
  domain::Repositories& repos() { return repos_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  domain::Repositories repos_;
};

/// True for the textual form of a UUID (8-4-4-4-12 hex digits, any case).
bool is_uuid(std::string_view s);

}  // namespace chat::infra::pg
