// chatbot_loadgen: the project's own load generator for the Chatbot SSE API.
//
// One scenario per invocation; it prints one JSON line with its figures on stdout (the driver,
// scripts/bench.py, reads it) and a readable summary on stderr. Single-threaded Asio
// coroutines over raw TCP, with its own minimal HTTP/1.1 and SSE parsing. It measures its
// own CPU time and the server's (from /proc/<pid>/stat, --server-pid) over each measured
// window, so a run says whether the generator could have been the bottleneck.
//
//   chatbot_loadgen SCENARIO --url http://127.0.0.1:PORT [--server-pid PID]... [options]
//
// Scenarios (options with defaults):
//   latency    --runs 100 --subs 2 --words 100 --conns 16 [--receipts FILE]
//              delivery latency engine append -> client receipt, from the token timestamps
//              of `chatbot --demo-token-timestamps` (tokens without one go to FILE as
//              "run_id seq receipt_us connected_us" lines, for a server without that option)
//   persist    --runs 200 --words 2000 --conns 16 --poll-ms 10 [--done-not-stored]
//              events persisted/s: sum of last_seq / (first post .. last run seen ended)
//   fanout     --subs 1000 --words 2000 --blocker-words 20
//              events delivered/s to SUBS streams of one run, subscribed while it is queued
//   ttft       --iterations 200 --concurrency 1 --words 5
//              post -> first token frame at the client
//   idle-setup --runs 100                    prints the ids of RUNS runs queued behind one
//   idle-hold  --runs-file F --streams N [--source IP]... [--connect-concurrency 256]
//              holds N streams; prints "READY {...}" once connected, then a JSON line after
//              a line (or EOF) on stdin, or after --hold-s
//   smoke      --seconds 2                   post, stream to the end, repeat; exit 1 if no events
//
// Common: --timeout-s 300 (then partial figures, "timed_out": true), --source IP (bind
// streams to these local addresses, round robin), --no-keepalive (a fresh connection per
// request: for servers that handle one connection's requests one at a time, e.g. FastAPI
// background tasks hold the connection until they end).

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "api.hpp"
#include "net.hpp"
#include "util.hpp"

namespace lg {
namespace {

using asio::awaitable;
using asio::use_awaitable;

struct Ctx {
  Target target;
  std::vector<pid_t> server_pids;
  std::vector<asio::ip::address> sources;
  std::size_t rr = 0;

  std::optional<asio::ip::address> source() {
    if (sources.empty()) return std::nullopt;
    return sources[rr++ % sources.size()];
  }
  double server_cpu() const {
    double s = 0;
    for (pid_t p : server_pids) {
      const double v = proc_cpu_s(p);
      if (v > 0) s += v;
    }
    return s;
  }
  double server_run_delay() const {
    double s = 0;
    for (pid_t p : server_pids) s += proc_run_delay_s(p);
    return s;
  }
};

asio::awaitable<StreamEnd> open_and_read(Ctx& c, std::string target, std::int64_t last_id,
                                         StreamHandler& h) {
  StreamEnd end;
  try {
    auto sock = co_await connect_to(c.target.endpoint, c.source());
    end = co_await read_stream(sock, c.target, target, last_id, h);
    boost::system::error_code ec;
    sock.close(ec);
  } catch (const std::exception& e) {
    end.error = e.what();
  }
  co_return end;
}

std::string events_path(const std::string& run_id) { return "/api/runs/" + run_id + "/events"; }

class Scenario {
 public:
  Scenario(Ctx& c, const Options& o) : c_(c), o_(o) {}
  virtual ~Scenario() = default;
  virtual awaitable<void> run() = 0;
  /// Called once the run finished or timed out: the figures so far.
  virtual void report(JsonOut& j) = 0;
  /// Exit status of the process (after report).
  virtual int status() const { return 0; }

