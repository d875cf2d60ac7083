// RunScheduler (ordering, concurrency, removal, shutdown) and RunExecutor (engine failures,
// recovery), with the real executor driving a scripted engine on the in-memory database.

#include "application/run_scheduler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "application/run_executor.hpp"
#include "testkit/service_harness.hpp"

namespace chat::app {
namespace {

using domain::RunStatus;
using testkit::HarnessOptions;
using testkit::ServiceHarness;
using testkit::type_list;
using testkit::wait_until;
using namespace std::chrono_literals;

TEST(RunScheduler, RunsOfOneThreadRunOneAtATimeInCreationOrder) {
  ServiceHarness h;
  h.engine.hold = true;
  h.engine.order_db = &h.db();
  const auto t = h.make_thread();
  const auto u = h.make_thread();
  const auto r1 = h.post(t.id, "1").run_id;
  const auto r2 = h.post(t.id, "2").run_id;
  const auto r3 = h.post(t.id, "3").run_id;
  const auto other = h.post(u.id, "other").run_id;

  // Enqueue happens when the post commits: the state is known as soon as post() returns.
  EXPECT_EQ(h.scheduler().running(), 2u);  // r1 and the other thread's run
  EXPECT_EQ(h.scheduler().queued(), 2u);   // r2, r3 wait behind r1

  ASSERT_TRUE(wait_until([&] { return h.engine.was_started(r1); }));
  ASSERT_TRUE(wait_until([&] { return h.engine.was_started(other); }));
  EXPECT_FALSE(h.engine.was_started(r2));
  EXPECT_EQ(h.run(r2).status, RunStatus::queued);

  h.engine.release(r1);
  ASSERT_TRUE(wait_until([&] { return h.engine.was_started(r2); }));
  EXPECT_EQ(h.run(r1).status, RunStatus::done);
  EXPECT_FALSE(h.engine.was_started(r3));
  EXPECT_EQ(h.scheduler().queued(), 1u);

  h.engine.release(r2);
  ASSERT_TRUE(wait_until([&] { return h.engine.was_started(r3); }));
  h.engine.release_all();
  for (const auto& id : {r1, r2, r3, other}) ASSERT_TRUE(h.wait_terminal(id));
  ASSERT_TRUE(wait_until([&] { return h.scheduler().running() == 0; }));

  std::vector<std::string> of_t;
  for (const auto& id : h.engine.started())
    if (id != other) of_t.push_back(id);
  EXPECT_EQ(of_t, (std::vector<std::string>{r1, r2, r3}));
  EXPECT_TRUE(h.engine.violations().empty()) << h.engine.violations().front();
  EXPECT_EQ(h.scheduler().queued(), 0u);
}

TEST(RunScheduler, ManyRunsOfOneThreadKeepTheirOrderWithoutHolding) {
  ServiceHarness h;
  h.engine.order_db = &h.db();
  const auto t = h.make_thread();
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(h.post(t.id, "m" + std::to_string(i)).run_id);
  for (const auto& id : ids) ASSERT_TRUE(h.wait_terminal(id));
  EXPECT_EQ(h.engine.started(), ids);
  EXPECT_EQ(h.engine.max_active(), 1);
  const auto v = h.engine.violations();
  EXPECT_TRUE(v.empty()) << (v.empty() ? "" : v.front());
  // Each run saw the conversation up to its own message: every earlier turn with its reply.
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto hist = h.engine.history_of(ids[i]);
    ASSERT_EQ(hist.size(), 2 * i + 1) << "run " << i;
    for (std::size_t k = 0; k < i; ++k) {
      EXPECT_EQ(hist[2 * k].content, "m" + std::to_string(k));
      EXPECT_EQ(hist[2 * k + 1].role, domain::Role::assistant);
      EXPECT_EQ(hist[2 * k + 1].run_id, std::optional<std::string>(ids[k]));
    }
    EXPECT_EQ(hist.back().content, "m" + std::to_string(i));
  }
}

TEST(RunScheduler, ARunPostedToAnIdleThreadStartsInItsPostsTransaction) {
  HarnessOptions o;
  o.db = testkit::DbKind::flaky_memory;
  ServiceHarness h(o);
  h.engine.tokens = {};
  h.engine.hold = true;
  const auto t = h.make_thread();
  // Only the POST may write: a start of its own would fail (and be retried, leaving the run
  // queued), so a running run here was started by the POST's own commit.
  h.flaky_db()->fail_writes_after(1, 1000000, false);
  const auto a = h.post(t.id, "first");
  auto run = h.run(a.run_id);
  EXPECT_EQ(run.status, RunStatus::running);
  EXPECT_TRUE(run.started_at.has_value());
  EXPECT_EQ(type_list(h.events(a.run_id)), "state");
  EXPECT_EQ(h.events(a.run_id).at(0).data, R"({"status":"running"})");
  h.flaky_db()->fail_writes_after(0, 0, false);
  // The thread is busy now: the next run waits, queued, with no event yet.
  const auto b = h.post(t.id, "second");
  EXPECT_EQ(h.run(b.run_id).status, RunStatus::queued);
  EXPECT_EQ(h.run(b.run_id).last_seq, 0);
  ASSERT_TRUE(testkit::wait_until([&] { return h.engine.was_started(a.run_id); }, 3000ms));
  EXPECT_FALSE(h.engine.was_started(b.run_id));
  h.engine.release_all();
  ASSERT_TRUE(h.wait_terminal(a.run_id));
  ASSERT_TRUE(h.wait_terminal(b.run_id));
  EXPECT_EQ(h.run(a.run_id).status, RunStatus::done);
  EXPECT_EQ(h.run(b.run_id).status, RunStatus::done);
  EXPECT_EQ(type_list(h.events(b.run_id)).substr(0, 5), "state");  // started by the executor
}

TEST(RunScheduler, MaxConcurrentIsRespected) {
  HarnessOptions o;
  o.max_concurrent = 2;
  ServiceHarness h(o);
  h.engine.hold = true;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(h.post(h.make_thread().id, "go").run_id);

  EXPECT_EQ(h.scheduler().running(), 2u);
  EXPECT_EQ(h.scheduler().queued(), 3u);
  ASSERT_TRUE(wait_until([&] { return h.engine.active() == 2; }));
  EXPECT_EQ(h.engine.started().size(), 2u);

  h.engine.release_all();
  for (const auto& id : ids) ASSERT_TRUE(h.wait_terminal(id));
  ASSERT_TRUE(wait_until([&] { return h.scheduler().running() == 0; }));
  EXPECT_EQ(h.engine.max_active(), 2);
  const auto started = h.engine.started();
  EXPECT_EQ(std::set<std::string>(started.begin(), started.end()),
            std::set<std::string>(ids.begin(), ids.end()));
  EXPECT_EQ(started.size(), ids.size());
  EXPECT_EQ(h.scheduler().queued(), 0u);
}

TEST(RunScheduler, ZeroMaxConcurrentMeansOne) {
  HarnessOptions o;
  o.max_concurrent = 0;
  ServiceHarness h(o);
  h.engine.hold = true;
  const auto a = h.post(h.make_thread().id, "a").run_id;
  const auto b = h.post(h.make_thread().id, "b").run_id;
  EXPECT_EQ(h.scheduler().running(), 1u);
  EXPECT_EQ(h.scheduler().queued(), 1u);
  h.engine.release_all();
  ASSERT_TRUE(h.wait_terminal(a));
  ASSERT_TRUE(h.wait_terminal(b));
}

TEST(RunScheduler, RemoveQueuedDropsOnlyAQueuedRunOfThatThread) {
  HarnessOptions o;
  o.max_concurrent = 1;
  ServiceHarness h(o);
  h.engine.hold = true;
  const auto a = h.make_thread();
  const auto b = h.make_thread();
  const auto a1 = h.post(a.id, "a1").run_id;  // runs
  const auto b1 = h.post(b.id, "b1").run_id;  // waits for a slot
  const auto a2 = h.post(a.id, "a2").run_id;  // waits for a1
  ASSERT_EQ(h.scheduler().running(), 1u);
  ASSERT_EQ(h.scheduler().queued(), 2u);

  EXPECT_FALSE(h.scheduler().remove_queued(a.id, b1));  // wrong thread
  EXPECT_FALSE(h.scheduler().remove_queued(a.id, a1));  // running, not queued
  EXPECT_FALSE(h.scheduler().remove_queued("no-such-thread", b1));
  EXPECT_TRUE(h.scheduler().remove_queued(b.id, b1));
  EXPECT_FALSE(h.scheduler().remove_queued(b.id, b1));  // already gone
  EXPECT_EQ(h.scheduler().queued(), 1u);

  h.engine.release_all();
  ASSERT_TRUE(h.wait_terminal(a1));
  ASSERT_TRUE(h.wait_terminal(a2));
  ASSERT_TRUE(wait_until([&] { return h.scheduler().running() == 0; }));
  EXPECT_EQ(h.engine.started(), (std::vector<std::string>{a1, a2}));
  // The scheduler only forgets it; the database is the use case's business.
  EXPECT_EQ(h.run(b1).status, RunStatus::queued);
  EXPECT_EQ(h.scheduler().queued(), 0u);

  // A thread emptied by remove_queued takes new runs again.
  const auto b2 = h.post(b.id, "b2").run_id;
  ASSERT_TRUE(h.wait_terminal(b2));
}

TEST(RunScheduler, RequestCancelReachesOnlyRunsItExecutes) {
  ServiceHarness h;
  h.engine.hold = true;
  const auto r = h.post(h.make_thread().id, "x").run_id;
  ASSERT_TRUE(wait_until([&] { return h.engine.was_started(r); }));
  EXPECT_FALSE(h.scheduler().request_cancel("unknown-run"));
  EXPECT_TRUE(h.scheduler().request_cancel(r));
  ASSERT_TRUE(h.wait_terminal(r));
  EXPECT_EQ(h.run(r).status, RunStatus::canceled);
  ASSERT_TRUE(wait_until([&] { return h.scheduler().running() == 0; }));
  EXPECT_FALSE(h.scheduler().request_cancel(r));
}

TEST(RunScheduler, ShutdownCancelsRunningRunsAndStartsNoMore) {
  HarnessOptions o;
  o.max_concurrent = 1;
  ServiceHarness h(o);
  h.engine.hold = true;
  const auto t = h.make_thread();
  const auto r1 = h.post(t.id, "1").run_id;
  const auto r2 = h.post(t.id, "2").run_id;
  ASSERT_TRUE(wait_until([&] { return h.engine.was_started(r1); }));

  h.scheduler().shutdown();
  ASSERT_TRUE(h.wait_terminal(r1));
  EXPECT_EQ(h.run(r1).status, RunStatus::canceled);
  ASSERT_TRUE(wait_until([&] { return h.scheduler().running() == 0; }));
  EXPECT_EQ(h.run(r2).status, RunStatus::queued);
  EXPECT_FALSE(h.engine.was_started(r2));

  // Runs posted after shutdown are stored but not started.
  const auto r3 = h.post(t.id, "3").run_id;
  EXPECT_EQ(h.run(r3).status, RunStatus::queued);
  EXPECT_EQ(h.scheduler().running(), 0u);
}

// ---------------------------------------------------------------------------------------------
// RunExecutor

TEST(RunExecutor, EngineFailureEndsTheRunWithError) {
  ServiceHarness h;
  h.engine.tokens = {"partial"};
  h.engine.fail = "upstream said \"no\"";
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_terminal(p.run_id));
  const auto run = h.run(p.run_id);
  EXPECT_EQ(run.status, RunStatus::error);
  EXPECT_EQ(run.error, std::optional<std::string>("upstream said \"no\""));
  const auto events = h.events(p.run_id);
  EXPECT_EQ(type_list(events), "state,token,error,state,done");
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[2].data, R"({"error":"upstream said \"no\""})");
  EXPECT_EQ(events[3].data, R"({"status":"error"})");
  EXPECT_EQ(events[4].data, R"({"status":"error"})");
  // No reply is stored for a failed run.
  EXPECT_EQ(h.messages_of(t.id).size(), 1u);
}

