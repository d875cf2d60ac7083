// The delivery worker against a receiver on a real socket: signed requests, retries with
// back-off, giving up, and no database work at all while nothing is pending.

#include "infrastructure/webhooks/webhook_worker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "application/webhooks.hpp"
#include "infrastructure/crypto.hpp"
#include "infrastructure/db/memory/memory_database.hpp"
#include "infrastructure/system.hpp"
#include "testkit/async.hpp"
#include "testkit/fakes.hpp"

namespace chat::infra::webhooks {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr const char* kRun = "00000000-0000-4000-8000-000000000001";

// The memory database, counting the jobs it is given.
class CountingDatabase final : public app::Database {
 public:
  std::atomic<int> reads{0}, writes{0};
  template <class F>
  void direct(F f) {
    std::lock_guard lock(mu_);
    app::WriteTx tx(repos_.repos());
    f(tx.repos());
  }

 protected:
  void submit_read(ReadJob job, Done done) override {
    ++reads;
    std::exception_ptr err;
    {
      std::lock_guard lock(mu_);
      try {
        job(repos_.repos());
      } catch (...) {
        err = std::current_exception();
      }
    }
    done(err);
  }
  void submit_write(WriteJob job, Done done) override {
    ++writes;
    std::exception_ptr err;
    std::vector<std::function<void()>> hooks;
    {
      std::lock_guard lock(mu_);
      try {
        app::WriteTx tx(repos_.repos());
        job(tx);
        hooks = std::move(tx.hooks());
      } catch (...) {
        err = std::current_exception();
      }
    }
    for (auto& h : hooks) h();
    done(err);
  }

