// Use cases of ChatService on the in-memory database, with a real RunScheduler and
// RunExecutor driving a scripted engine.

#include "application/chat_service.hpp"

#include <gtest/gtest.h>

#include <string>

#include "testkit/service_harness.hpp"

namespace chat::app {
namespace {

using domain::ErrorCode;
using domain::EventType;
using domain::Role;
using domain::RunStatus;
using testkit::Collected;
using testkit::HarnessOptions;
using testkit::seq_range;
using testkit::ServiceHarness;
using testkit::SeqIds;
using testkit::type_list;
using testkit::wait_until;
using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

std::string repeat(const std::string& s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// ---------------------------------------------------------------------------------------------
// CreateUser

TEST(CreateUser, CreatesWithTrimmedName) {
  ServiceHarness h;
  auto r = h.sync(h.service().create_user("  \t smoke-user \n"));
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_TRUE(r->created);
  EXPECT_EQ(r->user.name, "smoke-user");
  EXPECT_GT(r->user.id, 0);
  EXPECT_GE(r->user.created_at, testkit::StepClock::kStart);

  auto got = h.sync(h.service().get_user(r->user.id));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "smoke-user");
  EXPECT_EQ(got->created_at, r->user.created_at);
}

TEST(CreateUser, DuplicateAfterTrimmingReturnsTheExistingUser) {
  ServiceHarness h;
  auto first = h.sync(h.service().create_user("alice"));
  ASSERT_TRUE(first.ok());
  auto again = h.sync(h.service().create_user("  alice  "));
  ASSERT_TRUE(again.ok()) << again.error().detail;
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->user.id, first->user.id);
  EXPECT_EQ(again->user.name, "alice");
  EXPECT_EQ(again->user.created_at, first->user.created_at);

  auto other = h.sync(h.service().create_user("bob"));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->created);
  EXPECT_NE(other->user.id, first->user.id);
}

TEST(CreateUser, BlankNameIsInvalid) {
  ServiceHarness h;
  for (const std::string& name : Strings{"", " ", "  \t\r\n  "}) {
    auto r = h.sync(h.service().create_user(name));
    ASSERT_FALSE(r.ok()) << "'" << name << "'";
    EXPECT_EQ(r.error().code, ErrorCode::invalid);
    EXPECT_EQ(r.error().field, "name");
    EXPECT_FALSE(r.error().detail.empty());
  }
}

TEST(CreateUser, NameLengthIsCountedInCharactersUpTo120) {
  ServiceHarness h;
  auto ok = h.sync(h.service().create_user(std::string(120, 'a')));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->user.name.size(), 120u);

  // 120 two-byte characters are 120 characters, not 240.
  auto wide = h.sync(h.service().create_user(repeat("\xC3\xA9", 120)));
  ASSERT_TRUE(wide.ok()) << wide.error().detail;

  for (const std::string& name : Strings{std::string(121, 'b'), repeat("\xC3\xA9", 121)}) {
    auto r = h.sync(h.service().create_user(name));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::invalid);
    EXPECT_EQ(r.error().field, "name");
  }
  // Spaces around a 120-character name are trimmed first.
  auto padded = h.sync(h.service().create_user("  " + std::string(120, 'c') + "  "));
  ASSERT_TRUE(padded.ok());
  EXPECT_EQ(padded->user.name, std::string(120, 'c'));
}

TEST(CreateUser, GetUnknownUserIsNotFound) {
  ServiceHarness h;
  auto r = h.sync(h.service().get_user(424242));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
}

// ---------------------------------------------------------------------------------------------
// CreateThread

TEST(CreateThread, UnknownUserIsNotFound) {
  ServiceHarness h;
  auto r = h.sync(h.service().create_thread(999, std::nullopt));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
}

TEST(CreateThread, TitleIsOptional) {
  ServiceHarness h;
  const auto u = h.make_user("t-user");
  auto untitled = h.sync(h.service().create_thread(u.id, std::nullopt));
  ASSERT_TRUE(untitled.ok()) << untitled.error().detail;
  EXPECT_FALSE(untitled->title.has_value());
  EXPECT_EQ(untitled->user_id, u.id);
  EXPECT_TRUE(is_uuid(untitled->id));

  auto titled = h.sync(h.service().create_thread(u.id, std::string("Trip \xE2\x9C\x93")));
  ASSERT_TRUE(titled.ok());
  EXPECT_EQ(titled->title, std::optional<std::string>("Trip \xE2\x9C\x93"));
  EXPECT_NE(titled->id, untitled->id);

  auto got = h.sync(h.service().get_thread(titled->id));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->thread.title, titled->title);
  EXPECT_EQ(got->thread.user_id, u.id);
  EXPECT_EQ(got->thread.created_at, titled->created_at);
  EXPECT_TRUE(got->messages.empty());
}

