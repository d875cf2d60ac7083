#pragma once
/// Test support (unit tests only): an io_context on a few threads, running a coroutine to
/// completion from the test thread with a timeout, and waiting on a condition with a deadline.

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include "application/task.hpp"

namespace chat::testkit {

using namespace std::chrono_literals;

/// An io_context run by `threads` threads until stop() (or destruction).
class IoRunner {
 public:
  explicit IoRunner(int threads = 2) : guard_(io_.get_executor()) {
    for (int i = 0; i < threads; ++i)
      threads_.emplace_back([this] {
        io_.run();
        ++exited_;
      });
  }
  ~IoRunner() { stop(); }
  IoRunner(const IoRunner&) = delete;
  IoRunner& operator=(const IoRunner&) = delete;

  boost::asio::io_context& io() { return io_; }

  /// Lets the threads run out of work (bounded), then stops and joins them. Idempotent.
  void stop() {
    if (threads_.empty()) return;
    guard_.reset();
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (exited_.load() < static_cast<int>(threads_.size()) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
  std::atomic<int> exited_{0};
};

namespace detail {
// co_spawn with use_future needs a default-constructible result; domain::Result is not.
template <class T>
app::Task<std::optional<T>> as_optional(app::Task<T> t) {
  co_return std::optional<T>(co_await std::move(t));
}
inline app::Task<bool> as_bool(app::Task<void> t) {
  co_await std::move(t);
  co_return true;
}
template <class F>
void wait_ready(F& f, std::chrono::milliseconds timeout) {
  if (f.wait_for(timeout) != std::future_status::ready)
    throw std::runtime_error("coroutine did not finish within " +
                             std::to_string(timeout.count()) + " ms");
}
}  // namespace detail

/// Runs `task` on a fresh strand of `io` and returns its result (or rethrows its exception).
/// Throws when it does not finish within `timeout`.
template <class T>
T run_sync(boost::asio::io_context& io, app::Task<T> task,
           std::chrono::milliseconds timeout = 5000ms) {
  auto strand = boost::asio::make_strand(io);
  if constexpr (std::is_void_v<T>) {
    auto f = boost::asio::co_spawn(strand, detail::as_bool(std::move(task)),
                                   boost::asio::use_future);
    detail::wait_ready(f, timeout);
    f.get();
  } else {
    auto f = boost::asio::co_spawn(strand, detail::as_optional<T>(std::move(task)),
                                   boost::asio::use_future);
    detail::wait_ready(f, timeout);
    return std::move(*f.get());
  }
}

/// Polls `pred` until it holds or `timeout` passes; returns its last value.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace chat::testkit
