// Webhooks, the core's side: URL validation, the run's JSON, and the outbox row written with
// every kind of ending (done, canceled while queued, canceled while running, executor lost).

#include "application/webhooks.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <map>

#include "testkit/service_harness.hpp"

namespace chat::app {
namespace {

using namespace std::chrono_literals;
using domain::RunStatus;
using testkit::ServiceHarness;

TEST(ParseHttpUrl, AcceptsHttpAndHttpsWithHostPortPathAndQuery) {
  auto u = parse_http_url("https://hooks.example.com/a/b?x=1&y=%20");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/a/b?x=1&y=%20");
  EXPECT_EQ(u->host_header(), "hooks.example.com");

  u = parse_http_url("HTTP://127.0.0.1:8080");
  ASSERT_TRUE(u);
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/");
  EXPECT_EQ(u->host_header(), "127.0.0.1:8080");

  u = parse_http_url("http://[::1]:9000?q");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->target, "/?q");
  EXPECT_EQ(u->host_header(), "[::1]:9000");
}

TEST(ParseHttpUrl, RefusesWhatIsNotAnAbsoluteHttpUrlSayingWhy) {
  for (const char* bad :
       {"", "not a url", "ftp://x", "file:///etc/passwd", "http://", "http:///path", "//h/x",
        "http://h:0/", "http://h:65536/", "http://h:x/", "http://h:/", "http://u:p@h/",
        "http://h/#f", "http://h /", "http://h/\x01", "http://h\\x/", "http://[::1/",
        "http://[zz]/", "http://h_o$t/", "https://h\xC3\xA9/"}) {
    std::string why;
    EXPECT_FALSE(parse_http_url(bad, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
  EXPECT_FALSE(parse_http_url("http://h/" + std::string(kMaxWebhookUrlBytes, 'a')));
}

TEST(RunJson, IsTheRunAsTheApiShowsIt) {
  domain::Run r;
  r.id = "00000000-0000-4000-8000-000000000001";
  r.thread_id = "00000000-0000-4000-8000-000000000002";
  r.status = RunStatus::error;
  r.created_at = 1'795'514'400'123;
  r.finished_at = 1'795'514'401'000;
  r.error = "a \"quoted\"\nerror";
  r.last_seq = 7;
  EXPECT_EQ(run_json(r),
            R"({"run_id":"00000000-0000-4000-8000-000000000001",)"
            R"("thread_id":"00000000-0000-4000-8000-000000000002","status":"error",)"
            R"("created_at":"2026-11-24T10:00:00.123Z","started_at":null,)"
            R"("finished_at":"2026-11-24T10:00:01.000Z","error":"a \"quoted\"\nerror",)"
            R"("last_seq":7,"events_pruned":false})");
  r.webhook = "http://h/x";
  EXPECT_EQ(run_ended_payload(r), "{\"type\":\"run.ended\",\"run\":" + run_json(r) + "}");
  EXPECT_NE(run_json(r).find(R"(,"webhook":"http://h/x"})"), std::string::npos);
}

// The service with webhooks on; counts wake-ups of the (absent) worker.
struct Hooked {
  explicit Hooked(std::optional<std::string> default_url = std::nullopt)
      : outbox(h.ids, std::move(default_url), [this] { ++wakes; }) {
    h.executor().set_webhooks(outbox);
    h.service().set_webhooks(outbox);
  }
  /// Every pending delivery (claimed far in the future, so they stay put for the next call).
  std::vector<domain::WebhookDelivery> pending() {
    auto got = h.sync(h.db().write([](WriteTx& tx) {
      return tx.repos().webhooks.claim_due(INT64_MAX / 2, INT64_MAX / 2, 1000);
    }));
    return got;
  }
  domain::Result<PostedMessage> post(const std::string& thread, std::optional<std::string> hook) {
    PostOptions o;
    o.webhook = std::move(hook);
    return h.sync(h.service().post_message(thread, "hi", std::nullopt, o));
  }

  ServiceHarness h;
  std::atomic<int> wakes{0};
  WebhookOutbox outbox;
};

TEST(Webhooks, ARunWebhookNeedsWebhooksOnAndAValidUrl) {
  ServiceHarness plain;
  const auto t = plain.make_thread();
  PostOptions o;
  o.webhook = "http://127.0.0.1:9/hook";
  auto r = plain.sync(plain.service().post_message(t.id, "hi", std::nullopt, o));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, domain::ErrorCode::invalid);
  EXPECT_EQ(r.error().field, "webhook");
  EXPECT_NE(r.error().detail.find("CHATBOT_WEBHOOK_SECRET"), std::string::npos);

  Hooked w;
  const auto t2 = w.h.make_thread();
  for (const char* bad : {"ftp://x", "not a url"}) {
    auto bad_post = w.post(t2.id, bad);
    ASSERT_FALSE(bad_post) << bad;
    EXPECT_EQ(bad_post.error().field, "webhook");
    EXPECT_EQ(bad_post.error().detail.rfind("webhook ", 0), 0u) << bad_post.error().detail;
  }
  EXPECT_TRUE(w.h.runs_of(t2.id).empty());
}

TEST(Webhooks, TheEndingOfARunQueuesItsDeliveryInTheSameWrite) {
  Hooked w;
  w.h.engine.tokens = {"Hi"};
  const auto t = w.h.make_thread();
  auto p = w.post(t.id, "https://hooks.example.com/x");
  ASSERT_TRUE(p);
  ASSERT_TRUE(w.h.wait_terminal(p->run_id));
  const auto run = w.h.run(p->run_id);
  EXPECT_EQ(run.webhook, "https://hooks.example.com/x");
  ASSERT_TRUE(testkit::wait_until([&] { return w.wakes.load() == 1; }, 2000ms));
  const auto d = w.pending();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].run_id, p->run_id);
  EXPECT_EQ(d[0].url, "https://hooks.example.com/x");
  EXPECT_EQ(d[0].payload, run_ended_payload(run));  // the stored run, exactly
  EXPECT_EQ(d[0].created_at, *run.finished_at);
  EXPECT_EQ(d[0].attempts, 1);  // the claim above; queued with none

  // A run without a webhook, and no default: nothing.
  auto quiet = w.post(t.id, std::nullopt);
  ASSERT_TRUE(quiet);
  ASSERT_TRUE(w.h.wait_terminal(quiet->run_id));
  EXPECT_EQ(w.pending().size(), 1u);
  EXPECT_EQ(w.wakes.load(), 1);
}

TEST(Webhooks, TheDefaultUrlServesRunsWithoutTheirOwn) {
  Hooked w("http://default.example/hook");
  const auto t = w.h.make_thread();
  auto own = w.post(t.id, "http://own.example/");
  auto plain = w.post(t.id, std::nullopt);
  ASSERT_TRUE(own && plain);
  ASSERT_TRUE(w.h.wait_terminal(plain->run_id));
  ASSERT_TRUE(w.h.wait_terminal(own->run_id));
  EXPECT_FALSE(w.h.run(plain->run_id).webhook.has_value());
  std::map<std::string, std::string> url_of;
  for (const auto& d : w.pending()) url_of[d.run_id] = d.url;
  EXPECT_EQ(url_of[own->run_id], "http://own.example/");
  EXPECT_EQ(url_of[plain->run_id], "http://default.example/hook");
}

TEST(Webhooks, CanceledRunsQueueTheirDeliveryQueuedOrRunning) {
  Hooked w;
  w.h.engine.hold = true;
  const auto t = w.h.make_thread();
  auto running = w.post(t.id, "http://h/1");
  auto queued = w.post(t.id, "http://h/2");
  ASSERT_TRUE(running && queued);
  ASSERT_TRUE(testkit::wait_until(
      [&] { return w.h.run(running->run_id).status == RunStatus::running; }, 2000ms));
  EXPECT_EQ(w.h.sync(w.h.service().cancel_run(queued->run_id)).value(), RunStatus::canceled);
  EXPECT_EQ(w.h.sync(w.h.service().cancel_run(running->run_id)).value(), RunStatus::canceled);
  ASSERT_TRUE(w.h.wait_terminal(running->run_id));
  const auto d = w.pending();
  ASSERT_EQ(d.size(), 2u);
  for (const auto& x : d) {
    const auto run = w.h.run(x.run_id);
    EXPECT_EQ(run.status, RunStatus::canceled);
    EXPECT_EQ(x.payload, run_ended_payload(run));
  }
}

TEST(Webhooks, RecoveryOfALostRunQueuesItsDelivery) {
  Hooked w;
  const auto t = w.h.make_thread();
  // A run left `running` by a dead process: stored directly, no executor.
  domain::Run r{"00000000-0000-4000-8000-00000000abcd", t.id,
                "00000000-0000-4000-8000-00000000abce", RunStatus::queued, 1, std::nullopt,
                std::nullopt, std::nullopt, 0};
  r.webhook = "http://h/lost";
  w.h.sync(w.h.db().write([&](WriteTx& tx) {
    tx.repos().runs.insert(r);
    tx.repos().runs.mark_running(r.id, 2);
  }));
  w.h.sync(w.h.executor().recover());
  const auto run = w.h.run(r.id);
  EXPECT_EQ(run.status, RunStatus::error);
  const auto d = w.pending();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].payload, run_ended_payload(run));
}

}  // namespace
}  // namespace chat::app