 protected:
  void window_start() {
    lg0_ = self_cpu_s();
    sv0_ = c_.server_cpu();
    rd0_ = c_.server_run_delay();
    w0_ = mono_us();
  }
  void window_end() {
    if (w1_) return;
    lg1_ = self_cpu_s();
    sv1_ = c_.server_cpu();
    rd1_ = c_.server_run_delay();
    w1_ = mono_us();
  }
  double window_s() const { return w1_ > w0_ ? static_cast<double>(w1_ - w0_) / 1e6 : 0; }
  void add_cpu(JsonOut& j) {
    window_end();
    const double lg = lg1_ - lg0_, sv = sv1_ - sv0_;
    j.add("loadgen_cpu_s", lg).add("server_cpu_s", sv);
    if (!c_.server_pids.empty()) j.add("server_cpu_wait_s", rd1_ - rd0_);
    if (!c_.server_pids.empty() && sv > 0) j.add("loadgen_cpu_per_server_cpu", lg / sv);
  }
  static void add_latency(JsonOut& j, const std::string& prefix, std::vector<std::int64_t>& v) {
    std::sort(v.begin(), v.end());
    j.add(prefix + "samples", v.size())
        .add(prefix + "p50_us", percentile(v, 50))
        .add(prefix + "p90_us", percentile(v, 90))
        .add(prefix + "p99_us", percentile(v, 99))
        .add(prefix + "max_us", v.empty() ? std::int64_t{0} : v.back());
  }

  Ctx& c_;
  const Options& o_;

 private:
  double lg0_ = 0, sv0_ = 0, lg1_ = 0, sv1_ = 0, rd0_ = 0, rd1_ = 0;
  std::int64_t w0_ = 0, w1_ = 0;
};

// Creates a user and `n` threads; returns the thread ids (empty where creation failed).
awaitable<std::vector<std::string>> make_threads(Ctx& c, std::size_t n, std::size_t conns,
                                                 std::int64_t* user_out = nullptr) {
  HttpClient admin(co_await asio::this_coro::executor, c.target);
  const std::int64_t uid = co_await create_user(admin, unique_name("bench"));
  if (user_out) *user_out = uid;
  std::vector<std::string> threads(n);
  co_await parallel_for(c.target, n, conns,
                        [&](HttpClient& cl, std::size_t i) -> awaitable<void> {
                          threads[i] = co_await create_thread(cl, uid);
                        });
  co_return threads;
}

constexpr std::string_view kStopwatch = "\xE2\x8F\xB1";  // ⏱

// Counts event frames (and, optionally, stops at `done`).
struct CountStream final : StreamHandler {
  std::uint64_t frames = 0, done_frames = 0, timestamped = 0;
  int status = 0;
  bool done = false;
  void on_head(int s, std::int64_t) override { status = s; }
  bool on_frame(const SseFrame& f, std::int64_t) override {
    if (f.event.empty()) return true;
    ++frames;
    if (f.event == "token" && f.data.find(kStopwatch) != std::string_view::npos) ++timestamped;
    if (f.event == "done") {
      ++done_frames;
      done = true;
      return false;
    }
    return true;
  }
};

// ------------------------------------------------------------------------------ latency

struct LatencyStream final : StreamHandler {
  std::vector<std::int64_t>* samples = nullptr;
  std::FILE* receipts = nullptr;
  std::string run_id;
  std::int64_t connected_us = 0;
  std::uint64_t frames = 0, replayed = 0, untimed = 0;
  bool done = false;

