// The PostgreSQL adapter beyond the repository contract: migrations, the session's deferred
// BEGIN and batched event INSERT, jsonb compactness, millisecond timestamps, indexes, group
// commit and reconnection. Suites named Postgres* need the test cluster (see
// pg_test_support.hpp); PgJson and PgUuid do not.

#include <atomic>
#include <future>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "domain/json_text.hpp"
#include "pg_database.hpp"
#include "pg_json.hpp"
#include "pg_migrations.hpp"
#include "pg_repositories.hpp"
#include "pg_session.hpp"
#include "pg_sql.hpp"
#include "pg_test_support.hpp"
#include "testkit/async.hpp"

namespace chat::infra::pg {
namespace {

using domain::EventType;
using domain::RunEvent;
using domain::RunStatus;
using pgtest::ScratchSchema;

// ------------------------------------------------------------------------ without a server

TEST(PgJson, CompactsJsonbRendering) {
  EXPECT_EQ(compact_json(R"({"a": 1, "b": [1, 2, {"c": "x y"}], "d": {}})"),
            R"({"a":1,"b":[1,2,{"c":"x y"}],"d":{}})");
  EXPECT_EQ(compact_json(R"({"t": "say \"hi, there\": ok \\", "u": "\\\" ,: "})"),
            R"({"t":"say \"hi, there\": ok \\","u":"\\\" ,: "})");
  EXPECT_EQ(compact_json("{\"text\": \"\xE2\x80\x9C \\n \\u0001\"}"),
            "{\"text\":\"\xE2\x80\x9C \\n \\u0001\"}");
  EXPECT_EQ(compact_json("[]"), "[]");
}

TEST(PgUuid, RecognisesTheTextualForm) {
  EXPECT_TRUE(is_uuid("0b7f4c1e-9a4e-4d7a-8f1e-2a1b3c4d5e6f"));
  EXPECT_TRUE(is_uuid("0B7F4C1E-9A4E-4D7A-8F1E-2A1B3C4D5E6F"));
  EXPECT_FALSE(is_uuid(""));
  EXPECT_FALSE(is_uuid("nope"));
  EXPECT_FALSE(is_uuid("0b7f4c1e-9a4e-4d7a-8f1e-2a1b3c4d5e6"));
  EXPECT_FALSE(is_uuid("0b7f4c1e-9a4e-4d7a-8f1e-2a1b3c4d5e6g"));
  EXPECT_FALSE(is_uuid("0b7f4c1e09a4e-4d7a-8f1e-2a1b3c4d5e6f"));
}

TEST(PgUrl, RedactsPasswords) {
  EXPECT_EQ(redact_url("postgresql://chatbot:secret@db:5432/chatbot"),
            "postgresql://chatbot:***@db:5432/chatbot");
  EXPECT_EQ(redact_url("postgres://u@h/db?password=secret&sslmode=disable"),
            "postgres://u@h/db?password=***&sslmode=disable");
  EXPECT_EQ(redact_url("postgresql://h/db"), "postgresql://h/db");
  EXPECT_TRUE(is_postgres_url("postgres://h/db"));
  EXPECT_TRUE(is_postgres_url("postgresql://h/db"));
  EXPECT_FALSE(is_postgres_url("sqlite:x.db"));
}

// --------------------------------------------------------------------------------- helpers

std::string uuid_n(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", n);
  return buf;
}

/// A migrated scratch schema with a session on it.
class PostgresFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(schema_.ok());
    conn_ = std::make_unique<Connection>(schema_.connect());
    migrate(*conn_);
    session_ = std::make_unique<Session>(*conn_);
    repos_ = std::make_unique<PgRepositories>(*session_);
  }
  domain::Repositories& r() { return repos_->repos(); }

  /// A user, a thread and `n` runs (ids uuid_n(1000 + i)).
  std::vector<std::string> make_runs(int n) {
    const auto user = r().users.insert("u-" + std::to_string(n), 1000);
    const std::string thread = uuid_n(1);
    r().threads.insert(domain::Thread{thread, user.id, std::nullopt, 1000});
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(uuid_n(1000 + i));
      r().runs.insert(domain::Run{out.back(), thread, uuid_n(5000 + i), RunStatus::queued,
                                  1000 + i, std::nullopt, std::nullopt, std::nullopt, 0});
    }
    return out;
  }
  std::int64_t count(const char* sql) { return conn_->exec(sql).int64(0, 0); }

  ScratchSchema schema_;
  std::unique_ptr<Connection> conn_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<PgRepositories> repos_;
};