TEST(CreateThread, TooLongTitleIsInvalid) {
  ServiceHarness h;
  const auto u = h.make_user("t-user");
  const auto max = h.service().limits().max_title_chars;
  auto ok = h.sync(h.service().create_thread(u.id, std::string(max, 'x')));
  EXPECT_TRUE(ok.ok());
  auto ok_wide = h.sync(h.service().create_thread(u.id, repeat("\xC3\xA9", max)));
  EXPECT_TRUE(ok_wide.ok());

  auto r = h.sync(h.service().create_thread(u.id, std::string(max + 1, 'x')));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::invalid);
  EXPECT_EQ(r.error().field, "title");
  // Nothing was stored for the refused one.
  auto page = h.sync(h.service().list_user_threads(u.id, std::nullopt, 50));
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->threads.size(), 2u);
}

TEST(CreateThread, GetThreadWithUnknownOrMalformedIdIsNotFound) {
  ServiceHarness h;
  for (const std::string& id : Strings{SeqIds::make(777), std::string("nope"), std::string()}) {
    auto r = h.sync(h.service().get_thread(id));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::not_found);
  }
}

// ---------------------------------------------------------------------------------------------
// ListUserThreads

TEST(ListUserThreads, NewestFirstWithCursor) {
  ServiceHarness h;
  const auto u = h.make_user("lister");
  const auto other = h.make_user("other");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(h.make_thread(u.id).id);
  h.make_thread(other.id);

  auto p1 = h.sync(h.service().list_user_threads(u.id, std::nullopt, 2));
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->threads.size(), 2u);
  EXPECT_EQ(p1->threads[0].id, ids[4]);
  EXPECT_EQ(p1->threads[1].id, ids[3]);
  ASSERT_TRUE(p1->next.has_value());
  EXPECT_EQ(*p1->next, ids[3]);

  auto p2 = h.sync(h.service().list_user_threads(u.id, p1->next, 2));
  ASSERT_TRUE(p2.ok());
  ASSERT_EQ(p2->threads.size(), 2u);
  EXPECT_EQ(p2->threads[0].id, ids[2]);
  EXPECT_EQ(p2->threads[1].id, ids[1]);

  auto p3 = h.sync(h.service().list_user_threads(u.id, p2->next, 2));
  ASSERT_TRUE(p3.ok());
  ASSERT_EQ(p3->threads.size(), 1u);
  EXPECT_EQ(p3->threads[0].id, ids[0]);
  EXPECT_FALSE(p3->next.has_value());

  // An upper-case cursor addresses the same thread.
  std::string upper = ids[3];
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto p2u = h.sync(h.service().list_user_threads(u.id, upper, 2));
  ASSERT_TRUE(p2u.ok());
  ASSERT_EQ(p2u->threads.size(), 2u);
  EXPECT_EQ(p2u->threads[0].id, ids[2]);
}

TEST(ListUserThreads, BadArgumentsAndUnknownUser) {
  ServiceHarness h;
  const auto u = h.make_user("lister");
  for (int limit : {0, -1, 201}) {
    auto r = h.sync(h.service().list_user_threads(u.id, std::nullopt, limit));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::invalid);
    EXPECT_EQ(r.error().field, "limit");
  }
  auto bad_cursor = h.sync(h.service().list_user_threads(u.id, std::string("zzz"), 10));
  ASSERT_FALSE(bad_cursor.ok());
  EXPECT_EQ(bad_cursor.error().field, "before");
  auto unknown = h.sync(h.service().list_user_threads(u.id + 100, std::nullopt, 10));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::not_found);
  auto empty = h.sync(h.service().list_user_threads(u.id, std::nullopt, 10));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->threads.empty());
  EXPECT_FALSE(empty->next.has_value());
}

// ---------------------------------------------------------------------------------------------
// Access (API keys): the key's user and the owner of what the request names

// Keys "key-1", "key-2", ...; the stored form only has to differ from the key.
class CountingKeys final : public KeyService {
 public:
  std::string new_key() override { return "key-" + std::to_string(++n_); }
  std::string hash(const std::string& key) override { return "hash:" + key; }

 private:
  int n_ = 0;
};

