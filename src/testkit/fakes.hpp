#pragma once
/// Test support (unit tests only): fakes of the core's small ports and a scriptable engine.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "application/database.hpp"
#include "application/ports.hpp"
#include "domain/entities.hpp"

namespace chat::testkit {

/// Starts at a fixed instant and moves one millisecond per call: timestamps are distinct and
/// increasing, so ordering checks never depend on the wall clock.
class StepClock final : public app::Clock {
 public:
  static constexpr domain::Timestamp kStart = 1'795'514'400'000;  // 2026-11-24T10:00:00.000Z
  domain::Timestamp now() override { return t_.fetch_add(1); }

 private:
  std::atomic<domain::Timestamp> t_{kStart};
};

/// Valid, distinct, lowercase UUID v4 strings: 00000001-abcd-4def-8000-000000000001, ...
class SeqIds final : public app::IdGenerator {
 public:
  std::string uuid() override { return make(++n_); }
  static std::string make(std::uint64_t n) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08llx-abcd-4def-8000-%012llx",
                  static_cast<unsigned long long>(n & 0xffffffffULL),
                  static_cast<unsigned long long>(n));
    return buf;
  }

 private:
  std::atomic<std::uint64_t> n_{0};
};

class CapturingLogger final : public app::Logger {
 public:
  void info(const std::string& m) override { add("info", m); }
  void warn(const std::string& m) override { add("warn", m); }
  void error(const std::string& m) override { add("error", m); }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  void add(const char* level, const std::string& m) {
    std::lock_guard lock(mu_);
    lines_.push_back(std::string(level) + ": " + m);
  }
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

/// An engine driven by a script: `tokens`, then (with `hold`) a loop of short sink.sleep()s
/// until the test releases the run or it is canceled, then `tokens_after`, then optionally a
/// failure. Records what it saw, for the tests to check.
class ScriptEngine final : public app::Engine {
 public:
  std::vector<std::string> tokens{"Hel", "lo"};
  bool hold = false;
  std::vector<std::string> tokens_after;
  std::optional<std::string> fail;
  std::chrono::milliseconds token_delay{0};
  /// If set, every run checks at its start that the earlier runs of its thread have ended and
  /// the later ones are still queued (one at a time per thread, in creation order).
  app::Database* order_db = nullptr;

  app::Task<void> run(const app::EngineRequest& req, app::EngineSink& sink) override {
    begin(req);
    if (order_db) co_await check_order(req.run_id);
    for (const auto& t : tokens) {
      if (sink.canceled()) break;
      if (token_delay.count() > 0) co_await sink.sleep(token_delay);
      co_await sink.token(t);
    }
    while (hold && !sink.canceled() && !released(req.run_id))
      co_await sink.sleep(std::chrono::milliseconds(2));
    for (const auto& t : tokens_after) {
      if (sink.canceled()) break;
      if (token_delay.count() > 0) co_await sink.sleep(token_delay);
      co_await sink.token(t);
    }
    end(req.run_id);
    if (fail && !sink.canceled()) throw app::EngineError(*fail);
  }

  void release(const std::string& run_id) {
    std::lock_guard lock(mu_);
    released_.insert(run_id);
  }
  void release_all() {
    std::lock_guard lock(mu_);
    release_all_ = true;
  }

  std::vector<std::string> started() const {
    std::lock_guard lock(mu_);
    return started_;
  }
  std::vector<std::string> ended() const {
    std::lock_guard lock(mu_);
    return ended_;
  }
  bool was_started(const std::string& run_id) const {
    auto s = started();
    return std::find(s.begin(), s.end(), run_id) != s.end();
  }
  int active() const {
    std::lock_guard lock(mu_);
    return active_;
  }
  int max_active() const {
    std::lock_guard lock(mu_);
    return max_active_;
  }
  std::vector<std::string> violations() const {
    std::lock_guard lock(mu_);
    return violations_;
  }
  /// The history the engine got for `run_id`.
  std::vector<domain::Message> history_of(const std::string& run_id) const {
    std::lock_guard lock(mu_);
    for (const auto& r : requests_)
      if (r.run_id == run_id) return r.history;
    return {};
  }

 private:
  bool released(const std::string& run_id) const {
    std::lock_guard lock(mu_);
    return release_all_ || released_.count(run_id) > 0;
  }
  void begin(const app::EngineRequest& req) {
    std::lock_guard lock(mu_);
    started_.push_back(req.run_id);
    requests_.push_back(req);
    max_active_ = std::max(max_active_, ++active_);
  }
  void end(const std::string& run_id) {
    std::lock_guard lock(mu_);
    ended_.push_back(run_id);
    --active_;
  }
  void violation(std::string v) {
    std::lock_guard lock(mu_);
    violations_.push_back(std::move(v));
  }

  app::Task<void> check_order(std::string run_id) {
    auto runs = co_await order_db->read([&](domain::Repositories& r) {
      auto me = r.runs.find(run_id);
      return me ? r.runs.list_by_thread(me->thread_id) : std::vector<domain::Run>{};
    });
    bool seen_me = false;
    for (const auto& r : runs) {
      if (r.id == run_id) {
        seen_me = true;
        if (r.status != domain::RunStatus::running) violation(run_id + " is not running");
      } else if (!seen_me && !domain::is_terminal(r.status)) {
        violation(run_id + " started before earlier run " + r.id + " ended");
      } else if (seen_me && r.status != domain::RunStatus::queued) {
        violation(run_id + " started after later run " + r.id + " left queued");
      }
    }
    if (!seen_me) violation(run_id + " not found");
  }

  mutable std::mutex mu_;
  std::set<std::string> released_;
  bool release_all_ = false;
  std::vector<std::string> started_;
  std::vector<std::string> ended_;
  std::vector<app::EngineRequest> requests_;
  std::vector<std::string> violations_;
  int active_ = 0;
  int max_active_ = 0;
};

}  // namespace chat::testkit