// ------------------------------------------------------------------------------ migrations

TEST(PostgresMigrations, FreshSchemaIsMigratedOnceThenNothingIsLeft) {
  ScratchSchema s;
  ASSERT_TRUE(s.ok());
  Connection c(s.connect());
  EXPECT_EQ(schema_version(c), 0);
  EXPECT_EQ(migrate(c), latest_migration());
  EXPECT_EQ(migrate(c), 0);
  EXPECT_EQ(schema_version(c), latest_migration());
  EXPECT_NO_THROW(check_schema(c));
  EXPECT_EQ(c.exec("SELECT data_type FROM information_schema.columns WHERE table_schema = "
                   "current_schema() AND table_name = 'run_events' AND column_name = 'data'")
                .text(0, 0),
            "jsonb");
}

TEST(PostgresMigrations, ProcessesMigratingAtOnceAreSafe) {
  ScratchSchema s;
  ASSERT_TRUE(s.ok());
  constexpr int kN = 4;
  std::atomic<int> applied{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  std::promise<void> go;
  auto start = go.get_future().share();
  for (int i = 0; i < kN; ++i)
    ts.emplace_back([&] {
      try {
        Connection c(s.connect());
        start.wait();
        applied += migrate(c);
      } catch (const std::exception& e) {
        ++failures;
        ADD_FAILURE() << e.what();
      }
    });
  go.set_value();
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(applied.load(), latest_migration());
}

TEST(PostgresMigrations, DatabaseNewerThanTheBinaryIsRefused) {
  ScratchSchema s;
  ASSERT_TRUE(s.ok());
  {
    Connection c(s.connect());
    migrate(c);
    c.exec(("INSERT INTO schema_migrations(version) VALUES (" +
            std::to_string(latest_migration() + 1) + ")")
               .c_str());
    try {
      migrate(c);
      ADD_FAILURE() << "migrate accepted a newer schema";
    } catch (const PgError& e) {
      EXPECT_NE(std::string(e.what()).find("newer than this binary"), std::string::npos)
          << e.what();
    }
  }
  for (bool m : {true, false}) {
    PgOptions o;
    o.connect = s.connect();
    o.migrate = m;
    EXPECT_THROW(PgDatabase db(o), PgError);
  }
}

TEST(PostgresMigrations, ServingWithoutMigratingNeedsTheCurrentSchema) {
  ScratchSchema s;
  ASSERT_TRUE(s.ok());
  PgOptions o;
  o.connect = s.connect();
  o.migrate = false;
  try {
    PgDatabase db(o);
    ADD_FAILURE() << "opened an unmigrated database";
  } catch (const PgError& e) {
    EXPECT_NE(std::string(e.what()).find("chatbot migrate"), std::string::npos) << e.what();
  }
  o.migrate = true;
  { PgDatabase db(o); }
  o.migrate = false;
  EXPECT_NO_THROW(PgDatabase db(o));
}

// --------------------------------------------------------------------------------- session

TEST_F(PostgresFixture, AppendsOfManyRunsGoOutAsOneInsertWithTheCommit) {
  const auto runs = make_runs(20);
  // Warm up: the INSERT is prepared on its first use by a connection.
  session_->begin();
  r().events.append(RunEvent{runs[0], 1, EventType::token, "{\"text\":\"t1\"}", 2001});
  session_->commit();
  session_->begin();
  for (int k = 1; k <= 10; ++k)
    for (const auto& id : runs)
      if (k > 1 || id != runs[0])
        r().events.append(RunEvent{id, k, EventType::token,
                                   "{\"text\":\"t" + std::to_string(k) + "\"}", 2000 + k});
  EXPECT_EQ(session_->buffered_events(), 199u);
  const auto before = conn_->round_trips();
  session_->commit();
  EXPECT_EQ(conn_->round_trips() - before, 1u) << "BEGIN + INSERT + COMMIT in one round trip";
  EXPECT_EQ(count("SELECT count(*) FROM run_events"), 200);
  for (const auto& id : runs) {
    EXPECT_EQ(r().events.last_seq(id), 10);
    const auto evs = r().events.list_after(id, 4, 100);
    ASSERT_EQ(evs.size(), 6u);
    EXPECT_EQ(evs.front().seq, 5);
    EXPECT_EQ(evs.front().data, "{\"text\":\"t5\"}");
    EXPECT_EQ(evs.front().created_at, 2005);
  }
}

TEST_F(PostgresFixture, AStatementSeesTheEventsAppendedBeforeIt) {
  const auto runs = make_runs(1);
  session_->begin();
  for (int k = 1; k <= 3; ++k)
    r().events.append(RunEvent{runs[0], k, EventType::state, "{\"status\":\"running\"}", 1});
  EXPECT_EQ(r().events.last_seq(runs[0]), 3);
  EXPECT_EQ(r().runs.find(runs[0])->last_seq, 3);
  session_->rollback();
  EXPECT_EQ(r().events.last_seq(runs[0]), 0);
  EXPECT_EQ(session_->buffered_events(), 0u);
}

TEST_F(PostgresFixture, AnEmptyTransactionCostsNoRoundTrip) {
  const auto before = conn_->round_trips();
  session_->begin();
  session_->commit();
  EXPECT_EQ(conn_->round_trips(), before);
}

TEST_F(PostgresFixture, ADuplicateEventFailsTheTransaction) {
  const auto runs = make_runs(1);
  r().events.append(RunEvent{runs[0], 1, EventType::state, "{}", 1});
  session_->flush();
  session_->begin();
  r().events.append(RunEvent{runs[0], 2, EventType::token, "{}", 1});
  r().events.append(RunEvent{runs[0], 1, EventType::token, "{}", 1});
  try {
    session_->commit();
    ADD_FAILURE() << "duplicate (run_id, seq) committed";
  } catch (const PgError& e) {
    EXPECT_EQ(e.sqlstate, "23505");
    EXPECT_FALSE(e.connection_lost);
  }
  EXPECT_FALSE(conn_->in_transaction());
  EXPECT_EQ(r().events.last_seq(runs[0]), 1);
}

// ---------------------------------------------------------------------------- repositories

TEST_F(PostgresFixture, EventDataComesBackExactlyAsTheCoreWroteIt) {
  const auto runs = make_runs(1);
  auto str = [](std::string_view s) { return domain::json_string(s); };
  const std::string nasty =
      "quote \" backslash \\ slash / newline \n tab \t ctl \x01 \x1f del \x7f "
      "\xE2\x80\x9C\xC3\xA9\xF0\x9F\x98\x80\xE2\x80\x9D {\"a\": [1, 2]} , : ";
  const std::vector<std::string> datas = {
      "{\"status\":\"running\"}",
      "{\"tool\":\"word_count\",\"input\":{\"text\":" + str(nasty) + "}}",
      "{\"tool\":\"word_count\",\"output\":{\"words\":12}}",
      "{\"text\":" + str(nasty) + "}",
      "{\"text\":" + str("Turn 1: you said \xE2\x80\x9Chi\xE2\x80\x9D") +
          ",\"message_id\":\"" + uuid_n(9) + "\"}",
      "{\"error\":" + str("engine failed: \"boom\"") + "}",
      "{\"reason\":\"canceled\"}",
      "{\"status\":\"done\"}",
  };
  session_->begin();
  for (std::size_t i = 0; i < datas.size(); ++i)
    r().events.append(RunEvent{runs[0], static_cast<std::int64_t>(i + 1), EventType::token,
                               datas[i], 1});
  session_->commit();
  const auto evs = r().events.list_after(runs[0], 0, 100);
  ASSERT_EQ(evs.size(), datas.size());
  for (std::size_t i = 0; i < datas.size(); ++i) EXPECT_EQ(evs[i].data, datas[i]) << i;
  // And it is jsonb, queryable as such.
  EXPECT_EQ(conn_->exec("SELECT data->>'status' FROM run_events WHERE seq = 1").text(0, 0),
            "running");
}

TEST_F(PostgresFixture, TimestampsKeepTheirMilliseconds) {
  const std::vector<domain::Timestamp> values = {0,          1,          999,
                                                 1000,       1001,       1763980800123,
                                                 1763980800999, 4102444800999};
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto u = r().users.insert("ts-" + std::to_string(i), values[i]);
    EXPECT_EQ(r().users.find(u.id)->created_at, values[i]);
  }
  const auto runs = make_runs(1);
  EXPECT_TRUE(r().runs.mark_running(runs[0], 1763980800123));
  EXPECT_TRUE(r().runs.finish(runs[0], RunStatus::done, 1763980800456, std::nullopt));
  const auto run = r().runs.find(runs[0]);
  EXPECT_EQ(run->started_at, std::optional<std::int64_t>(1763980800123));
  EXPECT_EQ(run->finished_at, std::optional<std::int64_t>(1763980800456));
}

