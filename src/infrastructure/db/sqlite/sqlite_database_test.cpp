// The SQLite backend: the repository contract (on a file and in memory), migrations, URLs, the
// group-committing database port, and the whole run flow on it.

#include "sqlite_database.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <stdexcept>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include "sqlite_connection.hpp"
#include "sqlite_migrations.hpp"
#include "sqlite_repositories.hpp"
#include "testkit/async.hpp"
#include "testkit/repository_contract.hpp"
#include "testkit/service_harness.hpp"

namespace chat::infra::sqlite {
namespace {

using testkit::TempDbPath;

/// Repositories on one plain connection, opened as SqliteDatabase opens its connections
/// (foreign keys on: the cascades of ThreadRepository::remove rely on them), then migrated.
class SqliteBackend final : public testkit::RepoBackend {
 public:
  explicit SqliteBackend(bool in_memory)
      : path_(in_memory ? nullptr : std::make_unique<TempDbPath>()),
        conn_(in_memory ? std::string(":memory:") : path_->str()) {
    conn_.exec("PRAGMA foreign_keys = ON");
    if (!in_memory) {
      conn_.exec("PRAGMA journal_mode = WAL");
      conn_.exec("PRAGMA synchronous = OFF");  // durability is not what this suite checks
    }
    migrate(conn_);
    repos_ = std::make_unique<SqliteRepositories>(conn_);
  }
  domain::Repositories& repos() override { return repos_->repos(); }

