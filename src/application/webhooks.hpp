#pragma once
/// Webhooks, the core's side: where a run's ending is announced, and the outbox row that says
/// so, written in the same transaction that ends the run (so a crash can neither lose the
/// notification nor send one for an ending that was rolled back). Sending, signing and retrying
/// is the infrastructure's webhook worker, which reads the outbox.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "application/database.hpp"
#include "application/ports.hpp"
#include "domain/entities.hpp"

namespace chat::app {

/// An absolute http:// or https:// URL: a webhook's target.
struct HttpUrl {
  bool tls = false;
  std::string host;  ///< without brackets for IPv6
  std::uint16_t port = 0;
  std::string target;  ///< path and query as sent in the request line; "/" at least
  /// The Host header value (brackets for IPv6, the port when not the scheme's default).
  std::string host_header() const;
};

inline constexpr std::size_t kMaxWebhookUrlBytes = 2048;

/// Parses a webhook URL: http:// or https://, a host, an optional port, path and query; no user
/// info, fragment, spaces or control characters; at most kMaxWebhookUrlBytes. On failure returns
/// nullopt and, with `why`, says what is wrong.
std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* why = nullptr);

/// The run as GET /api/runs/{run_id} shows it, as compact JSON text. The web layer serves this
/// same text, so a webhook's "run" and the API's never differ.
std::string run_json(const domain::Run& r);

/// The body of a run's webhook: {"type":"run.ended","run":<run>}.
std::string run_ended_payload(const domain::Run& r);

/// Queues the "run ended" delivery of each run that has a webhook: its own, else the default
/// (CHATBOT_WEBHOOK_URL). Thread safety: immutable after construction; `run_ended` runs inside
/// a write job (a database thread) and may run on several at once.
class WebhookOutbox {
 public:
  /// `default_url` must be valid (parse_http_url). `wake` runs after a commit that queued a
  /// delivery, on the database's writer thread: it must be thread-safe and return at once.
  WebhookOutbox(IdGenerator& ids, std::optional<std::string> default_url,
                std::function<void()> wake)
      : ids_(ids), default_url_(std::move(default_url)), wake_(std::move(wake)) {}

  /// In the write job that has just ended `run`: `run` as it now is (terminal status,
  /// finished_at, error, last_seq after its terminal events). Queues the delivery, due at once,
  /// if the run has a webhook or a default applies; returns whether it did.
  bool run_ended(WriteTx& tx, const domain::Run& run, domain::Timestamp now);

  const std::optional<std::string>& default_url() const { return default_url_; }

 private:
  IdGenerator& ids_;
  std::optional<std::string> default_url_;
  std::function<void()> wake_;
};

/// `run` as it is right after a job ended it, without reading it back: the new status,
/// finished_at and error, and last_seq of its last terminal event.
domain::Run ended_view(domain::Run run, domain::RunStatus status, domain::Timestamp at,
                       const std::optional<std::string>& error, std::int64_t last_seq);

}  // namespace chat::app
