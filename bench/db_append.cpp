// chatbot_db_bench: events persisted per second through the Database port, group commit against
// one transaction per event, on SQLite or PostgreSQL (bench/README.md, "The event log alone").
//
// No HTTP, no engine, no subscribers: 100 coroutines ("runs") on one io_context thread append
// events to their run's log through `Database::write`, as the service's run executor does, and
// the adapter's writer thread commits them. Modes:
//   group         the service's pipelining (ExecutorSink in run_executor.cpp): each run keeps
//                 one write job in flight carrying every event produced since its previous job;
//                 producers generate events as fast as they can, one per turn of the event
//                 loop, and block only at 1,024 unflushed events per run (the service's
//                 backpressure). The adapter's default max_batch.
//   group-single  one event per write job, each run awaiting its commit before the next event:
//                 group commit across runs (up to 100 jobs a transaction), no pipelining.
//   per-event     as group-single with max_batch = 1: every event is its own transaction.
// Each mode gets a fresh adapter instance and 100 fresh runs (one user, one thread) in the same
// database; producers stop after the mode's duration, then every run drains; the rate is
// durable events / (start .. last commit). Then every run's log is read back through the
// repositories: seq must be exactly 1..N with N the events the run saw committed, else exit 1.
//
//   chatbot_db_bench --database sqlite:PATH|postgresql://... [--sqlite-synchronous full|normal]
//                    [--modes per-event,group-single,group] [--runs 100] [--seconds 5]
//                    [--single-seconds 3] [--per-event-seconds 3] [--label TEXT]
//
// On stdout, per mode: "measured" when the measured window ends (before the read-back), then one
// JSON line (scripts/db-bench.py reads them); a summary on stderr.

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ctime>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "application/database.hpp"
#include "infrastructure/db/db_stats.hpp"
#include "infrastructure/db/postgres/pg_database.hpp"
#include "infrastructure/db/sqlite/sqlite_database.hpp"

namespace {

namespace asio = boost::asio;
using chat::app::Database;
using chat::app::Task;
using chat::app::WriteTx;
using chat::domain::EventType;
using chat::domain::Repositories;
using chat::domain::RunEvent;
using Clock = std::chrono::steady_clock;

// ExecutorSink::kMaxPending in run_executor.cpp: a run's engine waits beyond this many unflushed
// events.
constexpr std::size_t kMaxPending = 1024;

struct Args {
  std::string database;
  bool sync_full = true;
  std::vector<std::string> modes{"per-event", "group-single", "group"};
  int runs = 100;
  double seconds = 5;
  double single_seconds = 3;
  double per_event_seconds = 3;
  std::string label;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "chatbot_db_bench: " << why
            << "\nusage: chatbot_db_bench --database sqlite:PATH|postgresql://URL "
               "[--sqlite-synchronous full|normal] [--modes per-event,group-single,group] "
               "[--runs 100] [--seconds 5] [--single-seconds 3] [--per-event-seconds 3] "
               "[--label TEXT]\n";
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + k);
      return argv[++i];
    };
    if (k == "--database") {
      a.database = val();
    } else if (k == "--sqlite-synchronous") {
      const std::string v = val();
      if (v != "full" && v != "normal") usage("--sqlite-synchronous is full or normal");
      a.sync_full = v == "full";
    } else if (k == "--modes") {
      a.modes.clear();
      std::stringstream ss(val());
      for (std::string m; std::getline(ss, m, ',');)
        if (m == "group" || m == "group-single" || m == "per-event")
          a.modes.push_back(m);
        else if (!m.empty())
          usage("unknown mode " + m);
    } else if (k == "--runs") {
      a.runs = std::atoi(val().c_str());
    } else if (k == "--seconds") {
      a.seconds = std::atof(val().c_str());
    } else if (k == "--single-seconds") {
      a.single_seconds = std::atof(val().c_str());
    } else if (k == "--per-event-seconds") {
      a.per_event_seconds = std::atof(val().c_str());
    } else if (k == "--label") {
      a.label = val();
    } else {
      usage("unknown option " + k);
    }
  }
  if (a.database.empty()) usage("--database is required");
  if (a.runs < 1) usage("--runs must be positive");
  return a;
}