  void on_head(int status, std::int64_t now) override {
    if (status == 200) connected_us = now;
  }
  bool on_frame(const SseFrame& f, std::int64_t recv) override {
    if (f.event.empty()) return true;
    ++frames;
    if (f.event == "token") {
      const auto p = f.data.find(kStopwatch);
      if (p != std::string_view::npos) {
        std::int64_t ts = 0;
        for (std::size_t i = p + kStopwatch.size(); i < f.data.size(); ++i) {
          const char ch = f.data[i];
          if (ch < '0' || ch > '9') break;
          ts = ts * 10 + (ch - '0');
        }
        if (ts >= connected_us)
          samples->push_back(recv - ts);
        else
          ++replayed;  // appended before this client subscribed: not a delivery latency
      } else {
        ++untimed;
        if (receipts)
          std::fprintf(receipts, "%s %lld %lld %lld\n", run_id.c_str(),
                       static_cast<long long>(f.id), static_cast<long long>(recv),
                       static_cast<long long>(connected_us));
      }
    }
    if (f.event == "done") {
      done = true;
      return false;
    }
    return true;
  }
};

class LatencyScenario final : public Scenario {
 public:
  using Scenario::Scenario;
  awaitable<void> run() override {
    auto ex = co_await asio::this_coro::executor;
    const auto runs = static_cast<std::size_t>(o_.num("runs", 100));
    const auto subs = static_cast<std::size_t>(o_.num("subs", 2));
    const auto conns = static_cast<std::size_t>(o_.num("conns", 16));
    const std::string content = make_content(static_cast<std::size_t>(o_.num("words", 100)));
    if (o_.has("receipts")) receipts_ = std::fopen(o_.str("receipts").c_str(), "w");
    auto threads = co_await make_threads(c_, runs, conns);
    Latch streams(ex, 0);
    window_start();
    co_await parallel_for(
        c_.target, runs, conns, [&](HttpClient& cl, std::size_t i) -> awaitable<void> {
          if (threads[i].empty()) co_return;
          const std::string run_id = co_await post_message(cl, threads[i], content);
          ++posted_;
          for (std::size_t s = 0; s < subs; ++s) {
            auto h = std::make_unique<LatencyStream>();
            h->samples = &samples_;
            h->receipts = receipts_;
            h->run_id = run_id;
            LatencyStream* hp = h.get();
            handlers_.push_back(std::move(h));
            streams.add();
            asio::co_spawn(
                ex,
                [this, hp, run_id, &streams]() -> awaitable<void> {
                  auto end = co_await open_and_read(c_, events_path(run_id), -1, *hp);
                  if (!hp->done) note_error("stream of run " + run_id + " ended early: " + end.error);
                  streams.count_down();
                },
                asio::detached);
          }
        });
    co_await streams.wait();
    window_end();
  }
  void report(JsonOut& j) override {
    std::uint64_t frames = 0, replayed = 0, untimed = 0, done = 0;
    for (auto& h : handlers_) {
      frames += h->frames;
      replayed += h->replayed;
      untimed += h->untimed;
      done += h->done;
    }
    if (receipts_) std::fclose(receipts_);
    j.add("runs_posted", posted_).add("streams", handlers_.size()).add("streams_done", done);
    j.add("events_received", frames).add("tokens_replayed_skipped", replayed)
        .add("tokens_untimed", untimed);
    add_latency(j, "", samples_);
    j.add("wall_s", window_s());
    add_cpu(j);
    std::fprintf(stderr,
                 "latency: %zu streams, %llu events, append->receipt p50 %lld us p99 %lld us "
                 "max %lld us (%zu samples)\n",
                 handlers_.size(), static_cast<unsigned long long>(frames),
                 static_cast<long long>(percentile(samples_, 50)),
                 static_cast<long long>(percentile(samples_, 99)),
                 static_cast<long long>(samples_.empty() ? 0 : samples_.back()), samples_.size());
  }