TEST(RunExecutor, TokensAreSanitizedToValidUtf8) {
  ServiceHarness h;
  h.engine.tokens = {"a\xFF", "b\xC3"};
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_terminal(p.run_id));
  const auto events = h.events(p.run_id);
  ASSERT_EQ(type_list(events), "state,token,token,final,state,done");
  EXPECT_EQ(events[1].data, "{\"text\":\"a\xEF\xBF\xBD\"}");
  EXPECT_EQ(events[2].data, "{\"text\":\"b\xEF\xBF\xBD\"}");
  const auto msgs = h.messages_of(t.id);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].content, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
}

TEST(RunExecutor, EmptyTokensAreNotEvents) {
  ServiceHarness h;
  h.engine.tokens = {"", "x", ""};
  const auto p = h.post(h.make_thread().id, "hi");
  ASSERT_TRUE(h.wait_terminal(p.run_id));
  EXPECT_EQ(type_list(h.events(p.run_id)), "state,token,final,state,done");
}

TEST(RunExecutor, ManyFastTokensAreAllStoredInOrder) {
  ServiceHarness h;
  h.engine.tokens.clear();
  std::string expected;
  for (int i = 0; i < 3000; ++i) {  // more than the sink queues before it pushes back
    h.engine.tokens.push_back(std::to_string(i) + " ");
    expected += std::to_string(i) + " ";
  }
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "go");
  ASSERT_TRUE(h.wait_terminal(p.run_id, 10000ms));
  const auto run = h.run(p.run_id);
  EXPECT_EQ(run.status, RunStatus::done);
  const auto events = h.events(p.run_id);
  ASSERT_EQ(events.size(), 3000u + 4u);
  for (std::size_t i = 0; i < events.size(); ++i)
    ASSERT_EQ(events[i].seq, static_cast<std::int64_t>(i) + 1);
  EXPECT_EQ(events[1].data, R"({"text":"0 "})");
  EXPECT_EQ(events[3000].data, R"({"text":"2999 "})");
  const auto msgs = h.messages_of(t.id);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].content, expected);
}

