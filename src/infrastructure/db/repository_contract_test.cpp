// The repository contract: what every backend's repositories must do, method by method
// (domain/repositories.hpp). Backends join with CHAT_REPOSITORY_CONTRACT in their own test
// file; see testkit/repository_contract.hpp.

#include "testkit/repository_contract.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace chat::testkit {
namespace {

using domain::EventType;
using domain::Message;
using domain::Role;
using domain::Run;
using domain::RunEvent;
using domain::RunStatus;
using domain::Thread;

std::vector<std::string> thread_ids(const std::vector<Thread>& v) {
  std::vector<std::string> out;
  for (const auto& t : v) out.push_back(t.id);
  return out;
}
std::vector<std::string> run_ids(const std::vector<Run>& v) {
  std::vector<std::string> out;
  for (const auto& r : v) out.push_back(r.id);
  return out;
}
std::vector<std::string> message_ids(const std::vector<Message>& v) {
  std::vector<std::string> out;
  for (const auto& m : v) out.push_back(m.id);
  return out;
}
std::vector<std::int64_t> seqs(const std::vector<RunEvent>& v) {
  std::vector<std::int64_t> out;
  for (const auto& e : v) out.push_back(e.seq);
  return out;
}
using Ids = std::vector<std::string>;
using Seqs = std::vector<std::int64_t>;

// ------------------------------------------------------------------------------------ users

TEST_P(RepositoryContract, UserInsertAssignsIncreasingIdsAndFindsByIdAndName) {
  const auto a = add_user("alice", kT0);
  const auto b = add_user("Zo\xC3\xAB \xE2\x9C\x93", kT0 + 1);
  EXPECT_GT(a.id, 0);
  EXPECT_GT(b.id, a.id);
  EXPECT_EQ(a.name, "alice");
  EXPECT_EQ(a.created_at, kT0);

  const auto fa = repos().users.find(a.id);
  ASSERT_TRUE(fa.has_value());
  EXPECT_EQ(fa->id, a.id);
  EXPECT_EQ(fa->name, "alice");
  EXPECT_EQ(fa->created_at, kT0);

  const auto fb = repos().users.find_by_name("Zo\xC3\xAB \xE2\x9C\x93");
  ASSERT_TRUE(fb.has_value());
  EXPECT_EQ(fb->id, b.id);
  EXPECT_EQ(fb->created_at, kT0 + 1);
}

TEST_P(RepositoryContract, UserFindOfUnknownGivesNothing) {
  const auto a = add_user("alice");
  EXPECT_FALSE(repos().users.find(a.id + 1000).has_value());
  EXPECT_FALSE(repos().users.find(0).has_value());
  EXPECT_FALSE(repos().users.find(-1).has_value());
  EXPECT_FALSE(repos().users.find_by_name("bob").has_value());
  EXPECT_FALSE(repos().users.find_by_name("alice ").has_value());
  EXPECT_FALSE(repos().users.find_by_name("").has_value());
}

TEST_P(RepositoryContract, UserDuplicateNameThrowsAndKeepsTheFirst) {
  const auto a = add_user("alice");
  EXPECT_TRUE(throws([&] {
    repos().users.insert("alice", kT0 + 5);
    repos().users.find_by_name("alice");
  }));
  const auto f = repos().users.find_by_name("alice");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->id, a.id);
  EXPECT_EQ(f->created_at, kT0);
  // The store is still usable.
  EXPECT_GT(add_user("bob").id, a.id);
}

// ---------------------------------------------------------------------------------- threads

TEST_P(RepositoryContract, ThreadInsertAndFindKeepEveryField) {
  const auto u = add_user("alice");
  const auto untitled = add_thread(u.id, kT0 + 1);
  const auto empty = add_thread(u.id, kT0 + 2, std::string());
  const auto titled = add_thread(u.id, kT0 + 3, std::string("Trip \"2026\" \xE2\x9C\x93"));

  const auto f1 = repos().threads.find(untitled.id);
  ASSERT_TRUE(f1.has_value());
  EXPECT_EQ(f1->id, untitled.id);
  EXPECT_EQ(f1->user_id, u.id);
  EXPECT_FALSE(f1->title.has_value());
  EXPECT_EQ(f1->created_at, kT0 + 1);

  const auto f2 = repos().threads.find(empty.id);
  ASSERT_TRUE(f2.has_value());
  EXPECT_EQ(f2->title, std::optional<std::string>(""));  // empty is not null

  const auto f3 = repos().threads.find(titled.id);
  ASSERT_TRUE(f3.has_value());
  EXPECT_EQ(f3->title, std::optional<std::string>("Trip \"2026\" \xE2\x9C\x93"));
  EXPECT_EQ(f3->created_at, kT0 + 3);

  EXPECT_FALSE(repos().threads.find(new_id()).has_value());
}

