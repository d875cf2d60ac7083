#pragma once
/// The PostgreSQL adapter of the database port, with the semantics of the SQLite one: one
/// writer thread with its own connection group-commits every queued write job in one
/// transaction (it never waits on a timer: it takes whatever is pending as soon as the previous
/// commit returned), runs the jobs' after-commit hooks, then resumes their callers; a failed
/// batch is rolled back and each job retried alone. A pool of reader threads, each with its
/// own connection, runs read jobs (autocommit). Every libpq call happens on these threads.
///
/// Event appends of a batch, from any number of runs, reach the server as one INSERT in the
/// same round trip as COMMIT (see pg_session.hpp).
///
/// Connection loss: a job that fails because the connection broke gets the error (the web
/// layer answers 503). The thread reconnects on its next job; while the server stays away,
/// attempts are spaced by a backoff (100 ms doubling to 5 s) and jobs in between fail at once,
/// so nothing hangs: connect_timeout and statement_timeout bound every call. A batch that
/// failed on a stale connection before its COMMIT was sent is run again once on a fresh one;
/// one whose COMMIT may or may not have happened is failed, never replayed.
///
/// Ownership: owns its threads and connections; the destructor drains the queues and joins.
/// Thread safety: submit_* may be called from any thread.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "application/database.hpp"
#include "infrastructure/db/db_stats.hpp"
#include "pg_connection.hpp"

namespace chat::infra::pg {

class Session;
class PgRepositories;

struct PgOptions {
  ConnectOptions connect;        ///< URL and time-outs
  int readers = 4;               ///< reader threads, each with a connection
  std::size_t max_batch = 4096;  ///< write jobs per transaction at most
  bool migrate = true;           ///< apply pending migrations at open (else: check the version)
  /// Several instances: this instance's id; every batch that appends events NOTIFYs the
  /// others (see Session::set_notify_instance). Empty: one instance, no NOTIFY.
  std::string notify_instance;
};

class PgDatabase final : public app::Database, public DbStatsSource {
 public:
  /// Connects (and migrates); throws PgError when it cannot.
  explicit PgDatabase(PgOptions opts);
  ~PgDatabase() override;

  /// Drains pending jobs and stops the threads. Idempotent.
  void stop();

  struct Stats {
    std::uint64_t batches = 0;
    std::uint64_t write_jobs = 0;
    std::uint64_t errors = 0;
    std::uint64_t reconnects = 0;
  };
  Stats stats() const;
  DbStats db_stats() const override;

 protected:
  void submit_read(ReadJob job, Done done) override;
  void submit_write(WriteJob job, Done done) override;

 private:
  struct Pending {
    WriteJob job;
    Done done;
  };
  struct ReadPending {
    ReadJob job;
    Done done;
  };
  /// One thread's connection, rebuilt after it breaks.
  struct Slot {
    Slot();
    ~Slot();
    std::unique_ptr<Connection> conn;
    std::unique_ptr<Session> session;
    std::unique_ptr<PgRepositories> repos;
    std::chrono::steady_clock::time_point retry_at{};
    std::chrono::milliseconds backoff{0};
    std::string last_error;
    bool lost = false;
  };
  void writer_loop();
  void reader_loop(std::size_t index);
  /// `retried_conflict`: a lone job that lost a race with another instance runs once more.
  void run_batch(std::vector<Pending>& batch, bool retried_conflict = false);
  /// The slot's connection, reconnecting if it broke; throws PgError while it cannot.
  Slot& ensure(Slot& s, const char* who);
  void connect(Slot& s, bool writer = false);
  void note_lost(Slot& s, const char* who, const std::exception& e);

  PgOptions opts_;

  mutable std::mutex wmu_;
  std::condition_variable wcv_;
  std::deque<Pending> wqueue_;
  bool stopping_ = false;

  std::mutex rmu_;
  std::condition_variable rcv_;
  std::deque<ReadPending> rqueue_;
  bool rstopping_ = false;

  std::unique_ptr<Slot> writer_slot_;
  std::vector<std::unique_ptr<Slot>> reader_slots_;
  std::thread writer_;
  std::vector<std::thread> readers_;
  Stats stats_;
  DbStats db_stats_;  ///< under wmu_
};

}  // namespace chat::infra::pg
