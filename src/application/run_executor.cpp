#include "application/run_executor.hpp"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "application/run_scheduler.hpp"
#include "application/webhooks.hpp"
#include "domain/json_text.hpp"

namespace chat::app {
namespace {

using domain::EventType;
using domain::RunEvent;
using domain::RunStatus;

std::string status_json(RunStatus s) {
  return std::string("{\"status\":\"") + std::string(domain::to_string(s)) + "\"}";
}

// Appends are pipelined: an event is queued and the engine goes on at once, while one flush
// at a time writes everything queued so far as a single write job (so one run can put
// thousands of events in one commit). The engine waits only when too much is queued
// (backpressure) and the executor drains before it finalizes. All members run on the run's
// strand. `seq` is assigned at append; on a failed flush everything unflushed is dropped and
// the seq rewinds to the last durable one, so the stored log never has a gap.
class ExecutorSink final : public EngineSink {
 public:
  static constexpr std::size_t kMaxPending = 1024;

  ExecutorSink(Database& db, EventHub& hub, Clock& clock, RunControl& ctl, std::string run_id,
               std::int64_t seq)
      : db_(db), hub_(hub), clock_(clock), ctl_(ctl), run_id_(std::move(run_id)),
        assigned_(seq), durable_(seq), flush_timer_(ctl.strand) {}

  Task<void> tool_start(const std::string& tool, const std::string& input_json) override {
    std::string data = "{\"tool\":";
    domain::append_json_string(data, domain::storable_text(tool));
    data += ",\"input\":" +
            (input_json.empty() ? std::string("{}") : domain::replace_json_nul_escapes(input_json)) +
            "}";
    co_await append(EventType::tool_start, std::move(data));
  }

  Task<void> tool_end(const std::string& tool, const std::string& output_json) override {
    std::string data = "{\"tool\":";
    domain::append_json_string(data, domain::storable_text(tool));
    data += ",\"output\":" +
            (output_json.empty() ? std::string("{}") : domain::replace_json_nul_escapes(output_json)) +
            "}";
    co_await append(EventType::tool_end, std::move(data));
  }

  Task<void> token(const std::string& text) override {
    if (try_token(text)) co_return;
    if (!failure_.empty()) throw std::runtime_error(failure_);
    push_token(text);
    while (pending_.size() >= kMaxPending && flushing_) co_await wait_flush();
  }

  bool try_token(const std::string& text) override {
    if (text.empty()) return true;
    if (!failure_.empty() || (pending_.size() >= kMaxPending && flushing_)) return false;
    push_token(text);
    return true;
  }

  Task<void> sleep(std::chrono::milliseconds d) override {
    if (canceled() || d.count() <= 0) co_return;
    ctl_.sleep_timer.expires_after(d);
    boost::system::error_code ec;
    co_await ctl_.sleep_timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }

  bool canceled() const override { return ctl_.cancel_requested.load(); }

  void on_cancel(std::function<void()> f) override { ctl_.cancel_hook = std::move(f); }

  void set_usage(std::string usage_json) override { usage_ = std::move(usage_json); }

  /// Waits until every appended event is durable; throws if a flush failed.
  Task<void> drain() {
    while (flushing_) co_await wait_flush();
    if (!failure_.empty()) throw std::runtime_error(failure_);
  }

  std::int64_t durable_seq() const { return durable_; }
  /// The reply so far; after drain(), what is durable.
  const std::string& text() const { return text_; }
  const std::string& usage() const { return usage_; }

 private:
  struct Pending {
    RunEvent event;
    std::size_t text_end;  ///< text_.size() once this event's text is in it
  };

  // The reply's text goes into text_ at once (the storable form, copied only when it differs)
  // and the event's data is made from it; text_ is cut back to what is durable if a flush fails.
  void push_token(const std::string& text) {
    const std::size_t start = text_.size();
    if (domain::is_storable_text(text)) text_ += text;
    else text_ += domain::storable_text(text);
    std::string data;
    data.reserve(text_.size() - start + 12);
    data = "{\"text\":";
    domain::append_json_string(data, std::string_view(text_).substr(start));
    data += '}';
    push(EventType::token, std::move(data));
  }

  Task<void> append(EventType type, std::string data) {
    if (!failure_.empty()) throw std::runtime_error(failure_);
    push(type, std::move(data));
    while (pending_.size() >= kMaxPending && flushing_) co_await wait_flush();
  }

