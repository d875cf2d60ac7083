#!/usr/bin/env python3
"""What the service adds per chunk (issue 5, "Measure it").

The fake upstream streams N chunks as fast as it can, each stamped with its send time
(CLOCK_MONOTONIC µs, the clock of Python's time.monotonic()). In one run:
  1. direct:  a client reads the stream from the fake itself;
  2. relay:   the client reads it through byte_relay, a process that copies bytes and does
     nothing else: what one more process on the path costs on this machine, the floor;
  3. service: the chatbot (`--engine openai`) reads the same stream and a client reads the
     run's event stream; each token event still carries the stamp.
All clients are stamp_reader (C++, built beside fake_openai), so the reader's own cost is small
next to what it measures.
Per chunk latency = receipt time - stamp. The added latency is the service's (or the relay's)
minus the direct one, percentile by percentile.

    CHATBOT_BIN=build/release/chatbot python3 tests/fake_openai/measure_overhead.py [N]
        [--rate CHUNKS_PER_S | --pace-ms MS] [--runs K] [--target-ms MS]
        [chatbot flags, e.g. --sqlite-synchronous normal]

--rate sends chunk n at n/rate s after the first (a late chunk does not delay the next one);
without it (or --pace-ms) the fake writes them as fast as it can. --runs repeats the three
streams K times against the same processes and prints each run; the last line sums them up
against the target (--target-ms, default 0.5: issue 5).
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import fake_openai_client as fo  # noqa: E402
import harness  # noqa: E402

def script(fake, n, head_delay_ms, pace_ms=0, interval_us=0):
    item = {"data": {"choices": [{"index": 0, "delta": {"content": "<{{t}}>"}, "finish_reason": None}]},
            "repeat": n, "stamp": True, "delay_ms": pace_ms, "interval_us": interval_us}
    fake.script([{"status": 200, "head_delay_ms": head_delay_ms, "chunks": [item, fo.DONE]}])


def reader_binary():
    """stamp_reader, built beside fake_openai (tests/fake_openai/stamp_reader.cpp)."""
    return os.path.join(os.path.dirname(os.path.abspath(fo.fake_binary())), "stamp_reader")


def read_stamps(host, port, path, n, body=None):
    """Latency of each of the first n stamped chunks (s), as the lean C++ reader saw them."""
    cmd = [reader_binary(), host, str(port), path, str(n)] + ([body] if body else [])
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, timeout=120).stdout
    return [int(v) / 1e6 for v in out.split()]


def direct(fake, n):
    return read_stamps(fake.host, fake.port, "/v1/chat/completions", n,
                       '{"model":"m","stream":true,"messages":[]}')


def via_relay(fake, n):
    """The same stream through byte_relay (built beside fake_openai)."""
    binary = os.path.join(os.path.dirname(os.path.abspath(fo.fake_binary())), "byte_relay")
    relay = subprocess.Popen([binary, str(fake.port)], stdout=subprocess.PIPE)
    try:
        port = int(relay.stdout.readline())
        return read_stamps("127.0.0.1", port, "/v1/chat/completions", n,
                           '{"model":"m","stream":true,"messages":[]}')
    finally:
        relay.kill()
        relay.wait()


def via_service(srv, n):
    """The run's event stream, read by the same reader. The final event repeats the whole text
    (every stamp): the reader stops after the n token events."""
    tid = srv.create_thread()["thread_id"]
    p = srv.post_message(tid, "go")
    return read_stamps(srv.host, srv.port, "/api/runs/%s/events" % p["run_id"], n)


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def option(args, name, convert, default):
    if name not in args:
        return default
    i = args.index(name)
    value = convert(args[i + 1])
    del args[i:i + 2]
    return value


def main():
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 10000
    pace = option(args, "--pace-ms", int, 0)  # a chunk every PACE ms
    rate = option(args, "--rate", float, 0.0)
    interval = max(1, int(round(1e6 / rate))) if rate > 0 else 0
    runs = option(args, "--runs", int, 1)
    # The target: p99 added latency per chunk (the service's p99 minus the direct one).
    target_ms = option(args, "--target-ms", float, 0.5)
    service_p99 = []
    how = ("one every %d ms" % pace if pace else "%d per second" % round(1e6 / interval)
           if interval else "as fast as possible")
    print("%d chunks, %s; service flags: %s" % (n, how, " ".join(args) or "none"))
    with fo.FakeOpenAI() as fake:
        srv = harness.Server(["--engine", "openai", "--openai-base-url", fake.base_url,
                              "--openai-model", "m"] + args)
        srv.start()
        try:
            for run in range(runs):
                script(fake, n, 0, pace, interval)
                d = direct(fake, n)
                script(fake, n, 0, pace, interval)
                r = via_relay(fake, n)
                script(fake, n, 300, pace, interval)
                t0 = time.monotonic()
                s = via_service(srv, n)
                t_service = time.monotonic() - t0 - 0.3
                assert len(d) == len(r) == len(s) == n, (len(d), len(r), len(s))
                print("run %d: the service's stream took %.3f s" % (run + 1, t_service))
                print("%-6s %10s %10s %10s %12s %12s" % ("", "direct ms", "relay ms", "service ms",
                                                         "relay adds", "service adds"))
                for q in (0.5, 0.9, 0.99, 1.0):
                    a, b, c = pct(d, q) * 1e3, pct(r, q) * 1e3, pct(s, q) * 1e3
                    if q == 0.99:
                        service_p99.append(c - a)
                    print("%-6s %10.3f %10.3f %10.3f %12.3f %12.3f"
                          % ("p%g" % (q * 100) if q < 1 else "max", a, b, c, b - a, c - a))
        finally:
            srv.cleanup()
    worst = max(service_p99)
    print("summary: %s; service adds p99 %s ms; target <= %g ms: %s"
          % (how, ", ".join("%.3f" % v for v in service_p99), target_ms,
             "met" if worst <= target_ms else "not met"))


if __name__ == "__main__":
    main()