TEST_P(RepositoryContract, ThreadInsertForUnknownUserThrows) {
  const auto u = add_user("alice");
  const Thread t{new_id(), u.id + 1000, std::nullopt, kT0};
  EXPECT_TRUE(throws([&] {
    repos().threads.insert(t);
    repos().threads.find(t.id);
  }));
  EXPECT_FALSE(repos().threads.find(t.id).has_value());
}

TEST_P(RepositoryContract, ThreadDuplicateIdThrowsAndKeepsTheFirst) {
  const auto u = add_user("alice");
  const auto v = add_user("bob");
  const auto t = add_thread(u.id, kT0, std::string("first"));
  EXPECT_TRUE(throws([&] {
    repos().threads.insert(Thread{t.id, v.id, std::string("second"), kT0 + 1});
    repos().threads.find(t.id);
  }));
  const auto f = repos().threads.find(t.id);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->user_id, u.id);
  EXPECT_EQ(f->title, std::optional<std::string>("first"));
}

TEST_P(RepositoryContract, ThreadListIsNewestFirstWithAnExclusiveBeforeCursor) {
  const auto u = add_user("alice");
  const auto other = add_user("bob");
  Ids ids;  // oldest first
  for (int i = 0; i < 5; ++i) {
    ids.push_back(add_thread(u.id, kT0 + i).id);
    add_thread(other.id, kT0 + i);  // interleaved threads of someone else
  }
  auto& threads = repos().threads;
  EXPECT_EQ(thread_ids(threads.list_by_user(u.id, std::nullopt, 10)),
            (Ids{ids[4], ids[3], ids[2], ids[1], ids[0]}));
  EXPECT_EQ(thread_ids(threads.list_by_user(u.id, std::nullopt, 2)), (Ids{ids[4], ids[3]}));
  EXPECT_EQ(thread_ids(threads.list_by_user(u.id, ids[3], 2)), (Ids{ids[2], ids[1]}));
  EXPECT_EQ(thread_ids(threads.list_by_user(u.id, ids[1], 2)), (Ids{ids[0]}));
  EXPECT_TRUE(threads.list_by_user(u.id, ids[0], 10).empty());
  EXPECT_EQ(thread_ids(threads.list_by_user(u.id, ids[4], 1)), (Ids{ids[3]}));

  const auto listed = threads.list_by_user(u.id, std::nullopt, 1);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].user_id, u.id);
  EXPECT_EQ(listed[0].created_at, kT0 + 4);
}

TEST_P(RepositoryContract, ThreadListKeepsCreationOrderWithinOneMillisecond) {
  const auto u = add_user("alice");
  Ids ids;
  for (int i = 0; i < 4; ++i) ids.push_back(add_thread(u.id, kT0).id);  // same created_at
  EXPECT_EQ(thread_ids(repos().threads.list_by_user(u.id, std::nullopt, 10)),
            (Ids{ids[3], ids[2], ids[1], ids[0]}));
  // Paging through them loses and repeats nothing.
  EXPECT_EQ(thread_ids(repos().threads.list_by_user(u.id, ids[2], 10)), (Ids{ids[1], ids[0]}));
}

TEST_P(RepositoryContract, ThreadListOfUnknownUserOrCursorIsEmpty) {
  const auto u = add_user("alice");
  const auto other = add_user("bob");
  add_thread(u.id);
  const auto others = add_thread(other.id);
  EXPECT_TRUE(repos().threads.list_by_user(u.id + 1000, std::nullopt, 10).empty());
  EXPECT_TRUE(repos().threads.list_by_user(other.id + 1000, std::nullopt, 10).empty());
  // A cursor that is not one of this user's threads gives nothing.
  EXPECT_TRUE(repos().threads.list_by_user(u.id, new_id(), 10).empty());
  EXPECT_TRUE(repos().threads.list_by_user(u.id, others.id, 10).empty());
  EXPECT_TRUE(repos().threads.list_by_user(u.id, std::nullopt, 10).size() == 1u);
}