  void push(EventType type, std::string data) {
    pending_.push_back({RunEvent{run_id_, ++assigned_, type, std::move(data), clock_.now()},
                        text_.size()});
    if (!flushing_) {
      flushing_ = true;
      boost::asio::co_spawn(ctl_.strand, flush_loop(), [](std::exception_ptr) {});
    }
  }

  Task<void> flush_loop() {
    while (!pending_.empty()) {
      std::vector<Pending> batch;
      batch.swap(pending_);
      // Shared from here on: the write (which may run more than once) stores them and the hub
      // hands the same objects to every subscriber.
      std::vector<EventPtr> events;
      events.reserve(batch.size());
      for (auto& p : batch) events.push_back(std::make_shared<const RunEvent>(std::move(p.event)));
      const std::int64_t last = events.back()->seq;
      std::string error;
      try {
        co_await db_.write([&](WriteTx& tx) { append_and_publish(tx, hub_, events); });
      } catch (const std::exception& e) {
        error = e.what();
        if (error.empty()) error = "event log write failed";
      }
      if (!error.empty()) {
        failure_ = "could not store the run's events: " + error;
        pending_.clear();
        assigned_ = durable_;
        text_.resize(durable_text_);
        break;
      }
      durable_ = last;
      durable_text_ = batch.back().text_end;
      flush_timer_.cancel();
    }
    flushing_ = false;
    flush_timer_.cancel();
  }

  Task<void> wait_flush() {
    flush_timer_.expires_after(std::chrono::hours(1));
    boost::system::error_code ec;
    co_await flush_timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }

