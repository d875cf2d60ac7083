#pragma once
/// Executes one run: marks it running, drives the engine, appends every event through the
/// group-committed writer (the executor owns the run while it executes, so it assigns `seq`
/// itself), and finalizes it — terminal events, final status and assistant message in one
/// transaction.
///
/// Thread safety: one RunExecutor serves all runs; `execute` coroutines run on their run's
/// strand. Cancellation: through the RunControl (see run_scheduler.hpp).

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "application/database.hpp"
#include "application/event_hub.hpp"
#include "application/ports.hpp"
#include "application/task.hpp"

namespace chat::app {

struct RunControl;
class WebhookOutbox;

/// Builds the events of a run's ending, with seqs after `last_seq`. `usage_json` (a JSON
/// object, or empty for none) is added to the `final` event as "usage".
std::vector<domain::RunEvent> terminal_events(const std::string& run_id, std::int64_t last_seq,
                                              domain::RunStatus status,
                                              const std::string& reply_text,
                                              const std::string& message_id,
                                              const std::string& error, domain::Timestamp at,
                                              const std::string& usage_json = {});

/// Appends `events` in `tx` and publishes them to `hub` once the batch commits.
void append_and_publish(WriteTx& tx, EventHub& hub, std::vector<domain::RunEvent> events);
void append_and_publish(WriteTx& tx, EventHub& hub, std::vector<EventPtr> events);

/// Appends the `state(running)` event of a run stored running, as seq `seq`, published once
/// `tx` commits.
void append_started(WriteTx& tx, EventHub& hub, const std::string& run_id, std::int64_t seq,
                    domain::Timestamp now);

class RunExecutor {
 public:
  RunExecutor(Database& db, EventHub& hub, Engine& engine, Clock& clock, IdGenerator& ids,
              Logger& log)
      : db_(db), hub_(hub), engine_(engine), clock_(clock), ids_(ids), log_(log) {}

  /// Never throws; failures end the run with `error` (or are logged if even that fails).
  /// `claimed`: the run was claimed (several instances) and is already `running`, with its
  /// `state` event.
  Task<void> execute(std::string run_id, std::shared_ptr<RunControl> ctl, bool claimed = false);

  /// At start-up: every run left `running` by a dead process is finalized `error`
  /// ("executor lost"). Returns the queued runs (thread_id, run_id) in creation order.
  /// Several instances: runs are recovered by lease (lease_tick), never here; returns nothing.
  Task<std::vector<std::pair<std::string, std::string>>> recover(bool cluster = false);

  /// Several instances: claims the next claimable run for `owner` and appends its `running`
  /// state in the same transaction. (thread_id, run_id), or nothing to claim.
  Task<std::optional<std::pair<std::string, std::string>>> claim(const std::string& owner,
                                                                 std::chrono::milliseconds lease);
  struct LeaseTick {
    std::vector<std::string> renewed;  ///< runs of `owner` still running and now renewed
    std::size_t expired = 0;           ///< lapsed runs (anyone's) finalized by this tick
  };
  /// Several instances, every lease/3: renews `owner`'s leases (when `renew`) and finalizes
  /// every run whose lease lapsed with `error` ("executor lost") and its usual ending events.
  Task<LeaseTick> lease_tick(const std::string& owner, std::chrono::milliseconds lease, bool renew);
  /// Ends `owner`'s leases now (shutdown): the next tick anywhere finalizes what is left.
  Task<void> release(const std::string& owner);

  /// Turns webhooks on: every ending queues its delivery in the finalizing transaction.
  /// `outbox` must outlive the executor; call before any run starts.
  void set_webhooks(WebhookOutbox& outbox) { webhooks_ = &outbox; }

 private:
  Database& db_;
  EventHub& hub_;
  Engine& engine_;
  Clock& clock_;
  IdGenerator& ids_;
  Logger& log_;
  WebhookOutbox* webhooks_ = nullptr;
};

}  // namespace chat::app
