#include "application/run_scheduler.hpp"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "application/event_bus.hpp"
#include "application/ports.hpp"
#include "application/run_executor.hpp"

namespace chat::app {

void RunControl::request_cancel() {
  cancel_requested.store(true);
  boost::asio::post(strand, [self = shared_from_this()] {
    self->sleep_timer.cancel();
    if (self->cancel_hook) self->cancel_hook();
  });
}

RunScheduler::RunScheduler(boost::asio::io_context& io, RunExecutor& executor,
                           std::size_t max_concurrent)
    : io_(io), executor_(executor), max_concurrent_(std::max<std::size_t>(1, max_concurrent)) {}

void RunScheduler::enable_cluster(ClusterOptions o) {
  std::lock_guard lock(mu_);
  copts_ = std::move(o);
  cluster_ = true;
}

void RunScheduler::start_cluster() {
  {
    std::lock_guard lock(mu_);
    lease_timer_ = std::make_shared<boost::asio::steady_timer>(io_);
  }
  boost::asio::co_spawn(io_, lease_loop(), boost::asio::detached);
  wake();
}

void RunScheduler::wake() {
  {
    std::lock_guard lock(mu_);
    if (!cluster_ || stopping_) return;
    if (claiming_) {
      claim_again_ = true;
      return;
    }
    claiming_ = true;
    claim_again_ = false;
  }
  // Outside the lock: co_spawn may start the loop inline, and it takes the lock.
  boost::asio::co_spawn(io_, claim_loop(), boost::asio::detached);
}

// One claim at a time: a claim that finds nothing ends the loop unless a wake came meanwhile.
Task<void> RunScheduler::claim_loop() {
  for (;;) {
    bool full = false;
    {
      std::lock_guard lock(mu_);
      full = stopping_ || controls_.size() >= max_concurrent_;
      if (full)
        claiming_ = false;  // a run ending here wakes it again
      else
        claim_again_ = false;
    }
    if (full) co_return;
    std::optional<std::pair<std::string, std::string>> got;
    std::string failure;
    try {
      got = co_await executor_.claim(copts_.instance_id, copts_.lease);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty() && copts_.log) copts_.log->warn("claiming a queued run failed: " + failure);
    // No lock is held across a co_await or a jump out of its scope (GCC 12 coroutines have
    // mishandled destructors there): decide under the lock, act after it.
    bool stop = false;
    {
      std::lock_guard lock(mu_);
      if (got) {
        start_locked(got->first, got->second, true);
      } else if (!claim_again_ || !failure.empty()) {
        // Nothing claimable (or the database is away: the lease loop wakes us again).
        claiming_ = false;
        stop = true;
      }
    }
    if (stop) co_return;
  }
}

Task<void> RunScheduler::lease_loop() {
  const auto every = std::max<std::chrono::milliseconds>(copts_.lease / 3, std::chrono::milliseconds(50));
  std::shared_ptr<boost::asio::steady_timer> timer;
  {
    std::lock_guard lock(mu_);
    timer = lease_timer_;
  }
  for (;;) {
    std::vector<std::string> local;
    bool stop = false;
    {
      std::lock_guard lock(mu_);
      stop = stopping_;
      for (const auto& [id, ctl] : controls_) local.push_back(id);
    }
    if (stop) co_return;
    std::optional<RunExecutor::LeaseTick> tick;
    std::string failure;
    try {
      tick = co_await executor_.lease_tick(copts_.instance_id, copts_.lease, !local.empty());
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!tick) {
      if (copts_.log) copts_.log->warn("renewing run leases failed: " + failure);
    } else {
      std::vector<std::shared_ptr<RunControl>> lost;
      {
        std::lock_guard lock(mu_);
        for (const auto& id : local) {
          if (std::find(tick->renewed.begin(), tick->renewed.end(), id) != tick->renewed.end())
            continue;
          auto it = controls_.find(id);
          if (it != controls_.end()) lost.push_back(it->second);
        }
      }
      // Another instance finalized these (our lease had lapsed): stop, write nothing more.
      for (auto& ctl : lost) {
        ctl->lease_lost.store(true);
        ctl->request_cancel();
      }
      if (!lost.empty() && copts_.log)
        copts_.log->warn("lost the lease of " + std::to_string(lost.size()) +
                         " run(s); stopped them");
      if (tick->expired > 0) wake();  // their threads' next runs may start now
    }
    timer->expires_after(every);
    boost::system::error_code ec;
    co_await timer->async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

bool RunScheduler::cancel_local(const std::string& run_id) {
  std::shared_ptr<RunControl> ctl;
  {
    std::lock_guard lock(mu_);
    auto it = controls_.find(run_id);
    if (it == controls_.end()) return false;
    ctl = it->second;
  }
  ctl->request_cancel();
  return true;
}

void RunScheduler::enqueue(const std::string& thread_id, const std::string& run_id) {
  if (cluster_) {
    bool full = false;
    {
      std::lock_guard lock(mu_);
      full = stopping_ || controls_.size() >= max_concurrent_;
    }
    // A free slot here claims it (or learns its thread is busy: the instance running that
    // thread claims the next run when it ends); a full instance lets the others know.
    if (full && copts_.bus) copts_.bus->announce_queued();
    wake();
    return;
  }
  std::lock_guard lock(mu_);
  auto& tq = threads_[thread_id];
  tq.runs.push_back(run_id);
  ++queued_;
  if (!tq.active && tq.runs.size() == 1) ready_.push_back(thread_id);
  pump_locked();
}

bool RunScheduler::reserve_start(const std::string& thread_id, const std::string& run_id) {
  if (cluster_) return false;  // the database decides who starts what (claims)
  std::lock_guard lock(mu_);
  if (controls_.count(run_id)) return true;  // the transaction is being retried
  if (stopping_ || controls_.size() >= max_concurrent_ || threads_.count(thread_id)) return false;
  threads_[thread_id].active = true;
  controls_[run_id] = std::make_shared<RunControl>(boost::asio::make_strand(io_.get_executor()));
  return true;
}

void RunScheduler::start_reserved(const std::string& thread_id, const std::string& run_id) {
  std::lock_guard lock(mu_);
  auto it = controls_.find(run_id);
  if (it == controls_.end()) return;
  spawn(thread_id, run_id, it->second, true);
}

void RunScheduler::release_reserved(const std::string& thread_id, const std::string& run_id) {
  finished(thread_id, run_id);
}

bool RunScheduler::remove_queued(const std::string& thread_id, const std::string& run_id) {
  std::lock_guard lock(mu_);
  auto it = threads_.find(thread_id);
  if (it == threads_.end()) return false;
  auto& runs = it->second.runs;
  auto pos = std::find(runs.begin(), runs.end(), run_id);
  if (pos == runs.end()) return false;
  runs.erase(pos);
  --queued_;
  if (runs.empty() && !it->second.active) {
    ready_.erase(std::remove(ready_.begin(), ready_.end(), thread_id), ready_.end());
    threads_.erase(it);
  }
  return true;
}

bool RunScheduler::request_cancel(const std::string& run_id) {
  if (cancel_local(run_id)) return true;
  if (cluster_ && copts_.bus) copts_.bus->send_cancel(run_id);
  return false;
}

void RunScheduler::shutdown() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  if (lease_timer_) lease_timer_->cancel();
  for (auto& [id, ctl] : controls_) ctl->request_cancel();
}

std::size_t RunScheduler::running() const {
  std::lock_guard lock(mu_);
  return controls_.size();
}

std::size_t RunScheduler::queued() const {
  std::lock_guard lock(mu_);
  return queued_;
}

void RunScheduler::pump_locked() {
  while (!stopping_ && controls_.size() < max_concurrent_ && !ready_.empty()) {
    std::string thread_id = std::move(ready_.front());
    ready_.pop_front();
    auto& tq = threads_[thread_id];
    if (tq.active || tq.runs.empty()) continue;
    std::string run_id = std::move(tq.runs.front());
    tq.runs.pop_front();
    --queued_;
    tq.active = true;
    start_locked(thread_id, run_id, false);
  }
}

void RunScheduler::start_locked(const std::string& thread_id, const std::string& run_id,
                                bool claimed) {
  auto ctl = std::make_shared<RunControl>(boost::asio::make_strand(io_.get_executor()));
  controls_[run_id] = ctl;
  spawn(thread_id, run_id, std::move(ctl), claimed);
}

void RunScheduler::spawn(const std::string& thread_id, const std::string& run_id,
                         std::shared_ptr<RunControl> ctl, bool claimed) {
  // Posted, never run inline: the caller holds mu_ (or a database's lock, in a commit's
  // callback), and the executor's first step is a database call.
  auto strand = ctl->strand;
  boost::asio::post(strand, [this, thread_id, run_id, ctl = std::move(ctl), claimed] {
    boost::asio::co_spawn(ctl->strand, executor_.execute(run_id, ctl, claimed),
                          [this, thread_id, run_id](std::exception_ptr) {
                            // execute() catches and logs its own failures; this frees the slot.
                            finished(thread_id, run_id);
                          });
  });
}

void RunScheduler::finished(const std::string& thread_id, const std::string& run_id) {
  if (cluster_) {
    {
      std::lock_guard lock(mu_);
      controls_.erase(run_id);
    }
    wake();  // a slot is free, and the thread's next run may be claimable
    return;
  }
  std::lock_guard lock(mu_);
  controls_.erase(run_id);
  auto it = threads_.find(thread_id);
  if (it != threads_.end()) {
    it->second.active = false;
    if (it->second.runs.empty())
      threads_.erase(it);
    else
      ready_.push_back(thread_id);
  }
  pump_locked();
}

}  // namespace chat::app
