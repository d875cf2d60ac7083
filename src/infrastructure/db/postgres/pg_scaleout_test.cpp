// Several instances on one PostgreSQL: claims with SKIP LOCKED keep per-thread order and one
// run per thread across connections, leases renew and lapse, a queued run is canceled only
// while queued, and each committed batch NOTIFYs once with a small payload. Suites named
// Postgres* need the test cluster (see pg_test_support.hpp).

#include <chrono>
#include <cstdio>
#include <thread>

#include <poll.h>

#include <gtest/gtest.h>

#include "pg_event_bus.hpp"
#include "pg_migrations.hpp"
#include "pg_repositories.hpp"
#include "pg_session.hpp"
#include "pg_test_support.hpp"

namespace chat::infra::pg {
namespace {

using domain::EventType;
using domain::RunEvent;
using domain::RunStatus;
using pgtest::ScratchSchema;

std::string uuid_of(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", n);
  return buf;
}

// One "instance": a connection, its session and repositories.
struct Instance {
  explicit Instance(const ConnectOptions& o) : conn(o), session(conn), repos(session) {}
  domain::Repositories& r() { return repos.repos(); }
  domain::RunLeaseRepository& leases() { return *r().leases; }
  Connection conn;
  Session session;
  PgRepositories repos;
};

class PostgresScaleout : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(schema_.ok());
    a_ = std::make_unique<Instance>(schema_.connect());
    migrate(a_->conn);
    b_ = std::make_unique<Instance>(schema_.connect());
    user_ = a_->r().users.insert("u", 1000).id;
  }
  std::string thread(int n) {
    a_->r().threads.insert(domain::Thread{uuid_of(n), user_, std::nullopt, 1000});
    return uuid_of(n);
  }
  std::string run(const std::string& thread_id, int n) {
    a_->r().runs.insert(domain::Run{uuid_of(n), thread_id, uuid_of(n + 50000), RunStatus::queued,
                                    1000 + n, std::nullopt, std::nullopt, std::nullopt, 0});
    return uuid_of(n);
  }
  std::optional<std::string> claim(Instance& i, const std::string& owner, std::int64_t lease = 10000) {
    auto r = i.leases().claim_next(owner, lease, 2000);
    if (!r) return std::nullopt;
    EXPECT_EQ(r->status, RunStatus::running);
    return r->id;
  }

  ScratchSchema schema_;
  std::unique_ptr<Instance> a_, b_;
  std::int64_t user_ = 0;
};

TEST_F(PostgresScaleout, ClaimsKeepThreadOrderAndOneRunPerThread) {
  const auto t1 = thread(1), t2 = thread(2);
  const auto a1 = run(t1, 101), b1 = run(t2, 201), a2 = run(t1, 102);
  EXPECT_EQ(claim(*a_, "A"), a1);
  EXPECT_EQ(claim(*b_, "B"), b1);
  EXPECT_EQ(claim(*a_, "A"), std::nullopt) << "a2 waits for a1";
  ASSERT_TRUE(a_->r().runs.finish(a1, RunStatus::done, 3000, std::nullopt));
  EXPECT_EQ(claim(*b_, "B"), a2);
  EXPECT_EQ(claim(*a_, "A"), std::nullopt);
}

TEST_F(PostgresScaleout, ConcurrentClaimsSkipLockedRowsAndNeverTakeAThreadsLaterRun) {
  const auto t1 = thread(1), t2 = thread(2);
  const auto a1 = run(t1, 101);
  run(t1, 102);
  const auto b1 = run(t2, 201);
  a_->session.begin();
  EXPECT_EQ(claim(*a_, "A"), a1);  // locked until A commits
  b_->session.begin();
  EXPECT_EQ(claim(*b_, "B"), b1) << "a1 is skipped, a2 must wait for a1";
  EXPECT_EQ(claim(*b_, "B"), std::nullopt);
  b_->session.commit();
  a_->session.commit();
  EXPECT_EQ(claim(*b_, "B"), std::nullopt) << "a1 runs: a2 still waits";
}

TEST_F(PostgresScaleout, LeasesRenewUntilTheyLapseThenAnyInstanceFinalizesOnce) {
  const auto t1 = thread(1);
  const auto a1 = run(t1, 101);
  a_->r().events.append(RunEvent{a1, 1, EventType::state, "{\"status\":\"running\"}", 2000});
  a_->session.flush();
  ASSERT_EQ(claim(*a_, "A", 300), a1);
  EXPECT_EQ(a_->leases().renew("A", 300), std::vector<std::string>{a1});
  EXPECT_TRUE(b_->leases().renew("B", 300).empty());
  EXPECT_TRUE(b_->leases().expire_lapsed(3000, "executor lost").empty()) << "still leased";
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const auto lapsed = b_->leases().expire_lapsed(3000, "executor lost");
  ASSERT_EQ(lapsed.size(), 1u);
  EXPECT_EQ(lapsed[0].id, a1);
  EXPECT_EQ(lapsed[0].last_seq, 1);
  EXPECT_TRUE(a_->leases().expire_lapsed(3000, "executor lost").empty()) << "exactly once";
  const auto now = a_->r().runs.find(a1);
  EXPECT_EQ(now->status, RunStatus::error);
  EXPECT_EQ(now->error, "executor lost");
  EXPECT_TRUE(a_->leases().renew("A", 300).empty()) << "the owner learns it lost the run";
  EXPECT_FALSE(a_->r().runs.finish(a1, RunStatus::done, 4000, std::nullopt));
}