TEST_P(RepositoryContract, ThreadRemoveCascadesToMessagesRunsEventsAndKeys) {
  const auto u = add_user("alice");
  const auto gone = add_thread(u.id, kT0);
  const auto kept = add_thread(u.id, kT0 + 1);
  const auto r1 = add_run(gone.id, kT0 + 2);
  const auto r2 = add_run(gone.id, kT0 + 3);
  const auto rk = add_run(kept.id, kT0 + 4);
  for (const auto* r : {&r1, &r2, &rk}) {
    add_event(r->id, 1, EventType::state, R"({"status":"running"})");
    add_event(r->id, 2);
  }
  ASSERT_TRUE(repos().runs.mark_running(r1.id, kT0 + 5));
  repos().idempotency.insert(gone.id, "key", "response", kT0);
  repos().idempotency.insert(kept.id, "key", "kept response", kT0);

  EXPECT_TRUE(repos().threads.remove(gone.id));

  EXPECT_FALSE(repos().threads.find(gone.id).has_value());
  EXPECT_TRUE(repos().messages.list_by_thread(gone.id).empty());
  EXPECT_TRUE(repos().runs.list_by_thread(gone.id).empty());
  for (const auto* r : {&r1, &r2}) {
    EXPECT_FALSE(repos().runs.find(r->id).has_value());
    EXPECT_TRUE(repos().events.list_after(r->id, 0, 100).empty());
    EXPECT_EQ(repos().events.last_seq(r->id), 0);
  }
  EXPECT_TRUE(repos().runs.list_by_status(RunStatus::running).empty());
  EXPECT_EQ(run_ids(repos().runs.list_by_status(RunStatus::queued)), (Ids{rk.id}));
  EXPECT_FALSE(repos().idempotency.find(gone.id, "key").has_value());

  // Everything else is untouched.
  EXPECT_TRUE(repos().users.find(u.id).has_value());
  EXPECT_TRUE(repos().threads.find(kept.id).has_value());
  EXPECT_EQ(repos().messages.list_by_thread(kept.id).size(), 1u);
  EXPECT_EQ(seqs(repos().events.list_after(rk.id, 0, 100)), (Seqs{1, 2}));
  EXPECT_EQ(repos().idempotency.find(kept.id, "key"), std::optional<std::string>("kept response"));
  EXPECT_EQ(thread_ids(repos().threads.list_by_user(u.id, std::nullopt, 10)), (Ids{kept.id}));

  // A second remove, or one of a thread that never was, finds nothing.
  EXPECT_FALSE(repos().threads.remove(gone.id));
  EXPECT_FALSE(repos().threads.remove(new_id()));
}

// --------------------------------------------------------------------------------- messages

TEST_P(RepositoryContract, MessageInsertAndListKeepEveryField) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const std::string content = "say \"hi\" \\ \n\ttab \xE2\x9C\x93 \xF0\x9F\x98\x80 'quote'";
  const auto r = add_run(t.id, kT0 + 1, content);
  const Message reply{new_id(), t.id, Role::assistant, "", kT0 + 2, r.id};  // empty is allowed
  repos().messages.insert(reply);

  const auto msgs = repos().messages.list_by_thread(t.id);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].id, r.message_id);
  EXPECT_EQ(msgs[0].thread_id, t.id);
  EXPECT_EQ(msgs[0].role, Role::user);
  EXPECT_EQ(msgs[0].content, content);
  EXPECT_EQ(msgs[0].created_at, kT0 + 1);
  EXPECT_EQ(msgs[0].run_id, std::optional<std::string>(r.id));
  EXPECT_EQ(msgs[1].id, reply.id);
  EXPECT_EQ(msgs[1].role, Role::assistant);
  EXPECT_EQ(msgs[1].content, "");
  EXPECT_EQ(msgs[1].created_at, kT0 + 2);
  EXPECT_EQ(msgs[1].run_id, std::optional<std::string>(r.id));

  EXPECT_TRUE(repos().messages.list_by_thread(new_id()).empty());
}

TEST_P(RepositoryContract, MessagesListInConversationOrder) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto other = add_thread(u.id);
  // Two runs; the second run's reply is stored before the first run's reply.
  const auto r1 = add_run(t.id, kT0 + 1, "one");
  const auto r2 = add_run(t.id, kT0 + 2, "two");
  add_run(other.id, kT0 + 3, "elsewhere");
  const Message a2{new_id(), t.id, Role::assistant, "reply two", kT0 + 4, r2.id};
  const Message a1{new_id(), t.id, Role::assistant, "reply one", kT0 + 5, r1.id};
  repos().messages.insert(a2);
  repos().messages.insert(a1);

  EXPECT_EQ(message_ids(repos().messages.list_by_thread(t.id)),
            (Ids{r1.message_id, a1.id, r2.message_id, a2.id}));
}

TEST_P(RepositoryContract, MessageInsertForUnknownThreadThrows) {
  const Message m{new_id(), new_id(), Role::user, "hi", kT0, std::nullopt};
  EXPECT_TRUE(throws([&] {
    repos().messages.insert(m);
    repos().messages.list_by_thread(m.thread_id);
  }));
  EXPECT_TRUE(repos().messages.list_by_thread(m.thread_id).empty());
}

// ------------------------------------------------------------------------------------- runs

TEST_P(RepositoryContract, RunInsertAndFindKeepEveryField) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id, kT0 + 7);
  const auto f = repos().runs.find(r.id);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->id, r.id);
  EXPECT_EQ(f->thread_id, t.id);
  EXPECT_EQ(f->message_id, r.message_id);
  EXPECT_EQ(f->status, RunStatus::queued);
  EXPECT_EQ(f->created_at, kT0 + 7);
  EXPECT_FALSE(f->started_at.has_value());
  EXPECT_FALSE(f->finished_at.has_value());
  EXPECT_FALSE(f->error.has_value());
  EXPECT_EQ(f->last_seq, 0);

  EXPECT_FALSE(repos().runs.find(new_id()).has_value());

  // A run created already running (its thread was idle) keeps its status and start.
  domain::Run s = r;
  s.id = new_id();
  s.status = RunStatus::running;
  s.started_at = kT0 + 8;
  repos().runs.insert(s);
  const auto g = repos().runs.find(s.id);
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->status, RunStatus::running);
  EXPECT_EQ(g->started_at, std::optional<domain::Timestamp>(kT0 + 8));
  EXPECT_FALSE(repos().runs.mark_running(s.id, kT0 + 9));  // not queued
}