TEST(Access, NamesTheCallerAndTheOwnerOfAThreadOrARun) {
  ServiceHarness h;
  h.scheduler().shutdown();  // the run stays queued: only its row matters here
  CountingKeys keys;
  h.service().set_key_service(keys);
  auto alice = h.sync(h.service().create_user("alice"));
  auto bob = h.sync(h.service().create_user("bob"));
  ASSERT_TRUE(alice.ok() && bob.ok());
  ASSERT_TRUE(alice->api_key && bob->api_key);
  auto t = h.sync(h.service().create_thread(alice->user.id, std::nullopt));
  ASSERT_TRUE(t.ok());
  auto p = h.sync(h.service().post_message(t->id, "hi", std::nullopt));
  ASSERT_TRUE(p.ok());
  using OwnedBy = ChatService::OwnedBy;
  auto access = [&](const std::string& key, OwnedBy what, const std::string& id) {
    return h.sync(h.service().access(key, what, id));
  };

  auto a = access(*alice->api_key, OwnedBy::thread, t->id);
  EXPECT_EQ(a.caller, alice->user.id);
  EXPECT_EQ(a.owner, alice->user.id);
  a = access(*bob->api_key, OwnedBy::run, p->run_id);  // another user's run: its owner
  EXPECT_EQ(a.caller, bob->user.id);
  EXPECT_EQ(a.owner, alice->user.id);
  a = access(*bob->api_key, OwnedBy::nothing, "");
  EXPECT_EQ(a.caller, bob->user.id);
  EXPECT_EQ(a.owner, std::nullopt);
  // Nothing of that id, or not an id at all: no owner.
  a = access(*alice->api_key, OwnedBy::run, t->id);  // a thread's id is no run's
  EXPECT_EQ(a.caller, alice->user.id);
  EXPECT_EQ(a.owner, std::nullopt);
  a = access(*alice->api_key, OwnedBy::thread, "not-an-id");
  EXPECT_EQ(a.owner, std::nullopt);
  // An unknown key: no caller, and the owner is not looked up for it.
  a = access("key-99", OwnedBy::thread, t->id);
  EXPECT_EQ(a.caller, std::nullopt);
  EXPECT_EQ(a.owner, std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// PostMessageCreateRun

TEST(PostMessageCreateRun, StoresUserMessageAndQueuedRunInOneWrite) {
  ServiceHarness h;
  h.scheduler().shutdown();  // runs stay queued: this test looks at what the post stored
  const auto t = h.make_thread();
  auto* mem = h.memory_db();
  ASSERT_NE(mem, nullptr);
  const auto writes_before = mem->write_count();

  auto r = h.sync(h.service().post_message(t.id, "hello \xE2\x9C\x93", std::nullopt));
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(mem->write_count(), writes_before + 1);
  EXPECT_EQ(r->status, RunStatus::queued);
  EXPECT_EQ(r->thread_id, t.id);
  EXPECT_TRUE(is_uuid(r->run_id));
  EXPECT_TRUE(is_uuid(r->message_id));
  EXPECT_NE(r->run_id, r->message_id);

  const auto msgs = h.messages_of(t.id);
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].id, r->message_id);
  EXPECT_EQ(msgs[0].role, Role::user);
  EXPECT_EQ(msgs[0].content, "hello \xE2\x9C\x93");
  EXPECT_EQ(msgs[0].run_id, std::optional<std::string>(r->run_id));
  EXPECT_EQ(msgs[0].thread_id, t.id);

  const auto runs = h.runs_of(t.id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].id, r->run_id);
  EXPECT_EQ(runs[0].message_id, r->message_id);
  EXPECT_EQ(runs[0].status, RunStatus::queued);
  EXPECT_EQ(runs[0].created_at, msgs[0].created_at);
  EXPECT_FALSE(runs[0].started_at.has_value());
  EXPECT_FALSE(runs[0].finished_at.has_value());
  EXPECT_EQ(runs[0].last_seq, 0);
  EXPECT_EQ(h.scheduler().queued(), 1u);
}

TEST(PostMessageCreateRun, BlankOrOversizedContentIsInvalid) {
  HarnessOptions o;
  o.limits.max_content_bytes = 16;
  ServiceHarness h(o);
  h.scheduler().shutdown();
  const auto t = h.make_thread();
  for (const std::string& content : Strings{"", "   ", " \t\r\n "}) {
    auto r = h.sync(h.service().post_message(t.id, content, std::nullopt));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::invalid);
    EXPECT_EQ(r.error().field, "content");
  }
  // The limit is in bytes: 9 two-byte characters are 18 bytes.
  for (const std::string& content : Strings{std::string(17, 'x'), repeat("\xC3\xA9", 9)}) {
    auto r = h.sync(h.service().post_message(t.id, content, std::nullopt));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::invalid);
    EXPECT_EQ(r.error().field, "content");
  }
  EXPECT_TRUE(h.runs_of(t.id).empty());
  EXPECT_TRUE(h.sync(h.service().post_message(t.id, std::string(16, 'x'), std::nullopt)).ok());
  EXPECT_TRUE(h.sync(h.service().post_message(t.id, repeat("\xC3\xA9", 8), std::nullopt)).ok());
  EXPECT_EQ(h.runs_of(t.id).size(), 2u);
}

TEST(PostMessageCreateRun, UnknownOrMalformedThreadIsNotFound) {
  ServiceHarness h;
  h.scheduler().shutdown();
  for (const std::string& id : Strings{SeqIds::make(4242), std::string("not-a-uuid"), std::string(),
                               std::string("00000001-0000-4000-8000-00000000000g")}) {
    auto r = h.sync(h.service().post_message(id, "hi", std::nullopt));
    ASSERT_FALSE(r.ok()) << id;
    EXPECT_EQ(r.error().code, ErrorCode::not_found) << id;
  }
  EXPECT_EQ(h.scheduler().queued(), 0u);
}

TEST(PostMessageCreateRun, UpperCaseThreadIdAddressesTheThread) {
  ServiceHarness h;
  h.scheduler().shutdown();
  const auto t = h.make_thread();
  std::string upper = t.id;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_NE(upper, t.id);
  auto r = h.sync(h.service().post_message(upper, "hi", std::nullopt));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->thread_id, t.id);
  EXPECT_EQ(h.runs_of(t.id).size(), 1u);
}