TEST_F(PostgresFixture, IdsThatAreNotUuidsFindNothing) {
  make_runs(1);
  EXPECT_FALSE(r().threads.find("nope"));
  EXPECT_FALSE(r().runs.find("nope"));
  EXPECT_FALSE(r().threads.remove("nope"));
  EXPECT_FALSE(r().runs.mark_running("nope", 1));
  EXPECT_FALSE(r().runs.finish("nope", RunStatus::done, 1, std::nullopt));
  EXPECT_TRUE(r().runs.list_by_thread("nope").empty());
  EXPECT_TRUE(r().messages.list_by_thread("nope").empty());
  EXPECT_TRUE(r().events.list_after("nope", 0, 10).empty());
  EXPECT_EQ(r().events.last_seq("nope"), 0);
  EXPECT_FALSE(r().idempotency.find("nope", "k"));
  const auto u = r().users.find_by_name("u-1");
  ASSERT_TRUE(u);
  EXPECT_TRUE(r().threads.list_by_user(u->id, std::string("nope"), 10).empty());
}

// Every statement of a request path can be answered from an index: with sequential scans
// priced out, no plan falls back to one (on tables this small the planner would otherwise
// prefer them).
TEST_F(PostgresFixture, EveryQueryHasAnIndex) {
  make_runs(3);
  conn_->exec("ANALYZE");
  conn_->exec("SET enable_seqscan = off");
  const std::string u = "'" + uuid_n(1) + "'";
  struct Case {
    const char* sql;
    std::vector<std::string> args;
  };
  const std::vector<Case> cases = {
      {sql::kFindUser, {"'1'"}},
      {sql::kFindUserByName, {"'u-3'"}},
      {sql::kFindThread, {u}},
      {sql::kListThreads, {"'1'", "'50'"}},
      {sql::kListThreadsBefore, {"'1'", "'50'", u}},
      {sql::kDeleteThread, {u}},
      {sql::kListMessages, {u}},
      {sql::kFindRun, {u}},
      {sql::kListRunsByThread, {u}},
      {sql::kListRunsByStatus, {"'queued'"}},
      {sql::kMarkRunning, {u, "'1'"}},
      {sql::kFinishRun, {u, "'done'", "'1'", "NULL"}},
      {sql::kListEventsAfter, {u, "'0'", "'1000'"}},
      {sql::kLastSeq, {u}},
      {sql::kFindIdempotency, {u, "'k'"}},
      {sql::kFindDelivery, {u}},
      {sql::kClaimDeliveries, {"'1'", "'2'", "'16'"}},
      {sql::kRecordDeliveryFailure, {u, "'1'", "'e'", "'0'"}},
      {sql::kDeleteDelivery, {u}},
  };
  int n = 0;
  for (const auto& c : cases) {
    const std::string name = "explain_" + std::to_string(++n);
    std::string types;
    std::string args;
    for (std::size_t i = 0; i < c.args.size(); ++i) {
      types += (i ? ",text" : "text");
      args += (i ? "," : "") + c.args[i];
    }
    conn_->exec(("PREPARE " + name + "(" + types + ") AS " + c.sql).c_str());
    const auto plan = conn_->exec(("EXPLAIN EXECUTE " + name + "(" + args + ")").c_str());
    std::string text;
    for (int i = 0; i < plan.rows(); ++i) text += plan.text(i, 0) + "\n";
    EXPECT_EQ(text.find("Seq Scan"), std::string::npos) << c.sql << "\n" << text;
  }
}

