#!/usr/bin/env python3
"""Several instances on one PostgreSQL: cross-instance delivery latency and events/s, 1 vs 3.

    scripts/pg-test-cluster start /tmp/pg
    CHATBOT_BIN=build/release/chatbot scripts/pg-test-cluster exec /tmp/pg python3 bench/scaleout.py

Latency: runs execute on instance A (posted there, so A claims them) with the demo engine
stamping every token with the time it was appended (--demo-token-timestamps); one stream per
run on A itself and one on B. A token's latency is its receipt on the stream minus its stamp:
append -> group commit -> (B: NOTIFY -> read of the new rows) -> SSE. The difference between B
and A is what crossing instances adds.

Events/s: RUNS runs at once, posted round-robin over the instances, demo engine without delay
(each run appends as fast as the event log takes it); events committed / wall time from the
first post to the last run's end. Every instance on the same machine and the same PostgreSQL.
"""
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import harness  # noqa: E402

TOKENS = int(os.environ.get("BENCH_TOKENS", "60"))
LAT_RUNS = int(os.environ.get("BENCH_LATENCY_RUNS", "20"))
RUNS = int(os.environ.get("BENCH_RUNS", "60"))
WORDS = int(os.environ.get("BENCH_WORDS", "200"))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def start(n, extra):
    url = harness.fresh_external_database()
    return [harness.Server(["--instances", "multi"] + extra, database_url=url).start()
            for _ in range(n)]


def stream_latencies(server, run_id, out):
    with server.sse("/api/runs/%s/events" % run_id, timeout=60) as s:
        while True:
            e = s.next_event(60)
            if e is None or e.event == "done":
                return
            if e.event == "token":
                now_us = time.time() * 1e6
                text = json.loads(e.data)["text"]
                if text.startswith("\u23f1"):
                    out.append((now_us - int(text[1:].split(" ")[0])) / 1000.0)


def latency():
    servers = start(3, ["--demo-token-timestamps", "--demo-token-delay-ms", "20"])
    try:
        a, b = servers[0], servers[1]
        same, cross = [], []
        threads = []
        for _ in range(LAT_RUNS):
            t = a.create_thread()["thread_id"]
            run = a.post_message(t, " ".join("w%d" % i for i in range(TOKENS)))["run_id"]
            for srv, out in ((a, same), (b, cross)):
                th = threading.Thread(target=stream_latencies, args=(srv, run, out), daemon=True)
                th.start()
                threads.append(th)
            time.sleep(0.05)
        for th in threads:
            th.join(120)
        return same, cross
    finally:
        for s in servers:
            s.stop()


def throughput(n):
    servers = start(n, ["--demo-token-delay-ms", "0", "--demo-tool-delay-ms", "0"])
    try:
        threads = [servers[i % n].create_thread()["thread_id"] for i in range(RUNS)]
        text = " ".join("w%d" % i for i in range(WORDS))
        t0 = time.monotonic()
        runs = [servers[i % n].post_message(t, text)["run_id"] for i, t in enumerate(threads)]
        events = 0
        for i, r in enumerate(runs):
            events += servers[(i + 1) % n].wait_run(r, timeout=300, interval=0.05)["last_seq"]
        return events / (time.monotonic() - t0), events
    finally:
        for s in servers:
            s.stop()


def main():
    same, cross = latency()
    print("delivery latency, append to SSE receipt, %d tokens per stream kind:" % len(cross))
    print("  same instance  p50 %.2f ms  p99 %.2f ms" % (pct(same, 50), pct(same, 99)))
    print("  other instance p50 %.2f ms  p99 %.2f ms" % (pct(cross, 50), pct(cross, 99)))
    print("  added by crossing instances: p50 %+.2f ms  p99 %+.2f ms"
          % (pct(cross, 50) - pct(same, 50), pct(cross, 99) - pct(same, 99)))
    for n in (1, 3):
        eps, events = throughput(n)
        print("events/s, %d instance(s), %d runs x ~%d events: %.0f (%d events)"
              % (n, RUNS, WORDS + 6, eps, events))
    print("cores: %d" % os.cpu_count())


if __name__ == "__main__":
    main()
