#pragma once
/// Several instances: feeds the local EventHub with the events other instances commit.
///
/// The event bus tells this feed which runs changed (run id, first and last seq of a committed
/// batch); for runs that have subscribers here it reads the new rows from the database and
/// hands them to the hub, in order, one read at a time per run. It need not be exact: a stream
/// drops what it already has by seq and re-reads the stored log when it sees a gap, so after a
/// lost notification (or a reconnect) delivering the latest event of each subscribed run is
/// enough to wake it and let it catch up.
///
/// Thread safety: every public member may be called from any thread. Reads run as coroutines on
/// the executor given at construction. Cancellation: none; a read in progress completes.

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "application/database.hpp"
#include "application/event_hub.hpp"
#include "application/ports.hpp"
#include "application/task.hpp"

namespace chat::app {

class RemoteEventFeed {
 public:
  RemoteEventFeed(Database& db, EventHub& hub, boost::asio::any_io_executor ex, Logger& log)
      : db_(db), hub_(hub), ex_(std::move(ex)), log_(log) {}

  struct Change {
    std::string run_id;
    std::int64_t first_seq = 0;  ///< of the committed batch
    std::int64_t last_seq = 0;
  };
  /// Another instance committed these events.
  void runs_changed(const std::vector<Change>& changes);
  /// Notifications may have been missed (the bus reconnected, or a batch named too many runs
  /// to list): every run with subscribers here is brought up to date from the database.
  void catch_up_all();

  /// Rows read from the database and handed to the hub so far (metrics, tests).
  std::uint64_t delivered() const;

 private:
  struct State {
    std::int64_t cursor = -1;  ///< highest seq handed to the hub; -1: none yet
    std::int64_t hint = -1;    ///< with no cursor: read after this seq (-1: only the latest)
    bool busy = false;         ///< a read is in progress
    bool again = false;        ///< something changed during the read: read once more
  };
  void kick_locked(const std::string& run_id, State& st);
  Task<void> fetch(std::string run_id);

  Database& db_;
  EventHub& hub_;
  boost::asio::any_io_executor ex_;
  Logger& log_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, State> runs_;
  std::uint64_t delivered_ = 0;
};

}  // namespace chat::app