// -------------------------------------------------------------------------------- database

class PostgresDatabaseTest : public PostgresFixture {
 protected:
  std::unique_ptr<PgDatabase> open(const std::string& app_name = "chatbot-test", int readers = 2) {
    PgOptions o;
    o.connect = schema_.connect(app_name);
    o.readers = readers;
    return std::make_unique<PgDatabase>(o);
  }
  testkit::IoRunner io_{2};
};

TEST_F(PostgresDatabaseTest, GroupCommitRunsHooksAfterCommitThenResumesCallers) {
  const auto runs = make_runs(50);
  auto db = open();
  constexpr int kPerRun = 8;
  std::atomic<int> hooks{0};
  std::vector<std::future<void>> fs;
  for (const auto& id : runs)
    fs.push_back(boost::asio::co_spawn(
        boost::asio::make_strand(io_.io()),
        [&, id]() -> app::Task<void> {
          for (int k = 1; k <= kPerRun; ++k)
            co_await db->write([&, k](app::WriteTx& tx) {
              tx.repos().events.append(RunEvent{id, k, EventType::token, "{\"text\":\"x\"}", 1});
              tx.after_commit([&] { ++hooks; });
            });
        },
        boost::asio::use_future));
  for (auto& f : fs) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    f.get();
  }
  EXPECT_EQ(hooks.load(), 50 * kPerRun);
  EXPECT_EQ(count("SELECT count(*) FROM run_events"), 50 * kPerRun);
  const auto st = db->stats();
  EXPECT_EQ(st.write_jobs, 50u * kPerRun);
  EXPECT_LE(st.batches, st.write_jobs);
  EXPECT_EQ(st.errors, 0u);
  // Reads see what the writes committed.
  const auto last = testkit::run_sync(
      io_.io(), db->read([&](domain::Repositories& rr) { return rr.events.last_seq(runs[7]); }));
  EXPECT_EQ(last, kPerRun);
}

