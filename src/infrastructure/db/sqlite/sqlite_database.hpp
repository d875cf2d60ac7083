#pragma once
/// The SQLite adapter of the database port: one writer thread that group-commits every queued
/// write job in one transaction (it never waits on a timer: it takes whatever is pending as
/// soon as the previous commit returned), and a pool of reader threads with their own
/// connections (WAL lets them read while the writer writes). WAL checkpoints run on a thread of
/// their own, so a commit never waits for one (the writer checkpoints itself only if the WAL
/// outgrows kWalHardFrames, i.e. if that thread cannot keep up).
///
/// Ownership: owns its threads and connections; the destructor drains the queues and joins.
/// Thread safety: submit_* may be called from any thread.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "application/database.hpp"
#include "infrastructure/db/db_stats.hpp"

struct sqlite3;

namespace chat::infra::sqlite {

class Connection;

struct SqliteOptions {
  std::string path;          ///< file path or ":memory:"
  int readers = 2;           ///< reader threads (ignored for :memory:)
  bool synchronous_full = true;  ///< PRAGMA synchronous=FULL (else NORMAL), WAL either way
  std::size_t max_batch = 4096;  ///< write jobs per transaction at most
  bool migrate = true;       ///< apply pending migrations at open
};

/// Parses "sqlite:PATH", "sqlite://PATH", "sqlite::memory:". Empty result if not SQLite.
std::optional<std::string> sqlite_path_from_url(const std::string& url);

class SqliteDatabase final : public app::Database, public DbStatsSource {
 public:
  /// Opens (and migrates) the database; throws SqliteError when it cannot.
  explicit SqliteDatabase(SqliteOptions opts);
  ~SqliteDatabase() override;

  /// Drains pending jobs and stops the threads. Idempotent.
  void stop();

  struct Stats {
    std::uint64_t batches = 0;
    std::uint64_t write_jobs = 0;
    std::uint64_t errors = 0;
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
  void writer_loop();
  void reader_loop(int index);
  void checkpoint_loop();
  static int on_wal_commit(void* self, sqlite3* db, const char* schema, int frames);
  void run_batch(std::vector<Pending>& batch);
  std::unique_ptr<Connection> open_connection(bool writer) const;

  SqliteOptions opts_;
  bool memory_ = false;

  mutable std::mutex wmu_;
  std::condition_variable wcv_;
  std::deque<Pending> wqueue_;
  bool stopping_ = false;

  std::mutex rmu_;
  std::condition_variable rcv_;
  std::deque<ReadPending> rqueue_;

  // The checkpointer: woken by the writer's commits once the WAL holds kCheckpointFrames.
  static constexpr int kCheckpointFrames = 1000;  // SQLite's own auto-checkpoint size
  // Past this the writer checkpoints too (PASSIVE, after its commit): the WAL restarts from its
  // beginning only when a write begins with everything in it copied, which a checkpointer racing
  // with back-to-back commits seldom leaves. Most pages are copied already, so it is short.
  static constexpr int kWalHardFrames = 4000;
  std::mutex checkpoint_mu_;  ///< held while checkpointing: one at a time, SQLite refuses a second
  std::mutex cmu_;
  std::condition_variable ccv_;
  bool checkpoint_due_ = false;
  bool checkpoint_stop_ = false;
  std::unique_ptr<Connection> checkpoint_conn_;
  std::thread checkpointer_;

  std::unique_ptr<Connection> writer_conn_;
  std::vector<std::unique_ptr<Connection>> reader_conns_;
  std::thread writer_;
  std::vector<std::thread> readers_;
  Stats stats_;
  DbStats db_stats_;  ///< under wmu_
};

}  // namespace chat::infra::sqlite
