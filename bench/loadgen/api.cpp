#include "api.hpp"

#include <cstdio>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <unistd.h>

#include "util.hpp"

namespace lg {

using asio::use_awaitable;

asio::awaitable<void> Latch::wait() {
  while (n_ > 0) {
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
}

namespace {
std::uint64_t g_errors = 0;
}

void note_error(const std::string& what) {
  if (++g_errors <= 5) std::fprintf(stderr, "loadgen: %s\n", what.c_str());
}

std::uint64_t error_count() { return g_errors; }

asio::awaitable<void> parallel_for(
    const Target& t, std::size_t n, std::size_t conns,
    std::function<asio::awaitable<void>(HttpClient&, std::size_t)> fn) {
  auto ex = co_await asio::this_coro::executor;
  if (conns > n) conns = n;
  if (conns == 0) co_return;
  Latch latch(ex, conns);
  std::size_t next = 0;
  for (std::size_t w = 0; w < conns; ++w) {
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          HttpClient client(co_await asio::this_coro::executor, t);
          while (next < n) {
            const std::size_t i = next++;
            try {
              co_await fn(client, i);
            } catch (const std::exception& e) {
              note_error(std::string("request failed: ") + e.what());
              client.close();
            }
          }
          latch.count_down();
        },
        asio::detached);
  }
  co_await latch.wait();
}

std::string make_content(std::size_t words, std::size_t salt) {
  static const char* kWords[] = {"lorem", "ipsum", "dolor", "sit",  "amet",   "consectetur",
                                 "adipiscing", "elit", "sed", "do", "eiusmod", "tempor"};
  std::string out;
  out.reserve(words * 7);
  for (std::size_t i = 0; i < words; ++i) {
    if (i) out += ' ';
    out += kWords[(i + salt) % (sizeof kWords / sizeof kWords[0])];
  }
  if (out.empty()) out = "hello";
  return out;
}

namespace {

[[noreturn]] void unexpected(const char* what, const Response& r) {
  throw std::runtime_error(std::string(what) + ": HTTP " + std::to_string(r.status) + " " +
                           r.body.substr(0, 200));
}

std::string required(const Response& r, const char* what, const char* key) {
  auto v = json_field(r.body, key);
  if (!v || v->empty()) unexpected(what, r);
  return *v;
}

}  // namespace

asio::awaitable<std::int64_t> create_user(HttpClient& c, const std::string& name) {
  auto r = co_await c.request("POST", "/api/users", "{\"name\":\"" + name + "\"}");
  if (r.status != 200 && r.status != 201) unexpected("create user", r);
  co_return std::stoll(required(r, "create user", "user_id"));
}

asio::awaitable<std::string> create_thread(HttpClient& c, std::int64_t user_id) {
  auto r = co_await c.request("POST", "/api/threads",
                              "{\"user_id\":" + std::to_string(user_id) + "}");
  if (r.status != 200 && r.status != 201) unexpected("create thread", r);
  co_return required(r, "create thread", "thread_id");
}

asio::awaitable<std::string> post_message(HttpClient& c, const std::string& thread_id,
                                          const std::string& content) {
  auto r = co_await c.request("POST", "/api/threads/" + thread_id + "/messages",
                              "{\"content\":\"" + content + "\"}");
  if (r.status != 200 && r.status != 201) unexpected("post message", r);
  co_return required(r, "post message", "run_id");
}

asio::awaitable<void> cancel_run(HttpClient& c, const std::string& run_id) {
  auto r = co_await c.request("POST", "/api/runs/" + run_id + "/cancel");
  if (r.status != 200) unexpected("cancel run", r);
}

asio::awaitable<RunInfo> get_run(HttpClient& c, const std::string& run_id) {
  auto r = co_await c.request("GET", "/api/runs/" + run_id);
  if (r.status != 200) unexpected("get run", r);
  RunInfo info;
  info.status = required(r, "get run", "status");
  if (auto s = json_field(r.body, "last_seq"); s && !s->empty() && *s != "null")
    info.last_seq = std::stoll(*s);
  co_return info;
}

bool terminal(const std::string& s) { return s == "done" || s == "error" || s == "canceled"; }

std::string unique_name(const std::string& prefix) {
  return prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(realtime_us());
}

}  // namespace lg
