#include "application/run_scheduler.hpp"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

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

void RunScheduler::enqueue(const std::string& thread_id, const std::string& run_id) {
  std::lock_guard lock(mu_);
  auto& tq = threads_[thread_id];
  tq.runs.push_back(run_id);
  ++queued_;
  if (!tq.active && tq.runs.size() == 1) ready_.push_back(thread_id);
  pump_locked();
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

void RunScheduler::shutdown() {
  std::lock_guard lock(mu_);
  stopping_ = true;
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
    auto strand = boost::asio::make_strand(io_.get_executor());
    auto ctl = std::make_shared<RunControl>(strand);
    controls_[run_id] = ctl;
    boost::asio::co_spawn(
        strand, executor_.execute(run_id, ctl),
        [this, thread_id, run_id](std::exception_ptr) {
          // execute() catches and logs its own failures; this only frees the slot.
          finished(thread_id, run_id);
        });
  }
}

void RunScheduler::finished(const std::string& thread_id, const std::string& run_id) {
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
