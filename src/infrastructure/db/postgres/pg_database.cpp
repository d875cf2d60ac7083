#include "pg_database.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "pg_migrations.hpp"
#include "pg_repositories.hpp"
#include "pg_session.hpp"
#include "infrastructure/thread_name.hpp"

namespace chat::infra::pg {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

bool lost_connection(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const PgError& pe) {
    return pe.connection_lost;
  } catch (...) {
    return false;
  }
}

// A statement that ran into statement_timeout (or a lock it could not get) would do the same
// again alone: retrying every job of the batch one by one would only multiply the wait.
bool timed_out(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const PgError& pe) {
    return pe.sqlstate == "57014" || pe.sqlstate == "55P03";
  } catch (...) {
    return false;
  }
}

// A full disk or a read-only server (a hot standby, default_transaction_read_only) is the
// operator's to fix: say so (app::StorageRefused).
std::exception_ptr classified(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const PgError& pe) {
    if (pe.sqlstate == "53100")
      return std::make_exception_ptr(app::StorageRefused(
          app::StorageRefused::Why::full, std::string("the database is full: ") + pe.what()));
    if (pe.sqlstate == "25006")
      return std::make_exception_ptr(app::StorageRefused(
          app::StorageRefused::Why::read_only, std::string("the database is read-only: ") + pe.what()));
    return e;
  } catch (...) {
    return e;
  }
}

// What a failed job gets: an exception of its own (app::detached_copy), PgError kept.
std::exception_ptr own_copy(const std::exception_ptr& e) {
  if (!e) return e;
  try {
    std::rethrow_exception(e);
  } catch (const PgError& x) {
    return std::make_exception_ptr(PgError(std::string(x.what()), x.sqlstate, x.connection_lost));
  } catch (...) {
    return app::detached_copy(e);
  }
}

// Another instance's transaction got there first (a duplicate idempotency key, a run's seq
// taken by the instance that finalized it) or the two deadlocked: the job, run again on the
// state it now sees, usually succeeds (e.g. finds the stored idempotency key).
bool conflict(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const PgError& pe) {
    return pe.sqlstate == "23505" || pe.sqlstate == "40P01" || pe.sqlstate == "40001";
  } catch (...) {
    return false;
  }
}

}  // namespace

PgDatabase::Slot::Slot() = default;

PgDatabase::Slot::~Slot() {
  repos.reset();
  session.reset();
  conn.reset();
}

PgDatabase::PgDatabase(PgOptions opts) : opts_(std::move(opts)) {
  writer_slot_ = std::make_unique<Slot>();
  connect(*writer_slot_, true);
  if (opts_.migrate)
    migrate(*writer_slot_->conn);
  else
    check_schema(*writer_slot_->conn);
  for (int i = 0; i < std::max(1, opts_.readers); ++i) {
    reader_slots_.push_back(std::make_unique<Slot>());
    connect(*reader_slots_.back());
  }
  writer_ = std::thread([this] {
    name_this_thread("pg-writer");
    writer_loop();
  });
  for (std::size_t i = 0; i < reader_slots_.size(); ++i)
    readers_.emplace_back([this, i] {
      name_this_thread("pg-reader-" + std::to_string(i + 1));
      reader_loop(i);
    });
}

PgDatabase::~PgDatabase() { stop(); }

void PgDatabase::stop() {
  {
    std::lock_guard lock(wmu_);
    stopping_ = true;
  }
  wcv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(rmu_);
    rstopping_ = true;
  }
  rcv_.notify_all();
  for (auto& t : readers_)
    if (t.joinable()) t.join();
  readers_.clear();
}

PgDatabase::Stats PgDatabase::stats() const {
  std::lock_guard lock(wmu_);
  return stats_;
}

DbStats PgDatabase::db_stats() const {
  std::lock_guard lock(wmu_);
  return db_stats_;
}

void PgDatabase::submit_write(WriteJob job, Done done) {
  {
    std::lock_guard lock(wmu_);
    wqueue_.push_back(Pending{std::move(job), std::move(done)});
  }
  wcv_.notify_one();
}

void PgDatabase::submit_read(ReadJob job, Done done) {
  {
    std::lock_guard lock(rmu_);
    rqueue_.push_back(ReadPending{std::move(job), std::move(done)});
  }
  rcv_.notify_one();
}

// ------------------------------------------------------------------------------ connections

void PgDatabase::connect(Slot& s, bool writer) {
  s.repos.reset();
  s.session.reset();
  s.conn.reset();
  s.conn = std::make_unique<Connection>(opts_.connect);
  s.session = std::make_unique<Session>(*s.conn);
  if (writer || &s == writer_slot_.get()) s.session->set_notify_instance(opts_.notify_instance);
  s.repos = std::make_unique<PgRepositories>(*s.session);
}