TEST_P(RepositoryContract, RunInsertForUnknownThreadThrows) {
  domain::Run r;
  r.id = new_id();
  r.thread_id = new_id();
  r.message_id = new_id();
  r.created_at = kT0;
  EXPECT_TRUE(throws([&] {
    repos().runs.insert(r);
    repos().runs.find(r.id);
  }));
  EXPECT_FALSE(repos().runs.find(r.id).has_value());
}

TEST_P(RepositoryContract, RunListByThreadIsOldestFirstWithLastSeq) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto other = add_thread(u.id);
  const auto r1 = add_run(t.id, kT0 + 1);
  add_run(other.id, kT0 + 2);
  const auto r2 = add_run(t.id, kT0 + 3);
  const auto r3 = add_run(t.id, kT0 + 3);  // same millisecond: creation order still holds
  for (std::int64_t s = 1; s <= 3; ++s) add_event(r2.id, s);
  add_event(r1.id, 1);

  const auto runs = repos().runs.list_by_thread(t.id);
  EXPECT_EQ(run_ids(runs), (Ids{r1.id, r2.id, r3.id}));
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].last_seq, 1);
  EXPECT_EQ(runs[1].last_seq, 3);
  EXPECT_EQ(runs[2].last_seq, 0);
  EXPECT_EQ(runs[1].message_id, r2.message_id);
  EXPECT_EQ(runs[1].created_at, kT0 + 3);
  EXPECT_EQ(repos().runs.find(r2.id)->last_seq, 3);

  EXPECT_TRUE(repos().runs.list_by_thread(new_id()).empty());
}

TEST_P(RepositoryContract, RunListByStatusSpansThreadsInCreationOrder) {
  const auto u = add_user("alice");
  const auto a = add_thread(u.id);
  const auto b = add_thread(u.id);
  const auto a1 = add_run(a.id, kT0 + 1);
  const auto b1 = add_run(b.id, kT0 + 2);
  const auto a2 = add_run(a.id, kT0 + 3);
  const auto b2 = add_run(b.id, kT0 + 3);
  const auto a3 = add_run(a.id, kT0 + 4);
  ASSERT_TRUE(repos().runs.mark_running(b1.id, kT0 + 10));
  ASSERT_TRUE(repos().runs.mark_running(a3.id, kT0 + 11));
  ASSERT_TRUE(repos().runs.finish(a2.id, RunStatus::canceled, kT0 + 12, std::nullopt));
  add_event(b1.id, 1);
  add_event(b1.id, 2);

  EXPECT_EQ(run_ids(repos().runs.list_by_status(RunStatus::queued)), (Ids{a1.id, b2.id}));
  const auto running = repos().runs.list_by_status(RunStatus::running);
  EXPECT_EQ(run_ids(running), (Ids{b1.id, a3.id}));
  ASSERT_EQ(running.size(), 2u);
  EXPECT_EQ(running[0].last_seq, 2);
  EXPECT_EQ(running[0].started_at, std::optional<domain::Timestamp>(kT0 + 10));
  EXPECT_EQ(run_ids(repos().runs.list_by_status(RunStatus::canceled)), (Ids{a2.id}));
  EXPECT_TRUE(repos().runs.list_by_status(RunStatus::done).empty());
  EXPECT_TRUE(repos().runs.list_by_status(RunStatus::error).empty());
}

TEST_P(RepositoryContract, MarkRunningOnlyFromQueued) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id, kT0);
  const auto canceled = add_run(t.id, kT0 + 1);

  EXPECT_TRUE(repos().runs.mark_running(r.id, kT0 + 10));
  auto f = repos().runs.find(r.id);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->status, RunStatus::running);
  EXPECT_EQ(f->started_at, std::optional<domain::Timestamp>(kT0 + 10));
  EXPECT_FALSE(f->finished_at.has_value());

  // Not again: the first start stands.
  EXPECT_FALSE(repos().runs.mark_running(r.id, kT0 + 20));
  EXPECT_EQ(repos().runs.find(r.id)->started_at, std::optional<domain::Timestamp>(kT0 + 10));

  // Not once it has ended, whether it ran or not.
  ASSERT_TRUE(repos().runs.finish(canceled.id, RunStatus::canceled, kT0 + 30, std::nullopt));
  EXPECT_FALSE(repos().runs.mark_running(canceled.id, kT0 + 31));
  EXPECT_EQ(repos().runs.find(canceled.id)->status, RunStatus::canceled);
  EXPECT_FALSE(repos().runs.find(canceled.id)->started_at.has_value());
  ASSERT_TRUE(repos().runs.finish(r.id, RunStatus::done, kT0 + 40, std::nullopt));
  EXPECT_FALSE(repos().runs.mark_running(r.id, kT0 + 41));
  EXPECT_EQ(repos().runs.find(r.id)->status, RunStatus::done);

  EXPECT_FALSE(repos().runs.mark_running(new_id(), kT0));
}

