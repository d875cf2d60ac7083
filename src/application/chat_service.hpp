#pragma once
/// The use cases of the chat API: users, threads, messages and runs, cancel, and the run event
/// stream. Free of HTTP and SQL: they speak domain values and Result<T>; the web layer maps
/// them to HTTP.
///
/// Thread safety: all members may be called concurrently from any I/O thread. Each call's
/// database work runs on the database's threads, never on the caller's.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "application/database.hpp"
#include "application/event_hub.hpp"
#include "application/ports.hpp"
#include "application/run_scheduler.hpp"
#include "application/task.hpp"
#include "application/webhooks.hpp"
#include "domain/errors.hpp"

namespace chat::app {

struct Limits {
  std::size_t max_content_bytes = 32768;
  std::size_t max_name_chars = 120;
  std::size_t max_title_chars = 200;
  std::size_t max_idempotency_key = 255;
  std::size_t subscriber_queue = 4096;
};

struct CreateUserOutcome {
  domain::User user;
  bool created = false;  ///< false: a user of that name exists, `user` is that one
  std::optional<std::string> api_key;  ///< with API keys on: the new user's key, shown once
};

struct ThreadPage {
  std::vector<domain::Thread> threads;
  std::optional<std::string> next;
};

/// Filters of a thread's run list. Runs are listed oldest first; with `limit`, the page is the
/// `limit` newest matching runs created before `before` (exclusive), and `next` is the cursor
/// for the older ones.
struct RunFilter {
  std::optional<domain::RunStatus> status;
  std::optional<std::string> before;  ///< a run id of the thread; an unknown one gives nothing
  std::optional<int> limit;           ///< 1..200; absent: every run
};

struct RunPage {
  std::vector<domain::Run> runs;
  std::optional<std::string> next;
};

struct ThreadDetail {
  domain::Thread thread;
  std::vector<domain::Message> messages;
};

/// What posting on a thread that already has a queued or running run does.
enum class MultitaskStrategy {
  enqueue,    ///< the new run waits for the active ones (the default)
  reject,     ///< conflict carrying the active run's id; nothing is stored
  interrupt,  ///< the active runs are canceled; the new run starts when they have ended
};
std::optional<MultitaskStrategy> parse_multitask_strategy(std::string_view s);

struct PostOptions {
  MultitaskStrategy strategy = MultitaskStrategy::enqueue;
  /// The run's own webhook URL (http:// or https://); needs webhooks on (set_webhooks).
  std::optional<std::string> webhook;
};

struct PostedMessage {
  std::string run_id;
  std::string message_id;
  std::string thread_id;
  domain::RunStatus status = domain::RunStatus::queued;
};

/// A live view of a run's event log from a resume point: the stored backlog, then live events,
/// contiguous, without gaps or duplicates. Owned by one coroutine on the executor it was opened
/// with.
class RunEventStream {
 public:
  enum class StepKind {
    events,    ///< `events` holds the next events (contiguous seqs)
    idle,      ///< nothing happened for the ping interval
    end,       ///< the `done` event was delivered; nothing more will come
    overflow,  ///< the subscriber fell too far behind and must be disconnected
  };
  struct Step {
    StepKind kind = StepKind::idle;
    std::vector<EventPtr> events;
  };

  RunEventStream(Database& db, SubscriptionHandle sub, std::string run_id, std::int64_t after)
      : db_(&db), sub_(std::move(sub)), run_id_(std::move(run_id)), last_sent_(after) {}

  Task<Step> next(std::chrono::steady_clock::duration idle_timeout);
  std::int64_t last_sent() const { return last_sent_; }

 private:
  Database* db_;
  SubscriptionHandle sub_;
  std::string run_id_;
  std::int64_t last_sent_;
  bool replaying_ = true;  ///< reading stored events; live events wait in the subscription
  bool ended_ = false;
  std::vector<EventPtr> live_;
};

struct StreamOpen {
  /// Empty when the run has ended and the resume point is at or past its `done` event.
  std::optional<RunEventStream> stream;
};

class ChatService {
 public:
  ChatService(Database& db, EventHub& hub, RunScheduler& scheduler, Clock& clock,
              IdGenerator& ids, Limits limits)
      : db_(db), hub_(hub), scheduler_(scheduler), clock_(clock), ids_(ids), limits_(limits) {}