 private:
  std::vector<std::unique_ptr<LatencyStream>> handlers_;
  std::vector<std::int64_t> samples_;
  std::FILE* receipts_ = nullptr;
  std::size_t posted_ = 0;
};

// ------------------------------------------------------------------------------ persist

class PersistScenario final : public Scenario {
 public:
  using Scenario::Scenario;
  awaitable<void> run() override {
    auto ex = co_await asio::this_coro::executor;
    const auto runs = static_cast<std::size_t>(o_.num("runs", 200));
    const auto words = static_cast<std::size_t>(o_.num("words", 2000));
    const auto conns = static_cast<std::size_t>(o_.num("conns", 16));
    const auto poll = std::chrono::milliseconds(o_.num("poll-ms", 10));
    const bool done_not_stored = o_.has("done-not-stored");
    auto threads = co_await make_threads(c_, runs, conns);
    std::vector<std::string> contents(runs);
    for (std::size_t i = 0; i < runs; ++i) contents[i] = make_content(words, i);
    run_ids_.assign(runs, {});
    info_.assign(runs, {});
    window_start();
    post_start_us_ = mono_us();
    co_await parallel_for(c_.target, runs, conns,
                          [&](HttpClient& cl, std::size_t i) -> awaitable<void> {
                            if (threads[i].empty()) co_return;
                            run_ids_[i] = co_await post_message(cl, threads[i], contents[i]);
                          });
    posted_us_ = mono_us();
    // Runs start in order and are alike: wait for each in turn, polling the oldest not ended.
    HttpClient w(ex, c_.target);
    for (std::size_t i = 0; i < runs;) {
      if (run_ids_[i].empty()) {
        ++i;
        continue;
      }
      RunInfo info;
      try {
        info = co_await get_run(w, run_ids_[i]);
      } catch (const std::exception& e) {
        note_error(e.what());
      }
      if (terminal(info.status)) {
        info_[i] = info;
        ++i;
        continue;
      }
      co_await sleep_for(poll);
    }
    window_end();
    // Servers that do not report last_seq: count the stored events by replaying each log.
    co_await parallel_for(
        c_.target, runs, conns, [&](HttpClient&, std::size_t i) -> awaitable<void> {
          if (run_ids_[i].empty() || info_[i].last_seq) co_return;
          CountStream h;
          co_await open_and_read(c_, events_path(run_ids_[i]), -1, h);
          info_[i].last_seq = static_cast<std::int64_t>(h.frames - (done_not_stored ? h.done_frames : 0));
          replayed_ = true;
        });
  }
  void report(JsonOut& j) override {
    std::int64_t events = 0;
    std::size_t posted = 0, done = 0, ended = 0;
    for (std::size_t i = 0; i < run_ids_.size(); ++i) {
      if (run_ids_[i].empty()) continue;
      ++posted;
      if (!info_[i].status.empty()) ++ended;
      if (info_[i].status == "done") ++done;
      if (info_[i].last_seq) events += *info_[i].last_seq;
    }
    const double wall = window_s();
    j.add("runs_posted", posted).add("runs_ended", ended).add("runs_done", done);
    j.add("events", events).add("wall_s", wall)
        .add("events_per_s", wall > 0 ? static_cast<double>(events) / wall : 0.0)
        .add("events_counted_by_replay", replayed_);
    if (posted_us_ > post_start_us_) {
      const double post_s = static_cast<double>(posted_us_ - post_start_us_) / 1e6;
      j.add("post_s", post_s).add("posts_per_s", static_cast<double>(posted) / post_s);
    }
    add_cpu(j);
    std::fprintf(stderr, "persist: %zu runs (%zu done), %lld events in %.3f s = %.0f events/s\n",
                 posted, done, static_cast<long long>(events), wall,
                 wall > 0 ? static_cast<double>(events) / wall : 0.0);
  }

 private:
  std::vector<std::string> run_ids_;
  std::vector<RunInfo> info_;
  std::int64_t post_start_us_ = 0, posted_us_ = 0;
  bool replayed_ = false;
};

// ------------------------------------------------------------------------------ fanout

struct FanoutStream final : StreamHandler {
  Latch* connected = nullptr;
  bool head = false, in_burst = false, done = false;
  int status = 0;
  std::int64_t first_token_us = 0, done_us = 0;
  std::uint64_t frames = 0, counted = 0;

