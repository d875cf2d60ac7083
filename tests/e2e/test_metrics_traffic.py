"""/metrics: `promtool check metrics` accepts the exposition, and the counters move with traffic
(requests by route template and status, latency histograms, streams, events appended and
delivered, runs by status, group commits, slow-subscriber disconnects)."""
import re
import shutil
import subprocess
import time
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} and {name: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = frozenset(LABEL_RE.findall(m.group(3) or ""))
        key = (m.group(1), labels)
        if key in samples:
            raise AssertionError("duplicate series: %r" % line)
        samples[key] = float(m.group(4))
    return samples, types


# The database adapter's own families (errors, group-commit batch sizes and latency) come from
# its DbStatsSource (src/infrastructure/db/db_stats.hpp): SQLite and PostgreSQL both report them.
DB_FAMILIES = [("chatbot_db_errors_total", "counter"),
               ("chatbot_db_commit_batch_size", "histogram"),
               ("chatbot_db_commit_duration_seconds", "histogram")]


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class MetricsTrafficTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "2", "--demo-tool-delay-ms", "2"]

    def scrape(self):
        r = self.req("GET", "/metrics")
        self.assertStatus(r, 200, "/metrics")
        self.assertEqual(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        return r.raw.decode("utf-8")

    def test_promtool_accepts_the_exposition(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool not found: `scripts/install-deps --test` installs it "
                                       "(Debian package prometheus)")
        # Traffic first, so that every family has samples, histograms included.
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], "lint me")
        self.server.events(p["run_id"])
        self.req("GET", "/api/runs/not-a-uuid")
        text = self.scrape()
        proc = subprocess.run([promtool, "check", "metrics"], input=text.encode("utf-8"),
                              capture_output=True, timeout=30)
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, "promtool check metrics failed:\n%s" % out)
        self.assertEqual(out.strip(), "", "promtool lint findings:\n%s" % out)

    def test_counters_move_with_traffic(self):
        before, types = parse_metrics(self.scrape())
        for name, typ in [("chatbot_http_requests_total", "counter"),
                          ("chatbot_http_request_duration_seconds", "histogram"),
                          ("chatbot_sse_streams_open", "gauge"),
                          ("chatbot_events_appended_total", "counter"),
                          ("chatbot_sse_events_delivered_total", "counter"),
                          ("chatbot_runs_finished_total", "counter"),
                          ("chatbot_runs", "gauge"),
                          ("chatbot_sse_slow_disconnects_total", "counter")] + DB_FAMILIES:
            self.assertEqual(types.get(name), typ, "%s should be a %s" % (name, typ))

        user = self.server.create_user()
        t = self.server.create_thread(user["user_id"])
        p = self.server.post_message(t["thread_id"], "count these words please")
        events = self.server.events(p["run_id"])
        self.server.wait_run(p["run_id"])
        self.req("GET", "/api/runs/%s" % p["run_id"])
        self.req("GET", "/api/threads/%s" % harness.uuid.uuid4())
        c = self.server.post_message(t["thread_id"], " ".join(["slow"] * 400))
        self.req("POST", "/api/runs/%s/cancel" % c["run_id"])
        self.server.wait_run(c["run_id"])

        # A request is counted once its response is written, a moment after the client has read
        # it: scrape again until the last one (wait_run's GET) shows.
        scrapes, deadline = 0, time.monotonic() + 5
        while True:
            after, _ = parse_metrics(self.scrape())
            scrapes += 1
            d = lambda name, **l: value(after, name, **l) - value(before, name, **l)
            if (d("chatbot_http_requests_total", method="GET", route="/api/runs/{run_id}", status="200") >= 3
                    or time.monotonic() > deadline):
                break
            time.sleep(0.05)
        self.assertEqual(d("chatbot_http_requests_total", method="POST", route="/api/users", status="201"), 1)
        self.assertEqual(d("chatbot_http_requests_total", method="POST", route="/api/threads", status="201"), 1)
        self.assertEqual(d("chatbot_http_requests_total", method="POST",
                           route="/api/threads/{thread_id}/messages", status="201"), 2)
        self.assertEqual(d("chatbot_http_requests_total", method="GET",
                           route="/api/runs/{run_id}/events", status="200"), 1)
        self.assertEqual(d("chatbot_http_requests_total", method="GET",
                           route="/api/threads/{thread_id}", status="404"), 1)
        self.assertGreaterEqual(d("chatbot_http_requests_total", method="GET", route="/api/runs/{run_id}",
                                  status="200"), 3)
        scraped = d("chatbot_http_requests_total", method="GET", route="/metrics", status="200")
        self.assertGreaterEqual(scraped, 1, "the scrape before is counted once the response is written")
        self.assertLessEqual(scraped, scrapes, "a scrape counts itself only after its response")
        # Latency histogram: one observation per request, buckets cumulative up to +Inf.
        count = value(after, "chatbot_http_request_duration_seconds_count", method="POST", route="/api/users")
        self.assertGreaterEqual(count, 1)
        self.assertEqual(value(after, "chatbot_http_request_duration_seconds_bucket", method="POST",
                               route="/api/users", le="+Inf"), count)
        self.assertGreater(value(after, "chatbot_http_request_duration_seconds_sum", method="POST",
                                 route="/api/users"), 0)

        self.assertGreaterEqual(d("chatbot_events_appended_total"), len(events) + 3,
                                "the run's events and the canceled run's terminal events")
        self.assertGreaterEqual(d("chatbot_sse_events_delivered_total"), len(events))
        self.assertEqual(d("chatbot_runs_finished_total", status="done"), 1)
        self.assertEqual(d("chatbot_runs_finished_total", status="canceled"), 1)
        self.assertEqual(d("chatbot_runs_finished_total", status="error"), 0)
        self.assertEqual(value(after, "chatbot_runs", status="running"), 0)
        self.assertEqual(value(after, "chatbot_sse_streams_open"), 0)
        if DB_FAMILIES:
            self.assertGreater(d("chatbot_db_commit_batch_size_count"), 0)
            self.assertEqual(d("chatbot_db_commit_batch_size_count"),
                             d("chatbot_db_commit_duration_seconds_count"))
            self.assertGreaterEqual(d("chatbot_db_commit_batch_size_sum"), d("chatbot_db_commit_batch_size_count"))
            self.assertEqual(value(after, "chatbot_db_errors_total"), 0)

    def test_open_streams_gauge(self):
        before, _ = parse_metrics(self.scrape())
        t = self.server.create_thread()
        # A stream held open on a queued-behind-nothing run that is still producing.
        p = self.server.post_message(t["thread_id"], " ".join(["w"] * 300))
        with self.server.sse("/api/runs/%s/events" % p["run_id"]) as s:
            self.assertEqual(s.status, 200)
            s.next_event(10)
            during, _ = parse_metrics(self.scrape())
            self.assertEqual(value(during, "chatbot_sse_streams_open"), 1)
        self.server.wait_run(p["run_id"])
        after, _ = parse_metrics(self.scrape())
        self.assertEqual(value(after, "chatbot_sse_streams_open"), 0)
        self.assertEqual(value(after, "chatbot_sse_streams_opened_total")
                         - value(before, "chatbot_sse_streams_opened_total"), 1)


