#!/usr/bin/env python3
"""What the service adds per chunk (issue 5, "Measure it").

The fake upstream streams N chunks as fast as it can, each stamped with its send time
(CLOCK_MONOTONIC µs, the clock of Python's time.monotonic()). In one run:
  1. direct:  a client reads the stream from the fake itself;
  2. service: the chatbot (`--engine openai`) reads the same stream and a client reads the
     run's event stream; each token event still carries the stamp.
Per chunk latency = receipt time - stamp. The added latency is the service's minus the direct
one, percentile by percentile.

    CHATBOT_BIN=build/release/chatbot python3 tests/fake_openai/measure_overhead.py [N] [--sqlite-synchronous normal]
"""
import json
import os
import re
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import fake_openai_client as fo  # noqa: E402
import harness  # noqa: E402

STAMP = re.compile(rb"<(\d+)>")


def script(fake, n, head_delay_ms, pace_ms=0):
    item = {"data": {"choices": [{"index": 0, "delta": {"content": "<{{t}}>"}, "finish_reason": None}]},
            "repeat": n, "stamp": True, "delay_ms": pace_ms}
    fake.script([{"status": 200, "head_delay_ms": head_delay_ms, "chunks": [item, fo.DONE]}])


def direct(fake, n):
    body = b'{"model":"m","stream":true,"messages":[]}'
    s = socket.create_connection((fake.host, fake.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    lat = []
    buf = b""
    while len(lat) < n:
        data = s.recv(65536)
        if not data:
            break
        now = time.monotonic()
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            m = STAMP.search(line)
            if m and line.startswith(b"data:"):
                lat.append(now - int(m.group(1)) / 1e6)
    s.close()
    return lat


def via_service(srv, n):
    """The run's event stream, read as lean as the direct client reads the upstream's."""
    tid = srv.create_thread()["thread_id"]
    p = srv.post_message(tid, "go")
    s = socket.create_connection((srv.host, srv.port))
    s.sendall(b"GET /api/runs/%s/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
              % p["run_id"].encode())
    lat = []
    buf = b""
    done = False
    while not done:
        data = s.recv(65536)
        if not data:
            break
        now = time.monotonic()
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                m = STAMP.search(line)
                if m:
                    lat.append(now - int(m.group(1)) / 1e6)
            elif line.startswith(b"event: done"):
                done = True
    s.close()
    # The final event repeats the whole text (every stamp): keep the token events only.
    return lat[:n]


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 10000
    pace = 0
    if "--pace-ms" in args:  # a chunk every PACE ms instead of as fast as possible
        i = args.index("--pace-ms")
        pace = int(args[i + 1])
        del args[i:i + 2]
    with fo.FakeOpenAI() as fake:
        srv = harness.Server(["--engine", "openai", "--openai-base-url", fake.base_url,
                              "--openai-model", "m"] + args)
        srv.start()
        try:
            script(fake, n, 0, pace)
            t0 = time.monotonic()
            d = direct(fake, n)
            t_direct = time.monotonic() - t0
            script(fake, n, 300, pace)
            t0 = time.monotonic()
            s = via_service(srv, n)
            t_service = time.monotonic() - t0 - 0.3
        finally:
            srv.cleanup()
    print("chunks: direct %d, through the service %d, %s (service flags: %s)"
          % (len(d), len(s), "one every %d ms" % pace if pace else "as fast as possible", " ".join(args) or "none"))
    print("whole stream: direct %.3f s, through the service %.3f s" % (t_direct, t_service))
    print("%-6s %12s %12s %12s" % ("", "direct ms", "service ms", "added ms"))
    for q in (0.5, 0.9, 0.99, 1.0):
        a, b = pct(d, q) * 1e3, pct(s, q) * 1e3
        print("%-6s %12.3f %12.3f %12.3f" % ("p%g" % (q * 100) if q < 1 else "max", a, b, b - a))


if __name__ == "__main__":
    main()