  void on_head(int s, std::int64_t) override {
    status = s;
    if (!head) {
      head = true;
      connected->count_down();
    }
  }
  bool on_frame(const SseFrame& f, std::int64_t recv) override {
    if (f.event.empty()) return true;
    ++frames;
    if (!in_burst && f.event == "token") {
      in_burst = true;
      first_token_us = recv;
    }
    if (in_burst) ++counted;
    if (f.event == "done") {
      done = true;
      done_us = recv;
      return false;
    }
    return true;
  }
};

class FanoutScenario final : public Scenario {
 public:
  using Scenario::Scenario;
  awaitable<void> run() override {
    auto ex = co_await asio::this_coro::executor;
    const auto subs = static_cast<std::size_t>(o_.num("subs", 1000));
    const auto words = static_cast<std::size_t>(o_.num("words", 2000));
    const auto blocker_words = static_cast<std::size_t>(o_.num("blocker-words", 20));
    HttpClient admin(ex, c_.target);
    const std::int64_t uid = co_await create_user(admin, unique_name("fanout"));
    const std::string thread = co_await create_thread(admin, uid);
    const std::string blocker = co_await post_message(admin, thread, make_content(blocker_words));
    const std::string run = co_await post_message(admin, thread, make_content(words));
    Latch connected(ex, subs);
    Latch finished(ex, subs);
    for (std::size_t s = 0; s < subs; ++s) {
      handlers_.push_back(std::make_unique<FanoutStream>());
      FanoutStream* hp = handlers_.back().get();
      hp->connected = &connected;
      asio::co_spawn(
          ex,
          [this, hp, run, &connected, &finished]() -> awaitable<void> {
            auto end = co_await open_and_read(c_, events_path(run), -1, *hp);
            if (!hp->head) {
              hp->head = true;
              connected.count_down();
            }
            if (!hp->done) note_error("fanout stream ended before done: " + end.error);
            finished.count_down();
          },
          asio::detached);
    }
    co_await connected.wait();
    connected_ = true;
    window_start();
    co_await cancel_run(admin, blocker);
    co_await finished.wait();
    window_end();
  }
  void report(JsonOut& j) override {
    std::int64_t first = 0, last = 0;
    std::uint64_t counted = 0, frames = 0, done = 0, ok = 0;
    for (auto& h : handlers_) {
      if (h->status == 200) ++ok;
      frames += h->frames;
      counted += h->counted;
      if (h->in_burst && (first == 0 || h->first_token_us < first)) first = h->first_token_us;
      if (h->done) {
        ++done;
        last = std::max(last, h->done_us);
      }
    }
    const double burst_s = last > first && first > 0 ? static_cast<double>(last - first) / 1e6 : 0;
    j.add("subscribers", handlers_.size()).add("subscribed_200", ok).add("all_connected_before_start", connected_)
        .add("streams_done", done).add("events_received", frames)
        .add("events_in_burst", counted).add("burst_s", burst_s)
        .add("events_per_s", burst_s > 0 ? static_cast<double>(counted) / burst_s : 0.0)
        .add("events_per_run", handlers_.empty() ? 0.0 : static_cast<double>(frames) / static_cast<double>(handlers_.size()));
    add_cpu(j);
    std::fprintf(stderr,
                 "fanout: %zu subscribers (%llu done), %llu events from the first token to the "
                 "last done in %.3f s = %.0f events/s\n",
                 handlers_.size(), static_cast<unsigned long long>(done),
                 static_cast<unsigned long long>(counted), burst_s,
                 burst_s > 0 ? static_cast<double>(counted) / burst_s : 0.0);
  }

