#pragma once
/// The service as main.cpp wires it, on the in-memory database and the demo engine with no
/// delays, for the fuzz targets. One World per input: every input starts from the same state
/// (user 1, one thread with one finished run), so a crash reproduces from its input alone.
///
/// Single-threaded: everything runs on the world's io_context, driven by `run`.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include "application/chat_service.hpp"
#include "application/event_hub.hpp"
#include "application/run_executor.hpp"
#include "application/run_scheduler.hpp"
#include "infrastructure/db/memory/memory_database.hpp"
#include "infrastructure/engines/demo_engine.hpp"
#include "infrastructure/web/handlers.hpp"
#include "infrastructure/web/metrics.hpp"
#include "testkit/fakes.hpp"

namespace chat::fuzz {

namespace http = boost::beast::http;

/// Stops the process with a message: a broken invariant is a finding, as a crash is.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what.c_str());
  std::abort();
}

class World {
 public:
  World()
      : engine_(infra::engines::DemoOptions{std::chrono::milliseconds(0),
                                            std::chrono::milliseconds(0), false}),
        hub_(64),
        executor_(db_, hub_, engine_, clock_, ids_, log_),
        scheduler_(io_, executor_, 4),
        service_(db_, hub_, scheduler_, clock_, ids_, limits()),
        ctx_{service_, &db_, &metrics_, 32, 65536, {}, {}} {
    web::add_core_collectors(metrics_, hub_, scheduler_);
    auto user = run(service_.create_user("fuzz-user"));
    if (!user || !*user) fail("setup: create_user");
    auto thread = run(service_.create_thread((*user)->user.id, std::nullopt));
    if (!thread || !*thread) fail("setup: create_thread");
    thread_id_ = (*thread)->id;
    auto posted = run(service_.post_message(thread_id_, "hello fuzz", std::nullopt));
    if (!posted || !*posted) fail("setup: post_message");
    run_id_ = (*posted)->run_id;
    settle();
  }

  ~World() {
    scheduler_.shutdown();
    settle();
    hub_.close_all();
    settle();
  }

  static app::Limits limits() {
    app::Limits l;
    l.max_content_bytes = 4096;  // small, so the fuzzer reaches the limit
    l.subscriber_queue = 64;
    return l;
  }

  /// Runs `task` to completion on the io_context (other work — runs — proceeds meanwhile).
  /// Empty when it did not finish within the bound: a hang, reported by the caller.
  template <class T>
  std::optional<T> run(app::Task<T> task, std::chrono::milliseconds bound = std::chrono::seconds(10)) {
    std::optional<T> out;
    std::exception_ptr err;
    bool finished = false;
    boost::asio::co_spawn(io_, capture(std::move(task), out), [&](std::exception_ptr e) {
      err = e;
      finished = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (!finished && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_one_for(std::chrono::milliseconds(100));
    }
    if (!finished) fail("a coroutine did not finish within " + std::to_string(bound.count()) + " ms");
    if (err) std::rethrow_exception(err);
    return out;
  }

  template <class T>
  static app::Task<void> capture(app::Task<T> task, std::optional<T>& out) {
    out.emplace(co_await std::move(task));
  }

  /// Lets background work (runs started by requests) finish.
  void settle() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      if (io_.poll() == 0 && scheduler_.running() == 0 && scheduler_.queued() == 0) return;
    }
    fail("background runs did not end within 10 s");
  }

  /// Replaces the placeholders {T} (the thread), {R} (its run) and {U} (the user) in a target,
  /// so that short inputs reach the routes that need an existing id.
  std::string expand(std::string s) const {
    for (auto [key, value] : {std::pair<std::string, std::string>{"{T}", thread_id_},
                              {"{R}", run_id_}, {"{U}", "1"}}) {
      for (auto p = s.find(key); p != std::string::npos; p = s.find(key, p + value.size()))
        s.replace(p, key.size(), value);
    }
    return s;
  }

  web::HandlerContext& ctx() { return ctx_; }
  boost::asio::io_context& io() { return io_; }
  const std::string& thread_id() const { return thread_id_; }
  const std::string& run_id() const { return run_id_; }

 private:
  boost::asio::io_context io_;
  testkit::StepClock clock_;
  testkit::SeqIds ids_;
  testkit::CapturingLogger log_;
  infra::engines::DemoEngine engine_;
  infra::memory::MemoryDatabase db_;
  app::EventHub hub_;
  app::RunExecutor executor_;
  app::RunScheduler scheduler_;
  app::ChatService service_;
  web::Metrics metrics_;
  web::HandlerContext ctx_;
  std::string thread_id_;
  std::string run_id_;
};

/// What a request came to: its status, and the seqs of the events its stream carried.
struct Handled {
  unsigned status = 0;
  bool streamed = false;
  std::vector<std::int64_t> seqs;
};

/// Handles one request as the server does (handle_request, then the stream read to its end) and
/// checks what every response must be: no 5xx, JSON bodies that parse, a stream whose events are
/// contiguous and end with `done`.
inline Handled handle(World& w, const web::Request& req) {
  auto out = w.run(web::handle_request(w.ctx(), req, w.io().get_executor()));
  if (!out) fail("handle_request did not finish");
  Handled h;
  if (out->stream) {
    h.streamed = true;
    h.status = 200;
    auto& s = *out->stream;
    std::int64_t prev = s.last_sent();
    bool ended = false;
    for (int step = 0; step < 200 && !ended; ++step) {
      auto st = w.run(s.next(std::chrono::milliseconds(50)));
      using K = app::RunEventStream::StepKind;
      if (st->kind == K::end) ended = true;
      if (st->kind == K::overflow) break;
      for (const auto& e : st->events) {
        if (e->seq != prev + 1)
          fail("stream seq " + std::to_string(e->seq) + " after " + std::to_string(prev));
        prev = e->seq;
        h.seqs.push_back(e->seq);
        boost::system::error_code ec;
        boost::json::parse(e->data, ec);
        if (ec) fail("event data is not JSON: " + e->data);
      }
    }
    if (!ended) fail("a stream of a finished run did not end");
    return h;
  }
  const auto& res = out->response;
  h.status = res.result_int();
  // /readyz on a working database is 200; 503 is the answer to a failing database only.
  if (h.status >= 500) fail("status " + std::to_string(h.status) + " for " + std::string(req.target()));
  const auto ct = res[http::field::content_type];
  if (ct.find("json") != std::string_view::npos) {
    boost::system::error_code ec;
    boost::json::parse(res.body(), ec);
    if (ec) fail("a JSON response that does not parse: " + res.body());
  }
  return h;
}

}  // namespace chat::fuzz
