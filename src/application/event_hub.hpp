#pragma once
/// In-process fan-out of committed run events to live subscribers.
///
/// The writer publishes each batch after it commits; the hub hands every event to the
/// subscribers of its run. Each subscriber has a bounded queue: when it is full the subscriber
/// is marked overflowed and gets nothing more (its owner disconnects the client, which resumes
/// with Last-Event-ID), so a slow reader never slows the publisher or the others and memory
/// stays bounded.
///
/// Thread safety: all members are safe to call from any thread. A Subscription is consumed by
/// one owner coroutine running on the executor given at subscribe time (a strand).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "application/task.hpp"
#include "domain/entities.hpp"

namespace chat::app {

using EventPtr = std::shared_ptr<const domain::RunEvent>;

class EventHub;

class Subscription : public std::enable_shared_from_this<Subscription> {
 public:
  Subscription(boost::asio::any_io_executor ex, std::string run_id, std::size_t capacity);

  /// Moves every queued event into `out` (appending). Owner only.
  void drain(std::vector<EventPtr>& out);
  /// True once the queue overflowed or the hub closed it; no more events will come.
  bool closed() const;
  bool overflowed() const;

  /// Waits until events are queued, the subscription closes, or `timeout` passes. May wake
  /// spuriously. Owner only, on the subscription's executor.
  Task<void> wait(std::chrono::steady_clock::duration timeout);

  /// Called by the hub.
  void push(const EventPtr& e);
  void close();
  const std::string& run_id() const { return run_id_; }

 private:
  void wake_locked();

  boost::asio::steady_timer timer_;
  const std::string run_id_;
  const std::size_t capacity_;
  mutable std::mutex mu_;
  // A vector, not a deque: an idle subscription allocates nothing (libstdc++'s deque allocates
  // ~600 bytes up front), and drain() hands the whole queue over by swapping buffers.
  std::vector<EventPtr> queue_;
  bool waiting_ = false;
  bool overflowed_ = false;
  bool closed_ = false;
};

/// Unsubscribes on destruction.
class SubscriptionHandle {
 public:
  SubscriptionHandle() = default;
  SubscriptionHandle(EventHub* hub, std::shared_ptr<Subscription> s)
      : hub_(hub), sub_(std::move(s)) {}
  SubscriptionHandle(SubscriptionHandle&& o) noexcept : hub_(o.hub_), sub_(std::move(o.sub_)) {}
  SubscriptionHandle& operator=(SubscriptionHandle&& o) noexcept;
  SubscriptionHandle(const SubscriptionHandle&) = delete;
  SubscriptionHandle& operator=(const SubscriptionHandle&) = delete;
  ~SubscriptionHandle();
  Subscription* operator->() const { return sub_.get(); }
  Subscription& operator*() const { return *sub_; }
  explicit operator bool() const { return sub_ != nullptr; }

 private:
  void reset();
  EventHub* hub_ = nullptr;
  std::shared_ptr<Subscription> sub_;
};

class EventHub {
 public:
  explicit EventHub(std::size_t default_capacity = 4096) : default_capacity_(default_capacity) {}

  SubscriptionHandle subscribe(const std::string& run_id, boost::asio::any_io_executor ex,
                               std::size_t capacity = 0);
  /// Hands committed events to the subscribers of their runs, in order.
  void publish(const std::vector<EventPtr>& events);
  void publish(const EventPtr& e);
  /// Events another instance committed (several instances): handed to subscribers like any
  /// others, but not counted as published here (the instance that committed them counts them).
  void publish_remote(const std::vector<EventPtr>& events);
  bool has_subscribers(const std::string& run_id) const;
  /// The runs with at least one subscriber now.
  std::vector<std::string> subscribed_runs() const;
  /// Closes every subscription (shutdown).
  void close_all();

  std::size_t subscriber_count() const;
  std::uint64_t overflow_count() const;
  /// Events published since start (every committed event is published once).
  std::uint64_t published_count() const;
  /// Runs whose `done` event was published since start, by the status it carries.
  std::uint64_t ended_count(domain::RunStatus status) const;

 private:
  friend class SubscriptionHandle;
  void unsubscribe(const std::shared_ptr<Subscription>& s);

  const std::size_t default_capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Subscription>>> subs_;
  std::size_t count_ = 0;
  std::uint64_t overflows_ = 0;
  std::uint64_t published_ = 0;
  std::array<std::uint64_t, 5> ended_{};  ///< by RunStatus
  void count_locked(const domain::RunEvent& e);
};

}  // namespace chat::app