 private:
  std::vector<std::unique_ptr<FanoutStream>> handlers_;
  bool connected_ = false;
};

// ------------------------------------------------------------------------------ ttft

struct FirstToken final : StreamHandler {
  std::int64_t recv_us = 0;
  bool got = false;
  void on_head(int, std::int64_t) override {}
  bool on_frame(const SseFrame& f, std::int64_t recv) override {
    if (f.event == "token") {
      got = true;
      recv_us = recv;
      return false;
    }
    return f.event != "done";
  }
};

class TtftScenario final : public Scenario {
 public:
  using Scenario::Scenario;
  awaitable<void> run() override {
    const auto n = static_cast<std::size_t>(o_.num("iterations", 200));
    const auto conc = static_cast<std::size_t>(o_.num("concurrency", 1));
    const std::string content = make_content(static_cast<std::size_t>(o_.num("words", 5)));
    auto threads = co_await make_threads(c_, n, 8);
    window_start();
    co_await parallel_for(c_.target, n, conc,
                          [&](HttpClient& cl, std::size_t i) -> awaitable<void> {
                            if (threads[i].empty()) co_return;
                            const std::int64_t t0 = realtime_us();
                            const std::string run = co_await post_message(cl, threads[i], content);
                            const std::int64_t t1 = realtime_us();
                            FirstToken h;
                            co_await open_and_read(c_, events_path(run), -1, h);
                            if (!h.got) {
                              note_error("no token on run " + run);
                              co_return;
                            }
                            post_.push_back(t1 - t0);
                            first_.push_back(h.recv_us - t0);
                          });
    window_end();
  }
  void report(JsonOut& j) override {
    add_latency(j, "", first_);
    add_latency(j, "post_", post_);
    j.add("wall_s", window_s());
    add_cpu(j);
    std::fprintf(stderr, "ttft: %zu runs, post->first token p50 %lld us p99 %lld us\n",
                 first_.size(), static_cast<long long>(percentile(first_, 50)),
                 static_cast<long long>(percentile(first_, 99)));
  }

 private:
  std::vector<std::int64_t> first_, post_;
};

// ------------------------------------------------------------------------------ idle

class IdleSetupScenario final : public Scenario {
 public:
  using Scenario::Scenario;
  awaitable<void> run() override {
    const auto runs = static_cast<std::size_t>(o_.num("runs", 100));
    HttpClient admin(co_await asio::this_coro::executor, c_.target);
    const std::int64_t uid = co_await create_user(admin, unique_name("idle"));
    const std::string thread = co_await create_thread(admin, uid);
    blocker_ = co_await post_message(admin, thread, make_content(3));
    for (std::size_t i = 0; i < runs; ++i)
      ids_.push_back(co_await post_message(admin, thread, make_content(3)));
  }
  void report(JsonOut& j) override {
    for (const auto& id : ids_) std::cout << id << "\n";
    j.add("blocker", blocker_).add("queued_runs", ids_.size());
  }