  Database& db_;
  EventHub& hub_;
  Clock& clock_;
  RunControl& ctl_;
  std::string run_id_;
  std::int64_t assigned_;
  std::int64_t durable_;
  std::string text_;  ///< every token pushed; the first durable_text_ bytes are durable
  std::size_t durable_text_ = 0;
  std::string usage_;
  std::vector<Pending> pending_;
  bool flushing_ = false;
  std::string failure_;
  boost::asio::steady_timer flush_timer_;
};

struct Started {
  domain::Run run;
  std::vector<domain::Message> history;
  std::int64_t seq = 0;
};

}  // namespace

std::vector<RunEvent> terminal_events(const std::string& run_id, std::int64_t last_seq,
                                      RunStatus status, const std::string& reply_text,
                                      const std::string& message_id, const std::string& error,
                                      domain::Timestamp at, const std::string& usage_json) {
  std::vector<RunEvent> out;
  auto add = [&](EventType t, std::string data) {
    out.push_back(RunEvent{run_id, last_seq + static_cast<std::int64_t>(out.size()) + 1, t,
                           std::move(data), at});
  };
  if (status == RunStatus::done) {
    std::string d = "{\"text\":";
    domain::append_json_string(d, reply_text);
    d += ",\"message_id\":";
    domain::append_json_string(d, message_id);
    if (!usage_json.empty()) d += ",\"usage\":" + usage_json;
    d += "}";
    add(EventType::final_, std::move(d));
  } else if (status == RunStatus::canceled) {
    add(EventType::canceled, "{\"reason\":\"canceled\"}");
  } else {
    std::string d = "{\"error\":";
    domain::append_json_string(d, domain::storable_text(error));
    d += "}";
    add(EventType::error, std::move(d));
  }
  add(EventType::state, status_json(status));
  add(EventType::done, status_json(status));
  return out;
}

void append_and_publish(WriteTx& tx, EventHub& hub, std::vector<RunEvent> events) {
  std::vector<EventPtr> ptrs;
  ptrs.reserve(events.size());
  for (auto& e : events) ptrs.push_back(std::make_shared<const RunEvent>(std::move(e)));
  append_and_publish(tx, hub, std::move(ptrs));
}

void append_and_publish(WriteTx& tx, EventHub& hub, std::vector<EventPtr> events) {
  tx.repos().events.append_all(events);
  tx.after_commit([&hub, events = std::move(events)] { hub.publish(events); });
}

void append_started(WriteTx& tx, EventHub& hub, const std::string& run_id, std::int64_t seq,
                    domain::Timestamp now) {
  append_and_publish(
      tx, hub, {RunEvent{run_id, seq, EventType::state, status_json(RunStatus::running), now}});
}

Task<void> RunExecutor::execute(std::string run_id, std::shared_ptr<RunControl> ctl,
                                bool claimed) {
  // Start: mark the run running (or, claimed, read it), retried until the database answers. A
  // run given up here would stay `queued` (or `running` with no executor) until the next
  // start-up, and every later run of its thread would wait behind it. A start whose COMMIT
  // landed while its answer was lost finds the run already running on the retry: in
  // single-instance mode only this executor starts it, so it goes on from what is stored.
  std::optional<Started> started;
  for (int attempt = 0;; ++attempt) {
    bool answered = false;  // no jump out of the try block (GCC 12 coroutines, see claim_loop)
    try {
      const auto now = clock_.now();
      const bool retry = attempt > 0;
      if (claimed) {
        // Already running with its `state` event (claim()): read what the engine needs.
        started = co_await db_.read([&](domain::Repositories& r) -> std::optional<Started> {
          auto run = r.runs.find(run_id);
          if (!run || run->status != RunStatus::running) return std::nullopt;
          Started s{*run, {}, run->last_seq};
          for (auto& m : r.messages.list_by_thread(run->thread_id)) {
            const bool mine = m.id == run->message_id;
            s.history.push_back(std::move(m));
            if (mine) break;
          }
          return s;
        });
      } else {
        started = co_await db_.write([&](WriteTx& tx) -> std::optional<Started> {
          auto& r = tx.repos();
          auto run = r.runs.find(run_id);
          if (!run) return std::nullopt;
          const bool marked = r.runs.mark_running(run_id, now);
          if (!marked && !(retry && run->status == RunStatus::running)) return std::nullopt;
          if (marked) {
            append_started(tx, hub_, run_id, run->last_seq + 1, now);
            run->status = RunStatus::running;
            run->started_at = now;
          }
          Started s{*run, {}, run->last_seq};
          for (auto& m : r.messages.list_by_thread(run->thread_id)) {
            const bool mine = m.id == run->message_id;
            s.history.push_back(std::move(m));
            if (mine) break;
          }
          if (marked) s.seq += 1;  // else our earlier attempt committed, its `state` event too
          return s;
        });
      }
      answered = true;
    } catch (const std::exception& e) {
      if (attempt < 5 || attempt % 30 == 0)
        log_.error("run " + run_id + ": could not start (attempt " + std::to_string(attempt + 1) +
                   "), retrying: " + e.what());
    }
    if (answered) break;
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
    t.expires_after(std::chrono::milliseconds(attempt < 4 ? 200 << attempt : 2000));
    boost::system::error_code ec;
    co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }
  if (!started) co_return;  // canceled (or deleted) before it started

  ExecutorSink sink(db_, hub_, clock_, *ctl, run_id, started->seq);
  RunStatus status = RunStatus::done;
  std::string error;
  try {
    EngineRequest req{run_id, std::move(started->history)};
    co_await engine_.run(req, sink);
    if (sink.canceled()) status = RunStatus::canceled;
  } catch (const std::exception& e) {
    if (sink.canceled()) {
      status = RunStatus::canceled;
    } else {
      status = RunStatus::error;
      error = e.what();
      if (error.empty()) error = "engine failed";
    }
  }
  ctl->cancel_hook = nullptr;
  if (ctl->lease_lost.load()) {
    // Another instance ended the run (our lease lapsed): its log is closed.
    log_.warn("run " + run_id + ": lease lost; another instance finalized it");
    co_return;
  }
  try {
    co_await sink.drain();
  } catch (const std::exception& e) {
    if (status != RunStatus::error) {
      status = RunStatus::error;
      error = e.what();
    }
  }

  error = domain::storable_text(error);  // an upstream's message goes into text columns

  // Finalize: terminal events, status and assistant message in one transaction. Retried until it
  // commits (the database may be away for a while: subscribers wait for the ending, and a run
  // left `running` would otherwise wait for the next start-up's recovery). Idempotent: a commit
  // whose answer was lost makes the retry's finish() a no-op. Shutdown destroys this coroutine;
  // recovery at the next start then ends the run as "executor lost".
  const std::string message_id = ids_.uuid();
  for (int attempt = 0;; ++attempt) {
    try {
      const auto now = clock_.now();
      co_await db_.write([&](WriteTx& tx) {
        auto& r = tx.repos();
        const std::optional<std::string> err =
            status == RunStatus::error ? std::optional<std::string>(error) : std::nullopt;
        if (!r.runs.finish(run_id, status, now, err)) return;
        const bool keep_reply =
            status == RunStatus::done || (status == RunStatus::canceled && !sink.text().empty());
        if (keep_reply)
          r.messages.insert(domain::Message{message_id, started->run.thread_id,
                                            domain::Role::assistant, sink.text(), now, run_id});
        // A flush whose COMMIT reached the database but whose answer was lost (the database
        // went away at that moment) left events the sink counts as not written: the ending
        // goes after what is really stored, or it would collide with them forever.
        const auto after = std::max(sink.durable_seq(), r.events.last_seq(run_id));
        auto events = terminal_events(run_id, after, status, sink.text(), message_id, error, now,
                                      sink.usage());
        const auto last_seq = events.back().seq;
        append_and_publish(tx, hub_, std::move(events));
        if (webhooks_)
          webhooks_->run_ended(tx, ended_view(started->run, status, now, err, last_seq), now);
      });
      co_return;
    } catch (const std::exception& e) {
      if (attempt < 5 || attempt % 30 == 0)
        log_.error("run " + run_id + ": could not finalize (attempt " +
                   std::to_string(attempt + 1) + "), retrying: " + e.what());
    }
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
    t.expires_after(std::chrono::milliseconds(attempt < 4 ? 200 << attempt : 2000));
    boost::system::error_code ec;
    co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }
}

Task<std::optional<std::pair<std::string, std::string>>> RunExecutor::claim(
    const std::string& owner, std::chrono::milliseconds lease) {
  const auto now = clock_.now();
  co_return co_await db_.write(
      [&](WriteTx& tx) -> std::optional<std::pair<std::string, std::string>> {
        auto& r = tx.repos();
        if (!r.leases) throw std::logic_error("several instances need PostgreSQL");
        auto run = r.leases->claim_next(owner, lease.count(), now);
        if (!run) return std::nullopt;
        append_and_publish(tx, hub_,
                           {RunEvent{run->id, run->last_seq + 1, EventType::state,
                                     status_json(RunStatus::running), now}});
        return std::make_pair(run->thread_id, run->id);
      });
}

Task<RunExecutor::LeaseTick> RunExecutor::lease_tick(const std::string& owner,
                                                     std::chrono::milliseconds lease,
                                                     bool renew) {
  const auto now = clock_.now();
  auto tick = co_await db_.write([&](WriteTx& tx) {
    auto& r = tx.repos();
    if (!r.leases) throw std::logic_error("several instances need PostgreSQL");
    LeaseTick t;
    if (renew) t.renewed = r.leases->renew(owner, lease.count());
    for (const auto& run : r.leases->expire_lapsed(now, "executor lost")) {
      auto events =
          terminal_events(run.id, run.last_seq, RunStatus::error, "", "", "executor lost", now);
      const auto last_seq = events.back().seq;
      append_and_publish(tx, hub_, std::move(events));
      if (webhooks_)
        webhooks_->run_ended(
            tx, ended_view(run, RunStatus::error, now, std::string("executor lost"), last_seq),
            now);
      ++t.expired;
    }
    return t;
  });
  if (tick.expired > 0)
    log_.warn("finalized " + std::to_string(tick.expired) +
              " run(s) whose instance stopped renewing their lease as executor lost");
  co_return tick;
}

Task<void> RunExecutor::release(const std::string& owner) {
  co_await db_.write([&](WriteTx& tx) {
    if (tx.repos().leases) tx.repos().leases->release(owner);
  });
}

Task<std::vector<std::pair<std::string, std::string>>> RunExecutor::recover(bool cluster) {
  if (cluster) co_return std::vector<std::pair<std::string, std::string>>{};
  const auto now = clock_.now();
  const auto lost_runs = co_await db_.write([&](WriteTx& tx) {
    auto& r = tx.repos();
    std::size_t n = 0;
    for (const auto& run : r.runs.list_by_status(RunStatus::running)) {
      const std::string why = "executor lost";
      if (!r.runs.finish(run.id, RunStatus::error, now, why)) continue;
      auto events = terminal_events(run.id, run.last_seq, RunStatus::error, "", "", why, now);
      const auto last_seq = events.back().seq;
      append_and_publish(tx, hub_, std::move(events));
      if (webhooks_)
        webhooks_->run_ended(tx, ended_view(run, RunStatus::error, now, why, last_seq), now);
      ++n;
    }
    return n;
  });
  if (lost_runs > 0)
    log_.warn("finalized " + std::to_string(lost_runs) + " run(s) as executor lost");
  co_return co_await db_.read([](domain::Repositories& r) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& run : r.runs.list_by_status(RunStatus::queued))
      out.emplace_back(run.thread_id, run.id);
    return out;
  });
}

}  // namespace chat::app
