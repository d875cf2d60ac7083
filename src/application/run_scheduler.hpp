#pragma once
/// Starts queued runs: one at a time per thread, in creation order, at most `max_concurrent` at
/// once in this process. Owns the control block of every run it executes, through which cancel
/// reaches the executor.
///
/// One instance: queued runs wait in an in-process queue per thread. Several instances on one
/// database (enable_cluster): the queue is the database; this scheduler claims runs (see
/// RunLeaseRepository) whenever it may start one and something may be claimable — a run was
/// queued here or announced by another instance, a run ended here, a lease lapsed — and keeps
/// its runs' leases renewed every lease/3, stopping any run whose lease it lost.
///
/// Thread safety: every public member is safe to call from any thread. Cancellation:
/// `request_cancel` signals a running run; `shutdown` signals all of them.

#include <atomic>
#include <chrono>
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
class EventBus;
class Logger;

/// Per-running-run state shared by the scheduler, cancel requests and the executor. The
/// executor runs on `strand`; every field but `cancel_requested` is touched only there.
struct RunControl : std::enable_shared_from_this<RunControl> {
  explicit RunControl(boost::asio::any_io_executor s) : strand(s), sleep_timer(s) {}
  boost::asio::any_io_executor strand;
  std::atomic<bool> cancel_requested{false};
  boost::asio::steady_timer sleep_timer;
  std::function<void()> cancel_hook;
  /// Several instances: the lease lapsed and another instance finalized the run; the executor
  /// stops without writing anything more.
  std::atomic<bool> lease_lost{false};
  /// Posts the cancel to the run's strand: sets the flag, wakes sleeps, runs the hook.
  void request_cancel();
};

class RunScheduler {
 public:
  RunScheduler(boost::asio::io_context& io, RunExecutor& executor, std::size_t max_concurrent);

  struct ClusterOptions {
    std::string instance_id;  ///< unique per process start; owns this process's leases
    std::chrono::milliseconds lease{10000};
    EventBus* bus = nullptr;  ///< must outlive the scheduler
    Logger* log = nullptr;
  };
  /// Several instances on one database. Call once, before start_cluster() and any enqueue.
  void enable_cluster(ClusterOptions o);
  /// Starts the lease loop (renewal, and finalizing runs whose lease lapsed anywhere) and
  /// claims what is claimable.
  void start_cluster();
  bool clustered() const { return cluster_; }

  /// Queues a committed run; call in creation (commit) order. Several instances: claims
  /// (the run is in the database), and announces it when this instance is full.
  void enqueue(const std::string& thread_id, const std::string& run_id);
  /// One instance, inside the transaction that creates a run: true when the run may start at
  /// once (its thread has no run queued or running here, a slot is free). The slot and the
  /// thread are then held for it, and a cancel reaches it from the start; the caller stores the
  /// run as running with its `state` event, then calls start_reserved after the commit, or
  /// release_reserved when the transaction did not commit. Several instances: always false.
  bool reserve_start(const std::string& thread_id, const std::string& run_id);
  /// Executes a reserved run that its transaction stored as running.
  void start_reserved(const std::string& thread_id, const std::string& run_id);
  /// Gives back a reservation whose transaction did not commit.
  void release_reserved(const std::string& thread_id, const std::string& run_id);
  /// Several instances: claims runs while slots are free (e.g. another instance announced one).
  void wake();
  /// Cancels a run only if this process executes it (a request from another instance).
  bool cancel_local(const std::string& run_id);
  /// Drops a queued run that was canceled before it started. False if it was not queued here.
  bool remove_queued(const std::string& thread_id, const std::string& run_id);
  /// Signals a running run to stop. False when this process is not executing it (several
  /// instances: the request then goes to the others over the bus).
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
  void start_locked(const std::string& thread_id, const std::string& run_id, bool claimed);
  void spawn(const std::string& thread_id, const std::string& run_id,
             std::shared_ptr<RunControl> ctl, bool claimed);
  void finished(const std::string& thread_id, const std::string& run_id);
  Task<void> claim_loop();
  Task<void> lease_loop();

  boost::asio::io_context& io_;
  RunExecutor& executor_;
  const std::size_t max_concurrent_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, ThreadQueue> threads_;
  std::deque<std::string> ready_;  ///< threads with a queued run and none running
  std::unordered_map<std::string, std::shared_ptr<RunControl>> controls_;
  std::size_t queued_ = 0;
  bool stopping_ = false;

  bool cluster_ = false;
  ClusterOptions copts_;
  bool claiming_ = false;     ///< a claim loop runs
  bool claim_again_ = false;  ///< woken during the claim loop's last attempt
  std::shared_ptr<boost::asio::steady_timer> lease_timer_;
};

}  // namespace chat::app
