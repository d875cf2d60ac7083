// EventHub and Subscription: fan-out, bounded queues, wake-ups and unsubscription.

#include "application/event_hub.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>

#include "testkit/async.hpp"

namespace chat::app {
namespace {

using testkit::IoRunner;
using namespace std::chrono_literals;

EventPtr ev(const std::string& run, std::int64_t seq) {
  return std::make_shared<const domain::RunEvent>(
      domain::RunEvent{run, seq, domain::EventType::token, R"({"text":"x"})", 0});
}

std::vector<std::int64_t> drained_seqs(Subscription& s) {
  std::vector<EventPtr> got;
  s.drain(got);
  std::vector<std::int64_t> out;
  for (const auto& e : got) out.push_back(e->seq);
  return out;
}

TEST(EventHub, SlowSubscriberOverflowsWhileAnotherGetsEveryEvent) {
  IoRunner io(1);
  EventHub hub;
  auto slow = hub.subscribe("run", io.io().get_executor(), 4);
  auto fast = hub.subscribe("run", io.io().get_executor());  // default capacity
  auto elsewhere = hub.subscribe("other-run", io.io().get_executor(), 4);
  EXPECT_EQ(hub.subscriber_count(), 3u);

  for (std::int64_t s = 1; s <= 6; ++s) hub.publish(ev("run", s));
  hub.publish(std::vector<EventPtr>{ev("run", 7), ev("run", 8), ev("other-run", 1)});

  EXPECT_TRUE(slow->overflowed());
  EXPECT_TRUE(slow->closed());
  EXPECT_TRUE(drained_seqs(*slow).empty());  // an overflowed queue is dropped, not kept
  hub.publish(ev("run", 9));
  EXPECT_TRUE(drained_seqs(*slow).empty());

  EXPECT_FALSE(fast->overflowed());
  EXPECT_FALSE(fast->closed());
  EXPECT_EQ(drained_seqs(*fast), (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(drained_seqs(*elsewhere), std::vector<std::int64_t>{1});

  EXPECT_EQ(hub.overflow_count(), 0u);  // counted when the owner lets go
  slow = SubscriptionHandle();
  EXPECT_EQ(hub.overflow_count(), 1u);
  EXPECT_EQ(hub.subscriber_count(), 2u);
}

TEST(EventHub, QueueHoldsExactlyItsCapacity) {
  IoRunner io(1);
  EventHub hub;
  auto sub = hub.subscribe("run", io.io().get_executor(), 4);
  for (std::int64_t s = 1; s <= 4; ++s) hub.publish(ev("run", s));
  EXPECT_FALSE(sub->overflowed());
  EXPECT_EQ(drained_seqs(*sub), (std::vector<std::int64_t>{1, 2, 3, 4}));
  // Draining makes room again.
  for (std::int64_t s = 5; s <= 8; ++s) hub.publish(ev("run", s));
  EXPECT_FALSE(sub->overflowed());
  EXPECT_EQ(drained_seqs(*sub), (std::vector<std::int64_t>{5, 6, 7, 8}));
  hub.publish(std::vector<EventPtr>{ev("run", 9), ev("run", 10), ev("run", 11), ev("run", 12),
                                    ev("run", 13)});
  EXPECT_TRUE(sub->overflowed());
}

TEST(EventHub, DefaultCapacityComesFromTheHub) {
  IoRunner io(1);
  EventHub hub(2);
  auto sub = hub.subscribe("run", io.io().get_executor());
  hub.publish(ev("run", 1));
  hub.publish(ev("run", 2));
  EXPECT_FALSE(sub->overflowed());
  hub.publish(ev("run", 3));
  EXPECT_TRUE(sub->overflowed());
}

TEST(EventHub, UnsubscribesOnHandleDestruction) {
  IoRunner io(1);
  EventHub hub;
  std::shared_ptr<const domain::RunEvent> kept = ev("run", 1);
  {
    auto a = hub.subscribe("run", io.io().get_executor());
    auto b = hub.subscribe("run", io.io().get_executor());
    EXPECT_EQ(hub.subscriber_count(), 2u);
    {
      SubscriptionHandle moved(std::move(a));
      EXPECT_FALSE(static_cast<bool>(a));  // NOLINT(bugprone-use-after-move)
      EXPECT_TRUE(static_cast<bool>(moved));
      EXPECT_EQ(hub.subscriber_count(), 2u);
    }
    EXPECT_EQ(hub.subscriber_count(), 1u);

    // Move-assigning over a live handle releases the old subscription.
    auto c = hub.subscribe("other", io.io().get_executor());
    EXPECT_EQ(hub.subscriber_count(), 2u);
    b = std::move(c);
    EXPECT_EQ(hub.subscriber_count(), 1u);
    hub.publish(ev("other", 1));
    EXPECT_EQ(drained_seqs(*b), std::vector<std::int64_t>{1});
  }
  EXPECT_EQ(hub.subscriber_count(), 0u);
  hub.publish(kept);  // nobody listens: a no-op
  EXPECT_EQ(hub.overflow_count(), 0u);
  SubscriptionHandle empty;
  EXPECT_FALSE(static_cast<bool>(empty));
}

TEST(EventHub, WaitWakesWhenAnEventArrives) {
  IoRunner io(2);
  EventHub hub;
  auto strand = boost::asio::make_strand(io.io());
  auto sub = hub.subscribe("run", strand);
  // Captureless: the coroutine outlives this statement, so it must not refer to a lambda object.
  auto waiter = [](Subscription& s) -> Task<std::chrono::steady_clock::duration> {
    const auto t0 = std::chrono::steady_clock::now();
    co_await s.wait(10s);
    co_return std::chrono::steady_clock::now() - t0;
  };
  auto fut = boost::asio::co_spawn(strand, waiter(*sub), boost::asio::use_future);
  // Whether the event comes before or during the wait, the wait must end at once.
  std::this_thread::sleep_for(20ms);
  hub.publish(ev("run", 1));
  ASSERT_EQ(fut.wait_for(2s), std::future_status::ready);
  EXPECT_LT(fut.get(), 2s);
  EXPECT_EQ(drained_seqs(*sub), std::vector<std::int64_t>{1});
}

TEST(EventHub, WaitReturnsAtOnceWhenEventsAreQueuedOrClosed) {
  IoRunner io(1);
  EventHub hub;
  auto strand = boost::asio::make_strand(io.io());
  auto sub = hub.subscribe("run", strand);
  hub.publish(ev("run", 1));
  testkit::run_sync(io.io(), [&]() -> Task<void> { co_await sub->wait(10s); }(), 2000ms);
  EXPECT_EQ(drained_seqs(*sub), std::vector<std::int64_t>{1});
  sub->close();
  EXPECT_TRUE(sub->closed());
  EXPECT_FALSE(sub->overflowed());
  testkit::run_sync(io.io(), [&]() -> Task<void> { co_await sub->wait(10s); }(), 2000ms);
  hub.publish(ev("run", 2));  // closed: nothing more is queued
  EXPECT_TRUE(drained_seqs(*sub).empty());
}

TEST(EventHub, WaitTimesOut) {
  IoRunner io(1);
  EventHub hub;
  auto sub = hub.subscribe("run", io.io().get_executor());
  const auto t0 = std::chrono::steady_clock::now();
  testkit::run_sync(io.io(), [&]() -> Task<void> { co_await sub->wait(20ms); }(), 2000ms);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 15ms);
}

TEST(EventHub, CloseAllWakesEveryWaiter) {
  IoRunner io(2);
  EventHub hub;
  auto s1 = boost::asio::make_strand(io.io());
  auto s2 = boost::asio::make_strand(io.io());
  auto a = hub.subscribe("run", s1);
  auto b = hub.subscribe("other", s2);
  auto waiter = [](Subscription& s) -> Task<void> { co_await s.wait(10s); };
  auto fa = boost::asio::co_spawn(s1, waiter(*a), boost::asio::use_future);
  auto fb = boost::asio::co_spawn(s2, waiter(*b), boost::asio::use_future);
  std::this_thread::sleep_for(20ms);
  hub.close_all();
  ASSERT_EQ(fa.wait_for(2s), std::future_status::ready);
  ASSERT_EQ(fb.wait_for(2s), std::future_status::ready);
  EXPECT_TRUE(a->closed());
  EXPECT_TRUE(b->closed());
  EXPECT_FALSE(a->overflowed());
}

TEST(EventHub, ConcurrentPublishersKeepEachRunsOrder) {
  IoRunner io(1);
  EventHub hub;
  constexpr int kRuns = 4;
  constexpr std::int64_t kEvents = 500;
  std::vector<SubscriptionHandle> subs;
  for (int r = 0; r < kRuns; ++r)
    subs.push_back(hub.subscribe("run-" + std::to_string(r), io.io().get_executor(), 1000));
  std::vector<std::thread> publishers;
  for (int r = 0; r < kRuns; ++r)
    publishers.emplace_back([&hub, r] {
      for (std::int64_t s = 1; s <= kEvents; ++s) hub.publish(ev("run-" + std::to_string(r), s));
    });
  for (auto& p : publishers) p.join();
  for (auto& s : subs) {
    auto seqs = drained_seqs(*s);
    ASSERT_EQ(seqs.size(), static_cast<std::size_t>(kEvents));
    for (std::int64_t i = 0; i < kEvents; ++i) EXPECT_EQ(seqs[static_cast<std::size_t>(i)], i + 1);
  }
}

}  // namespace
}  // namespace chat::app
