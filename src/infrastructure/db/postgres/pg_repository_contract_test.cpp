// The repository contract on PostgreSQL, in the two ways the adapter uses a connection:
// autocommit (its readers) and inside one transaction with deferred BEGIN and buffered event
// rows (its writer's group-commit batches). Each test gets a scratch schema of its own on the
// test cluster (CHATBOT_TEST_PG_URL; unset fails the test).

#include <memory>

#include "pg_connection.hpp"
#include "pg_migrations.hpp"
#include "pg_repositories.hpp"
#include "pg_session.hpp"
#include "pg_test_support.hpp"
#include "testkit/repository_contract.hpp"

namespace chat::infra::pg {
namespace {

class PgBackend final : public testkit::RepoBackend {
 public:
  explicit PgBackend(bool in_transaction) : in_tx_(in_transaction) {
    if (!schema_.ok()) throw std::runtime_error("no PostgreSQL test database");
    conn_ = std::make_unique<Connection>(schema_.connect());
    migrate(*conn_);
    session_ = std::make_unique<Session>(*conn_);
    repos_ = std::make_unique<PgRepositories>(*session_);
    if (in_tx_) session_->begin();
  }
  ~PgBackend() override {
    if (in_tx_) session_->rollback();
  }

  domain::Repositories& repos() override { return repos_->repos(); }

  // What was appended before goes out first (in autocommit, as the adapter's job boundary
  // would send it). Inside a transaction a failed statement aborts it: fence the expected
  // failure with a savepoint, after the deferred work so that it stays.
  void before_expected_failure() override {
    session_->flush();
    if (in_tx_) conn_->exec("SAVEPOINT contract");
  }
  void after_expected_failure() override {
    session_->discard();
    if (in_tx_ && conn_->in_transaction()) conn_->exec("ROLLBACK TO SAVEPOINT contract");
  }

 private:
  bool in_tx_;
  pgtest::ScratchSchema schema_;
  std::unique_ptr<Connection> conn_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<PgRepositories> repos_;
};

testkit::RepoBackendFactory postgres_autocommit() {
  return {"Autocommit", [] { return std::make_unique<PgBackend>(false); }};
}

testkit::RepoBackendFactory postgres_in_transaction() {
  return {"InTransaction", [] { return std::make_unique<PgBackend>(true); }};
}

CHAT_REPOSITORY_CONTRACT(Postgres, postgres_autocommit(), postgres_in_transaction());

}  // namespace
}  // namespace chat::infra::pg
