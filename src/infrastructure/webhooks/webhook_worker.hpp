#pragma once
/// Delivers the webhook outbox (application/webhooks.hpp): POSTs each pending delivery over
/// HTTP/1.1 (https:// with the system's CA store, SNI and hostname verification), signed as
/// Standard Webhooks do (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
/// HMAC-SHA256>`), and retries failures with a jittered exponential back-off.
///
/// A 2xx answer is delivered (the row goes); anything else — another status, a connect or TLS
/// error, no response head within `timeout` — is a failed attempt, retried after
/// min(retry_max, retry_base * 2^(attempts-1)) ±25 %, and given up (kept, `failed`) after
/// `max_attempts`. Redirects are not followed.
///
/// Scheduling: due deliveries are claimed with a lease (so that instances sharing one
/// PostgreSQL never send the same one at once, and an attempt cut short by a crash is retried
/// once the lease ends), and sent concurrently, at most `max_in_flight` at a time. With nothing
/// due the worker sleeps until the earliest next attempt or until wake(); with nothing pending,
/// until wake() alone: an idle service sends no queries.
///
/// Ownership: the worker must outlive its io_context's threads. Thread safety: wake() and the
/// counters may be called from any thread; start() is called once. Cancellation: it stops
/// with its io_context; a delivery in flight then stays pending and is retried after its lease.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "application/database.hpp"
#include "application/ports.hpp"
#include "application/task.hpp"
#include "domain/entities.hpp"

namespace boost::asio {
class io_context;
}

namespace chat::infra::webhooks {

struct WebhookWorkerOptions {
  std::string key;  ///< the HMAC key: infra::webhook_key(CHATBOT_WEBHOOK_SECRET)
  std::chrono::milliseconds timeout{10'000};  ///< one attempt: DNS, connect, TLS, response head
  std::chrono::milliseconds retry_base{1000};
  std::chrono::milliseconds retry_max{300'000};
  int max_attempts = 20;
  int max_in_flight = 16;
};

/// The delay before the next attempt after `attempts` failed ones; `jitter` in [0, 1) picks
/// the point in the ±25 % band.
std::chrono::milliseconds retry_delay(const WebhookWorkerOptions& o, std::int64_t attempts,
                                      double jitter);

class WebhookWorker {
 public:
  WebhookWorker(boost::asio::io_context& io, app::Database& db, app::Clock& clock,
                app::Logger& log, WebhookWorkerOptions options);
  ~WebhookWorker();
  WebhookWorker(const WebhookWorker&) = delete;
  WebhookWorker& operator=(const WebhookWorker&) = delete;

  /// Something may be due (a delivery was queued, or an attempt ended). Returns at once.
  void wake();

  /// Starts the scheduling loop on the worker's strand (call once); it runs until the
  /// io_context stops, sending first whatever is pending from before. Database and network
  /// failures are logged and tried again later.
  void start();

  /// One attempt of `d` (no database work): nullopt when the receiver answered 2xx, else what
  /// went wrong. Exposed for tests.
  app::Task<std::optional<std::string>> attempt(const domain::WebhookDelivery& d);

  std::uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
  std::uint64_t failed_attempts() const { return failed_attempts_.load(std::memory_order_relaxed); }
  std::uint64_t given_up() const { return given_up_.load(std::memory_order_relaxed); }

 private:
  struct Impl;
  app::Task<void> run();  // on the strand: wake()'s cancel never falls between check and wait
  app::Task<void> deliver(domain::WebhookDelivery d);

  std::unique_ptr<Impl> impl_;
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> failed_attempts_{0};
  std::atomic<std::uint64_t> given_up_{0};
};

}  // namespace chat::infra::webhooks
