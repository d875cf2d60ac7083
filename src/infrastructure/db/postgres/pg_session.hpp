#pragma once
/// The statements one database thread sends on its connection, with two deferrals that save
/// round trips:
///  - a transaction's BEGIN waits for its first statement;
///  - appended run events wait in a buffer and go out as ONE multi-row INSERT (five arrays,
///    unnested), however many events and runs the transaction holds.
/// Deferred work is sent, in the same round trip (libpq pipeline), right before the next
/// statement of this session runs and right before COMMIT. So a statement always sees the
/// events appended before it, and a batch that only appends costs one round trip:
/// BEGIN + INSERT + COMMIT.
///
/// Not thread-safe: owned by the thread that owns the connection.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "domain/entities.hpp"
#include "pg_connection.hpp"

namespace chat::infra::pg {

class Session {
 public:
  explicit Session(Connection& c) : c_(c) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Opens a transaction (BEGIN is deferred to the first statement).
  void begin();
  /// Sends deferred work and COMMIT in one round trip; nothing at all when the transaction
  /// did nothing. Throws if the commit fails (the transaction is then rolled back).
  void commit();
  /// Drops deferred work and rolls back what was sent. Never throws.
  void rollback() noexcept;
  /// True from the moment COMMIT was sent until the next begin(): a failure then leaves the
  /// outcome unknown (the commit may have happened).
  bool commit_sent() const { return commit_sent_; }

  /// Runs a prepared statement, after whatever is deferred.
  Result query(const char* sql, const Params& p);
  /// Defers one event row to the next flush.
  void append_event(const domain::RunEvent& e);
  /// Sends deferred work now (outside a transaction it commits by itself).
  void flush();
  /// Drops deferred work without sending it.
  void discard() noexcept;

  /// Several instances: every transaction that appended events also sends one NOTIFY on
  /// channel `chatbot_events` (delivered only if it commits) naming `instance` and, per run,
  /// the first and last seq appended; `<instance>|*` when that would not fit in
  /// kMaxNotifyPayload bytes. Empty `instance`: no NOTIFY (one instance).
  void set_notify_instance(std::string instance) { notify_instance_ = std::move(instance); }
  /// Several instances: this transaction queued a webhook delivery; its COMMIT also sends one
  /// NOTIFY on channel `chatbot_webhooks` naming the instance, so the others' workers learn
  /// that a delivery is pending (and take it over once its lease lapses if this instance dies
  /// holding it). One instance: nothing.
  void note_webhook_queued() {
    if (!notify_instance_.empty() && tx_wanted_) tx_webhook_ = true;
  }
  static constexpr std::size_t kMaxNotifyPayload = 7000;  ///< PostgreSQL's limit is 8000

  std::size_t buffered_events() const { return events_; }
  Connection& connection() { return c_; }

 private:
  /// Appends the deferred statements to `qs`; `p` receives the INSERT's parameters.
  void take_deferred(std::vector<Query>& qs, Params& p);

  /// The NOTIFY payload of the runs appended to in this transaction.
  std::string notify_payload() const;

  Connection& c_;
  std::string notify_instance_;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> tx_runs_;  // run → first, last seq
  bool tx_wanted_ = false;  // begin() called, COMMIT/ROLLBACK not yet
  bool tx_sent_ = false;    // BEGIN went out
  bool commit_sent_ = false;
  bool tx_webhook_ = false;  // a webhook delivery was queued in this transaction

  // The buffered events as PostgreSQL array literals, built as they come.
  std::size_t events_ = 0;
  std::string run_ids_, seqs_, types_, datas_, ats_;
};

}  // namespace chat::infra::pg
