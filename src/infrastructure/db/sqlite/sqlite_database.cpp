#include "sqlite_database.hpp"

#include <cerrno>
#include <chrono>
#include <stdexcept>

#include <sqlite3.h>
#include <unistd.h>

#include "sqlite_connection.hpp"
#include "sqlite_migrations.hpp"
#include "sqlite_repositories.hpp"
#include "infrastructure/thread_name.hpp"

namespace chat::infra::sqlite {

std::optional<std::string> sqlite_path_from_url(const std::string& url) {
  constexpr std::string_view kScheme = "sqlite:";
  if (url.rfind(kScheme, 0) != 0) return std::nullopt;
  std::string rest = url.substr(kScheme.size());
  if (rest.rfind("//", 0) == 0) rest = rest.substr(2);
  if (rest.empty()) return std::nullopt;
  return rest;
}

namespace {

// What a failed job gets: an exception of its own (app::detached_copy), SqliteError kept.
std::exception_ptr own_copy(const std::exception_ptr& e) {
  if (!e) return e;
  try {
    std::rethrow_exception(e);
  } catch (const SqliteError& x) {
    return std::make_exception_ptr(SqliteError(std::string(x.what()), x.code));
  } catch (...) {
    return app::detached_copy(e);
  }
}

// A full disk or a read-only file is the operator's to fix: say so (app::StorageRefused).
std::exception_ptr classified(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const SqliteError& se) {
    switch (se.code & 0xff) {
      case SQLITE_FULL:
        return std::make_exception_ptr(app::StorageRefused(
            app::StorageRefused::Why::full, std::string("the database is full: ") + se.what()));
      case SQLITE_READONLY:
        return std::make_exception_ptr(
            app::StorageRefused(app::StorageRefused::Why::read_only,
                                std::string("the database is read-only: ") + se.what()));
      default:
        return e;
    }
  } catch (...) {
    return e;
  }
}

}  // namespace

SqliteDatabase::SqliteDatabase(SqliteOptions opts) : opts_(std::move(opts)) {
  memory_ = opts_.path == ":memory:";
  writer_conn_ = open_connection(true);
  if (opts_.migrate) migrate(*writer_conn_);
  if (!memory_)
    for (int i = 0; i < std::max(1, opts_.readers); ++i)
      reader_conns_.push_back(open_connection(false));
  if (!memory_) {
    checkpoint_conn_ = open_connection(false);
    checkpoint_conn_->exec(opts_.synchronous_full ? "PRAGMA synchronous = FULL"
                                                  : "PRAGMA synchronous = NORMAL");
    sqlite3_wal_hook(writer_conn_->raw(), &SqliteDatabase::on_wal_commit, this);
    checkpointer_ = std::thread([this] {
      name_this_thread("sqlite-checkpoint");
      lower_this_thread_priority();  // its page copying must not delay the writer or io threads
      checkpoint_loop();
    });
  }
  writer_ = std::thread([this] {
    name_this_thread("sqlite-writer");
    writer_loop();
  });
  for (std::size_t i = 0; i < reader_conns_.size(); ++i)
    readers_.emplace_back([this, i] {
      name_this_thread("sqlite-reader-" + std::to_string(i + 1));
      reader_loop(static_cast<int>(i));
    });
}

SqliteDatabase::~SqliteDatabase() { stop(); }