TEST(PostMessageCreateRun, IdempotencyKeyRepeatReturnsTheSameRunAndCreatesNothing) {
  ServiceHarness h;
  h.scheduler().shutdown();
  const auto t = h.make_thread();
  const auto t2 = h.make_thread();

  auto first = h.sync(h.service().post_message(t.id, "once", std::string("key-1")));
  ASSERT_TRUE(first.ok());
  auto again = h.sync(h.service().post_message(t.id, "once", std::string("key-1")));
  ASSERT_TRUE(again.ok()) << again.error().detail;
  EXPECT_EQ(again->run_id, first->run_id);
  EXPECT_EQ(again->message_id, first->message_id);
  EXPECT_EQ(again->thread_id, t.id);
  EXPECT_EQ(again->status, RunStatus::queued);
  // Even a different body with the same key answers the first response.
  auto third = h.sync(h.service().post_message(t.id, "different", std::string("key-1")));
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->run_id, first->run_id);

  EXPECT_EQ(h.runs_of(t.id).size(), 1u);
  EXPECT_EQ(h.messages_of(t.id).size(), 1u);
  EXPECT_EQ(h.scheduler().queued(), 1u);  // scheduled once

  // Another key, or the same key on another thread, is a new request.
  auto other_key = h.sync(h.service().post_message(t.id, "twice", std::string("key-2")));
  ASSERT_TRUE(other_key.ok());
  EXPECT_NE(other_key->run_id, first->run_id);
  auto other_thread = h.sync(h.service().post_message(t2.id, "once", std::string("key-1")));
  ASSERT_TRUE(other_thread.ok());
  EXPECT_NE(other_thread->run_id, first->run_id);
  EXPECT_EQ(h.runs_of(t.id).size(), 2u);
  EXPECT_EQ(h.runs_of(t2.id).size(), 1u);
  EXPECT_EQ(h.scheduler().queued(), 3u);
}

TEST(PostMessageCreateRun, IdempotencyKeyLengthIsChecked) {
  ServiceHarness h;
  h.scheduler().shutdown();
  const auto t = h.make_thread();
  for (const std::string& key : Strings{std::string(), std::string(256, 'k')}) {
    auto r = h.sync(h.service().post_message(t.id, "hi", key));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::invalid);
    EXPECT_EQ(r.error().field, "Idempotency-Key");
  }
  EXPECT_TRUE(h.runs_of(t.id).empty());
  EXPECT_TRUE(h.sync(h.service().post_message(t.id, "hi", std::string(255, 'k'))).ok());
}

TEST(PostMessageCreateRun, TheSchedulerRunsItToTheEnd) {
  ServiceHarness h;
  h.engine.tokens = {"Hi", " there"};
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hello");
  ASSERT_TRUE(h.wait_terminal(p.run_id));

  const auto run = h.run(p.run_id);
  EXPECT_EQ(run.status, RunStatus::done);
  ASSERT_TRUE(run.started_at.has_value());
  ASSERT_TRUE(run.finished_at.has_value());
  EXPECT_LE(run.created_at, *run.started_at);
  EXPECT_LE(*run.started_at, *run.finished_at);
  EXPECT_FALSE(run.error.has_value());
  EXPECT_EQ(h.engine.started(), std::vector<std::string>{p.run_id});

  const auto hist = h.engine.history_of(p.run_id);
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(hist[0].content, "hello");

  const auto events = h.events(p.run_id);
  EXPECT_EQ(type_list(events), "state,token,token,final,state,done");
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(run.last_seq, 6);
  for (std::size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq, std::int64_t(i) + 1);
  EXPECT_EQ(events[0].data, R"({"status":"running"})");
  EXPECT_EQ(events[1].data, R"({"text":"Hi"})");
  EXPECT_EQ(events[2].data, R"({"text":" there"})");
  EXPECT_EQ(events[4].data, R"({"status":"done"})");
  EXPECT_EQ(events[5].data, R"({"status":"done"})");

  const auto msgs = h.messages_of(t.id);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].role, Role::assistant);
  EXPECT_EQ(msgs[1].content, "Hi there");
  EXPECT_EQ(msgs[1].run_id, std::optional<std::string>(p.run_id));
  EXPECT_EQ(events[3].data,
            std::string(R"({"text":"Hi there","message_id":")") + msgs[1].id + "\"}");
}

TEST(PostMessageCreateRun, TheNextRunSeesTheConversation) {
  ServiceHarness h;
  h.engine.tokens = {"A1"};
  const auto t = h.make_thread();
  const auto p1 = h.post(t.id, "first");
  ASSERT_TRUE(h.wait_terminal(p1.run_id));
  const auto p2 = h.post(t.id, "second");
  ASSERT_TRUE(h.wait_terminal(p2.run_id));

  const auto hist = h.engine.history_of(p2.run_id);
  ASSERT_EQ(hist.size(), 3u);
  EXPECT_EQ(hist[0].content, "first");
  EXPECT_EQ(hist[1].role, Role::assistant);
  EXPECT_EQ(hist[1].content, "A1");
  EXPECT_EQ(hist[2].content, "second");
  EXPECT_EQ(hist[2].id, p2.message_id);
}