TEST(RunExecutor, AFailedEventWriteEndsTheRunWithErrorAndNoGap) {
  HarnessOptions o;
  o.db = testkit::DbKind::flaky_memory;
  ServiceHarness h(o);
  h.engine.tokens = {"a"};
  h.engine.hold = true;
  h.engine.tokens_after = {"b", "c", "d"};
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_last_seq(p.run_id, 2));
  h.flaky_db()->fail_next_writes(1);  // the write of "b" (and whatever is queued with it)
  h.engine.release(p.run_id);
  ASSERT_TRUE(h.wait_terminal(p.run_id));

  const auto run = h.run(p.run_id);
  EXPECT_EQ(run.status, RunStatus::error);
  ASSERT_TRUE(run.error.has_value());
  EXPECT_NE(run.error->find("disk full"), std::string::npos) << *run.error;
  const auto events = h.events(p.run_id);
  for (std::size_t i = 0; i < events.size(); ++i)
    EXPECT_EQ(events[i].seq, static_cast<std::int64_t>(i) + 1);  // contiguous
  ASSERT_GE(events.size(), 5u);
  EXPECT_EQ(events[0].type, domain::EventType::state);
  EXPECT_EQ(events[1].data, R"({"text":"a"})");
  // Whatever tokens made it, the run ends with error, state(error), done.
  const std::string types = type_list(events);
  EXPECT_EQ(types.substr(types.size() - std::string("error,state,done").size()),
            "error,state,done")
      << types;
  EXPECT_EQ(events.back().data, R"({"status":"error"})");
  EXPECT_EQ(h.messages_of(t.id).size(), 1u);  // no reply for a failed run
}