class SlowSubscriberMetricsTest(support.ServerTestCase):
    """A subscriber queue of one event and no token delay: a commit batch that brings several
    events of the run at once overflows the subscriber, which is disconnected (and resumes with
    Last-Event-ID), and the disconnect is counted."""
    # The pretend tool step (1.5 s) lets the client subscribe before the tokens flood out: on a
    # loaded machine it could otherwise arrive after the run ended and only replay (no overflow).
    server_args = ["--demo-token-delay-ms", "0", "--demo-tool-delay-ms", "1500", "--subscriber-queue", "1"]

    def test_slow_subscriber_disconnects_are_counted(self):
        def slow_count():
            samples, _ = parse_metrics(self.req("GET", "/metrics").raw.decode("utf-8"))
            return value(samples, "chatbot_sse_slow_disconnects_total")

        before = slow_count()
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], " ".join(["z"] * 3000))
        cuts, got = 0, []
        path = "/api/runs/%s/events" % p["run_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            headers = {"Last-Event-ID": got[-1].id} if got else {}
            with self.server.sse(path, headers=headers, timeout=30) as s:
                if s.status == 204:
                    break
                self.assertEqual(s.status, 200)
                got += s.read_all(30)
            if got and got[-1].event == "done":
                break
            cuts += 1
        self.assertEqual([int(e.id) for e in got], list(range(1, len(got) + 1)), "resumed without loss")
        self.assertEqual(got[-1].event, "done")
        self.assertGreater(cuts, 0, "the stream was never cut: no overflow happened")
        # Counted when the server lets go of the subscription, right after the cut.
        deadline = time.monotonic() + 5
        while slow_count() - before < cuts and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(slow_count() - before, cuts)


if __name__ == "__main__":
    unittest.main()