 private:
  std::string blocker_;
  std::vector<std::string> ids_;
};

struct IdleStream final : StreamHandler {
  Latch* head_latch = nullptr;
  const bool* counting = nullptr;
  int status = 0;
  bool head = false, ended = false;
  std::uint64_t pings = 0, events = 0;
  void on_head(int s, std::int64_t) override {
    status = s;
    signal_head();
  }
  void signal_head() {
    if (head) return;
    head = true;
    if (head_latch) head_latch->count_down();
    head_latch = nullptr;
  }
  bool on_frame(const SseFrame& f, std::int64_t) override {
    if (!f.event.empty()) {
      ++events;
    } else if (f.comment == "ping" && *counting) {
      ++pings;
    }
    return true;
  }
};

class IdleHoldScenario final : public Scenario {
 public:
  using Scenario::Scenario;
  awaitable<void> run() override {
    auto ex = co_await asio::this_coro::executor;
    std::vector<std::string> runs;
    {
      std::ifstream f(o_.str("runs-file"));
      std::string line;
      while (std::getline(f, line))
        if (!line.empty()) runs.push_back(line);
    }
    if (runs.empty()) throw std::runtime_error("idle-hold: no run ids (--runs-file)");
    const auto n = static_cast<std::size_t>(o_.num("streams", 1000));
    const auto conc = static_cast<std::size_t>(o_.num("connect-concurrency", 256));
    handlers_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      handlers_.push_back(std::make_unique<IdleStream>());
      handlers_.back()->counting = &counting_;
    }
    const std::int64_t t0 = mono_us();
    std::size_t next = 0;
    Latch workers(ex, std::min(conc, n));
    for (std::size_t w = 0; w < std::min(conc, n); ++w) {
      asio::co_spawn(
          ex,
          [&, ex]() -> awaitable<void> {
            while (next < n) {
              const std::size_t i = next++;
              IdleStream* hp = handlers_[i].get();
              Latch head(ex, 1);
              hp->head_latch = &head;
              const std::string path = events_path(runs[i % runs.size()]);
              asio::co_spawn(
                  ex,
                  [this, hp, path]() -> awaitable<void> {
                    co_await open_and_read(c_, path, -1, *hp);
                    hp->signal_head();
                    hp->ended = true;
                  },
                  asio::detached);
              co_await head.wait();
            }
            workers.count_down();
          },
          asio::detached);
    }
    co_await workers.wait();
    connect_s_ = static_cast<double>(mono_us() - t0) / 1e6;
    std::size_t ok = 0;
    for (auto& h : handlers_) ok += h->status == 200 && !h->ended;
    JsonOut ready;
    ready.add("connected", ok).add("failed", n - ok).add("connect_s", connect_s_);
    std::cout << "READY " << ready.str() << std::endl;
    std::fprintf(stderr, "idle-hold: %zu of %zu streams open after %.2f s\n", ok, n, connect_s_);
    counting_ = true;
    window_start();
    // Hold until told (a line or EOF on stdin) or --hold-s.
    stop_ = std::make_unique<asio::steady_timer>(ex, std::chrono::steady_clock::time_point::max());
    if (o_.has("hold-s"))
      stop_->expires_after(std::chrono::milliseconds(static_cast<long long>(o_.real("hold-s", 10) * 1000)));
    else
      std::thread([this, ex] {
        std::string line;
        std::getline(std::cin, line);
        asio::post(ex, [this] { stop_->cancel(); });
      }).detach();
    boost::system::error_code ec;
    co_await stop_->async_wait(asio::redirect_error(use_awaitable, ec));
    window_end();
  }
  void report(JsonOut& j) override {
    std::size_t held = 0, dropped = 0, opened = 0;
    std::uint64_t pings = 0, min_pings = ~0ull, events = 0;
    for (auto& h : handlers_) {
      if (h->status == 200) ++opened;
      events += h->events;
      if (h->status == 200 && !h->ended) {
        ++held;
        pings += h->pings;
        min_pings = std::min(min_pings, h->pings);
      } else if (h->status == 200) {
        ++dropped;
      }
    }
    if (held == 0) min_pings = 0;
    j.add("streams", handlers_.size()).add("opened", opened).add("held", held)
        .add("dropped", dropped).add("connect_s", connect_s_).add("hold_s", window_s())
        .add("pings", pings).add("min_pings_per_stream", min_pings).add("events", events);
    add_cpu(j);
  }

 private:
  std::vector<std::unique_ptr<IdleStream>> handlers_;
  bool counting_ = false;
  double connect_s_ = 0;
  std::unique_ptr<asio::steady_timer> stop_;
};

// ------------------------------------------------------------------------------ smoke

class SmokeScenario final : public Scenario {
 public:
  using Scenario::Scenario;
  awaitable<void> run() override {
    const double seconds = o_.real("seconds", 2);
    HttpClient admin(co_await asio::this_coro::executor, c_.target);
    const std::int64_t uid = co_await create_user(admin, unique_name("smoke"));
    window_start();
    const std::int64_t t0 = mono_us();
    while (static_cast<double>(mono_us() - t0) / 1e6 < seconds) {
      const std::string thread = co_await create_thread(admin, uid);
      const std::string run = co_await post_message(admin, thread, make_content(20, runs_));
      CountStream h;
      co_await open_and_read(c_, events_path(run), -1, h);
      events_ += h.frames;
      timestamped_ += h.timestamped;
      runs_ += h.done;
    }
    window_end();
  }
  void report(JsonOut& j) override {
    j.add("runs", runs_).add("events", events_).add("timestamped_tokens", timestamped_)
        .add("wall_s", window_s());
    add_cpu(j);
    std::fprintf(stderr, "smoke: %zu runs streamed to the end, %llu events\n", runs_,
                 static_cast<unsigned long long>(events_));
  }
  int status() const override { return events_ > 0 && runs_ > 0 ? 0 : 1; }