TEST(PostMessageCreateRun, ThreadListsMessagesOldestFirstWhileEnginesGetConversationOrder) {
  ServiceHarness h;
  h.engine.tokens = {"R"};
  h.engine.hold = true;
  const auto t = h.make_thread();
  const auto p1 = h.post(t.id, "first");
  ASSERT_TRUE(h.wait_last_seq(p1.run_id, 2));
  const auto p2 = h.post(t.id, "second");  // while the first run is still going
  h.engine.release_all();
  ASSERT_TRUE(h.wait_terminal(p1.run_id));
  ASSERT_TRUE(h.wait_terminal(p2.run_id));

  // GET /api/threads/{id}: by created_at, so "second" comes before the first run's reply.
  const auto msgs = h.messages_of(t.id);
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0].content, "first");
  EXPECT_EQ(msgs[1].content, "second");
  EXPECT_EQ(msgs[2].run_id, std::optional<std::string>(p1.run_id));
  EXPECT_EQ(msgs[3].run_id, std::optional<std::string>(p2.run_id));
  for (std::size_t i = 1; i < msgs.size(); ++i)
    EXPECT_LE(msgs[i - 1].created_at, msgs[i].created_at);

  // The engine of the second run got each turn followed by its reply.
  const auto hist = h.engine.history_of(p2.run_id);
  ASSERT_EQ(hist.size(), 3u);
  EXPECT_EQ(hist[0].content, "first");
  EXPECT_EQ(hist[1].role, Role::assistant);
  EXPECT_EQ(hist[1].run_id, std::optional<std::string>(p1.run_id));
  EXPECT_EQ(hist[2].content, "second");
}

// ---------------------------------------------------------------------------------------------
// CancelRun

TEST(CancelRun, QueuedRunIsCanceledAtOnceAndNeverStarts) {
  ServiceHarness h;
  h.engine.hold = true;
  const auto t = h.make_thread();
  const auto first = h.post(t.id, "one");
  const auto second = h.post(t.id, "two");  // waits behind the first
  ASSERT_TRUE(wait_until([&] { return h.engine.was_started(first.run_id); }));
  ASSERT_EQ(h.run(second.run_id).status, RunStatus::queued);
  ASSERT_EQ(h.scheduler().queued(), 1u);

  auto r = h.sync(h.service().cancel_run(second.run_id));
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(*r, RunStatus::canceled);

  const auto run = h.run(second.run_id);
  EXPECT_EQ(run.status, RunStatus::canceled);
  EXPECT_TRUE(run.finished_at.has_value());
  EXPECT_FALSE(run.started_at.has_value());
  EXPECT_FALSE(run.error.has_value());
  EXPECT_EQ(run.last_seq, 3);
  const auto events = h.events(second.run_id);
  EXPECT_EQ(type_list(events), "canceled,state,done");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].seq, 1);
  EXPECT_EQ(events[1].seq, 2);
  EXPECT_EQ(events[2].seq, 3);
  EXPECT_EQ(events[0].data, R"({"reason":"canceled"})");
  EXPECT_EQ(events[1].data, R"({"status":"canceled"})");
  EXPECT_EQ(events[2].data, R"({"status":"canceled"})");
  EXPECT_EQ(h.scheduler().queued(), 0u);

  // The first run finishes; the canceled one never starts.
  h.engine.release(first.run_id);
  ASSERT_TRUE(h.wait_terminal(first.run_id));
  ASSERT_TRUE(wait_until([&] { return h.scheduler().running() == 0; }));
  EXPECT_EQ(h.engine.started(), std::vector<std::string>{first.run_id});
  EXPECT_EQ(h.events(second.run_id).size(), 3u);
  EXPECT_EQ(h.run(second.run_id).status, RunStatus::canceled);

  // Oldest first: "two" was posted before the first run's reply was stored; no reply to "two".
  const auto msgs = h.messages_of(t.id);
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].content, "one");
  EXPECT_EQ(msgs[1].content, "two");
  EXPECT_EQ(msgs[2].role, Role::assistant);
  EXPECT_EQ(msgs[2].run_id, std::optional<std::string>(first.run_id));
}

TEST(CancelRun, RunningRunIsCanceledKeepingThePartialReply) {
  ServiceHarness h;
  h.engine.tokens = {"Hel", "lo"};
  h.engine.hold = true;  // then sleeps via sink.sleep until canceled
  h.engine.tokens_after = {" never"};
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_last_seq(p.run_id, 3));  // state(running), 2 tokens
  ASSERT_EQ(h.run(p.run_id).status, RunStatus::running);

  const auto t0 = std::chrono::steady_clock::now();
  auto r = h.sync(h.service().cancel_run(p.run_id));
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(*r, RunStatus::canceled);
  EXPECT_LT(took, 2000ms);  // normally a few ms (API.md: 100 ms); loose for loaded CI

  // cancel_run answers once the run has ended.
  const auto run = h.run(p.run_id);
  EXPECT_EQ(run.status, RunStatus::canceled);
  EXPECT_TRUE(run.started_at.has_value());
  EXPECT_TRUE(run.finished_at.has_value());
  EXPECT_FALSE(run.error.has_value());

  const auto events = h.events(p.run_id);
  EXPECT_EQ(type_list(events), "state,token,token,canceled,state,done");
  ASSERT_EQ(events.size(), 6u);
  for (std::size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq, std::int64_t(i) + 1);
  EXPECT_EQ(events[3].data, R"({"reason":"canceled"})");
  EXPECT_EQ(events[4].data, R"({"status":"canceled"})");
  EXPECT_EQ(events[5].data, R"({"status":"canceled"})");
  EXPECT_EQ(run.last_seq, 6);

  const auto msgs = h.messages_of(t.id);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].role, Role::assistant);
  EXPECT_EQ(msgs[1].content, "Hello");
  EXPECT_EQ(msgs[1].run_id, std::optional<std::string>(p.run_id));
  EXPECT_TRUE(wait_until([&] { return h.scheduler().running() == 0; }));
}

