#pragma once
/// The service's metrics in the Prometheus text exposition format 0.0.4, for GET /metrics.
///
/// The HTTP server records every request here (method, route template, status, duration) and
/// the events it writes to SSE clients; collectors added at start-up report what other parts
/// own (the event hub, the scheduler, the database), read at scrape time.
///
/// Thread safety: every member may be called from any thread. Collectors are added before the
/// server starts and must stay valid while it runs.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "infrastructure/histogram.hpp"

namespace chat::app {
class EventHub;
class RunScheduler;
}  // namespace chat::app

namespace chat::infra {
class DbStatsSource;
}  // namespace chat::infra

namespace chat::web {

using Labels = std::vector<std::pair<std::string, std::string>>;

/// Writes metric families. Call `family` once per metric name, then its samples.
class MetricsWriter {
 public:
  /// `type`: counter, gauge or histogram.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  /// NAME_bucket{...,le=...} (cumulative), NAME_sum, NAME_count.
  void histogram(std::string_view name, const Labels& labels, const infra::Histogram& h);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

/// A label value or help text as the text format wants it escaped.
std::string escape_label_value(std::string_view v);
/// A number as the text format writes it (integers without exponent, +Inf, NaN).
std::string format_number(double v);

class Metrics {
 public:
  using Collector = std::function<void(MetricsWriter&)>;

  /// One finished request. `route` is a template (/api/runs/{run_id}) or a fixed word, so the
  /// label set stays bounded.
  void observe_request(std::string_view method, std::string_view route, unsigned status,
                       std::chrono::steady_clock::duration elapsed);
  void stream_opened() { streams_opened_.fetch_add(1, std::memory_order_relaxed); }
  void stream_closed() { streams_closed_.fetch_add(1, std::memory_order_relaxed); }
  void add_delivered(std::uint64_t n) { delivered_.fetch_add(n, std::memory_order_relaxed); }
  /// A stream cut because its subscriber overflowed. Counted here, where the client is actually
  /// disconnected: a queue that overflows while the stream is still replaying stored events
  /// can end normally, and is no disconnect.
  void slow_disconnect() { slow_disconnects_.fetch_add(1, std::memory_order_relaxed); }
  void connection_opened() { connections_opened_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() { connections_closed_.fetch_add(1, std::memory_order_relaxed); }
  /// Refused for being over the connection limit.
  void connection_refused() { connections_refused_.fetch_add(1, std::memory_order_relaxed); }
  enum class Deadline { idle, header, body };
  void connection_timed_out(Deadline d) {
    timed_out_[static_cast<int>(d)].fetch_add(1, std::memory_order_relaxed);
  }

  void add_collector(Collector c);

  /// The whole exposition, HTTP series first, then each collector's.
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, unsigned>, std::uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, infra::Histogram> latency_;
  std::vector<Collector> collectors_;
  std::atomic<std::uint64_t> streams_opened_{0};
  std::atomic<std::uint64_t> streams_closed_{0};
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> slow_disconnects_{0};
  std::atomic<std::uint64_t> connections_opened_{0};
  std::atomic<std::uint64_t> connections_closed_{0};
  std::atomic<std::uint64_t> connections_refused_{0};
  std::atomic<std::uint64_t> timed_out_[3]{};
};

/// Reports the event hub (events appended, runs ended by status, live subscribers) and the scheduler (queued and running runs of this process).
void add_core_collectors(Metrics& m, const app::EventHub& hub, const app::RunScheduler& scheduler);
/// Reports a database adapter's errors and group commits (batch sizes, commit latency).
void add_database_collector(Metrics& m, const infra::DbStatsSource& db);

}  // namespace chat::web