TEST_P(RepositoryContract, FinishOnlyFromQueuedOrRunning) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto queued = add_run(t.id, kT0);
  const auto running = add_run(t.id, kT0 + 1);
  const auto failing = add_run(t.id, kT0 + 2);
  ASSERT_TRUE(repos().runs.mark_running(running.id, kT0 + 3));
  ASSERT_TRUE(repos().runs.mark_running(failing.id, kT0 + 4));

  EXPECT_TRUE(repos().runs.finish(queued.id, RunStatus::canceled, kT0 + 10, std::nullopt));
  EXPECT_TRUE(repos().runs.finish(running.id, RunStatus::done, kT0 + 11, std::nullopt));
  const std::string why = "upstream said \"no\" \xE2\x9C\x97";
  EXPECT_TRUE(repos().runs.finish(failing.id, RunStatus::error, kT0 + 12, why));

  auto q = repos().runs.find(queued.id);
  EXPECT_EQ(q->status, RunStatus::canceled);
  EXPECT_EQ(q->finished_at, std::optional<domain::Timestamp>(kT0 + 10));
  EXPECT_FALSE(q->started_at.has_value());
  EXPECT_FALSE(q->error.has_value());
  auto d = repos().runs.find(running.id);
  EXPECT_EQ(d->status, RunStatus::done);
  EXPECT_EQ(d->started_at, std::optional<domain::Timestamp>(kT0 + 3));
  EXPECT_EQ(d->finished_at, std::optional<domain::Timestamp>(kT0 + 11));
  EXPECT_FALSE(d->error.has_value());
  auto e = repos().runs.find(failing.id);
  EXPECT_EQ(e->status, RunStatus::error);
  EXPECT_EQ(e->error, std::optional<std::string>(why));

  // A terminal run keeps its ending.
  for (const auto& id : {queued.id, running.id, failing.id}) {
    EXPECT_FALSE(repos().runs.finish(id, RunStatus::error, kT0 + 20, std::string("late")));
    EXPECT_FALSE(repos().runs.finish(id, RunStatus::done, kT0 + 21, std::nullopt));
  }
  EXPECT_EQ(repos().runs.find(queued.id)->status, RunStatus::canceled);
  EXPECT_EQ(repos().runs.find(running.id)->finished_at,
            std::optional<domain::Timestamp>(kT0 + 11));
  EXPECT_EQ(repos().runs.find(failing.id)->error, std::optional<std::string>(why));

  EXPECT_FALSE(repos().runs.finish(new_id(), RunStatus::done, kT0, std::nullopt));
}

// ----------------------------------------------------------------------------------- events

TEST_P(RepositoryContract, EventsListAfterIsAscendingAndLimited) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id);
  const auto other = add_run(t.id, kT0 + 1);
  for (std::int64_t s = 1; s <= 5; ++s) add_event(r.id, s);
  add_event(other.id, 2);  // another run's log, appended out of order
  add_event(other.id, 1);

  auto& ev = repos().events;
  EXPECT_EQ(seqs(ev.list_after(r.id, 0, 100)), (Seqs{1, 2, 3, 4, 5}));
  EXPECT_EQ(seqs(ev.list_after(r.id, 0, 2)), (Seqs{1, 2}));
  EXPECT_EQ(seqs(ev.list_after(r.id, 2, 2)), (Seqs{3, 4}));
  EXPECT_EQ(seqs(ev.list_after(r.id, 4, 2)), (Seqs{5}));
  EXPECT_TRUE(ev.list_after(r.id, 5, 10).empty());
  EXPECT_TRUE(ev.list_after(r.id, 1000, 10).empty());
  EXPECT_EQ(seqs(ev.list_after(r.id, -1, 10)), (Seqs{1, 2, 3, 4, 5}));
  EXPECT_EQ(seqs(ev.list_after(other.id, 0, 10)), (Seqs{1, 2}));
  EXPECT_TRUE(ev.list_after(new_id(), 0, 10).empty());

  EXPECT_EQ(ev.last_seq(r.id), 5);
  EXPECT_EQ(ev.last_seq(other.id), 2);
  EXPECT_EQ(repos().runs.find(r.id)->last_seq, 5);
}

