#include "application/event_hub.hpp"

#include <algorithm>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace chat::app {

Subscription::Subscription(boost::asio::any_io_executor ex, std::string run_id,
                           std::size_t capacity)
    : timer_(std::move(ex)), run_id_(std::move(run_id)), capacity_(capacity) {}

void Subscription::drain(std::vector<EventPtr>& out) {
  std::lock_guard lock(mu_);
  if (out.empty()) {
    out.swap(queue_);  // the usual case: O(1), and the two buffers are reused in turn
  } else {
    out.insert(out.end(), std::make_move_iterator(queue_.begin()),
               std::make_move_iterator(queue_.end()));
  }
  queue_.clear();
}

bool Subscription::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

bool Subscription::overflowed() const {
  std::lock_guard lock(mu_);
  return overflowed_;
}

// Wakes the owner only if it is parked in wait(); the cancel runs on the owner's executor, so
// it cannot slip in between the owner's check of the queue and the start of its timer wait.
void Subscription::wake_locked() {
  if (!waiting_) return;
  waiting_ = false;
  boost::asio::post(timer_.get_executor(),
                    [self = shared_from_this()] { self->timer_.cancel(); });
}

void Subscription::push(const EventPtr& e) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  if (queue_.size() >= capacity_) {
    overflowed_ = true;
    closed_ = true;
    std::vector<EventPtr>().swap(queue_);  // gives the memory back
  } else {
    queue_.push_back(e);
  }
  wake_locked();
}

void Subscription::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  wake_locked();
}

Task<void> Subscription::wait(std::chrono::steady_clock::duration timeout) {
  {
    std::lock_guard lock(mu_);
    if (!queue_.empty() || closed_) co_return;
    waiting_ = true;
  }
  timer_.expires_after(timeout);
  boost::system::error_code ec;
  co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  std::lock_guard lock(mu_);
  waiting_ = false;
}

SubscriptionHandle& SubscriptionHandle::operator=(SubscriptionHandle&& o) noexcept {
  if (this != &o) {
    reset();
    hub_ = o.hub_;
    sub_ = std::move(o.sub_);
  }
  return *this;
}

SubscriptionHandle::~SubscriptionHandle() { reset(); }

void SubscriptionHandle::reset() {
  if (hub_ && sub_) hub_->unsubscribe(sub_);
  sub_.reset();
}

SubscriptionHandle EventHub::subscribe(const std::string& run_id, boost::asio::any_io_executor ex,
                                       std::size_t capacity) {
  auto s = std::make_shared<Subscription>(std::move(ex), run_id,
                                          capacity ? capacity : default_capacity_);
  std::lock_guard lock(mu_);
  subs_[run_id].push_back(s);
  ++count_;
  return SubscriptionHandle(this, std::move(s));
}

void EventHub::unsubscribe(const std::shared_ptr<Subscription>& s) {
  std::lock_guard lock(mu_);
  if (s->overflowed()) ++overflows_;
  auto it = subs_.find(s->run_id());
  if (it == subs_.end()) return;
  auto& v = it->second;
  auto pos = std::find(v.begin(), v.end(), s);
  if (pos == v.end()) return;
  *pos = std::move(v.back());
  v.pop_back();
  --count_;
  if (v.empty()) subs_.erase(it);
}

// A `done` event's data is {"status":"<final status>"} (API.md).
void EventHub::count_locked(const domain::RunEvent& e) {
  ++published_;
  if (e.type != domain::EventType::done) return;
  constexpr std::string_view kKey = "\"status\":\"";
  std::string_view d = e.data;
  auto at = d.find(kKey);
  if (at == std::string_view::npos) return;
  d.remove_prefix(at + kKey.size());
  if (auto s = domain::parse_run_status(d.substr(0, d.find('"'))))
    ++ended_[static_cast<std::size_t>(*s)];
}

void EventHub::publish(const EventPtr& e) {
  std::lock_guard lock(mu_);
  count_locked(*e);
  auto it = subs_.find(e->run_id);
  if (it == subs_.end()) return;
  for (auto& s : it->second) s->push(e);
}

void EventHub::publish(const std::vector<EventPtr>& events) {
  std::lock_guard lock(mu_);
  for (const auto& e : events) {
    count_locked(*e);
    auto it = subs_.find(e->run_id);
    if (it == subs_.end()) continue;
    for (auto& s : it->second) s->push(e);
  }
}

void EventHub::publish_remote(const std::vector<EventPtr>& events) {
  std::lock_guard lock(mu_);
  for (const auto& e : events) {
    auto it = subs_.find(e->run_id);
    if (it == subs_.end()) continue;
    for (auto& s : it->second) s->push(e);
  }
}

bool EventHub::has_subscribers(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  return subs_.count(run_id) > 0;
}

std::vector<std::string> EventHub::subscribed_runs() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(subs_.size());
  for (const auto& [run, v] : subs_) out.push_back(run);
  return out;
}

void EventHub::close_all() {
  std::lock_guard lock(mu_);
  for (auto& [run, v] : subs_)
    for (auto& s : v) s->close();
}

std::size_t EventHub::subscriber_count() const {
  std::lock_guard lock(mu_);
  return count_;
}

std::uint64_t EventHub::overflow_count() const {
  std::lock_guard lock(mu_);
  return overflows_;
}

std::uint64_t EventHub::published_count() const {
  std::lock_guard lock(mu_);
  return published_;
}

std::uint64_t EventHub::ended_count(domain::RunStatus status) const {
  std::lock_guard lock(mu_);
  return ended_[static_cast<std::size_t>(status)];
}

}  // namespace chat::app
