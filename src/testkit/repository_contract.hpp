#pragma once
/// Test support (unit tests only): the repository contract suite, run against every backend.
///
/// The tests (TEST_P of RepositoryContract) live in infrastructure/db/repository_contract_test.cpp
/// and check every method of every interface of domain/repositories.hpp. A backend joins them
/// with ONE line in its own test file, naming a factory:
///
///   CHAT_REPOSITORY_CONTRACT(Sqlite, sqlite_file_backend(), sqlite_memory_backend());
///   CHAT_REPOSITORY_CONTRACT(Postgres, postgres_backend());   // suites named *Postgres* run
///                                                             // with the PostgreSQL test cluster
///
/// A factory gives a RepoBackend: repositories bound to a fresh, empty, migrated store of their
/// own (one per test). Two things a transactional or deferring backend may need:
///  - every call the contract expects to throw is wrapped in before_expected_failure() /
///    after_expected_failure() (e.g. SAVEPOINT, then ROLLBACK TO it and drop buffered work), so
///    the test goes on using the store afterwards;
///  - a failure may surface at the next statement instead of the failing call (e.g. buffered
///    event rows): inside the expectation, the failing call is followed by a read of the same
///    repository.
///
/// What the contract assumes of the data, so that every backend can store it faithfully:
/// ids are lowercase UUIDs; timestamps are milliseconds since the epoch; event `data` is compact
/// JSON whose object keys are already in jsonb's order (shorter keys first), and must come back
/// byte for byte (the SSE frames carry it as is).

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "domain/repositories.hpp"

namespace chat::testkit {

class RepoBackend {
 public:
  virtual ~RepoBackend() = default;
  /// The repositories under test, on this backend's own empty store.
  virtual domain::Repositories& repos() = 0;
  /// Called right before a call that the contract expects to fail.
  virtual void before_expected_failure() {}
  /// Called right after it failed (or, on a contract violation, did not).
  virtual void after_expected_failure() {}
};

struct RepoBackendFactory {
  std::string name;  ///< the test-name suffix: letters, digits, underscores
  /// A new backend per test. Null (or a throw) fails the test: a backend that silently did not
  /// run would hide a broken backend.
  std::function<std::unique_ptr<RepoBackend>()> make;
};

inline std::ostream& operator<<(std::ostream& os, const RepoBackendFactory& f) {
  return os << f.name;
}

struct RepoBackendName {
  std::string operator()(const ::testing::TestParamInfo<RepoBackendFactory>& info) const {
    return info.param.name;
  }
};

class RepositoryContract : public ::testing::TestWithParam<RepoBackendFactory> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make();
    ASSERT_TRUE(backend_ != nullptr) << GetParam().name << ": the backend could not be created";
  }
  void TearDown() override { backend_.reset(); }

  domain::Repositories& repos() { return backend_->repos(); }

  /// Runs `f`, which must throw, between the backend's failure hooks.
  template <class F>
  bool throws(F&& f) {
    backend_->before_expected_failure();
    bool threw = false;
    try {
      f();
    } catch (const std::exception&) {
      threw = true;
    }
    backend_->after_expected_failure();
    return threw;
  }

  /// Distinct lowercase UUIDs, each sorting BEFORE the previous one, so that no list order can
  /// come from sorting by id by accident.
  std::string new_id() {
    char buf[40];
    const auto n = static_cast<unsigned long long>(next_id_--);
    std::snprintf(buf, sizeof buf, "%08llx-beef-4abc-8def-%012llx", n, n);
    return buf;
  }

  static constexpr domain::Timestamp kT0 = 1'795'514'400'123;  // 2026-11-24T10:00:00.123Z

  domain::User add_user(const std::string& name, domain::Timestamp at = kT0) {
    return repos().users.insert(name, at);
  }
  domain::Thread add_thread(std::int64_t user_id, domain::Timestamp at = kT0,
                            std::optional<std::string> title = std::nullopt) {
    domain::Thread t{new_id(), user_id, std::move(title), at};
    repos().threads.insert(t);
    return t;
  }
  /// A queued run with its user message, stored as the service stores them (run first).
  domain::Run add_run(const std::string& thread_id, domain::Timestamp at = kT0,
                      const std::string& content = "hello") {
    domain::Run r;
    r.id = new_id();
    r.thread_id = thread_id;
    r.message_id = new_id();
    r.status = domain::RunStatus::queued;
    r.created_at = at;
    repos().runs.insert(r);
    repos().messages.insert(
        domain::Message{r.message_id, thread_id, domain::Role::user, content, at, r.id});
    return r;
  }
  domain::RunEvent add_event(const std::string& run_id, std::int64_t seq,
                             domain::EventType type = domain::EventType::token,
                             std::string data = R"({"text":"x"})", domain::Timestamp at = kT0) {
    domain::RunEvent e{run_id, seq, type, std::move(data), at};
    repos().events.append(e);
    return e;
  }

  std::unique_ptr<RepoBackend> backend_;

 private:
  std::uint64_t next_id_ = 0xffffffffULL;  // 8 hex digits: the first group of a UUID
};

}  // namespace chat::testkit

/// Runs the repository contract against the backends made by the given factories.
/// (At namespace scope; the suite's name must be a plain identifier, hence the using.)
#define CHAT_REPOSITORY_CONTRACT(prefix, ...)                                    \
  using ::chat::testkit::RepositoryContract;                                     \
  INSTANTIATE_TEST_SUITE_P(prefix, RepositoryContract, ::testing::Values(__VA_ARGS__), \
                           ::chat::testkit::RepoBackendName())