PgDatabase::Slot& PgDatabase::ensure(Slot& s, const char* who) {
  if (s.conn && s.conn->alive()) return s;
  if (s.conn && !s.lost) {
    s.lost = true;
    spdlog::warn("postgres {}: connection lost while idle; reconnecting", who);
  }
  const auto now = std::chrono::steady_clock::now();
  if (now < s.retry_at)
    throw PgError("postgres: database unavailable; next connection attempt in " +
                      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         s.retry_at - now)
                                         .count()) +
                      " ms (last error: " + s.last_error + ")",
                  "", true);
  try {
    connect(s);
  } catch (const std::exception& e) {
    s.last_error = e.what();
    s.backoff = s.backoff.count() == 0 ? kFirstBackoff : std::min(s.backoff * 2, kMaxBackoff);
    s.retry_at = now + s.backoff;
    spdlog::warn("postgres {}: reconnect failed, next attempt in {} ms: {}", who,
                 s.backoff.count(), e.what());
    throw;
  }
  if (s.lost) spdlog::info("postgres {}: reconnected", who);
  s.lost = false;
  s.backoff = std::chrono::milliseconds{0};
  s.retry_at = {};
  {
    std::lock_guard lock(wmu_);
    ++stats_.reconnects;
  }
  return s;
}

void PgDatabase::note_lost(Slot& s, const char* who, const std::exception& e) {
  if (!s.lost) spdlog::warn("postgres {}: connection lost: {}", who, e.what());
  s.lost = true;
}

// ---------------------------------------------------------------------------------- writer

void PgDatabase::writer_loop() {
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

void PgDatabase::run_batch(std::vector<Pending>& batch, bool retried_conflict) {
  Slot& slot = *writer_slot_;
  std::exception_ptr err;
  bool lost = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto started = std::chrono::steady_clock::now();
    err = nullptr;
    lost = false;
    bool ambiguous = false;
    std::vector<std::function<void()>> hooks;
    try {
      ensure(slot, "writer");
      Session& session = *slot.session;
      session.begin();
      try {
        for (auto& p : batch) {
          app::WriteTx tx(slot.repos->repos());
          p.job(tx);
          for (auto& h : tx.hooks()) hooks.push_back(std::move(h));
        }
        session.commit();
      } catch (...) {
        ambiguous = session.commit_sent();
        session.rollback();
        throw;
      }
    } catch (const std::exception& e) {
      err = std::current_exception();
      lost = lost_connection(err);
      if (lost) note_lost(slot, "writer", e);
    } catch (...) {
      err = std::current_exception();
    }
    if (!err) {
      {
        std::lock_guard lock(wmu_);
        ++stats_.batches;
        stats_.write_jobs += batch.size();
        db_stats_.batch_size.observe(static_cast<double>(batch.size()));
        db_stats_.commit_seconds.observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      }
      for (auto& h : hooks) {
        try {
          h();
        } catch (const std::exception& e) {
          spdlog::error("postgres writer: an after-commit hook failed: {}", e.what());
        } catch (...) {
          spdlog::error("postgres writer: an after-commit hook failed");
        }
      }
      for (auto& p : batch) p.done(nullptr);
      return;
    }
    {
      std::lock_guard lock(wmu_);
      ++stats_.errors;
      ++db_stats_.errors;
    }
    // A connection that went stale while idle fails the first statement: nothing was
    // committed, so the batch runs again on a fresh connection. After COMMIT was sent the
    // outcome is unknown: never replay then.
    if (!lost || ambiguous || attempt > 0 || !slot.conn || slot.conn->ok()) break;
  }
  if (batch.size() == 1 && !lost && conflict(err) && !retried_conflict) {
    run_batch(batch, true);
    return;
  }
  if (lost || batch.size() == 1 || timed_out(err)) {
    err = classified(err);
    for (auto& p : batch) p.done(own_copy(err));
    return;
  }
  // One bad job must not fail the others: run each alone.
  for (auto& p : batch) {
    std::vector<Pending> one;
    one.push_back(std::move(p));
    run_batch(one);
  }
}

// ---------------------------------------------------------------------------------- readers

void PgDatabase::reader_loop(std::size_t index) {
  Slot& slot = *reader_slots_[index];
  const std::string who = "reader " + std::to_string(index + 1);
  for (;;) {
    ReadPending p;
    {
      std::unique_lock lock(rmu_);
      rcv_.wait(lock, [this] { return !rqueue_.empty() || rstopping_; });
      if (rqueue_.empty()) return;
      p = std::move(rqueue_.front());
      rqueue_.pop_front();
    }
    std::exception_ptr err;
    for (int attempt = 0; attempt < 2; ++attempt) {
      err = nullptr;
      bool lost = false;
      bool had_connection = slot.conn && slot.conn->ok();
      try {
        ensure(slot, who.c_str());
        p.job(slot.repos->repos());
        slot.session->flush();
      } catch (const std::exception& e) {
        err = std::current_exception();
        lost = lost_connection(err);
        if (lost) note_lost(slot, who.c_str(), e);
      } catch (...) {
        err = std::current_exception();
      }
      if (err) {
        if (slot.session) slot.session->discard();
        std::lock_guard lock(wmu_);
        ++db_stats_.errors;
      }
      // A read on a connection that went stale while idle runs again on a fresh one.
      if (!err || !lost || !had_connection) break;
    }
    p.done(own_copy(err));
  }
}

}  // namespace chat::infra::pg
