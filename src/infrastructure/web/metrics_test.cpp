// The Prometheus exposition: format details, histograms, and the counters of the core and the
// database moving with a real run.

#include "infrastructure/web/metrics.hpp"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "infrastructure/db/sqlite/sqlite_database.hpp"
#include "testkit/service_harness.hpp"

namespace chat::web {
namespace {

using testkit::DbKind;
using testkit::ServiceHarness;

/// Sample lines "name{labels} value" -> value; checks every line's syntax on the way.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  // Label values are quoted and may hold braces (route templates do).
  const std::regex sample(
      R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?) (\S+)$)re");
  const std::regex meta(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.rfind("#", 0) == 0) {
      EXPECT_TRUE(std::regex_match(line, meta)) << line;
      continue;
    }
    EXPECT_TRUE(std::regex_match(line, m, sample)) << line;
    if (m.size() == 3) {
      EXPECT_FALSE(out.count(m[1])) << "duplicate series " << m[1];
      out[m[1]] = m[2] == "+Inf" ? 1e300 : std::stod(m[2]);
    }
  }
  return out;
}

TEST(MetricsText, NumbersAndEscapes) {
  EXPECT_EQ(format_number(0), "0");
  EXPECT_EQ(format_number(12345678901), "12345678901");
  EXPECT_EQ(format_number(0.0025), "0.0025");
  EXPECT_EQ(format_number(1.0 / 0.0), "+Inf");
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(MetricsText, HistogramBucketsAreCumulativeWithInf) {
  MetricsWriter w;
  infra::Histogram h({1, 2, 4});
  for (double v : {0.5, 1.0, 1.5, 3.0, 9.0}) h.observe(v);
  w.family("x_seconds", "histogram", "help");
  w.histogram("x_seconds", {{"route", "/r"}}, h);
  EXPECT_EQ(w.text(),
            "# HELP x_seconds help\n# TYPE x_seconds histogram\n"
            "x_seconds_bucket{route=\"/r\",le=\"1\"} 2\n"
            "x_seconds_bucket{route=\"/r\",le=\"2\"} 3\n"
            "x_seconds_bucket{route=\"/r\",le=\"4\"} 4\n"
            "x_seconds_bucket{route=\"/r\",le=\"+Inf\"} 5\n"
            "x_seconds_sum{route=\"/r\"} 15\n"
            "x_seconds_count{route=\"/r\"} 5\n");
}

TEST(Metrics, RequestsByMethodRouteAndStatusWithLatency) {
  Metrics m;
  m.observe_request("GET", "/api/runs/{run_id}", 200, std::chrono::microseconds(300));
  m.observe_request("GET", "/api/runs/{run_id}", 200, std::chrono::milliseconds(30));
  m.observe_request("GET", "/api/runs/{run_id}", 404, std::chrono::milliseconds(1));
  m.stream_opened();
  m.stream_opened();
  m.stream_closed();
  m.add_delivered(7);
  auto s = samples(m.render());
  EXPECT_EQ(
      (s[R"(chatbot_http_requests_total{method="GET",route="/api/runs/{run_id}",status="200"})"]),
      2);
  EXPECT_EQ(
      (s[R"(chatbot_http_requests_total{method="GET",route="/api/runs/{run_id}",status="404"})"]),
      1);
  EXPECT_EQ(
      (s[R"(chatbot_http_request_duration_seconds_bucket{method="GET",route="/api/runs/{run_id}",le="0.0005"})"]),
      1);
  EXPECT_EQ(
      (s[R"(chatbot_http_request_duration_seconds_bucket{method="GET",route="/api/runs/{run_id}",le="0.05"})"]),
      3);
  EXPECT_EQ(
      (s[R"(chatbot_http_request_duration_seconds_count{method="GET",route="/api/runs/{run_id}"})"]),
      3);
  EXPECT_EQ(s["chatbot_sse_streams_open"], 1);
  EXPECT_EQ(s["chatbot_sse_streams_opened_total"], 2);
  EXPECT_EQ(s["chatbot_sse_events_delivered_total"], 7);
}

TEST(Metrics, CoreAndDatabaseCountersMoveWithARun) {
  ServiceHarness h({.db = DbKind::sqlite_file});
  Metrics m;
  add_core_collectors(m, h.hub(), h.scheduler());
  auto* sqlite = dynamic_cast<infra::sqlite::SqliteDatabase*>(&h.db());
  ASSERT_NE(sqlite, nullptr);
  add_database_collector(m, *sqlite);

  auto before = samples(m.render());
  EXPECT_EQ(before["chatbot_events_appended_total"], 0);
  EXPECT_EQ((before[R"(chatbot_runs_finished_total{status="done"})"]), 0);

  auto t = h.make_thread();
  auto ok = h.post(t.id, "hello");
  ASSERT_TRUE(h.wait_terminal(ok.run_id));
  h.engine.fail = "boom";
  auto bad = h.post(t.id, "again");
  ASSERT_TRUE(h.wait_terminal(bad.run_id));
  // The hub counts once the batch's hooks ran, right after the terminal commit.
  ASSERT_TRUE(testkit::wait_until(
      [&] { return samples(m.render())[R"(chatbot_runs_finished_total{status="error"})"] == 1; }));

  auto after = samples(m.render());
  const auto stored = h.events(ok.run_id).size() + h.events(bad.run_id).size();
  EXPECT_EQ(after["chatbot_events_appended_total"], static_cast<double>(stored));
  EXPECT_EQ((after[R"(chatbot_runs_finished_total{status="done"})"]), 1);
  EXPECT_EQ((after[R"(chatbot_runs_finished_total{status="error"})"]), 1);
  EXPECT_EQ((after[R"(chatbot_runs_finished_total{status="canceled"})"]), 0);
  EXPECT_EQ((after[R"(chatbot_runs{status="running"})"]), 0);
  EXPECT_EQ((after[R"(chatbot_runs{status="queued"})"]), 0);
  EXPECT_GT(after["chatbot_db_commit_batch_size_count"], 0);
  EXPECT_EQ(after["chatbot_db_commit_batch_size_count"],
            after["chatbot_db_commit_duration_seconds_count"]);
  EXPECT_EQ((after[R"(chatbot_db_commit_batch_size_bucket{le="+Inf"})"]),
            after["chatbot_db_commit_batch_size_count"]);
  // Write jobs add up: at least one per event-append call.
  EXPECT_GE(after["chatbot_db_commit_batch_size_sum"], after["chatbot_db_commit_batch_size_count"]);
  EXPECT_EQ(after["chatbot_db_errors_total"], 0);
}

}  // namespace
}  // namespace chat::web