 private:
  std::size_t runs_ = 0;
  std::uint64_t events_ = 0, timestamped_ = 0;
};

std::unique_ptr<Scenario> make_scenario(const std::string& name, Ctx& c, const Options& o) {
  if (name == "latency") return std::make_unique<LatencyScenario>(c, o);
  if (name == "persist") return std::make_unique<PersistScenario>(c, o);
  if (name == "fanout") return std::make_unique<FanoutScenario>(c, o);
  if (name == "ttft") return std::make_unique<TtftScenario>(c, o);
  if (name == "idle-setup") return std::make_unique<IdleSetupScenario>(c, o);
  if (name == "idle-hold") return std::make_unique<IdleHoldScenario>(c, o);
  if (name == "smoke") return std::make_unique<SmokeScenario>(c, o);
  return nullptr;
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: chatbot_loadgen latency|persist|fanout|ttft|idle-setup|idle-hold|smoke "
               "--url http://IP:PORT [--server-pid PID]... [--source IP]... [options]\n"
               "(see the top of bench/loadgen/main.cpp, or bench/README.md)\n");
  return 2;
}

int run_main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string name = argv[1];
  if (name == "-h" || name == "--help") {
    usage();
    return 0;
  }
  Options o(argc, argv, 2);
  Ctx c;
  c.target = parse_url(o.str("url", "http://127.0.0.1:8000"));
  for (const auto& p : o.all("server-pid")) c.server_pids.push_back(static_cast<pid_t>(std::stol(p)));
  for (const auto& s : o.all("source")) c.sources.push_back(asio::ip::make_address(s));
  if (o.has("no-keepalive")) HttpClient::keep_alive = false;
  auto scn = make_scenario(name, c, o);
  if (!scn) return usage();
  raise_fd_limit();

  asio::io_context io(1);
  bool finished = false, timed_out = false;
  std::string failure;
  asio::co_spawn(io, scn->run(), [&](std::exception_ptr e) {
    finished = true;
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        failure = ex.what();
      }
    }
    io.stop();
  });
  asio::steady_timer deadline(io, std::chrono::milliseconds(
                                       static_cast<long long>(o.real("timeout-s", 300) * 1000)));
  deadline.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    timed_out = !finished;
    io.stop();
  });
  io.run();

  JsonOut j;
  j.add("scenario", name).add("url", o.str("url", "http://127.0.0.1:8000"));
  scn->report(j);
  j.add("timed_out", timed_out).add("errors", static_cast<std::int64_t>(error_count()));
  if (!failure.empty()) j.add("failure", failure);
  std::cout << j.str() << std::endl;
  if (!failure.empty()) std::fprintf(stderr, "loadgen %s failed: %s\n", name.c_str(), failure.c_str());
  if (timed_out) std::fprintf(stderr, "loadgen %s: timed out\n", name.c_str());
  const int rc = !failure.empty() || timed_out ? 1 : scn->status();
  std::fflush(stdout);
  std::fflush(stderr);
  // Skip tearing down thousands of sockets and coroutine frames.
  std::_Exit(rc);
}

}  // namespace
}  // namespace lg

int main(int argc, char** argv) {
  try {
    return lg::run_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chatbot_loadgen: %s\n", e.what());
    return 2;
  }
}