TEST_P(RepositoryContract, EventsAppendedAllAtOnceKeepTheirOrderAndEveryField) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id);
  // Every statement size SQLite uses: 2 of 32 rows, 1 of 8, then 6 one by one.
  std::vector<std::shared_ptr<const RunEvent>> batch;
  for (std::int64_t s = 1; s <= 78; ++s)
    batch.push_back(std::make_shared<const RunEvent>(RunEvent{
        r.id, s, s % 7 == 0 ? EventType::tool_start : EventType::token,
        "{\"text\":\"n\xC3\xA9 " + std::to_string(s) + "\"}", kT0 + s}));
  repos().events.append_all(batch);
  repos().events.append_all({});

  const auto got = repos().events.list_after(r.id, 0, 1000);
  ASSERT_EQ(got.size(), batch.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].run_id, r.id);
    EXPECT_EQ(got[i].seq, batch[i]->seq);
    EXPECT_EQ(got[i].type, batch[i]->type);
    EXPECT_EQ(got[i].data, batch[i]->data);
    EXPECT_EQ(got[i].created_at, batch[i]->created_at);
  }
  EXPECT_EQ(repos().events.last_seq(r.id), 78);
}

TEST_P(RepositoryContract, EventsOfEveryTypeRoundTripByteForByte) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id);
  const std::vector<RunEvent> written{
      {r.id, 1, EventType::state, R"({"status":"running"})", kT0 + 1},
      {r.id, 2, EventType::tool_start, R"({"tool":"word_count","input":{"text":"a \"b\""}})",
       kT0 + 2},
      {r.id, 3, EventType::tool_end, R"({"tool":"word_count","output":{"words":2}})", kT0 + 3},
      {r.id, 4, EventType::token,
       "{\"text\":\"\xE2\x80\x9C" "caf\xC3\xA9 \\n\\t\\\\ \xF0\x9F\x98\x80\"}", kT0 + 4},
      {r.id, 5, EventType::final_, R"({"text":"hi","message_id":")" + new_id() + "\"}", kT0 + 5},
      {r.id, 6, EventType::error, R"({"error":"boom"})", kT0 + 6},
      {r.id, 7, EventType::canceled, R"({"reason":"canceled"})", kT0 + 7},
      {r.id, 8, EventType::done, R"({"status":"done"})", kT0 + 8},
  };
  for (const auto& e : written) repos().events.append(e);

  const auto got = repos().events.list_after(r.id, 0, 100);
  ASSERT_EQ(got.size(), written.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].run_id, written[i].run_id) << i;
    EXPECT_EQ(got[i].seq, written[i].seq) << i;
    EXPECT_EQ(got[i].type, written[i].type) << i;
    EXPECT_EQ(got[i].data, written[i].data) << i;
    EXPECT_EQ(got[i].created_at, written[i].created_at) << i;
  }
}

TEST_P(RepositoryContract, EventDuplicateSeqThrowsAndKeepsTheFirst) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id);
  add_event(r.id, 1, EventType::state, R"({"status":"running"})");
  add_event(r.id, 2, EventType::token, R"({"text":"first"})");
  EXPECT_TRUE(throws([&] {
    add_event(r.id, 2, EventType::token, R"({"text":"second"})");
    repos().events.last_seq(r.id);
  }));
  const auto got = repos().events.list_after(r.id, 0, 10);
  EXPECT_EQ(seqs(got), (Seqs{1, 2}));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].data, R"({"text":"first"})");
  // The same seq in another run is fine.
  const auto r2 = add_run(t.id, kT0 + 1);
  add_event(r2.id, 2);
  EXPECT_EQ(repos().events.last_seq(r2.id), 2);
}

TEST_P(RepositoryContract, EventForUnknownRunThrows) {
  const std::string run_id = new_id();
  EXPECT_TRUE(throws([&] {
    add_event(run_id, 1);
    repos().events.last_seq(run_id);
  }));
  EXPECT_TRUE(repos().events.list_after(run_id, 0, 10).empty());
}

TEST_P(RepositoryContract, LastSeqWithoutEventsIsZero) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id);
  EXPECT_EQ(repos().events.last_seq(r.id), 0);
  EXPECT_EQ(repos().events.last_seq(new_id()), 0);
  add_event(r.id, 1);
  EXPECT_EQ(repos().events.last_seq(r.id), 1);
}

// ------------------------------------------------------------------------------ idempotency

TEST_P(RepositoryContract, IdempotencyKeysArePerThread) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto t2 = add_thread(u.id);
  auto& idem = repos().idempotency;
  EXPECT_FALSE(idem.find(t.id, "key-1").has_value());

  const std::string response = new_id() + " " + new_id();
  idem.insert(t.id, "key-1", response, kT0);
  EXPECT_EQ(idem.find(t.id, "key-1"), std::optional<std::string>(response));
  EXPECT_FALSE(idem.find(t.id, "key-2").has_value());
  EXPECT_FALSE(idem.find(t.id, "KEY-1").has_value());
  EXPECT_FALSE(idem.find(t2.id, "key-1").has_value());

  idem.insert(t2.id, "key-1", "other", kT0);
  const std::string long_key(255, 'k');
  idem.insert(t.id, long_key, "long \xE2\x9C\x93", kT0);
  EXPECT_EQ(idem.find(t2.id, "key-1"), std::optional<std::string>("other"));
  EXPECT_EQ(idem.find(t.id, long_key), std::optional<std::string>("long \xE2\x9C\x93"));
  EXPECT_EQ(idem.find(t.id, "key-1"), std::optional<std::string>(response));
}