TEST_F(PostgresDatabaseTest, AFailingJobFailsAloneAndTheOthersCommit) {
  const auto runs = make_runs(20);
  r().events.append(RunEvent{runs[0], 1, EventType::state, "{}", 1});
  session_->flush();
  auto db = open();
  std::vector<std::future<void>> fs;
  for (std::size_t i = 0; i < runs.size(); ++i)
    fs.push_back(boost::asio::co_spawn(
        boost::asio::make_strand(io_.io()),
        [&, i]() -> app::Task<void> {
          co_await db->write([&, i](app::WriteTx& tx) {
            // runs[0] gets seq 1 again: a duplicate.
            tx.repos().events.append(RunEvent{runs[i], 1, EventType::token, "{}", 1});
          });
        },
        boost::asio::use_future));
  int failed = 0;
  for (std::size_t i = 0; i < fs.size(); ++i) {
    ASSERT_EQ(fs[i].wait_for(std::chrono::seconds(30)), std::future_status::ready);
    try {
      fs[i].get();
    } catch (const PgError& e) {
      ++failed;
      EXPECT_EQ(i, 0u) << e.what();
    }
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(count("SELECT count(*) FROM run_events"), 20);
}

TEST_F(PostgresDatabaseTest, ReconnectsAfterItsConnectionsAreKilled) {
  const auto runs = make_runs(1);
  const std::string app = "chatbot-test-" + schema_.name();
  auto db = open(app, 1);
  auto append = [&](int seq) {
    testkit::run_sync(io_.io(), db->write([&, seq](app::WriteTx& tx) {
      tx.repos().events.append(RunEvent{runs[0], seq, EventType::token, "{}", 1});
    }));
  };
  auto last = [&] {
    return testkit::run_sync(io_.io(), db->read([&](domain::Repositories& rr) {
      return rr.events.last_seq(runs[0]);
    }));
  };
  append(1);
  EXPECT_EQ(last(), 1);
  const auto killed = conn_->exec(("SELECT count(pg_terminate_backend(pid)) FROM "
                                   "pg_stat_activity WHERE application_name = '" + app + "'")
                                      .c_str());
  EXPECT_EQ(killed.int64(0, 0), 2);  // the writer and the reader
  // Wait for the backends to be gone and their goodbyes to arrive. (A batch sent at the very
  // moment its connection dies fails instead: its COMMIT may have happened.)
  for (int i = 0; i < 100; ++i) {
    if (conn_->exec(("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app +
                     "'").c_str())
            .int64(0, 0) == 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Their connections went stale while idle: the next jobs notice, reconnect and run.
  append(2);
  EXPECT_EQ(last(), 2);
  EXPECT_GE(db->stats().reconnects, 2u);
}

TEST(PostgresDatabaseOpen, AnUnreachableServerFailsFast) {
  PgOptions o;
  o.connect.url = "postgresql://chatbot:chatbot@127.0.0.1:1/chatbot";
  o.connect.connect_timeout_s = 2;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    PgDatabase db(o);
    ADD_FAILURE() << "connected to nothing";
  } catch (const PgError& e) {
    EXPECT_TRUE(e.connection_lost);
    EXPECT_EQ(std::string(e.what()).find("chatbot:chatbot"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

}  // namespace
}  // namespace chat::infra::pg