TEST(CancelRun, RunningRunWithoutTokensStoresNoReply) {
  ServiceHarness h;
  h.engine.tokens = {};
  h.engine.hold = true;
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_last_seq(p.run_id, 1));
  auto r = h.sync(h.service().cancel_run(p.run_id));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, RunStatus::canceled);
  EXPECT_EQ(type_list(h.events(p.run_id)), "state,canceled,state,done");
  EXPECT_EQ(h.messages_of(t.id).size(), 1u);
}

TEST(CancelRun, TerminalRunAnswersItsStatusAndChangesNothing) {
  ServiceHarness h;
  h.engine.tokens = {"ok"};
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_terminal(p.run_id));
  const auto before = h.run(p.run_id);
  const auto events_before = h.events(p.run_id);
  ASSERT_EQ(before.status, RunStatus::done);

  for (int i = 0; i < 2; ++i) {
    auto r = h.sync(h.service().cancel_run(p.run_id));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, RunStatus::done);
  }
  const auto after = h.run(p.run_id);
  EXPECT_EQ(after.status, RunStatus::done);
  EXPECT_EQ(after.finished_at, before.finished_at);
  EXPECT_EQ(after.last_seq, before.last_seq);
  EXPECT_EQ(h.events(p.run_id).size(), events_before.size());
  EXPECT_EQ(h.messages_of(t.id).size(), 2u);

  // An errored run answers `error`, a canceled one `canceled`.
  h.engine.fail = "boom";
  const auto failed = h.post(t.id, "again");
  ASSERT_TRUE(h.wait_terminal(failed.run_id));
  auto r = h.sync(h.service().cancel_run(failed.run_id));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, RunStatus::error);
}

TEST(CancelRun, UnknownRunIsNotFound) {
  ServiceHarness h;
  for (const std::string& id : Strings{SeqIds::make(31337), std::string("nope"), std::string()}) {
    auto r = h.sync(h.service().cancel_run(id));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::not_found);
    auto g = h.sync(h.service().get_run(id));
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.error().code, ErrorCode::not_found);
  }
}

// ---------------------------------------------------------------------------------------------
// DeleteThread

TEST(DeleteThread, CancelsActiveRunsThenRemovesEverything) {
  ServiceHarness h;
  h.engine.hold = true;
  const auto t = h.make_thread();
  const auto keep = h.make_thread();
  const auto running = h.post(t.id, "one");
  const auto queued = h.post(t.id, "two");
  const auto other = h.post(keep.id, "elsewhere");
  ASSERT_TRUE(h.wait_last_seq(running.run_id, 3));

  auto r = h.sync(h.service().delete_thread(t.id));
  ASSERT_TRUE(r.ok()) << r.error().detail;
  for (const auto& id : {running.run_id, queued.run_id}) {
    auto g = h.sync(h.service().get_run(id));
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.error().code, ErrorCode::not_found);
    EXPECT_TRUE(h.events(id).empty());
  }
  EXPECT_FALSE(h.sync(h.service().get_thread(t.id)).ok());
  EXPECT_EQ(h.run(other.run_id).thread_id, keep.id);

  auto again = h.sync(h.service().delete_thread(t.id));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::not_found);
  auto malformed = h.sync(h.service().delete_thread("xyz"));
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.error().code, ErrorCode::not_found);
}

// ---------------------------------------------------------------------------------------------
// SseReplayWithLastEventId

TEST(SseReplayWithLastEventId, FinishedRunReplaysExactlyTheEventsAfterTheResumePoint) {
  ServiceHarness h;
  h.engine.tokens = {"a", "b", "c", "d"};
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_terminal(p.run_id));
  const std::int64_t n = h.run(p.run_id).last_seq;
  ASSERT_EQ(n, 8);  // state, 4 tokens, final, state, done

  for (std::int64_t k = 0; k < n; ++k) {
    const Collected c = h.collect(p.run_id, k);
    ASSERT_TRUE(c.opened) << "k=" << k;
    EXPECT_EQ(c.seqs(), seq_range(k + 1, n)) << "k=" << k;
    EXPECT_TRUE(c.ended) << "k=" << k;
    EXPECT_FALSE(c.overflow);
    ASSERT_FALSE(c.events.empty());
    EXPECT_EQ(c.events.back().type, EventType::done);
  }
  // At or past `done`: no stream at all (the HTTP layer answers 204).
  for (std::int64_t k : {n, n + 1, std::int64_t{1} << 40}) {
    const Collected c = h.collect(p.run_id, k);
    EXPECT_FALSE(c.opened) << "k=" << k;
  }
  // A negative resume point is the whole log.
  const Collected all = h.collect(p.run_id, -5);
  ASSERT_TRUE(all.opened);
  EXPECT_EQ(all.seqs(), seq_range(1, n));
}