// The database is away when a run should start: the start is retried until it answers (a run
// given up there stayed queued until the next start-up, its thread's later runs behind it).
TEST(RunExecutor, AStartTheDatabaseRefusesIsRetriedUntilItAnswers) {
  for (const bool committed : {false, true}) {
    SCOPED_TRACE(committed ? "the start committed but its answer was lost" : "the start failed");
    HarnessOptions o;
    o.db = testkit::DbKind::flaky_memory;
    ServiceHarness h(o);
    h.engine.tokens = {"a", "b"};
    h.engine.hold = true;
    const auto t = h.make_thread();
    // A run posted to an idle thread starts in its POST's transaction; one queued behind
    // another starts in a transaction of its own, the one that fails here.
    const auto first = h.post(t.id, "first");
    const auto p = h.post(t.id, "hi");
    ASSERT_TRUE(h.wait_last_seq(first.run_id, 3));  // state, a, b: stored
    // The first run's end goes in; the next two writes (the second run's start) fail.
    h.flaky_db()->fail_writes_after(1, 2, committed);
    h.engine.release(first.run_id);
    h.engine.release(p.run_id);
    ASSERT_TRUE(h.wait_terminal(first.run_id));
    ASSERT_TRUE(h.wait_terminal(p.run_id));
    ASSERT_EQ(h.run(first.run_id).status, RunStatus::done);
    const auto run = h.run(p.run_id);
    EXPECT_EQ(run.status, RunStatus::done);
    const auto events = h.events(p.run_id);
    for (std::size_t i = 0; i < events.size(); ++i)
      EXPECT_EQ(events[i].seq, static_cast<std::int64_t>(i) + 1);  // contiguous
    const std::string types = type_list(events);
    EXPECT_EQ(types.substr(0, std::string("state,token,token").size()), "state,token,token")
        << types;  // one `running` state, however many attempts
    EXPECT_EQ(types.substr(types.size() - std::string("state,done").size()), "state,done") << types;
    EXPECT_EQ(h.messages_of(t.id).size(), 4u);
  }
}

