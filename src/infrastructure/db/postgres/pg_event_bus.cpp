#include "pg_event_bus.hpp"
#include "infrastructure/thread_name.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <memory>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace chat::infra::pg {
namespace {

constexpr const char* kListen = "LISTEN chatbot_events; LISTEN chatbot_runs; LISTEN chatbot_cancel; LISTEN chatbot_webhooks";
constexpr const char* kNotify = "SELECT pg_notify($1, $2)";

bool parse_int(std::string_view s, std::int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

bool PgEventBus::parse_events(const std::string& payload, std::string& instance, bool& all,
                              std::vector<app::RemoteEventFeed::Change>& changes) {
  const auto bar = payload.find('|');
  if (bar == std::string::npos) return false;
  instance = payload.substr(0, bar);
  std::string_view rest(payload);
  rest.remove_prefix(bar + 1);
  all = rest == "*";
  if (all) return true;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const auto c1 = item.find(':');
    const auto c2 = c1 == std::string_view::npos ? c1 : item.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return false;
    app::RemoteEventFeed::Change c;
    c.run_id = std::string(item.substr(0, c1));
    if (!parse_int(item.substr(c1 + 1, c2 - c1 - 1), c.first_seq) ||
        !parse_int(item.substr(c2 + 1), c.last_seq))
      return false;
    changes.push_back(std::move(c));
  }
  return !changes.empty();
}

PgEventBus::PgEventBus(ConnectOptions opts, std::string instance_id, Handlers handlers)
    : opts_(std::move(opts)), instance_(std::move(instance_id)), h_(std::move(handlers)) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error("eventfd failed");
}

PgEventBus::~PgEventBus() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void PgEventBus::start() {
  thread_ = std::thread([this] {
    name_this_thread("pg-listen");
    loop();
  });
}

void PgEventBus::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void PgEventBus::announce_queued() { send("chatbot_runs", instance_); }

void PgEventBus::send_cancel(const std::string& run_id) { send("chatbot_cancel", run_id); }

void PgEventBus::send(std::string channel, std::string payload) {
  {
    std::lock_guard lock(mu_);
    if (outbox_.size() > 10000) return;  // the database is away; cancel requests are repeated
    outbox_.emplace_back(std::move(channel), std::move(payload));
  }
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void PgEventBus::wait_wake(int timeout_ms) {
  pollfd p{wake_fd_, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) > 0) {
    std::uint64_t v = 0;
    (void)!::read(wake_fd_, &v, sizeof v);
  }
}

void PgEventBus::dispatch(const Connection::Notification& n) {
  std::size_t channel = 0;
  while (channel < kChannels.size() && n.channel != kChannels[channel]) ++channel;
  if (channel == kChannels.size()) return;  // not one of ours
  received_[channel].fetch_add(1, std::memory_order_relaxed);
  switch (channel) {
    case events_channel: {
      std::string instance;
      bool all = false;
      std::vector<app::RemoteEventFeed::Change> changes;
      if (!parse_events(n.payload, instance, all, changes) || instance == instance_) return;
      if (all)
        h_.catch_up();
      else
        h_.events(changes);
      break;
    }
    case runs_channel:
      if (n.payload != instance_) h_.runs_queued();
      break;
    case cancel_channel:
      h_.cancel(n.payload);  // also our own: the run may have been claimed here meanwhile
      break;
    case webhooks_channel:
      if (n.payload != instance_ && h_.webhooks_queued) h_.webhooks_queued();
      break;
  }
}

void PgEventBus::loop() {
  std::unique_ptr<Connection> conn;
  auto backoff = std::chrono::milliseconds(100);
  bool ever = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if (!conn) {
      try {
        ConnectOptions o = opts_;
        o.application_name = "chatbot-bus";
        conn = std::make_unique<Connection>(o);
        conn->exec(kListen);
      } catch (const std::exception& e) {
        conn.reset();
        spdlog::warn("event bus: cannot LISTEN ({}); next attempt in {} ms", e.what(),
                     backoff.count());
        wait_wake(static_cast<int>(backoff.count()));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
        continue;
      }
      backoff = std::chrono::milliseconds(100);
      connected_.store(true);
      if (ever) {
        reconnects_.fetch_add(1);
        spdlog::info("event bus: listening again; catching up from the database");
      }
      ever = true;
      // Whatever was committed while nobody listened is in the database.
      h_.catch_up();
      h_.runs_queued();
      if (h_.webhooks_queued) h_.webhooks_queued();
    }
    try {
      std::deque<std::pair<std::string, std::string>> out;
      {
        std::lock_guard lock(mu_);
        out.swap(outbox_);
      }
      for (const auto& [channel, payload] : out)
        conn->query(kNotify, Params().add(channel).add(payload));
      conn->consume_input();  // notifications that came with the answers above
      while (auto n = conn->next_notification()) dispatch(*n);
      pollfd p[2] = {{conn->socket(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      if (::poll(p, 2, 60000) > 0) {
        if (p[1].revents) {
          std::uint64_t v = 0;
          (void)!::read(wake_fd_, &v, sizeof v);
        }
        if (p[0].revents) {
          conn->consume_input();
          while (auto n = conn->next_notification()) dispatch(*n);
        }
      }
    } catch (const std::exception& e) {
      spdlog::warn("event bus: connection lost ({}); reconnecting", e.what());
      conn.reset();
      connected_.store(false);
    }
  }
}

}  // namespace chat::infra::pg