std::string uuid4(std::mt19937_64& rng) {
  // Random (version 4) UUIDs: PostgreSQL's ids are uuid-typed.
  const std::uint64_t hi = (rng() & ~0xF000ULL) | 0x4000ULL;
  const std::uint64_t lo = (rng() & ~(0x3ULL << 62)) | (0x2ULL << 62);
  char b[37];
  std::snprintf(b, sizeof b, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return b;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// Seconds this process's threads spent runnable but waiting for a CPU (schedstat's run delay):
/// on a shared machine, how much of a figure is the neighbours.
double run_delay_s() {
  double total = 0;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream f(t.path() / "schedstat");
    unsigned long long on_cpu = 0, waited = 0;
    if (f >> on_cpu >> waited) total += static_cast<double>(waited) / 1e9;
  }
  return total;
}

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// A token event as the service stores it (run_executor.cpp: {"text":...}), ~25 bytes of JSON.
RunEvent make_event(const std::string& run_id, std::int64_t seq) {
  return RunEvent{run_id, seq, EventType::token, "{\"text\":\"tok" + std::to_string(seq) + " \"}",
                  now_ms()};
}

/// The adapter under test, with the counters a mode reports.
struct Backend {
  std::unique_ptr<Database> db;
  std::function<std::pair<std::uint64_t, std::uint64_t>()> batches_jobs;
  chat::infra::DbStatsSource* stats = nullptr;
  std::string name, durability;
  std::size_t max_batch = 0;
};

// Both adapters report batches/jobs the same way (their own Stats) and DbStats.
template <class Db>
void adopt(Backend& b, std::unique_ptr<Db> db) {
  auto* raw = db.get();
  b.batches_jobs = [raw] {
    auto s = raw->stats();
    return std::pair{s.batches, s.write_jobs};
  };
  b.stats = raw;
  b.db = std::move(db);
}

Backend open_backend(const Args& a, bool one_per_tx) {
  Backend b;
  if (auto path = chat::infra::sqlite::sqlite_path_from_url(a.database)) {
    chat::infra::sqlite::SqliteOptions o;
    o.path = *path;
    o.synchronous_full = a.sync_full;
    if (one_per_tx) o.max_batch = 1;
    b.max_batch = o.max_batch;
    adopt(b, std::make_unique<chat::infra::sqlite::SqliteDatabase>(o));
    b.name = "sqlite";
    b.durability = a.sync_full ? "WAL, synchronous=FULL" : "WAL, synchronous=NORMAL";
  } else if (a.database.rfind("postgresql://", 0) == 0 || a.database.rfind("postgres://", 0) == 0) {
    chat::infra::pg::PgOptions o;
    o.connect.url = a.database;
    o.connect.application_name = "chatbot_db_bench";
    if (one_per_tx) o.max_batch = 1;
    b.max_batch = o.max_batch;
    adopt(b, std::make_unique<chat::infra::pg::PgDatabase>(o));
    b.name = "postgresql";
    b.durability = "server's synchronous_commit";
  } else {
    usage("--database must be sqlite:PATH or postgresql://...");
  }
  if (!a.label.empty()) b.durability = a.label;
  return b;
}

/// One producer's state; everything runs on the io_context's single thread.
struct RunState {
  explicit RunState(asio::io_context& io) : timer(io) {}
  std::string id;
  std::int64_t assigned = 0;  // last seq produced
  std::int64_t durable = 0;   // last seq whose commit returned
  std::vector<RunEvent> pending;
  bool flushing = false;
  asio::steady_timer timer;  // woken (canceled) after each flush
};

class Mode {
 public:
  Mode(asio::io_context& io, Database& db, Clock::time_point deadline)
      : io_(io), db_(db), deadline_(deadline) {}

  std::exception_ptr failure;
  Clock::time_point last_commit{};

  /// group: ExecutorSink's append/flush_loop, minus the hub.
  Task<void> produce_pipelined(RunState& r) {
    while (Clock::now() < deadline_ && !failure) {
      r.pending.push_back(make_event(r.id, ++r.assigned));
      if (!r.flushing) {
        r.flushing = true;
        asio::co_spawn(io_, flush_loop(r), [this](std::exception_ptr e) { note(e); });
      }
      if (r.pending.size() >= kMaxPending) {
        while (r.pending.size() >= kMaxPending && r.flushing) co_await wait_flush(r);
      } else {
        // One event per turn of the loop, so the 100 runs interleave like engines would.
        co_await asio::post(io_, asio::use_awaitable);
      }
    }
    while (r.flushing) co_await wait_flush(r);
  }

  /// group-single and per-event: one event per write job, awaited.
  Task<void> produce_awaited(RunState& r) {
    while (Clock::now() < deadline_ && !failure) {
      RunEvent e = make_event(r.id, ++r.assigned);
      co_await db_.write([&e](WriteTx& tx) { tx.repos().events.append(e); });
      r.durable = e.seq;
      last_commit = Clock::now();
    }
  }

  void note(std::exception_ptr e) {
    if (e && !failure) failure = e;
  }

 private:
  Task<void> flush_loop(RunState& r) {
    try {
      while (!r.pending.empty()) {
        std::vector<RunEvent> batch;
        batch.swap(r.pending);
        co_await db_.write([&batch](WriteTx& tx) {
          for (const auto& e : batch) tx.repos().events.append(e);
        });
        r.durable = batch.back().seq;
        last_commit = Clock::now();
        r.timer.cancel();
      }
    } catch (...) {
      r.pending.clear();
      r.flushing = false;
      r.timer.cancel();
      throw;
    }
    r.flushing = false;
    r.timer.cancel();
  }

  Task<void> wait_flush(RunState& r) {
    r.timer.expires_after(std::chrono::hours(1));
    boost::system::error_code ec;
    co_await r.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  asio::io_context& io_;
  Database& db_;
  Clock::time_point deadline_;
};

/// Runs `task` on `io` to completion (the io thread is this one) and rethrows its failure.
template <class F>
void run_on(asio::io_context& io, F task) {
  // A write job in flight on the adapter's thread is not io_context work: keep run() alive.
  auto guard = asio::make_work_guard(io);
  std::exception_ptr err;
  asio::co_spawn(io, task(), [&](std::exception_ptr e) {
    err = e;
    guard.reset();
  });
  io.restart();
  io.run();
  if (err) std::rethrow_exception(err);
}

/// Reads every run's log back through the repositories; returns the problems found.
Task<std::vector<std::string>> verify(Database& db, std::vector<std::unique_ptr<RunState>>& runs) {
  std::vector<std::string> problems;
  constexpr int kPage = 10000;
  for (auto& r : runs) {
    std::int64_t next = 1;
    for (;;) {
      const std::int64_t after = next - 1;
      const std::string id = r->id;
      auto page = co_await db.read(
          [&id, after](Repositories& repos) { return repos.events.list_after(id, after, kPage); });
      for (const auto& e : page) {
        if (e.run_id != r->id || e.seq != next) {
          problems.push_back("run " + r->id + ": expected seq " + std::to_string(next) + ", read " +
                             std::to_string(e.seq));
          break;
        }
        ++next;
      }
      if (!problems.empty() || static_cast<int>(page.size()) < kPage) break;
    }
    if (!problems.empty()) break;
    const std::string id = r->id;
    auto last = co_await db.read([&id](Repositories& repos) {
      auto run = repos.runs.find(id);
      return std::pair{repos.events.last_seq(id), run ? run->last_seq : -1};
    });
    if (next - 1 != r->durable || last.first != r->durable || last.second != r->durable) {
      problems.push_back("run " + r->id + ": " + std::to_string(r->durable) +
                         " events committed, read back " + std::to_string(next - 1) +
                         " (last_seq " + std::to_string(last.first) + ", run's " +
                         std::to_string(last.second) + ")");
      break;
    }
  }
  co_return problems;
}

int run_mode(const Args& a, const std::string& mode, std::mt19937_64& rng) {
  Backend b = open_backend(a, mode == "per-event");
  asio::io_context io;

  std::vector<std::unique_ptr<RunState>> runs;
  for (int i = 0; i < a.runs; ++i) {
    runs.push_back(std::make_unique<RunState>(io));
    runs.back()->id = uuid4(rng);
  }
  // Setup through the repositories: a user, a thread, and per run its user message and the run.
  run_on(io, [&]() -> Task<void> {
    const std::string thread_id = uuid4(rng);
    const std::string user_name = "dbbench-" + uuid4(rng);
    co_await b.db->write([&](WriteTx& tx) {
      auto& repos = tx.repos();
      const auto at = now_ms();
      auto user = repos.users.insert(user_name, at);
      repos.threads.insert(chat::domain::Thread{thread_id, user.id, std::string("db bench"), at});
      for (auto& r : runs) {
        chat::domain::Message m;
        m.id = uuid4(rng);
        m.thread_id = thread_id;
        m.content = "bench";
        m.created_at = at;
        m.run_id = r->id;
        repos.messages.insert(m);
        chat::domain::Run run;
        run.id = r->id;
        run.thread_id = thread_id;
        run.message_id = m.id;
        run.status = chat::domain::RunStatus::running;
        run.created_at = at;
        repos.runs.insert(run);
      }
    });
  });

  const double secs = mode == "group" ? a.seconds
                      : mode == "group-single" ? a.single_seconds
                                               : a.per_event_seconds;
  const auto [batches0, jobs0] = b.batches_jobs();
  const auto st0 = b.stats->db_stats();
  const double cpu0 = process_cpu_s();
  const double wait0 = run_delay_s();
  const double io_cpu0 = thread_cpu_s();
  const auto t0 = Clock::now();
  Mode m(io, *b.db,
         t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs)));
  m.last_commit = t0;

  run_on(io, [&]() -> Task<void> {
    auto left = std::make_shared<int>(static_cast<int>(runs.size()));
    auto done = std::make_shared<asio::steady_timer>(io, std::chrono::hours(24));
    for (auto& r : runs) {
      auto on_end = [&m, left, done](std::exception_ptr e) {
        m.note(e);
        if (--*left == 0) done->cancel();
      };
      if (mode == "group")
        asio::co_spawn(io, m.produce_pipelined(*r), on_end);
      else
        asio::co_spawn(io, m.produce_awaited(*r), on_end);
    }
    while (*left > 0) {
      boost::system::error_code ec;
      co_await done->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  });
  const auto t1 = m.last_commit;
  const double cpu = process_cpu_s() - cpu0;
  const double waited = run_delay_s() - wait0;
  const double io_cpu = thread_cpu_s() - io_cpu0;
  const auto [batches1, jobs1] = b.batches_jobs();
  const auto st1 = b.stats->db_stats();
  if (m.failure) std::rethrow_exception(m.failure);

  std::int64_t events = 0;
  for (auto& r : runs) events += r->durable;
  const double seconds = std::chrono::duration<double>(t1 - t0).count();
  const auto commits = batches1 - batches0;
  const auto jobs = jobs1 - jobs0;
  const double commit_s_sum = st1.commit_seconds.sum() - st0.commit_seconds.sum();

  // For a driver that samples the database server's CPU: the measured window ends here.
  std::cout << "measured" << std::endl;
  std::vector<std::string> problems;
  run_on(io, [&]() -> Task<void> { problems = co_await verify(*b.db, runs); });
  b.db.reset();  // drains and joins the adapter's threads

  const double rate = seconds > 0 ? static_cast<double>(events) / seconds : 0.0;
  const double per_commit = commits ? static_cast<double>(events) / static_cast<double>(commits) : 0.0;
  const double ms_per_commit = commits ? 1000.0 * commit_s_sum / static_cast<double>(commits) : 0.0;
  char line[1024];
  std::snprintf(line, sizeof line,
                "{\"backend\":\"%s\",\"durability\":\"%s\",\"mode\":\"%s\",\"runs\":%d,"
                "\"max_batch\":%zu,\"events\":%lld,\"seconds\":%.3f,\"events_per_s\":%.0f,"
                "\"commits\":%llu,\"write_jobs\":%llu,\"events_per_commit\":%.1f,"
                "\"ms_per_commit\":%.3f,\"cpu_s\":%.3f,\"io_thread_cpu_s\":%.3f,\"run_delay_s\":%.3f,"
                "\"verified\":%s}",
                b.name.c_str(), b.durability.c_str(), mode.c_str(), a.runs, b.max_batch,
                static_cast<long long>(events), seconds, rate,
                static_cast<unsigned long long>(commits), static_cast<unsigned long long>(jobs),
                per_commit, ms_per_commit, cpu, io_cpu, waited, problems.empty() ? "true" : "false");
  std::cout << line << std::endl;
  std::fprintf(stderr,
               "%s %s %-12s %9lld events in %6.2f s = %9.0f events/s; %llu commits (%.1f events, "
               "%.2f ms each); CPU %.2f s (producers %.2f s), waited for a CPU %.2f s%s\n",
               b.name.c_str(), b.durability.c_str(), mode.c_str(), static_cast<long long>(events),
               seconds, rate, static_cast<unsigned long long>(commits), per_commit, ms_per_commit,
               cpu, io_cpu, waited, problems.empty() ? "; verified" : "");
  for (const auto& p : problems) std::fprintf(stderr, "VERIFY FAILED: %s\n", p.c_str());
  if (events == 0) {
    std::fprintf(stderr, "FAILED: no event was committed\n");
    return 1;
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  std::mt19937_64 rng(std::random_device{}());
  int rc = 0;
  for (const auto& mode : a.modes) {
    try {
      if (run_mode(a, mode, rng) != 0) rc = 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "chatbot_db_bench: %s: %s\n", mode.c_str(), e.what());
      rc = 1;
    }
  }
  return rc;
}
