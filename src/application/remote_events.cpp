#include "application/remote_events.hpp"

#include <algorithm>
#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace chat::app {

void RemoteEventFeed::runs_changed(const std::vector<Change>& changes) {
  std::lock_guard lock(mu_);
  for (const auto& c : changes) {
    if (!hub_.has_subscribers(c.run_id)) {
      runs_.erase(c.run_id);
      continue;
    }
    auto& st = runs_[c.run_id];
    if (st.cursor >= c.last_seq) continue;  // already handed over
    if (st.cursor < 0) st.hint = st.hint < 0 ? c.first_seq - 1 : std::min(st.hint, c.first_seq - 1);
    kick_locked(c.run_id, st);
  }
}

void RemoteEventFeed::catch_up_all() {
  const auto runs = hub_.subscribed_runs();
  std::lock_guard lock(mu_);
  for (const auto& id : runs) {
    auto& st = runs_[id];
    if (st.cursor < 0) st.hint = -1;  // the latest event: enough to wake the stream
    kick_locked(id, st);
  }
}

std::uint64_t RemoteEventFeed::delivered() const {
  std::lock_guard lock(mu_);
  return delivered_;
}

void RemoteEventFeed::kick_locked(const std::string& run_id, State& st) {
  if (st.busy) {
    st.again = true;
    return;
  }
  st.busy = true;
  st.again = false;
  // Posted: co_spawn may start the coroutine inline, and it takes the lock held here.
  boost::asio::post(ex_, [this, run_id] {
    boost::asio::co_spawn(ex_, fetch(run_id), boost::asio::detached);
  });
}

Task<void> RemoteEventFeed::fetch(std::string run_id) {
  constexpr int kPage = 1000;
  auto backoff = std::chrono::milliseconds(100);
  int failures = 0;
  for (;;) {
    std::int64_t after = 0;
    {
      std::lock_guard lock(mu_);
      auto& st = runs_[run_id];
      st.again = false;
      after = st.cursor >= 0 ? st.cursor : st.hint;
    }
    std::vector<domain::RunEvent> page;
    bool failed = false;
    try {
      page = co_await db_.read([&](domain::Repositories& r) {
        std::int64_t from = after;
        if (from < 0) from = std::max<std::int64_t>(0, r.events.last_seq(run_id) - 1);
        return r.events.list_after(run_id, from, kPage);
      });
    } catch (const std::exception& e) {
      failed = true;
      log_.warn("run " + run_id + ": reading another instance's events failed, retrying: " +
                e.what());
    }
    if (failed) {
      // The database is away (e.g. a reader reconnecting): retry while someone is listening.
      if (!hub_.has_subscribers(run_id) || ++failures > 30) break;
      boost::asio::steady_timer t(ex_);
      t.expires_after(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      boost::system::error_code ec;
      co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
      continue;
    }
    bool ended = false;
    if (!page.empty()) {
      std::vector<EventPtr> events;
      events.reserve(page.size());
      for (auto& e : page) {
        if (e.type == domain::EventType::done) ended = true;
        events.push_back(std::make_shared<const domain::RunEvent>(std::move(e)));
      }
      const auto last = events.back()->seq;
      hub_.publish_remote(events);
      {
        std::lock_guard lock(mu_);
        runs_[run_id].cursor = last;
        delivered_ += events.size();
      }
    }
    // No lock across a co_await or a jump out of its scope (GCC 12 coroutines).
    bool more = false;
    {
      std::lock_guard lock(mu_);
      auto& st = runs_[run_id];
      more = page.size() == static_cast<std::size_t>(kPage) || (st.again && !ended);
      if (!more) {
        st.busy = false;
        if (ended || !hub_.has_subscribers(run_id)) runs_.erase(run_id);
      }
    }
    if (!more) co_return;
  }
  {
    std::lock_guard lock(mu_);
    runs_.erase(run_id);
  }
}

}  // namespace chat::app