TEST_F(PostgresScaleout, ReleasedLeasesLapseAtOnce) {
  const auto a1 = run(thread(1), 101);
  ASSERT_EQ(claim(*a_, "A"), a1);
  a_->leases().release("A");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(b_->leases().expire_lapsed(3000, "executor lost").size(), 1u);
}

TEST_F(PostgresScaleout, AQueuedRunIsCanceledOnlyWhileQueued) {
  const auto t1 = thread(1);
  const auto a1 = run(t1, 101), a2 = run(t1, 102);
  ASSERT_EQ(claim(*a_, "A"), a1);
  EXPECT_FALSE(b_->leases().cancel_queued(a1, 3000)) << "claimed meanwhile";
  EXPECT_EQ(a_->r().runs.find(a1)->status, RunStatus::running);
  EXPECT_TRUE(b_->leases().cancel_queued(a2, 3000));
  EXPECT_EQ(a_->r().runs.find(a2)->status, RunStatus::canceled);
}

// Waits up to 2 s for the next notification on `c`.
std::optional<Connection::Notification> next_notification(Connection& c) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    c.consume_input();
    if (auto n = c.next_notification()) return n;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{c.socket(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
}

TEST_F(PostgresScaleout, EachCommittedBatchNotifiesOnceWithASmallPayload) {
  Connection listener(schema_.connect());
  listener.exec("LISTEN chatbot_events");
  const auto t1 = thread(1);
  const auto r1 = run(t1, 101), r2 = run(t1, 102);
  a_->session.set_notify_instance("inst-A");
  a_->session.begin();
  for (int s = 1; s <= 3; ++s)
    a_->r().events.append(RunEvent{r1, s, EventType::token, "{\"text\":\"x\"}", 2000});
  a_->r().runs.find(r1);  // the events go out before this statement: still one NOTIFY
  a_->r().events.append(RunEvent{r2, 1, EventType::token, "{\"text\":\"y\"}", 2000});
  a_->session.commit();
  auto n = next_notification(listener);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->channel, "chatbot_events");
  EXPECT_EQ(n->payload, "inst-A|" + r1 + ":1:3," + r2 + ":1:1");
  std::string instance;
  bool all = true;
  std::vector<app::RemoteEventFeed::Change> changes;
  ASSERT_TRUE(PgEventBus::parse_events(n->payload, instance, all, changes));
  EXPECT_EQ(instance, "inst-A");
  EXPECT_FALSE(all);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].run_id, r1);
  EXPECT_EQ(changes[0].first_seq, 1);
  EXPECT_EQ(changes[0].last_seq, 3);
  EXPECT_FALSE(next_notification(listener)) << "one NOTIFY per batch";

  // A rolled-back batch announces nothing.
  a_->session.begin();
  a_->r().events.append(RunEvent{r2, 2, EventType::token, "{\"text\":\"y\"}", 2000});
  a_->session.rollback();
  EXPECT_FALSE(next_notification(listener));

  // A batch naming too many runs to list fits all the same: "*".
  std::vector<std::string> many;
  for (int i = 0; i < 300; ++i) many.push_back(run(t1, 1000 + i));
  a_->session.begin();
  for (const auto& id : many)
    a_->r().events.append(RunEvent{id, 1, EventType::token, "{\"text\":\"z\"}", 2000});
  a_->session.commit();
  n = next_notification(listener);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->payload, "inst-A|*");
  changes.clear();
  ASSERT_TRUE(PgEventBus::parse_events(n->payload, instance, all, changes));
  EXPECT_TRUE(all);
}

TEST_F(PostgresScaleout, ATransactionThatQueuesAWebhookNotifiesTheOthersOnCommitOnly) {
  Connection listener(schema_.connect());
  listener.exec("LISTEN chatbot_webhooks");
  const auto r1 = run(thread(1), 101);
  auto delivery = [&](int n) {
    return domain::WebhookDelivery{uuid_of(n), r1, "http://127.0.0.1:9/hook", "{}", 0, 1000,
                                   std::nullopt, 1000, false};
  };
  // One instance: no NOTIFY at all.
  a_->session.begin();
  a_->r().webhooks.insert(delivery(901));
  a_->session.commit();
  EXPECT_FALSE(next_notification(listener));

  a_->session.set_notify_instance("inst-A");
  a_->session.begin();
  a_->r().webhooks.insert(delivery(902));
  a_->r().webhooks.insert(delivery(903));
  a_->session.commit();
  auto n = next_notification(listener);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->channel, "chatbot_webhooks");
  EXPECT_EQ(n->payload, "inst-A");
  EXPECT_FALSE(next_notification(listener)) << "one NOTIFY per transaction";

  // Rolled back: nothing is pending, nothing is announced; nor by a later transaction that
  // queued none.
  a_->session.begin();
  a_->r().webhooks.insert(delivery(904));
  a_->session.rollback();
  a_->session.begin();
  a_->r().runs.find(r1);
  a_->session.commit();
  EXPECT_FALSE(next_notification(listener));
  EXPECT_FALSE(b_->r().webhooks.find(uuid_of(904)));
}

TEST(PgEventBusPayload, RejectsMalformedPayloads) {
  std::string instance;
  bool all = false;
  std::vector<app::RemoteEventFeed::Change> changes;
  EXPECT_FALSE(PgEventBus::parse_events("no-bar", instance, all, changes));
  EXPECT_FALSE(PgEventBus::parse_events("i|run:1", instance, all, changes));
  EXPECT_FALSE(PgEventBus::parse_events("i|run:x:2", instance, all, changes));
  EXPECT_FALSE(PgEventBus::parse_events("i|", instance, all, changes));
}

}  // namespace
}  // namespace chat::infra::pg