 private:
  std::mutex mu_;
  memory::MemoryState state_;
  memory::MemoryRepositories repos_{state_};
};

// Answers each request with the next status of `statuses` (the last one repeats), recording
// the request head and body.
class Receiver {
 public:
  Receiver(asio::io_context& io, std::vector<int> statuses)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        statuses_(std::move(statuses)) {
    asio::co_spawn(io, serve(), asio::detached);
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
 private:
  app::Task<void> serve() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::streambuf buf;
      co_await asio::async_read_until(s, buf, "\r\n\r\n", asio::redirect_error(asio::use_awaitable, ec));
      if (ec) continue;
      std::string all(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
      const auto head_end = all.find("\r\n\r\n") + 4;
      std::size_t length = 0;
      if (auto at = all.find("Content-Length: "); at != std::string::npos)
        length = std::stoul(all.substr(at + 16));
      while (all.size() < head_end + length) {
        char chunk[4096];
        const auto n = co_await s.async_read_some(asio::buffer(chunk),
                                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        all.append(chunk, n);
      }
      int status = 0;
      {
        std::lock_guard lock(mu_);
        status = statuses_[std::min(requests_.size(), statuses_.size() - 1)];
        requests_.push_back(all);
      }
      const std::string res = "HTTP/1.1 " + std::to_string(status) +
                              " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      co_await asio::async_write(s, asio::buffer(res), asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  tcp::acceptor acceptor_;
  std::vector<int> statuses_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

std::string header(const std::string& req, const std::string& name) {
  const auto at = req.find("\r\n" + name + ": ");
  if (at == std::string::npos) return {};
  const auto from = at + name.size() + 4;
  return req.substr(from, req.find("\r\n", from) - from);
}

struct WorkerTest : ::testing::Test {
  void SetUp() override {
    db.direct([](domain::Repositories& r) {
      r.users.insert("u", 1);
      r.threads.insert(domain::Thread{"00000000-0000-4000-8000-0000000000aa", 1, std::nullopt, 1});
      domain::Run run;
      run.id = kRun;
      run.thread_id = "00000000-0000-4000-8000-0000000000aa";
      run.message_id = "00000000-0000-4000-8000-0000000000ab";
      r.runs.insert(run);
    });
  }
  void queue(const std::string& id, const std::string& url) {
    db.direct([&](domain::Repositories& r) {
      domain::WebhookDelivery d;
      d.id = id;
      d.run_id = kRun;
      d.url = url;
      d.payload = R"({"type":"run.ended","run":{"run_id":"x"}})";
      d.next_attempt_at = 0;
      r.webhooks.insert(d);
    });
  }
  std::optional<domain::WebhookDelivery> find(const std::string& id) {
    std::optional<domain::WebhookDelivery> out;
    db.direct([&](domain::Repositories& r) { out = r.webhooks.find(id); });
    return out;
  }
  // The io threads stop before the worker and the receiver go.
  void TearDown() override {
    io.io().stop();
    io.stop();
  }
  Receiver& receiver(std::vector<int> statuses) {
    receiver_.emplace(io.io(), std::move(statuses));
    return *receiver_;
  }
  WebhookWorker& start(WebhookWorkerOptions o) {
    worker = std::make_unique<WebhookWorker>(io.io(), db, clock, log, std::move(o));
    worker->start();
    return *worker;
  }

  testkit::IoRunner io{2};
  CountingDatabase db;
  SystemClock clock;  // back-off is real time
  testkit::CapturingLogger log;
  std::unique_ptr<WebhookWorker> worker;
  std::optional<Receiver> receiver_;
};

TEST(RetryDelay, DoublesFromTheBaseUpToTheCapWithinTheJitterBand) {
  WebhookWorkerOptions o;
  o.retry_base = 1000ms;
  o.retry_max = 300'000ms;
  EXPECT_EQ(retry_delay(o, 1, 0.5), 1000ms);
  EXPECT_EQ(retry_delay(o, 2, 0.5), 2000ms);
  EXPECT_EQ(retry_delay(o, 4, 0.5), 8000ms);
  EXPECT_EQ(retry_delay(o, 20, 0.5), 300'000ms);
  EXPECT_EQ(retry_delay(o, 1000, 0.5), 300'000ms);
  EXPECT_EQ(retry_delay(o, 1, 0.0), 750ms);
  EXPECT_EQ(retry_delay(o, 1, 0.999999), 1249ms);
}

TEST_F(WorkerTest, SignsRetriesWithTheSameIdAndRemovesTheDeliveredRow) {
  auto& rx = receiver({500, 503, 204});
  WebhookWorkerOptions o;
  o.key = "0123456789abcdef";
  o.retry_base = 5ms;
  const std::string id = "00000000-0000-4000-8000-0000000000d1";
  queue(id, "http://127.0.0.1:" + std::to_string(rx.port()) + "/hook?t=1");
  auto& w = start(o);
  ASSERT_TRUE(testkit::wait_until([&] { return w.delivered() == 1; }, 5000ms));
  EXPECT_EQ(w.failed_attempts(), 2u);
  EXPECT_FALSE(find(id));
  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 3u);
  for (const auto& req : reqs) {
    EXPECT_EQ(req.rfind("POST /hook?t=1 HTTP/1.1\r\n", 0), 0u) << req;
    EXPECT_EQ(header(req, "webhook-id"), id);
    EXPECT_EQ(header(req, "Content-Type"), "application/json");
    const std::string body = req.substr(req.find("\r\n\r\n") + 4);
    EXPECT_EQ(body, R"({"type":"run.ended","run":{"run_id":"x"}})");
    const auto ts = std::stoll(header(req, "webhook-timestamp"));
    EXPECT_EQ(header(req, "webhook-signature"), webhook_signature(o.key, id, ts, body));
  }
}

TEST_F(WorkerTest, GivesUpAfterMaxAttemptsKeepingTheRowAsFailed) {
  auto& rx = receiver({500});
  WebhookWorkerOptions o;
  o.key = "0123456789abcdef";
  o.retry_base = 2ms;
  o.max_attempts = 3;
  const std::string id = "00000000-0000-4000-8000-0000000000d2";
  queue(id, "http://127.0.0.1:" + std::to_string(rx.port()) + "/");
  auto& w = start(o);
  ASSERT_TRUE(testkit::wait_until([&] { return w.given_up() == 1; }, 5000ms));
  const auto d = find(id);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->failed);
  EXPECT_EQ(d->attempts, 3);
  EXPECT_EQ(d->last_error.value_or(""), "HTTP 500 X");
  EXPECT_EQ(rx.requests().size(), 3u);
  bool logged = false;
  for (const auto& line : log.lines())
    logged = logged || line.find("giving up after 3 attempts") != std::string::npos;
  EXPECT_TRUE(logged);
}

TEST_F(WorkerTest, ARefusedConnectionIsAFailedAttempt) {
  // A port nobody listens on: bind one, then close it.
  std::uint16_t port = 0;
  {
    asio::io_context local;
    tcp::acceptor a(local, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  WebhookWorkerOptions o;
  o.key = "0123456789abcdef";
  o.retry_base = 60'000ms;
  const std::string id = "00000000-0000-4000-8000-0000000000d3";
  queue(id, "http://127.0.0.1:" + std::to_string(port) + "/");
  auto& w = start(o);
  ASSERT_TRUE(testkit::wait_until([&] { return w.failed_attempts() == 1; }, 5000ms));
  ASSERT_TRUE(testkit::wait_until([&] { return find(id)->last_error.has_value(); }, 2000ms));
  EXPECT_NE(find(id)->last_error->find("refused"), std::string::npos) << *find(id)->last_error;
  EXPECT_FALSE(find(id)->failed);
}

TEST_F(WorkerTest, IdleWithNothingPendingItAsksTheDatabaseNothing) {
  auto& rx = receiver({204});
  WebhookWorkerOptions o;
  o.key = "0123456789abcdef";
  auto& w = start(o);
  // At start: one claim, one look for the next due.
  ASSERT_TRUE(testkit::wait_until([&] { return db.reads.load() == 1; }, 2000ms));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(db.writes.load(), 1);
  EXPECT_EQ(db.reads.load(), 1);
  // A wake-up (a delivery queued) is what makes it look again.
  queue("00000000-0000-4000-8000-0000000000d4",
        "http://127.0.0.1:" + std::to_string(rx.port()) + "/");
  w.wake();
  ASSERT_TRUE(testkit::wait_until([&] { return w.delivered() == 1; }, 5000ms));
  ASSERT_TRUE(testkit::wait_until([&] { return db.reads.load() >= 2; }, 2000ms));
  std::this_thread::sleep_for(200ms);
  const int reads = db.reads.load(), writes = db.writes.load();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(db.reads.load(), reads);
  EXPECT_EQ(db.writes.load(), writes);
}

}  // namespace
}  // namespace chat::infra::webhooks
