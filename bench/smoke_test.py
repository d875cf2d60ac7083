#!/usr/bin/env python3
"""Smoke test of the load generator (ctest bench_loadgen_smoke): start the real server on a free
port with a temporary SQLite database, run `chatbot_loadgen smoke` for ~2 s against it, and check
that it streamed runs to their end, counted events, and saw the tokens' timestamps of
`--demo-token-timestamps`. Keeps the generator (and that option) from rotting; the benchmark
itself is `make bench`.

    smoke_test.py CHATBOT_BIN LOADGEN_BIN
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    chatbot, loadgen = sys.argv[1], sys.argv[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_") and k != "DATABASE_URL"}
    with tempfile.TemporaryDirectory(prefix="chatbot-bench-smoke-") as tmp:
        port = free_port()
        log = open(os.path.join(tmp, "server.log"), "w")
        srv = subprocess.Popen(
            [chatbot, "serve", "--port", str(port), "--database", "sqlite:" + os.path.join(tmp, "db.sqlite"),
             "--demo-token-delay-ms", "1", "--demo-tool-delay-ms", "0", "--demo-token-timestamps",
             "--log-level", "warn", "--shutdown-grace-s", "0"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.time() + 20
            while True:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if srv.poll() is not None or time.time() > deadline:
                    log.flush()
                    print(open(os.path.join(tmp, "server.log")).read())
                    print("server did not start")
                    return 1
                time.sleep(0.05)
            out = subprocess.run(
                [loadgen, "smoke", "--url", "http://127.0.0.1:%d" % port, "--seconds", "2",
                 "--server-pid", str(srv.pid), "--timeout-s", "30"],
                capture_output=True, text=True, timeout=60)
            sys.stderr.write(out.stderr)
            sys.stderr.flush()
            print(out.stdout.strip())
            line = [l for l in out.stdout.splitlines() if l.startswith("{")][-1]
            res = json.loads(line)
            if out.returncode != 0 or res.get("events", 0) <= 0 or res.get("runs", 0) <= 0:
                print("FAIL: the load generator reported no events (exit %d)" % out.returncode)
                return 1
            # The server runs with --demo-token-timestamps: the latency scenario depends on them.
            if res.get("timestamped_tokens", 0) <= 0:
                print("FAIL: no token carried a --demo-token-timestamps timestamp")
                return 1
            print("ok: %d runs, %d events in %.2f s" % (res["runs"], res["events"], res["wall_s"]))
            return 0
        finally:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(timeout=15)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
            log.close()


if __name__ == "__main__":
    sys.exit(main())
