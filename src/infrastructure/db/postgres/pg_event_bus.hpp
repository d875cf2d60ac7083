#pragma once
/// The PostgreSQL LISTEN/NOTIFY adapter of the event bus (several instances on one database).
///
/// Channels (payloads stay far below PostgreSQL's 8000-byte limit):
///  - chatbot_events  `<instance>|<run>:<first seq>:<last seq>,...` or `<instance>|*`, sent by
///    the writer inside each batch transaction that appended events (Session), so it is
///    delivered only on commit. One NOTIFY per batch, whatever the batch holds.
///  - chatbot_runs    `<instance>`: a run was queued that its instance will not start now.
///  - chatbot_cancel  `<run id>`: whoever executes the run cancels it.
///  - chatbot_webhooks `<instance>`: a webhook delivery was queued (sent by the writer inside
///    the transaction that queued it, see Session::note_webhook_queued): the others' delivery
///    workers look at the outbox, so a delivery whose instance died is taken over when its
///    lease lapses instead of waiting for that instance's restart.
/// One dedicated connection per instance LISTENs (and sends runs and cancel), on its own thread
/// waiting in poll() on the connection's socket: an idle instance sends no query at all. When
/// the connection is lost it reconnects (backoff 100 ms doubling to 2 s), then calls
/// `catch_up` (streams re-read what they missed from the database), `runs_queued` and
/// `webhooks_queued`.
///
/// Ownership: owns its thread and connection; stop() (or the destructor) joins. Thread safety:
/// the EventBus members may be called from any thread and only queue; the handlers run on the
/// bus thread and must not block.

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "application/event_bus.hpp"
#include "application/remote_events.hpp"
#include "pg_connection.hpp"

namespace chat::infra::pg {

class PgEventBus final : public app::EventBus {
 public:
  struct Handlers {
    std::function<void(const std::vector<app::RemoteEventFeed::Change>&)> events;
    std::function<void()> catch_up;
    std::function<void()> runs_queued;
    std::function<void(const std::string& run_id)> cancel;
    /// Another instance queued a webhook delivery (or the bus reconnected). May be empty.
    std::function<void()> webhooks_queued;
  };
  PgEventBus(ConnectOptions opts, std::string instance_id, Handlers handlers);
  ~PgEventBus() override;
  PgEventBus(const PgEventBus&) = delete;
  PgEventBus& operator=(const PgEventBus&) = delete;

  /// Starts the thread, which connects (and keeps reconnecting) on its own.
  void start();
  void stop();

  void announce_queued() override;
  void send_cancel(const std::string& run_id) override;

  bool connected() const { return connected_.load(); }
  std::uint64_t reconnects() const { return reconnects_.load(); }
  /// The channels, indexed by Channel.
  enum Channel : std::size_t { events_channel, runs_channel, cancel_channel, webhooks_channel };
  static constexpr std::array<const char*, 4> kChannels = {"chatbot_events", "chatbot_runs",
                                                           "chatbot_cancel", "chatbot_webhooks"};
  /// Notifications received since start on each channel (ours included).
  std::uint64_t received(std::size_t channel) const { return received_[channel].load(); }

  /// Parses a chatbot_events payload; false when it is not one (or names no run). `all`: "*".
  static bool parse_events(const std::string& payload, std::string& instance, bool& all,
                           std::vector<app::RemoteEventFeed::Change>& changes);

 private:
  void loop();
  void send(std::string channel, std::string payload);
  void dispatch(const Connection::Notification& n);
  void wait_wake(int timeout_ms);

  const ConnectOptions opts_;
  const std::string instance_;
  const Handlers h_;
  int wake_fd_ = -1;
  std::mutex mu_;
  std::deque<std::pair<std::string, std::string>> outbox_;
  bool stopping_ = false;
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> reconnects_{0};
  std::array<std::atomic<std::uint64_t>, kChannels.size()> received_{};
  std::thread thread_;
};

}  // namespace chat::infra::pg
