#pragma once
/// Test support (unit tests only): the core wired as main.cpp wires it — a database, the event
/// hub, a RunExecutor and RunScheduler driving a ScriptEngine, and the ChatService — on an
/// io_context of its own. Helpers run use cases synchronously from the test thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <unistd.h>

#include "application/chat_service.hpp"
#include "application/event_hub.hpp"
#include "application/run_executor.hpp"
#include "application/run_scheduler.hpp"
#include "infrastructure/db/memory/memory_database.hpp"
#include "infrastructure/db/sqlite/sqlite_database.hpp"
#include "testkit/async.hpp"
#include "testkit/fakes.hpp"

namespace chat::testkit {

/// A file path in the temp directory that nothing else uses; removed (with SQLite's -wal and
/// -shm companions) on destruction.
class TempDbPath {
 public:
  TempDbPath() {
    static std::atomic<int> n{0};
    path_ = (std::filesystem::temp_directory_path() /
             ("chat-unit-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + ".db"))
                .string();
    remove();
  }
  ~TempDbPath() { remove(); }
  TempDbPath(const TempDbPath&) = delete;
  TempDbPath& operator=(const TempDbPath&) = delete;
  const std::string& str() const { return path_; }
  void remove() const {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
      std::filesystem::remove(path_ + suffix, ec);
  }

 private:
  std::string path_;
};

/// An in-memory database whose writes can be made to fail on demand (after running the job;
/// its changes are rolled back and its hooks dropped), as a full disk would.
class FlakyDatabase final : public app::Database {
 public:
  /// The next `n` write jobs fail with "disk full".
  void fail_next_writes(int n) { fail_.store(n); }
  /// After `skip` more writes, `n` writes fail: rolled back ("disk full"), or, with `committed`,
  /// kept while their caller is told they failed (a COMMIT whose answer the connection lost).
  void fail_writes_after(int skip, int n, bool committed) {
    std::lock_guard lock(mu_);
    skip_ = skip;
    later_ = n;
    committed_ = committed;
  }

 protected:
  void submit_read(ReadJob job, Done done) override {
    std::exception_ptr err;
    {
      std::lock_guard lock(mu_);
      try {
        job(repos_.repos());
      } catch (...) {
        err = std::current_exception();
      }
    }
    done(err);
  }
  void submit_write(WriteJob job, Done done) override {
    std::exception_ptr err;
    std::vector<std::function<void()>> hooks;
    bool lost_answer = false;
    {
      std::lock_guard lock(mu_);
      infra::memory::MemoryState before = state_;
      try {
        app::WriteTx tx(repos_.repos());
        job(tx);
        if (fail_.load() > 0) {
          --fail_;
          throw std::runtime_error("disk full");
        }
        if (skip_ > 0) {
          --skip_;
        } else if (later_ > 0) {
          --later_;
          if (committed_) {
            lost_answer = true;  // kept, hooks dropped: nobody learns it committed
          } else {
            throw std::runtime_error("disk full");
          }
        }
        if (!lost_answer) hooks = std::move(tx.hooks());
      } catch (...) {
        state_ = std::move(before);
        err = std::current_exception();
      }
    }
    for (auto& h : hooks) h();
    if (lost_answer) err = std::make_exception_ptr(std::runtime_error("connection lost at COMMIT"));
    done(std::move(err));
  }

 private:
  std::mutex mu_;
  infra::memory::MemoryState state_;
  infra::memory::MemoryRepositories repos_{state_};
  std::atomic<int> fail_{0};
  int skip_ = 0;   // guarded by mu_
  int later_ = 0;  // guarded by mu_
  bool committed_ = false;  // guarded by mu_
};

enum class DbKind { memory, sqlite_memory, sqlite_file, flaky_memory };

struct HarnessOptions {
  DbKind db = DbKind::memory;
  std::size_t max_concurrent = 8;
  app::Limits limits{};
  int io_threads = 2;
};

/// Which events a run has, compactly: "state,token,final,state,done".
inline std::string type_list(const std::vector<domain::RunEvent>& events) {
  std::string out;
  for (const auto& e : events) {
    if (!out.empty()) out += ',';
    out += std::string(domain::to_string(e.type));
  }
  return out;
}

/// What a client reading a RunEventStream got.
struct Collected {
  bool opened = false;  ///< false: no stream (the 204 case)
  std::vector<domain::RunEvent> events;
  bool ended = false;     ///< StepKind::end seen
  bool overflow = false;  ///< StepKind::overflow seen
  bool timed_out = false;
  std::vector<std::int64_t> seqs() const {
    std::vector<std::int64_t> out;
    for (const auto& e : events) out.push_back(e.seq);
    return out;
  }
};

/// Seqs from..to inclusive.
inline std::vector<std::int64_t> seq_range(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  for (auto s = from; s <= to; ++s) out.push_back(s);
  return out;
}

inline app::Task<void> co_sleep(std::chrono::milliseconds d) {
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(boost::asio::use_awaitable);
}

/// Reads `stream` until end, overflow or `budget` passes.
inline app::Task<void> drain_stream(app::RunEventStream& stream, Collected& c,
                                    std::chrono::milliseconds budget = 4000ms) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (std::chrono::steady_clock::now() < deadline) {
    auto step = co_await stream.next(20ms);
    using K = app::RunEventStream::StepKind;
    if (step.kind == K::events) {
      for (const auto& e : step.events) c.events.push_back(*e);
    } else if (step.kind == K::end) {
      c.ended = true;
      co_return;
    } else if (step.kind == K::overflow) {
      c.overflow = true;
      co_return;
    }
  }
  c.timed_out = true;
}

/// Opens the run's event stream after `after` (on the calling coroutine's executor) and reads it.
inline app::Task<Collected> collect(app::ChatService& svc, std::string run_id, std::int64_t after,
                                    std::chrono::milliseconds budget = 4000ms) {
  auto ex = co_await boost::asio::this_coro::executor;
  auto r = co_await svc.open_stream(run_id, after, ex);
  if (!r) throw std::runtime_error("open_stream: " + r.error().detail);
  Collected c;
  if (!r->stream) co_return c;
  c.opened = true;
  co_await drain_stream(*r->stream, c, budget);
  co_return c;
}

class ServiceHarness {
 public:
  explicit ServiceHarness(HarnessOptions o = {})
      : opts_(o),
        io_(o.io_threads),
        db_(make_db()),
        hub_(o.limits.subscriber_queue),
        executor_(*db_, hub_, engine, clock, ids, log),
        scheduler_(io_.io(), executor_, o.max_concurrent),
        service_(*db_, hub_, scheduler_, clock, ids, o.limits) {}

