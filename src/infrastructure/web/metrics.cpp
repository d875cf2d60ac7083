#include "metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "application/event_hub.hpp"
#include "application/run_scheduler.hpp"
#include "infrastructure/db/db_stats.hpp"

namespace chat::web {

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Counts stay exact up to 2^53; print them without an exponent.
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

namespace {

void append_labels(std::string& out, const Labels& labels) {
  if (labels.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  }
  out += '}';
}

}  // namespace

void MetricsWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  // HELP text escapes only backslash and line feed.
  for (char c : help) {
    if (c == '\\')
      out_ += "\\\\";
    else if (c == '\n')
      out_ += "\\n";
    else
      out_ += c;
  }
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void MetricsWriter::sample(std::string_view name, const Labels& labels, double value) {
  out_ += name;
  append_labels(out_, labels);
  out_ += ' ';
  out_ += format_number(value);
  out_ += '\n';
}

void MetricsWriter::histogram(std::string_view name, const Labels& labels,
                              const infra::Histogram& h) {
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  const auto& bounds = h.bounds();
  const auto& counts = h.counts();
  for (std::size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    Labels l = labels;
    l.emplace_back("le", i < bounds.size() ? format_number(bounds[i]) : "+Inf");
    sample(bucket, l, static_cast<double>(cumulative));
  }
  sample(std::string(name) + "_sum", labels, h.sum());
  sample(std::string(name) + "_count", labels, static_cast<double>(h.count()));
}

void Metrics::observe_request(std::string_view method, std::string_view route, unsigned status,
                              std::chrono::steady_clock::duration elapsed) {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  std::lock_guard lock(mu_);
  ++requests_[{std::string(method), std::string(route), status}];
  auto key = std::make_pair(std::string(method), std::string(route));
  auto it = latency_.find(key);
  if (it == latency_.end())
    it = latency_.emplace(std::move(key), infra::Histogram(infra::Histogram::latency_bounds()))
             .first;
  it->second.observe(seconds);
}

void Metrics::add_collector(Collector c) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(c));
}

std::string Metrics::render() const {
  MetricsWriter w;
  std::vector<Collector> collectors;
  {
    std::lock_guard lock(mu_);
    w.family("chatbot_http_requests_total", "counter",
             "HTTP requests answered, by method, route template and status.");
    for (const auto& [k, n] : requests_) {
      const auto& [method, route, status] = k;
      w.sample("chatbot_http_requests_total",
               {{"method", method}, {"route", route}, {"status", std::to_string(status)}},
               static_cast<double>(n));
    }
    w.family("chatbot_http_request_duration_seconds", "histogram",
             "Time from the request's head read to the response written (event streams: to the "
             "stream's start), by method and route template.");
    for (const auto& [k, h] : latency_)
      w.histogram("chatbot_http_request_duration_seconds",
                  {{"method", k.first}, {"route", k.second}}, h);
    collectors = collectors_;
  }
  const auto opened = streams_opened_.load(std::memory_order_relaxed);
  const auto closed = streams_closed_.load(std::memory_order_relaxed);
  w.family("chatbot_sse_streams_opened_total", "counter", "Event streams opened.");
  w.sample("chatbot_sse_streams_opened_total", {}, static_cast<double>(opened));
  w.family("chatbot_sse_streams_open", "gauge", "Event streams open now.");
  w.sample("chatbot_sse_streams_open", {}, static_cast<double>(opened - std::min(opened, closed)));
  w.family("chatbot_sse_events_delivered_total", "counter",
           "Run events written to event-stream clients (replayed and live).");
  w.sample("chatbot_sse_events_delivered_total", {},
           static_cast<double>(delivered_.load(std::memory_order_relaxed)));
  w.family("chatbot_sse_slow_disconnects_total", "counter",
           "Event-stream clients disconnected because they read too slowly (they resume with "
           "Last-Event-ID).");
  w.sample("chatbot_sse_slow_disconnects_total", {},
           static_cast<double>(slow_disconnects_.load(std::memory_order_relaxed)));
  const auto conn_opened = connections_opened_.load(std::memory_order_relaxed);
  const auto conn_closed = connections_closed_.load(std::memory_order_relaxed);
  w.family("chatbot_http_connections_open", "gauge", "HTTP connections open now.");
  w.sample("chatbot_http_connections_open", {},
           static_cast<double>(conn_opened - std::min(conn_opened, conn_closed)));
  w.family("chatbot_http_connections_refused_total", "counter",
           "Connections refused (503, then closed) because the connection limit was reached.");
  w.sample("chatbot_http_connections_refused_total", {},
           static_cast<double>(connections_refused_.load(std::memory_order_relaxed)));
  w.family("chatbot_http_connections_timed_out_total", "counter",
           "Connections closed at a read deadline: idle (no request began), header (the head "
           "did not complete), body (the body did not complete).");
  const char* phases[] = {"idle", "header", "body"};
  for (int i = 0; i < 3; ++i)
    w.sample("chatbot_http_connections_timed_out_total", {{"deadline", phases[i]}},
             static_cast<double>(timed_out_[i].load(std::memory_order_relaxed)));
  for (const auto& c : collectors) c(w);
  return w.text();
}

void add_core_collectors(Metrics& m, const app::EventHub& hub, const app::RunScheduler& scheduler) {
  m.add_collector([&hub, &scheduler](MetricsWriter& w) {
    w.family("chatbot_events_appended_total", "counter",
             "Run events appended to the durable log (counted once committed).");
    w.sample("chatbot_events_appended_total", {}, static_cast<double>(hub.published_count()));
    w.family("chatbot_runs_finished_total", "counter",
             "Runs that ended since start, by final status.");
    for (auto s : {domain::RunStatus::done, domain::RunStatus::error, domain::RunStatus::canceled})
      w.sample("chatbot_runs_finished_total", {{"status", std::string(domain::to_string(s))}},
               static_cast<double>(hub.ended_count(s)));
    w.family("chatbot_runs", "gauge", "Runs of this process now queued or running, by status.");
    w.sample("chatbot_runs", {{"status", "queued"}}, static_cast<double>(scheduler.queued()));
    w.sample("chatbot_runs", {{"status", "running"}}, static_cast<double>(scheduler.running()));
    w.family("chatbot_event_subscribers", "gauge", "Live subscriptions to run events.");
    w.sample("chatbot_event_subscribers", {}, static_cast<double>(hub.subscriber_count()));
  });
}

void add_database_collector(Metrics& m, const infra::DbStatsSource& db) {
  m.add_collector([&db](MetricsWriter& w) {
    const infra::DbStats s = db.db_stats();
    w.family("chatbot_db_errors_total", "counter",
             "Database failures: failed transactions and failed read jobs.");
    w.sample("chatbot_db_errors_total", {}, static_cast<double>(s.errors));
    w.family("chatbot_db_commit_batch_size", "histogram",
             "Write jobs per group-committed transaction.");
    w.histogram("chatbot_db_commit_batch_size", {}, s.batch_size);
    w.family("chatbot_db_commit_duration_seconds", "histogram",
             "Group-commit transactions, BEGIN to COMMIT returned.");
    w.histogram("chatbot_db_commit_duration_seconds", {}, s.commit_seconds);
  });
}

}  // namespace chat::web