TEST(SseReplayWithLastEventId, EndIsStickyAfterDone) {
  ServiceHarness h;
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_terminal(p.run_id));
  auto kinds = h.sync([&]() -> Task<std::vector<RunEventStream::StepKind>> {
    auto ex = co_await boost::asio::this_coro::executor;
    auto r = co_await h.service().open_stream(p.run_id, 0, ex);
    std::vector<RunEventStream::StepKind> out;
    if (!r || !r->stream) co_return out;
    for (int i = 0; i < 3; ++i) out.push_back((co_await r->stream->next(10ms)).kind);
    co_return out;
  }());
  using K = RunEventStream::StepKind;
  EXPECT_EQ(kinds, (std::vector<K>{K::events, K::end, K::end}));
}

TEST(SseReplayWithLastEventId, UnknownOrMalformedRunIsNotFound) {
  ServiceHarness h;
  for (const std::string& id : Strings{SeqIds::make(99), std::string("1")}) {
    auto r = h.sync([&]() -> Task<domain::Result<StreamOpen>> {
      co_return co_await h.service().open_stream(id, 0, co_await boost::asio::this_coro::executor);
    }());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::not_found);
  }
  EXPECT_EQ(h.hub().subscriber_count(), 0u);
}

TEST(SseReplayWithLastEventId, LiveRunHandsOverFromReplayToLiveWithoutGapOrDuplicate) {
  ServiceHarness h;
  h.engine.tokens = {"a", "b", "c"};
  h.engine.hold = true;
  h.engine.tokens_after = {"d", "e"};
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_last_seq(p.run_id, 4));

  auto got = h.sync([&]() -> Task<std::pair<std::vector<std::int64_t>, Collected>> {
    auto ex = co_await boost::asio::this_coro::executor;
    auto r = co_await h.service().open_stream(p.run_id, 2, ex);
    Collected c;
    if (!r || !r->stream) co_return std::pair{std::vector<std::int64_t>{}, c};
    c.opened = true;
    // The backlog first: 3 and 4 are stored, nothing more can come while the engine holds.
    auto first = co_await r->stream->next(20ms);
    std::vector<std::int64_t> replayed;
    for (const auto& e : first.events) replayed.push_back(e->seq);
    h.engine.release(p.run_id);
    co_await testkit::drain_stream(*r->stream, c);
    co_return std::pair{replayed, c};
  }());
  EXPECT_EQ(got.first, seq_range(3, 4));
  const Collected& live = got.second;
  ASSERT_TRUE(live.opened);
  EXPECT_TRUE(live.ended);
  // tokens d, e (5, 6), final, state(done), done
  EXPECT_EQ(live.seqs(), seq_range(5, 9));
  EXPECT_EQ(type_list(live.events), "token,token,final,state,done");
}

TEST(SseReplayWithLastEventId, StreamsOpenedAtAnyMomentSeeEveryEventOnce) {
  ServiceHarness h;
  h.engine.tokens.clear();
  for (int i = 0; i < 30; ++i) h.engine.tokens.push_back("t" + std::to_string(i) + " ");
  h.engine.token_delay = 1ms;
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  constexpr std::int64_t kLast = 1 + 30 + 3;

  std::vector<std::future<std::optional<Collected>>> readers;
  for (int i = 0; i < 12; ++i) {
    const std::int64_t after = i % 4 == 0 ? 0 : i % 4;  // resume points 0..3
    auto reader = [](ServiceHarness& hh, std::string run_id, int delay_ms,
                     std::int64_t from) -> Task<std::optional<Collected>> {
      co_await testkit::co_sleep(std::chrono::milliseconds(delay_ms));
      co_return co_await testkit::collect(hh.service(), run_id, from);
    };
    readers.push_back(boost::asio::co_spawn(boost::asio::make_strand(h.io()),
                                            reader(h, p.run_id, i * 4, after),
                                            boost::asio::use_future));
  }
  for (std::size_t i = 0; i < readers.size(); ++i) {
    ASSERT_EQ(readers[i].wait_for(5s), std::future_status::ready);
    auto c = readers[i].get();
    ASSERT_TRUE(c.has_value());
    const std::int64_t after = i % 4 == 0 ? 0 : static_cast<std::int64_t>(i % 4);
    if (!c->opened) {
      // Only possible if the run had ended past the resume point: it has not (after <= 3).
      ADD_FAILURE() << "reader " << i << " got no stream";
      continue;
    }
    EXPECT_TRUE(c->ended) << "reader " << i;
    EXPECT_EQ(c->seqs(), seq_range(after + 1, kLast)) << "reader " << i;
  }
  ASSERT_TRUE(h.wait_terminal(p.run_id));
  EXPECT_EQ(h.run(p.run_id).last_seq, kLast);
  EXPECT_TRUE(wait_until([&] { return h.hub().subscriber_count() == 0; }));
}

