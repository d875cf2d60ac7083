#pragma once
/// The domain repositories on one SQLite connection. Not thread-safe: used by the thread that
/// owns the connection, inside the transaction it manages.

#include "domain/repositories.hpp"
#include "sqlite_connection.hpp"

namespace chat::infra::sqlite {

class SqliteRepositories {
 public:
  explicit SqliteRepositories(Connection& c);
  SqliteRepositories(const SqliteRepositories&) = delete;
  SqliteRepositories& operator=(const SqliteRepositories&) = delete;
  ~SqliteRepositories();
  domain::Repositories& repos() { return repos_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  domain::Repositories repos_;
};

}  // namespace chat::infra::sqlite