  /// With API keys on (set_key_service), a new user gets a key; only its hash is stored.
  Task<domain::Result<CreateUserOutcome>> create_user(std::string name);

  /// Turns API keys on. `keys` must outlive the service; call before serving.
  void set_key_service(KeyService& keys) { keys_ = &keys; }
  /// Turns webhooks on (a signing secret is configured): runs may carry their own URL, and a
  /// canceled queued run queues its delivery. `outbox` must outlive the service; call before
  /// serving.
  void set_webhooks(WebhookOutbox& outbox) { webhooks_ = &outbox; }
  /// What a request with an API key asks about: nothing owned, a thread or a run (by id).
  enum class OwnedBy { nothing, thread, run };
  struct Access {
    std::optional<std::int64_t> caller;  ///< the key's user; nullopt: no such key
    std::optional<std::int64_t> owner;   ///< the thread's / run's user; nullopt: no such one
  };
  /// The key's user and, when asked, the owner of the thread or of the run's thread: one read
  /// (a request with a key pays one trip to the database before its own, not two).
  Task<Access> access(std::string api_key, OwnedBy what, std::string id);
  Task<domain::Result<domain::User>> get_user(std::int64_t user_id);
  Task<domain::Result<ThreadPage>> list_user_threads(std::int64_t user_id,
                                                     std::optional<std::string> before, int limit);

  Task<domain::Result<domain::Thread>> create_thread(std::int64_t user_id,
                                                     std::optional<std::string> title);
  Task<domain::Result<ThreadDetail>> get_thread(std::string thread_id);
  Task<domain::Result<bool>> delete_thread(std::string thread_id);
  Task<domain::Result<std::vector<domain::Run>>> list_thread_runs(std::string thread_id);
  Task<domain::Result<RunPage>> list_thread_runs(std::string thread_id, RunFilter filter);
  /// Cancels every queued or running run of the thread; returns the ids of those now canceled.
  Task<domain::Result<std::vector<std::string>>> cancel_thread_runs(std::string thread_id);

  /// Stores the user message and a queued run in one transaction. With an idempotency key,
  /// a repeat on the same thread returns the first response and creates nothing.
  Task<domain::Result<PostedMessage>> post_message(std::string thread_id, std::string content,
                                                   std::optional<std::string> idempotency_key,
                                                   PostOptions options = {});

  Task<domain::Result<domain::Run>> get_run(std::string run_id);
  /// Returns the run's status afterwards: `canceled`, or the status it had already ended with.
  Task<domain::Result<domain::RunStatus>> cancel_run(std::string run_id);

  /// Subscribes first, then replays: see RunEventStream.
  Task<domain::Result<StreamOpen>> open_stream(std::string run_id, std::int64_t after_seq,
                                               boost::asio::any_io_executor ex);

  /// Retention: deletes the events of runs that ended more than `retention` ago (the runs and
  /// their messages stay). Returns how many runs were pruned.
  Task<std::int64_t> prune_events(std::chrono::milliseconds retention);
  /// Prunes every `every` until the executor stops; not per request, so reads stay cheap.
  Task<void> run_retention(std::chrono::milliseconds retention, std::chrono::milliseconds every,
                           Logger& log);

  const Limits& limits() const { return limits_; }

 private:
  Task<domain::RunStatus> cancel_running(const domain::Run& run);

  Database& db_;
  EventHub& hub_;
  RunScheduler& scheduler_;
  Clock& clock_;
  IdGenerator& ids_;
  Limits limits_;
  KeyService* keys_ = nullptr;
  WebhookOutbox* webhooks_ = nullptr;
};

/// Number of Unicode code points in valid UTF-8 `s` (invalid bytes count one each).
std::size_t utf8_length(std::string_view s);
/// `s` without leading and trailing ASCII/Unicode-common whitespace.
std::string trim(std::string_view s);
/// True for a lowercase or uppercase canonical UUID string.
bool is_uuid(std::string_view s);

}  // namespace chat::app