TEST(SseReplayWithLastEventId, SlowReaderOverflowsAndResumesWithoutLoss) {
  HarnessOptions o;
  o.limits.subscriber_queue = 4;
  ServiceHarness h(o);
  h.engine.tokens = {"a"};
  h.engine.hold = true;
  for (int i = 0; i < 10; ++i) h.engine.tokens_after.push_back("x");
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_last_seq(p.run_id, 2));

  auto got = h.sync([&]() -> Task<std::pair<Collected, std::int64_t>> {
    auto ex = co_await boost::asio::this_coro::executor;
    auto r = co_await h.service().open_stream(p.run_id, 0, ex);
    Collected c;
    if (!r || !r->stream) co_return std::pair{c, std::int64_t{-1}};
    c.opened = true;
    auto first = co_await r->stream->next(20ms);  // the backlog: 1, 2
    for (const auto& e : first.events) c.events.push_back(*e);
    // Then the reader stalls while the run writes 13 more events.
    h.engine.release(p.run_id);
    for (;;) {
      auto run = co_await h.service().get_run(p.run_id);
      if (run && domain::is_terminal(run->status)) break;
      co_await testkit::co_sleep(1ms);
    }
    co_await testkit::drain_stream(*r->stream, c, 1000ms);
    co_return std::pair{c, r->stream->last_sent()};
  }());
  const Collected& slow = got.first;
  ASSERT_TRUE(slow.opened);
  EXPECT_EQ(slow.seqs(), seq_range(1, 2));
  EXPECT_TRUE(slow.overflow);
  EXPECT_FALSE(slow.ended);
  EXPECT_EQ(got.second, 2);

  // It resumes with Last-Event-ID = the last seq it got, and loses nothing.
  const Collected rest = h.collect(p.run_id, got.second);
  ASSERT_TRUE(rest.opened);
  EXPECT_EQ(rest.seqs(), seq_range(3, 2 + 10 + 3));
  EXPECT_TRUE(rest.ended);
}

TEST(SseReplayWithLastEventId, QueuedRunCanceledWhileStreamed) {
  ServiceHarness h;
  h.engine.hold = true;
  const auto t = h.make_thread();
  const auto first = h.post(t.id, "one");
  const auto second = h.post(t.id, "two");
  ASSERT_TRUE(wait_until([&] { return h.engine.was_started(first.run_id); }));

  auto c = h.sync([&]() -> Task<Collected> {
    auto ex = co_await boost::asio::this_coro::executor;
    auto r = co_await h.service().open_stream(second.run_id, 0, ex);
    Collected out;
    if (!r || !r->stream) co_return out;
    out.opened = true;
    auto idle = co_await r->stream->next(5ms);  // nothing yet
    if (idle.kind != RunEventStream::StepKind::idle) co_return out;
    auto canceled = co_await h.service().cancel_run(second.run_id);
    if (!canceled) co_return out;
    co_await testkit::drain_stream(*r->stream, out);
    co_return out;
  }());
  ASSERT_TRUE(c.opened);
  EXPECT_TRUE(c.ended);
  EXPECT_EQ(c.seqs(), seq_range(1, 3));
  EXPECT_EQ(type_list(c.events), "canceled,state,done");
}

// ---------------------------------------------------------------------------------------------
// Small helpers of the service

TEST(ServiceHelpers, Trim) {
  EXPECT_EQ(trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(trim("\v\fx\f\v"), "x");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim(" \n "), "");
  EXPECT_EQ(trim("\xC3\xA9"), "\xC3\xA9");
}

TEST(ServiceHelpers, Utf8Length) {
  EXPECT_EQ(utf8_length(""), 0u);
  EXPECT_EQ(utf8_length("abc"), 3u);
  EXPECT_EQ(utf8_length("\xC3\xA9\xE2\x9C\x93\xF0\x9F\x98\x80"), 3u);  // é ✓ 😀
}

TEST(ServiceHelpers, IsUuid) {
  EXPECT_TRUE(is_uuid("123e4567-e89b-42d3-a456-426614174000"));
  EXPECT_TRUE(is_uuid("123E4567-E89B-42D3-A456-426614174000"));
  EXPECT_FALSE(is_uuid("123e4567e89b42d3a456426614174000"));
  EXPECT_FALSE(is_uuid("123e4567-e89b-42d3-a456-42661417400"));
  EXPECT_FALSE(is_uuid("123e4567-e89b-42d3-a456-4266141740000"));
  EXPECT_FALSE(is_uuid("123e4567-e89b-42d3-a456_426614174000"));
  EXPECT_FALSE(is_uuid("123e4567-e89b-42d3-a456-42661417400g"));
  EXPECT_FALSE(is_uuid(""));
}

}  // namespace
}  // namespace chat::app