TEST_P(RepositoryContract, IdempotencyDuplicateKeyThrowsAndKeepsTheFirst) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  repos().idempotency.insert(t.id, "key", "first", kT0);
  EXPECT_TRUE(throws([&] {
    repos().idempotency.insert(t.id, "key", "second", kT0 + 1);
    repos().idempotency.find(t.id, "key");
  }));
  EXPECT_EQ(repos().idempotency.find(t.id, "key"), std::optional<std::string>("first"));
}

// ------------------------------------------------------------------- extensions (issue 10)

TEST_P(RepositoryContract, ApiKeyHashFindsItsUserOnly) {
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  repos().users.set_api_key_hash(a.id, std::string(64, 'a'));
  repos().users.set_api_key_hash(b.id, std::string(64, 'b'));
  EXPECT_EQ(repos().users.find_by_api_key_hash(std::string(64, 'a'))->id, a.id);
  EXPECT_EQ(repos().users.find_by_api_key_hash(std::string(64, 'b'))->id, b.id);
  EXPECT_FALSE(repos().users.find_by_api_key_hash(std::string(64, 'c')).has_value());
  EXPECT_FALSE(repos().users.find_by_api_key_hash("").has_value());
}

TEST_P(RepositoryContract, PruneDeletesEventsOfRunsEndedBeforeTheCutoffOnly) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto old_run = add_run(t.id, kT0);
  const auto young = add_run(t.id, kT0 + 1);
  const auto active = add_run(t.id, kT0 + 2);
  for (const auto& r : {old_run, young, active}) {
    ASSERT_TRUE(repos().runs.mark_running(r.id, kT0 + 3));
    add_event(r.id, 1);
    add_event(r.id, 2);
  }
  ASSERT_TRUE(repos().runs.finish(old_run.id, RunStatus::done, kT0 + 10, std::nullopt));
  ASSERT_TRUE(repos().runs.finish(young.id, RunStatus::done, kT0 + 1000, std::nullopt));

  EXPECT_EQ(repos().events.prune_ended_before(kT0 + 500), 1);
  auto o = repos().runs.find(old_run.id);
  EXPECT_TRUE(o->events_pruned);
  EXPECT_EQ(o->last_seq, 2);  // kept
  EXPECT_TRUE(repos().events.list_after(old_run.id, 0, 10).empty());
  EXPECT_EQ(repos().runs.list_by_thread(t.id)[0].last_seq, 2);
  EXPECT_TRUE(repos().runs.list_by_thread(t.id)[0].events_pruned);
  for (const auto& r : {young, active}) {
    EXPECT_FALSE(repos().runs.find(r.id)->events_pruned);
    EXPECT_EQ(repos().events.list_after(r.id, 0, 10).size(), 2u);
  }
  EXPECT_EQ(repos().events.prune_ended_before(kT0 + 500), 0);  // nothing twice
}

// ---------------------------------------------------------------------------------- webhooks

TEST_P(RepositoryContract, RunWebhookRoundTrips) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  domain::Run r;
  r.id = new_id();
  r.thread_id = t.id;
  r.message_id = new_id();
  r.created_at = kT0;
  r.webhook = "https://hooks.example.com/run?x=1";
  repos().runs.insert(r);
  EXPECT_EQ(repos().runs.find(r.id)->webhook, r.webhook);
  EXPECT_EQ(repos().runs.list_by_thread(t.id)[0].webhook, r.webhook);
  EXPECT_EQ(repos().runs.list_by_status(RunStatus::queued)[0].webhook, r.webhook);
  const auto plain = add_run(t.id, kT0 + 1);
  EXPECT_FALSE(repos().runs.find(plain.id)->webhook.has_value());
}

namespace {
domain::WebhookDelivery delivery(std::string id, std::string run_id, domain::Timestamp due) {
  domain::WebhookDelivery d;
  d.id = std::move(id);
  d.run_id = std::move(run_id);
  d.url = "http://127.0.0.1:9/hook";
  d.payload = R"({"type":"run.ended","run":{"run_id":"x"}})";
  d.next_attempt_at = due;
  d.created_at = 1'795'514'400'123;  // kT0
  return d;
}
}  // namespace

TEST_P(RepositoryContract, WebhookDeliveryInsertAndFindKeepEveryField) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id);
  auto d = delivery(new_id(), r.id, kT0 + 5);
  d.payload = "{\"text\":\"Zo\xC3\xAB \xE2\x9C\x93 \\\"q\\\"\"}";
  repos().webhooks.insert(d);
  const auto f = repos().webhooks.find(d.id);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->id, d.id);
  EXPECT_EQ(f->run_id, r.id);
  EXPECT_EQ(f->url, d.url);
  EXPECT_EQ(f->payload, d.payload);
  EXPECT_EQ(f->attempts, 0);
  EXPECT_EQ(f->next_attempt_at, kT0 + 5);
  EXPECT_FALSE(f->last_error.has_value());
  EXPECT_EQ(f->created_at, kT0);
  EXPECT_FALSE(f->failed);
  EXPECT_FALSE(repos().webhooks.find(new_id()).has_value());
}

