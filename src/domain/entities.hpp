#pragma once
/// Entities and value types of the chat domain. Standard library only.
/// Plain values: copyable, no synchronisation of their own.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chat::domain {

/// Milliseconds since the Unix epoch, UTC.
using Timestamp = std::int64_t;

/// "2026-11-24T10:00:00.123Z"
std::string format_timestamp(Timestamp ts);

enum class RunStatus { queued, running, done, error, canceled };

std::string_view to_string(RunStatus s);
std::optional<RunStatus> parse_run_status(std::string_view s);
inline bool is_terminal(RunStatus s) {
  return s == RunStatus::done || s == RunStatus::error || s == RunStatus::canceled;
}

enum class EventType { state, tool_start, tool_end, token, final_, error, canceled, done };

std::string_view to_string(EventType t);
std::optional<EventType> parse_event_type(std::string_view s);

enum class Role { user, assistant };
std::string_view to_string(Role r);
std::optional<Role> parse_role(std::string_view s);

struct User {
  std::int64_t id = 0;
  std::string name;
  Timestamp created_at = 0;
};

struct Thread {
  std::string id;
  std::int64_t user_id = 0;
  std::optional<std::string> title;
  Timestamp created_at = 0;
};

struct Message {
  std::string id;
  std::string thread_id;
  Role role = Role::user;
  std::string content;
  Timestamp created_at = 0;
  std::optional<std::string> run_id;
};

struct Run {
  std::string id;
  std::string thread_id;
  std::string message_id;  ///< the user message that created the run
  RunStatus status = RunStatus::queued;
  Timestamp created_at = 0;
  std::optional<Timestamp> started_at;
  std::optional<Timestamp> finished_at;
  std::optional<std::string> error;
  std::int64_t last_seq = 0;  ///< highest event seq (0: none), kept when events are pruned
  bool events_pruned = false;  ///< retention deleted its events (the run itself stays)
  std::optional<std::string> webhook = std::nullopt;  ///< the run's own webhook URL (CHATBOT_WEBHOOK_URL is not stored here)
};

/// A stored "run ended" notification for one webhook URL (the outbox). Written in the
/// transaction that ends the run; deleted once delivered; kept with `failed` set once its
/// attempts are used up.
struct WebhookDelivery {
  std::string id;  ///< a UUID; also the `webhook-id` header, the same on every attempt
  std::string run_id;
  std::string url;
  std::string payload;  ///< the JSON body, compact
  std::int64_t attempts = 0;  ///< attempts started so far
  Timestamp next_attempt_at = 0;
  std::optional<std::string> last_error = std::nullopt;
  Timestamp created_at = 0;
  bool failed = false;
};

/// One entry of a run's append-only log. `data` is compact JSON text (an object).
struct RunEvent {
  std::string run_id;
  std::int64_t seq = 0;
  EventType type = EventType::state;
  std::string data;
  Timestamp created_at = 0;
};

}  // namespace chat::domain
