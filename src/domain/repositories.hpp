#pragma once
/// Repository interfaces: synchronous, backend-neutral. An implementation is bound to one
/// database connection and is used by one thread at a time (the database adapter runs each job
/// on its own thread, inside a transaction it manages). Failures of the backend are exceptions.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "domain/entities.hpp"

namespace chat::domain {

class UserRepository {
 public:
  virtual ~UserRepository() = default;
  /// Inserts and returns the user with its new id.
  virtual User insert(const std::string& name, Timestamp created_at) = 0;
  virtual std::optional<User> find(std::int64_t id) = 0;
  virtual std::optional<User> find_by_name(const std::string& name) = 0;
  /// Authentication: the hash (never the key) of the user's API key.
  virtual void set_api_key_hash(std::int64_t id, const std::string& hash) = 0;
  virtual std::optional<User> find_by_api_key_hash(const std::string& hash) = 0;
};

class ThreadRepository {
 public:
  virtual ~ThreadRepository() = default;
  virtual void insert(const Thread& t) = 0;
  virtual std::optional<Thread> find(const std::string& id) = 0;
  /// Newest first; `before` is a thread id (exclusive cursor). An unknown cursor gives nothing.
  virtual std::vector<Thread> list_by_user(std::int64_t user_id,
                                           const std::optional<std::string>& before,
                                           int limit) = 0;
  /// Removes the thread with its messages, runs and run events. False if it did not exist.
  virtual bool remove(const std::string& id) = 0;
};

class MessageRepository {
 public:
  virtual ~MessageRepository() = default;
  virtual void insert(const Message& m) = 0;
  /// Conversation order: by run creation, each run's user message before its reply.
  virtual std::vector<Message> list_by_thread(const std::string& thread_id) = 0;
};

class RunRepository {
 public:
  virtual ~RunRepository() = default;
  /// Stores a new run as given (a run may be created already running: `status`, `started_at`).
  virtual void insert(const Run& r) = 0;
  /// With last_seq filled in.
  virtual std::optional<Run> find(const std::string& id) = 0;
  /// Oldest first, with last_seq.
  virtual std::vector<Run> list_by_thread(const std::string& thread_id) = 0;
  /// Runs in `status`, in creation order, across all threads.
  virtual std::vector<Run> list_by_status(RunStatus status) = 0;
  /// queued → running. False when the run is not queued (e.g. canceled meanwhile).
  virtual bool mark_running(const std::string& id, Timestamp at) = 0;
  /// Sets a terminal status. Only from queued or running; false otherwise.
  virtual bool finish(const std::string& id, RunStatus status, Timestamp at,
                      const std::optional<std::string>& error) = 0;
};

class RunEventRepository {
 public:
  virtual ~RunEventRepository() = default;
  /// Appends one event; (run_id, seq) must be new.
  virtual void append(const RunEvent& e) = 0;
  /// Appends each event in order, as append() does; an adapter may send them in fewer statements.
  virtual void append_all(const std::vector<std::shared_ptr<const RunEvent>>& events) {
    for (const auto& e : events) append(*e);
  }
  /// Events with seq > after_seq, ascending, at most `limit`.
  virtual std::vector<RunEvent> list_after(const std::string& run_id, std::int64_t after_seq,
                                           int limit) = 0;
  virtual std::int64_t last_seq(const std::string& run_id) = 0;
  /// Retention: deletes the events of runs that ended before `cutoff` and marks them pruned
  /// (keeping their last seq). Returns how many runs were pruned.
  virtual std::int64_t prune_ended_before(Timestamp cutoff) = 0;
};

class IdempotencyRepository {
 public:
  virtual ~IdempotencyRepository() = default;
  /// The stored response body of an earlier request with this key on this thread.
  virtual std::optional<std::string> find(const std::string& thread_id, const std::string& key) = 0;
  virtual void insert(const std::string& thread_id, const std::string& key,
                      const std::string& response, Timestamp created_at) = 0;
};

/// The webhook outbox. A delivery is pending (not `failed`) until it is removed.
class WebhookRepository {
 public:
  virtual ~WebhookRepository() = default;
  /// Stores a new pending delivery; its run must exist (the delivery goes with the run).
  virtual void insert(const WebhookDelivery& d) = 0;
  virtual std::optional<WebhookDelivery> find(const std::string& id) = 0;
  /// Claims up to `limit` pending deliveries due at `now` (next_attempt_at <= now), earliest
  /// first: each gets attempts + 1 and next_attempt_at = `lease_until`, so that no other worker
  /// (or instance) starts it meanwhile, and an attempt cut short by a crash is retried once the
  /// lease is over. Returns them as updated.
  virtual std::vector<WebhookDelivery> claim_due(Timestamp now, Timestamp lease_until,
                                                 int limit) = 0;
  /// The earliest next_attempt_at of the pending deliveries; nullopt when none is pending.
  virtual std::optional<Timestamp> next_due() = 0;
  /// A failed attempt: tried again at `next_attempt_at`, or given up (`failed`) when `give_up`.
  virtual void record_failure(const std::string& id, Timestamp next_attempt_at,
                              const std::string& error, bool give_up) = 0;
  /// Delivered: the row goes. False if it was not there.
  virtual bool remove(const std::string& id) = 0;
};

/// Several instances on one database (PostgreSQL only): a run is executed by the instance that
/// claimed it, for as long as that instance renews its lease. Instance ids are opaque strings.
class RunLeaseRepository {
 public:
  virtual ~RunLeaseRepository() = default;
  /// Claims the oldest queued run whose thread has no running run and no older queued run,
  /// skipping rows other transactions hold: queued → running, owned by `owner` for `lease_ms`
  /// (database clock). The run as it is now, with last_seq.
  virtual std::optional<Run> claim_next(const std::string& owner, std::int64_t lease_ms,
                                        Timestamp at) = 0;
  /// Extends the lease of every running run of `owner`; returns their ids.
  virtual std::vector<std::string> renew(const std::string& owner, std::int64_t lease_ms) = 0;
  /// running → error (`error`) for every run whose lease lapsed, skipping rows other
  /// transactions hold; returns them as they were (with last_seq), so the caller appends the
  /// ending right after it.
  virtual std::vector<Run> expire_lapsed(Timestamp at, const std::string& error) = 0;
  /// queued → canceled, only if still queued (another instance may have claimed it).
  virtual bool cancel_queued(const std::string& id, Timestamp at) = 0;
  /// Ends `owner`'s leases now (graceful shutdown): the next tick of any instance finalizes.
  virtual void release(const std::string& owner) = 0;
};

/// The repositories of one connection, as a job sees them.
struct Repositories {
  UserRepository& users;
  ThreadRepository& threads;
  MessageRepository& messages;
  RunRepository& runs;
  RunEventRepository& events;
  IdempotencyRepository& idempotency;
  WebhookRepository& webhooks;
  /// Null unless the backend supports several instances (PostgreSQL).
  RunLeaseRepository* leases = nullptr;
};

}  // namespace chat::domain