TEST_P(RepositoryContract, WebhookDeliveryForUnknownRunThrows) {
  const auto d = delivery(new_id(), new_id(), kT0);
  EXPECT_TRUE(throws([&] {
    repos().webhooks.insert(d);
    repos().webhooks.find(d.id);
  }));
  EXPECT_FALSE(repos().webhooks.find(d.id).has_value());
}

TEST_P(RepositoryContract, WebhookClaimTakesDueDeliveriesOnceUntilTheLeaseEnds) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id);
  EXPECT_FALSE(repos().webhooks.next_due().has_value());
  EXPECT_TRUE(repos().webhooks.claim_due(kT0 + 1000, kT0 + 2000, 10).empty());
  const auto late = delivery(new_id(), r.id, kT0 + 30);
  const auto early = delivery(new_id(), r.id, kT0 + 10);
  const auto future = delivery(new_id(), r.id, kT0 + 5000);
  for (const auto& d : {late, early, future}) repos().webhooks.insert(d);
  EXPECT_EQ(repos().webhooks.next_due(), kT0 + 10);

  // At most `limit`, earliest first.
  auto got = repos().webhooks.claim_due(kT0 + 100, kT0 + 1100, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, early.id);
  EXPECT_EQ(got[0].attempts, 1);
  EXPECT_EQ(got[0].next_attempt_at, kT0 + 1100);
  EXPECT_EQ(got[0].payload, early.payload);
  EXPECT_EQ(repos().webhooks.next_due(), kT0 + 30);

  got = repos().webhooks.claim_due(kT0 + 100, kT0 + 1100, 10);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, late.id);
  EXPECT_TRUE(repos().webhooks.claim_due(kT0 + 100, kT0 + 1100, 10).empty());  // leased
  EXPECT_EQ(repos().webhooks.next_due(), kT0 + 1100);

  // The lease over (a crash mid-attempt): claimed again, one more attempt counted.
  got = repos().webhooks.claim_due(kT0 + 1100, kT0 + 2100, 10);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& d : got) EXPECT_EQ(d.attempts, 2);
  EXPECT_EQ(repos().webhooks.find(future.id)->attempts, 0);
}

TEST_P(RepositoryContract, WebhookFailuresRescheduleOrGiveUpAndDeliveredOnesGo) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto r = add_run(t.id);
  const auto a = delivery(new_id(), r.id, kT0);
  const auto b = delivery(new_id(), r.id, kT0);
  repos().webhooks.insert(a);
  repos().webhooks.insert(b);
  ASSERT_EQ(repos().webhooks.claim_due(kT0, kT0 + 10000, 10).size(), 2u);

  repos().webhooks.record_failure(a.id, kT0 + 200, "HTTP 500", false);
  auto fa = repos().webhooks.find(a.id);
  EXPECT_EQ(fa->next_attempt_at, kT0 + 200);
  EXPECT_EQ(fa->last_error, "HTTP 500");
  EXPECT_FALSE(fa->failed);
  EXPECT_EQ(fa->attempts, 1);
  EXPECT_EQ(repos().webhooks.next_due(), kT0 + 200);

  repos().webhooks.record_failure(b.id, kT0 + 100, "connection refused", true);
  auto fb = repos().webhooks.find(b.id);
  EXPECT_TRUE(fb->failed);
  EXPECT_EQ(fb->last_error, "connection refused");
  // A failed delivery is neither due nor claimed again.
  EXPECT_EQ(repos().webhooks.next_due(), kT0 + 200);
  const auto got = repos().webhooks.claim_due(kT0 + 100000, kT0 + 200000, 10);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, a.id);

  EXPECT_TRUE(repos().webhooks.remove(a.id));
  EXPECT_FALSE(repos().webhooks.remove(a.id));
  EXPECT_FALSE(repos().webhooks.find(a.id).has_value());
  EXPECT_FALSE(repos().webhooks.next_due().has_value());
}

TEST_P(RepositoryContract, WebhookDeliveriesGoWithTheirThread) {
  const auto u = add_user("alice");
  const auto t = add_thread(u.id);
  const auto other = add_thread(u.id);
  const auto r = add_run(t.id);
  const auto keep = add_run(other.id);
  const auto d = delivery(new_id(), r.id, kT0);
  const auto k = delivery(new_id(), keep.id, kT0 + 1);
  repos().webhooks.insert(d);
  repos().webhooks.insert(k);
  ASSERT_TRUE(repos().threads.remove(t.id));
  EXPECT_FALSE(repos().webhooks.find(d.id).has_value());
  EXPECT_TRUE(repos().webhooks.find(k.id).has_value());
  EXPECT_EQ(repos().webhooks.next_due(), kT0 + 1);
}

}  // namespace
}  // namespace chat::testkit
