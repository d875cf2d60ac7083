#pragma once
/// The API calls the scenarios make (users, threads, messages, runs), on an HttpClient; and
/// the coroutine plumbing they share (a latch, bounded parallel loops).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "net.hpp"

namespace lg {

/// Counts down; wait() returns once it reached zero.
class Latch {
 public:
  Latch(asio::any_io_executor ex, std::size_t n)
      : timer_(std::move(ex), std::chrono::steady_clock::time_point::max()), n_(n) {}
  void count_down() {
    if (n_ > 0 && --n_ == 0) timer_.cancel();
  }
  void add(std::size_t k = 1) { n_ += k; }
  std::size_t pending() const { return n_; }
  asio::awaitable<void> wait();

 private:
  asio::steady_timer timer_;
  std::size_t n_;
};

/// Sleeps on the current executor.
asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d);

/// Errors met by background coroutines: counted, the first few printed to stderr.
void note_error(const std::string& what);
std::uint64_t error_count();

/// Runs fn(client, i) for i in [0, n) over `conns` keep-alive connections (one worker each).
asio::awaitable<void> parallel_for(const Target& t, std::size_t n, std::size_t conns,
                                   std::function<asio::awaitable<void>(HttpClient&, std::size_t)> fn);

/// `words` words of plain ASCII text, JSON-safe.
std::string make_content(std::size_t words, std::size_t salt = 0);

struct RunInfo {
  std::string status;
  std::optional<std::int64_t> last_seq;  ///< absent when the server does not report it
};

asio::awaitable<std::int64_t> create_user(HttpClient& c, const std::string& name);
asio::awaitable<std::string> create_thread(HttpClient& c, std::int64_t user_id);
asio::awaitable<std::string> post_message(HttpClient& c, const std::string& thread_id,
                                          const std::string& content);
asio::awaitable<void> cancel_run(HttpClient& c, const std::string& run_id);
asio::awaitable<RunInfo> get_run(HttpClient& c, const std::string& run_id);
bool terminal(const std::string& status);

/// A name no earlier benchmark used.
std::string unique_name(const std::string& prefix);

}  // namespace lg
