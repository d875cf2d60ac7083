#pragma once
/// Starts queued runs: one at a time per thread, in creation order, at most `max_concurrent` at
/// once in this process. Owns the control block of every run it executes, through which cancel
/// reaches the executor.
///
/// Thread safety: every public member is safe to call from any thread. Cancellation:
/// `request_cancel` signals a running run; `shutdown` signals all of them.

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "application/task.hpp"

namespace chat::app {

class RunExecutor;

/// Per-running-run state shared by the scheduler, cancel requests and the executor. The
/// executor runs on `strand`; every field but `cancel_requested` is touched only there.
struct RunControl : std::enable_shared_from_this<RunControl> {
  explicit RunControl(boost::asio::any_io_executor s) : strand(s), sleep_timer(s) {}
  boost::asio::any_io_executor strand;
  std::atomic<bool> cancel_requested{false};
  boost::asio::steady_timer sleep_timer;
  std::function<void()> cancel_hook;
  /// Posts the cancel to the run's strand: sets the flag, wakes sleeps, runs the hook.
  void request_cancel();
};

class RunScheduler {
 public:
  RunScheduler(boost::asio::io_context& io, RunExecutor& executor, std::size_t max_concurrent);

  /// Queues a committed run; call in creation (commit) order.
  void enqueue(const std::string& thread_id, const std::string& run_id);
  /// Drops a queued run that was canceled before it started. False if it was not queued here.
  bool remove_queued(const std::string& thread_id, const std::string& run_id);
  /// Signals a running run to stop. False when this process is not executing it.
  bool request_cancel(const std::string& run_id);
  /// Stops starting runs; signals every running run to cancel.
  void shutdown();

  std::size_t running() const;
  std::size_t queued() const;

 private:
  struct ThreadQueue {
    std::deque<std::string> runs;
    bool active = false;
  };
  void pump_locked();
  void finished(const std::string& thread_id, const std::string& run_id);

  boost::asio::io_context& io_;
  RunExecutor& executor_;
  const std::size_t max_concurrent_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, ThreadQueue> threads_;
  std::deque<std::string> ready_;  ///< threads with a queued run and none running
  std::unordered_map<std::string, std::shared_ptr<RunControl>> controls_;
  std::size_t queued_ = 0;
  bool stopping_ = false;
};

}  // namespace chat::app