  ~ServiceHarness() {
    // Let every run end (canceling the ones still going), then let the io threads run dry.
    scheduler_.shutdown();
    engine.release_all();
    wait_until([this] { return scheduler_.running() == 0; }, 3000ms);
    io_.stop();
    db_.reset();
  }
  ServiceHarness(const ServiceHarness&) = delete;
  ServiceHarness& operator=(const ServiceHarness&) = delete;

  app::ChatService& service() { return service_; }
  app::RunScheduler& scheduler() { return scheduler_; }
  app::RunExecutor& executor() { return executor_; }
  app::EventHub& hub() { return hub_; }
  app::Database& db() { return *db_; }
  boost::asio::io_context& io() { return io_.io(); }
  FlakyDatabase* flaky_db() { return dynamic_cast<FlakyDatabase*>(db_.get()); }
  /// The in-memory database, or null on SQLite.
  infra::memory::MemoryDatabase* memory_db() {
    return dynamic_cast<infra::memory::MemoryDatabase*>(db_.get());
  }

  template <class T>
  T sync(app::Task<T> t, std::chrono::milliseconds timeout = 5000ms) {
    return run_sync(io_.io(), std::move(t), timeout);
  }

  domain::User make_user(const std::string& name) {
    auto r = sync(service_.create_user(name));
    if (!r) throw std::runtime_error("create_user: " + r.error().detail);
    return r->user;
  }
  domain::Thread make_thread(std::int64_t user_id,
                             std::optional<std::string> title = std::nullopt) {
    auto r = sync(service_.create_thread(user_id, std::move(title)));
    if (!r) throw std::runtime_error("create_thread: " + r.error().detail);
    return r.value();
  }
  /// A new user's new thread.
  domain::Thread make_thread() {
    static std::atomic<int> n{0};
    return make_thread(make_user("user-" + std::to_string(++n)).id);
  }
  app::PostedMessage post(const std::string& thread_id, const std::string& content,
                          std::optional<std::string> key = std::nullopt) {
    auto r = sync(service_.post_message(thread_id, content, std::move(key)));
    if (!r) throw std::runtime_error("post_message: " + r.error().detail);
    return r.value();
  }
  domain::Run run(const std::string& run_id) {
    auto r = sync(service_.get_run(run_id));
    if (!r) throw std::runtime_error("get_run: " + r.error().detail);
    return r.value();
  }
  std::vector<domain::Run> runs_of(const std::string& thread_id) {
    auto r = sync(service_.list_thread_runs(thread_id));
    if (!r) throw std::runtime_error("list_thread_runs: " + r.error().detail);
    return r.value();
  }
  std::vector<domain::Message> messages_of(const std::string& thread_id) {
    auto r = sync(service_.get_thread(thread_id));
    if (!r) throw std::runtime_error("get_thread: " + r.error().detail);
    return r->messages;
  }
  /// The stored events of a run.
  std::vector<domain::RunEvent> events(const std::string& run_id) {
    return sync(db_->read(
        [run_id](domain::Repositories& r) { return r.events.list_after(run_id, 0, 100000); }));
  }
  bool wait_terminal(const std::string& run_id, std::chrono::milliseconds t = 3000ms) {
    return wait_until([&] { return domain::is_terminal(run(run_id).status); }, t);
  }
  bool wait_last_seq(const std::string& run_id, std::int64_t seq,
                     std::chrono::milliseconds t = 3000ms) {
    return wait_until([&] { return run(run_id).last_seq >= seq; }, t);
  }
  Collected collect(const std::string& run_id, std::int64_t after) {
    return sync(testkit::collect(service_, run_id, after));
  }

  // Public: tests configure the engine before posting and read the fakes afterwards.
  StepClock clock;
  SeqIds ids;
  CapturingLogger log;
  ScriptEngine engine;

 private:
  std::unique_ptr<app::Database> make_db() {
    switch (opts_.db) {
      case DbKind::memory:
        return std::make_unique<infra::memory::MemoryDatabase>();
      case DbKind::flaky_memory:
        return std::make_unique<FlakyDatabase>();
      case DbKind::sqlite_memory:
        return std::make_unique<infra::sqlite::SqliteDatabase>(
            infra::sqlite::SqliteOptions{":memory:", 2, false, 4096, true});
      case DbKind::sqlite_file:
        return std::make_unique<infra::sqlite::SqliteDatabase>(
            infra::sqlite::SqliteOptions{path_.str(), 2, false, 4096, true});
    }
    throw std::logic_error("unknown DbKind");
  }

  HarnessOptions opts_;
  TempDbPath path_;
  IoRunner io_;  // before everything that posts to it; stopped in the destructor body
  std::unique_ptr<app::Database> db_;
  app::EventHub hub_;
  app::RunExecutor executor_;
  app::RunScheduler scheduler_;
  app::ChatService service_;
};

}  // namespace chat::testkit