 private:
  std::unique_ptr<TempDbPath> path_;
  Connection conn_;
  std::unique_ptr<SqliteRepositories> repos_;
};

testkit::RepoBackendFactory sqlite_file_backend() {
  return {"file", [] { return std::make_unique<SqliteBackend>(false); }};
}
testkit::RepoBackendFactory sqlite_memory_backend() {
  return {"in_memory", [] { return std::make_unique<SqliteBackend>(true); }};
}

}  // namespace

CHAT_REPOSITORY_CONTRACT(Sqlite, sqlite_file_backend(), sqlite_memory_backend());

namespace {

using namespace std::chrono_literals;
using testkit::IoRunner;
using testkit::run_sync;

int count_rows(Connection& c, const char* sql) {
  auto& s = c.prepare(sql);
  const int n = s.step() ? static_cast<int>(s.int64(0)) : -1;
  s.reset();
  return n;
}

// ------------------------------------------------------------------------------ migrations

TEST(SqliteMigrations, AFreshDatabaseIsMigratedOnceThenNothingIsLeft) {
  TempDbPath path;
  Connection c(path.str());
  EXPECT_EQ(migrate(c), latest_migration());
  EXPECT_EQ(migrate(c), 0);
  EXPECT_EQ(count_rows(c, "SELECT COUNT(*) FROM schema_migrations"), latest_migration());
  EXPECT_EQ(count_rows(c, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                         "('users', 'threads', 'messages', 'runs', 'run_events', "
                         "'idempotency_keys')"),
            6);
}

TEST(SqliteMigrations, ADatabaseNewerThanTheBinaryIsRefused) {
  TempDbPath path;
  Connection c(path.str());
  migrate(c);
  const std::string bump = "INSERT INTO schema_migrations(version) VALUES(" +
                           std::to_string(latest_migration() + 1) + ")";
  c.exec(bump.c_str());
  try {
    migrate(c);
    ADD_FAILURE() << "migrate accepted a newer schema";
  } catch (const SqliteError& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
  // Nothing was left half-done: the connection is usable and outside any transaction.
  EXPECT_NO_THROW(c.exec("BEGIN IMMEDIATE; COMMIT"));
}

TEST(SqliteMigrations, TwoConnectionsMigratingAtOnceApplyEachMigrationOnce) {
  TempDbPath path;
  Connection a(path.str());
  Connection b(path.str());
  std::atomic<int> applied{0};
  std::thread ta([&] { applied += migrate(a); });
  std::thread tb([&] { applied += migrate(b); });
  ta.join();
  tb.join();
  EXPECT_EQ(applied.load(), latest_migration());
  EXPECT_EQ(count_rows(a, "SELECT COUNT(*) FROM schema_migrations"), latest_migration());
}

TEST(SqliteUrl, ParsesTheSqliteForms) {
  EXPECT_EQ(sqlite_path_from_url("sqlite:data/chatbot.db"),
            std::optional<std::string>("data/chatbot.db"));
  EXPECT_EQ(sqlite_path_from_url("sqlite:///tmp/x.db"), std::optional<std::string>("/tmp/x.db"));
  EXPECT_EQ(sqlite_path_from_url("sqlite://x.db"), std::optional<std::string>("x.db"));
  EXPECT_EQ(sqlite_path_from_url("sqlite::memory:"), std::optional<std::string>(":memory:"));
  EXPECT_FALSE(sqlite_path_from_url("sqlite:").has_value());
  EXPECT_FALSE(sqlite_path_from_url("sqlite://").has_value());
  EXPECT_FALSE(sqlite_path_from_url("postgresql://u:p@h:5432/db").has_value());
  EXPECT_FALSE(sqlite_path_from_url("").has_value());
}

// ------------------------------------------------------------------------- the database port

SqliteOptions file_options(const TempDbPath& path) {
  SqliteOptions o;
  o.path = path.str();
  o.synchronous_full = false;
  return o;
}

TEST(SqliteDatabase, OpeningAnUnusablePathThrows) {
  EXPECT_THROW({ SqliteDatabase db(SqliteOptions{"/nonexistent-dir-for-chat-tests/x.db"}); },
               SqliteError);
  TempDbPath path;
  {
    std::ofstream f(path.str(), std::ios::binary);
    f << std::string(4096, 'x');  // not a database
  }
  EXPECT_THROW({ SqliteDatabase db(SqliteOptions{path.str()}); }, SqliteError);
}

TEST(SqliteDatabase, WritesReturnAfterCommitAndHooksAndReadsSeeThem) {
  TempDbPath path;
  IoRunner io(2);
  SqliteDatabase db(file_options(path));
  std::atomic<bool> hook_ran{false};
  const auto id = run_sync(io.io(), db.write([&](app::WriteTx& tx) {
    tx.after_commit([&] { hook_ran = true; });
    return tx.repos().users.insert("alice", 1).id;
  }));
  EXPECT_TRUE(hook_ran.load());
  const auto name = run_sync(io.io(), db.read([&](domain::Repositories& r) {
    auto u = r.users.find(id);
    return u ? u->name : std::string("<none>");
  }));
  EXPECT_EQ(name, "alice");
}

TEST(SqliteDatabase, CheckpointsCopyTheWalIntoTheDatabaseFileOffTheWriter) {
  // SQLite's own auto-checkpoint is off on the writer (a commit would wait for it): the
  // checkpoint thread must copy the WAL into the database file, or the file stays as it was
  // created until the last connection closes, and the WAL grows without end.
  TempDbPath path;
  IoRunner io(2);
  SqliteDatabase db(file_options(path));
  const std::string run_id = "00000000-0000-4000-8000-000000000001";
  run_sync(io.io(), db.write([&](app::WriteTx& tx) {
    const auto u = tx.repos().users.insert("alice", 1);
    tx.repos().threads.insert(domain::Thread{"00000000-0000-4000-8000-000000000002", u.id, "t", 1});
    domain::Run r;
    r.id = run_id;
    r.thread_id = "00000000-0000-4000-8000-000000000002";
    r.message_id = "00000000-0000-4000-8000-000000000003";
    r.status = domain::RunStatus::queued;
    r.created_at = 1;
    tx.repos().messages.insert(domain::Message{r.message_id, r.thread_id, domain::Role::user,
                                               "hi", 1, r.id});
    tx.repos().runs.insert(r);
    return 0;
  }));
  const auto initial = std::filesystem::file_size(path.str());
  const std::string text(8192, 'x');
  std::int64_t seq = 0;
  auto write_events = [&](int commits) {
    for (int c = 0; c < commits; ++c)
      run_sync(io.io(), db.write([&](app::WriteTx& tx) {
        for (int i = 0; i < 10; ++i)
          tx.repos().events.append(domain::RunEvent{run_id, ++seq, domain::EventType::token,
                                                    R"({"text":")" + text + R"("})", 1});
        return 0;
      }));
  };
  // 1,500 events of 8 KiB: ~3,000 WAL pages, past the checkpointer's signal (1,000), short of
  // the writer's own limit (4,000). Only the checkpoint thread copies them into the file.
  write_events(150);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::filesystem::file_size(path.str()) < initial + 8u * 1024 * 1024 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(std::filesystem::file_size(path.str()), initial + 8u * 1024 * 1024);
  // 36 MiB more: the WAL restarts from its beginning and stays under the writer's limit.
  write_events(450);
  EXPECT_LT(std::filesystem::file_size(path.str() + "-wal"), 20u * 1024 * 1024);
}

TEST(SqliteDatabase, AFailingJobFailsAloneAndTheOthersCommit) {
  TempDbPath path;
  IoRunner io(2);
  SqliteDatabase db(file_options(path));
  constexpr int kJobs = 40;
  constexpr int kBad = 7;
  std::atomic<int> hooks{0};
  auto job = [](app::Database& d, std::atomic<int>& hook_count, int i) -> app::Task<bool> {
    co_return co_await d.write([&hook_count, i](app::WriteTx& tx) {
      tx.repos().users.insert("user-" + std::to_string(i), i);
      tx.after_commit([&hook_count] { ++hook_count; });
      if (i == kBad) throw std::runtime_error("job " + std::to_string(i) + " fails");
      return true;
    });
  };
  // All submitted at once, so the writer takes them in a few batches.
  std::vector<std::future<bool>> results;
  for (int i = 0; i < kJobs; ++i)
    results.push_back(boost::asio::co_spawn(boost::asio::make_strand(io.io()), job(db, hooks, i),
                                            boost::asio::use_future));
  int ok = 0, failed = 0;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_EQ(results[static_cast<std::size_t>(i)].wait_for(5s), std::future_status::ready);
    try {
      results[static_cast<std::size_t>(i)].get();
      ++ok;
    } catch (const std::runtime_error&) {
      EXPECT_EQ(i, kBad);
      ++failed;
    }
  }
  EXPECT_EQ(ok, kJobs - 1);
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(hooks.load(), kJobs - 1);  // the failed job's hook never ran
  const auto present = run_sync(io.io(), db.read([](domain::Repositories& r) {
    std::vector<bool> out;
    for (int i = 0; i < kJobs; ++i)
      out.push_back(r.users.find_by_name("user-" + std::to_string(i)).has_value());
    return out;
  }));
  for (int i = 0; i < kJobs; ++i)
    EXPECT_EQ(present[static_cast<std::size_t>(i)], i != kBad) << "user-" << i;
  EXPECT_GE(db.stats().errors, 1u);
}

TEST(SqliteDatabase, InMemoryDatabaseServesReadsAndWrites) {
  IoRunner io(2);
  SqliteDatabase db(SqliteOptions{":memory:"});
  const auto id = run_sync(io.io(), db.write([](app::WriteTx& tx) {
    return tx.repos().users.insert("alice", 1).id;
  }));
  const auto found = run_sync(io.io(), db.read([id](domain::Repositories& r) {
    return r.users.find(id).has_value();
  }));
  EXPECT_TRUE(found);
}

// ------------------------------------------------------------------- the run flow on SQLite

class SqliteService : public ::testing::TestWithParam<testkit::DbKind> {};

TEST_P(SqliteService, RunsStreamAndCancel) {
  testkit::HarnessOptions o;
  o.db = GetParam();
  testkit::ServiceHarness h(o);
  h.engine.tokens = {"a", "b", "c"};
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  const auto live = h.collect(p.run_id, 0);  // opened while the run is young
  ASSERT_TRUE(live.opened);
  EXPECT_TRUE(live.ended);
  EXPECT_EQ(live.seqs(), testkit::seq_range(1, 7));
  EXPECT_EQ(testkit::type_list(live.events), "state,token,token,token,final,state,done");
  ASSERT_TRUE(h.wait_terminal(p.run_id));
  EXPECT_EQ(h.run(p.run_id).status, domain::RunStatus::done);
  EXPECT_EQ(h.collect(p.run_id, 4).seqs(), testkit::seq_range(5, 7));
  EXPECT_FALSE(h.collect(p.run_id, 7).opened);

  h.engine.hold = true;
  const auto q = h.post(t.id, "again");
  ASSERT_TRUE(h.wait_last_seq(q.run_id, 4));
  auto r = h.sync(h.service().cancel_run(q.run_id));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, domain::RunStatus::canceled);
  EXPECT_EQ(testkit::type_list(h.events(q.run_id)),
            "state,token,token,token,canceled,state,done");
  const auto msgs = h.messages_of(t.id);
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[3].content, "abc");
  EXPECT_EQ(msgs[3].run_id, std::optional<std::string>(q.run_id));

  auto del = h.sync(h.service().delete_thread(t.id));
  ASSERT_TRUE(del.ok());
  EXPECT_TRUE(h.events(p.run_id).empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, SqliteService,
                         ::testing::Values(testkit::DbKind::sqlite_file,
                                           testkit::DbKind::sqlite_memory),
                         [](const auto& p) -> std::string {
                           return p.param == testkit::DbKind::sqlite_file ? "file" : "in_memory";
                         });

}  // namespace
}  // namespace chat::infra::sqlite