TEST(RunExecutor, RecoverFinalizesRunsLeftRunningAndListsQueuedOnes) {
  ServiceHarness h;
  h.scheduler().shutdown();  // nothing executes: the runs below stay as they are stored
  const auto t = h.make_thread();
  const auto lost = h.post(t.id, "lost");
  const auto waiting = h.post(t.id, "waiting");
  const auto other = h.post(h.make_thread().id, "other");
  // A dead process had started `lost` and written its first event.
  h.sync(h.db().write([&](WriteTx& tx) {
    tx.repos().runs.mark_running(lost.run_id, 5);
    tx.repos().events.append(
        domain::RunEvent{lost.run_id, 1, domain::EventType::state, R"({"status":"running"})", 5});
  }));

  auto queued = h.sync(h.executor().recover());
  EXPECT_EQ(queued, (std::vector<std::pair<std::string, std::string>>{
                        {t.id, waiting.run_id}, {other.thread_id, other.run_id}}));
  const auto run = h.run(lost.run_id);
  EXPECT_EQ(run.status, RunStatus::error);
  EXPECT_EQ(run.error, std::optional<std::string>("executor lost"));
  const auto events = h.events(lost.run_id);
  EXPECT_EQ(type_list(events), "state,error,state,done");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[1].seq, 2);
  EXPECT_EQ(events[1].data, R"({"error":"executor lost"})");
  EXPECT_EQ(events[3].seq, 4);
  const auto lines = h.log.lines();
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
    return l.rfind("warn:", 0) == 0 && l.find("executor lost") != std::string::npos;
  }));

  // Recovery is idempotent.
  auto again = h.sync(h.executor().recover());
  EXPECT_EQ(again.size(), 2u);
  EXPECT_EQ(h.events(lost.run_id).size(), 4u);
}

TEST(RunExecutor, TerminalEventsHaveContiguousSeqsAfterLastSeq) {
  const auto done = terminal_events("r", 7, RunStatus::done, "hi \"x\"", "m-1", "", 42);
  ASSERT_EQ(done.size(), 3u);
  EXPECT_EQ(done[0].seq, 8);
  EXPECT_EQ(done[0].type, domain::EventType::final_);
  EXPECT_EQ(done[0].data, R"({"text":"hi \"x\"","message_id":"m-1"})");
  EXPECT_EQ(done[1].seq, 9);
  EXPECT_EQ(done[1].data, R"({"status":"done"})");
  EXPECT_EQ(done[2].seq, 10);
  EXPECT_EQ(done[2].type, domain::EventType::done);
  for (const auto& e : done) {
    EXPECT_EQ(e.run_id, "r");
    EXPECT_EQ(e.created_at, 42);
  }
  const auto canceled = terminal_events("r", 0, RunStatus::canceled, "", "", "", 1);
  EXPECT_EQ(type_list(canceled), "canceled,state,done");
  EXPECT_EQ(canceled[0].seq, 1);
  const auto error = terminal_events("r", 2, RunStatus::error, "", "", "bad\nthing", 1);
  EXPECT_EQ(type_list(error), "error,state,done");
  EXPECT_EQ(error[0].data, R"({"error":"bad\nthing"})");
}

}  // namespace
}  // namespace chat::app
