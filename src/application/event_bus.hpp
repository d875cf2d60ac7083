#pragma once
/// The event bus between instances on one database (several instances): what one instance
/// tells the others. Committed event batches are announced by the database adapter within the
/// batch's own transaction (so only committed events are ever announced); this port carries
/// the rest. The receiving side feeds RemoteEventFeed (events) and RunScheduler (queued runs,
/// cancel requests). With one instance there is no bus: the EventHub is fed in-process.
///
/// Thread safety: implementations accept calls from any thread and never block on the network.

#include <string>

namespace chat::app {

class EventBus {
 public:
  virtual ~EventBus() = default;
  /// A run was queued that this instance will not start now: another instance may claim it.
  virtual void announce_queued() = 0;
  /// Asks whichever instance executes `run_id` to cancel it.
  virtual void send_cancel(const std::string& run_id) = 0;
};

}  // namespace chat::app