std::unique_ptr<Connection> SqliteDatabase::open_connection(bool writer) const {
  // SQLite opens a file it may not write read-only, silently (every write would then fail), or
  // fails with "unable to open database file" when WAL mode cannot make its files: say why.
  auto read_only = [&] {
    return std::runtime_error("the database " + opts_.path +
                              " is read-only (its permissions, or its filesystem): the service "
                              "stores every run and event, so it needs to write it");
  };
  // Only a refusal to write counts (a missing directory is SQLite's to report).
  auto refuses_writes = [](const std::string& p) {
    return ::access(p.c_str(), W_OK) != 0 && (errno == EROFS || errno == EACCES);
  };
  const auto slash = opts_.path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : opts_.path.substr(0, slash + 1);
  if (writer && !memory_ && (refuses_writes(dir) || refuses_writes(opts_.path))) throw read_only();
  auto c = std::make_unique<Connection>(opts_.path);
  c->exec("PRAGMA foreign_keys = ON");
  if (!memory_) {
    if (writer) {
      c->exec("PRAGMA journal_mode = WAL");
      c->exec(opts_.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    }
    // Fails fast on an unreadable or non-database file.
    c->exec("SELECT count(*) FROM sqlite_master");
  }
  return c;
}

void SqliteDatabase::stop() {
  {
    std::lock_guard lock(wmu_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
  }
  wcv_.notify_all();
  {
    std::lock_guard lock(rmu_);
  }
  rcv_.notify_all();
  if (writer_.joinable()) writer_.join();
  for (auto& t : readers_)
    if (t.joinable()) t.join();
  readers_.clear();
  {
    std::lock_guard lock(cmu_);
    checkpoint_stop_ = true;
  }
  ccv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
}

// The writer's connection, after each commit (in place of SQLite's auto-checkpoint).
int SqliteDatabase::on_wal_commit(void* self, sqlite3* db, const char* /*schema*/, int frames) {
  auto* me = static_cast<SqliteDatabase*>(self);
  if (frames >= kWalHardFrames) {
    // Bound the WAL here, as SQLite itself would; after the checkpoint thread's current run.
    std::lock_guard lock(me->checkpoint_mu_);
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (frames >= kCheckpointFrames) {
    {
      std::lock_guard lock(me->cmu_);
      me->checkpoint_due_ = true;
    }
    me->ccv_.notify_one();
  }
  return SQLITE_OK;
}

void SqliteDatabase::checkpoint_loop() {
  for (;;) {
    {
      std::unique_lock lock(cmu_);
      ccv_.wait(lock, [this] { return checkpoint_due_ || checkpoint_stop_; });
      if (checkpoint_stop_) return;
      checkpoint_due_ = false;
    }
    // PASSIVE: copies what no reader still needs and never blocks the writer. A busy or failed
    // checkpoint is retried at the next commit's signal; SQLite restarts the WAL from its
    // beginning once everything in it was copied.
    std::lock_guard lock(checkpoint_mu_);
    sqlite3_wal_checkpoint_v2(checkpoint_conn_->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                              nullptr, nullptr);
  }
}

SqliteDatabase::Stats SqliteDatabase::stats() const {
  std::lock_guard lock(wmu_);
  return stats_;
}

DbStats SqliteDatabase::db_stats() const {
  std::lock_guard lock(wmu_);
  return db_stats_;
}

void SqliteDatabase::submit_write(WriteJob job, Done done) {
  {
    std::lock_guard lock(wmu_);
    wqueue_.push_back(Pending{std::move(job), std::move(done)});
  }
  wcv_.notify_one();
}

void SqliteDatabase::submit_read(ReadJob job, Done done) {
  if (memory_) {
    // One connection only: reads run on the writer thread, inside its next batch.
    submit_write([job = std::move(job)](app::WriteTx& tx) { job(tx.repos()); }, std::move(done));
    return;
  }
  {
    std::lock_guard lock(rmu_);
    rqueue_.push_back(ReadPending{std::move(job), std::move(done)});
  }
  rcv_.notify_one();
}

void SqliteDatabase::writer_loop() {
  std::vector<Pending> batch;
  for (;;) {
    {
      std::unique_lock lock(wmu_);
      wcv_.wait(lock, [this] { return !wqueue_.empty() || stopping_; });
      if (wqueue_.empty()) return;  // stopping and drained
      const std::size_t n = std::min(wqueue_.size(), opts_.max_batch);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(wqueue_.front()));
        wqueue_.pop_front();
      }
    }
    run_batch(batch);
    batch.clear();
  }
}

void SqliteDatabase::run_batch(std::vector<Pending>& batch) {
  SqliteRepositories repos(*writer_conn_);
  std::vector<std::function<void()>> hooks;
  const auto started = std::chrono::steady_clock::now();
  try {
    writer_conn_->exec("BEGIN IMMEDIATE");
    try {
      for (auto& p : batch) {
        app::WriteTx tx(repos.repos());
        p.job(tx);
        for (auto& h : tx.hooks()) hooks.push_back(std::move(h));
      }
      writer_conn_->exec("COMMIT");
    } catch (...) {
      try {
        writer_conn_->exec("ROLLBACK");
      } catch (...) {
      }
      throw;
    }
  } catch (...) {
    {
      std::lock_guard lock(wmu_);
      ++stats_.errors;
      ++db_stats_.errors;
    }
    if (batch.size() == 1) {
      batch[0].done(own_copy(classified(std::current_exception())));
      return;
    }
    // One bad job must not fail the others: run each alone.
    for (auto& p : batch) {
      std::vector<Pending> one;
      one.push_back(std::move(p));
      run_batch(one);
    }
    return;
  }
  {
    std::lock_guard lock(wmu_);
    ++stats_.batches;
    stats_.write_jobs += batch.size();
    db_stats_.batch_size.observe(static_cast<double>(batch.size()));
    db_stats_.commit_seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  for (auto& h : hooks) h();
  for (auto& p : batch) p.done(nullptr);
}

void SqliteDatabase::reader_loop(int index) {
  Connection& conn = *reader_conns_[static_cast<std::size_t>(index)];
  SqliteRepositories repos(conn);
  for (;;) {
    ReadPending p;
    {
      std::unique_lock lock(rmu_);
      rcv_.wait(lock, [this] {
        std::lock_guard wl(wmu_);
        return !rqueue_.empty() || stopping_;
      });
      if (rqueue_.empty()) return;
      p = std::move(rqueue_.front());
      rqueue_.pop_front();
    }
    std::exception_ptr err;
    try {
      p.job(repos.repos());
    } catch (...) {
      err = std::current_exception();
      std::lock_guard lock(wmu_);
      ++db_stats_.errors;
    }
    p.done(own_copy(err));
  }
}

}  // namespace chat::infra::sqlite
