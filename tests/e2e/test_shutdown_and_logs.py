"""SIGTERM while a run streams: the process stops accepting, lets the run finish within the grace
period (or cancels it after), ends the streams, flushes the event log and exits 0. After a
restart on the same database the run's log is complete: it ends with `done`.

And the logs: one line per request (method, route template, status, request id, duration), as
text or as JSON lines (--log-format json) that parse whatever the request carried."""
import json
import re
import signal
import socket
import time
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support


class ShutdownTest(unittest.TestCase):
    maxDiff = 4000

    def start(self, grace_s, token_delay_ms):
        srv = harness.Server(["--demo-token-delay-ms", str(token_delay_ms), "--demo-tool-delay-ms", "5",
                              "--shutdown-grace-s", str(grace_s)])
        self.addCleanup(srv.cleanup)
        srv.start()
        return srv

    def sigterm_and_wait(self, srv, limit_s):
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            rc = srv.proc.wait(limit_s)
        except Exception:
            srv.proc.kill()
            srv.proc.wait(10)
            self.fail("the process did not exit within %.1f s of SIGTERM\nstderr:\n%s"
                      % (limit_s, srv.stderr_text()[-3000:]))
        return rc, time.monotonic() - t0

    def stored_events(self, srv, run_id):
        """The run's whole stored log, read from a fresh process on the same database."""
        srv.start()
        run = srv.get_run(run_id)
        events = srv.events(run_id, timeout=10)
        return run, events

    def test_run_finishes_within_the_grace_period(self):
        srv = self.start(grace_s=15, token_delay_ms=20)
        t = srv.create_thread()
        words = " ".join("w%d" % i for i in range(40))  # ~1 s of tokens
        p = srv.post_message(t["thread_id"], words)
        s = srv.sse("/api/runs/%s/events" % p["run_id"], timeout=30)
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200)
        while True:  # into the reply
            e = s.next_event(10)
            self.assertIsNotNone(e, "stream ended before any token")
            if e.event == "token":
                break
        proc = srv.proc
        rc, took = self.sigterm_and_wait(srv, 15 + 5)
        # The stream got the rest of the run, then ended.
        s.read_all(5)
        self.assertTrue(s.eof, "the stream did not end")
        sig = harness.event_signature(s.events)
        self.assertRegex(" ".join(sig), support.SUCCESS_RE, harness.compress_signature(sig))
        self.assertEqual(rc, 0, "exit status after SIGTERM\nstderr:\n%s" % srv.stderr_text()[-3000:])
        self.assertLess(took, 10, "exited %.1f s after SIGTERM: it should not wait out the grace "
                                  "period once the run is done" % took)
        self.assertIs(proc.poll(), 0)
        srv.stop()

        run, events = self.stored_events(srv, p["run_id"])
        self.assertEqual(run["status"], "done")
        self.assertEqual([e.event for e in events], [e.event for e in s.events], "stored log == streamed")
        self.assertEqual(events[-1].event, "done")
        self.assertEqual([int(e.id) for e in events], list(range(1, len(events) + 1)))
        self.assertEqual(run["last_seq"], len(events))

    def test_run_is_canceled_after_the_grace_period(self):
        grace = 1
        srv = self.start(grace_s=grace, token_delay_ms=200)
        t = srv.create_thread()
        p = srv.post_message(t["thread_id"], " ".join("w%d" % i for i in range(100)))  # ~20 s
        s = srv.sse("/api/runs/%s/events" % p["run_id"], timeout=30)
        self.addCleanup(s.close)
        while True:
            e = s.next_event(10)
            self.assertIsNotNone(e)
            if e.event == "token":
                break
        rc, took = self.sigterm_and_wait(srv, grace + 6)
        self.assertEqual(rc, 0, "exit status after SIGTERM\nstderr:\n%s" % srv.stderr_text()[-3000:])
        self.assertGreaterEqual(took, grace * 0.8, "the run was canceled before its grace period")
        s.read_all(5)
        self.assertTrue(s.eof, "the stream did not end")
        sig = harness.event_signature(s.events)
        self.assertRegex(" ".join(sig), support.CANCEL_RUNNING_RE, harness.compress_signature(sig))
        srv.stop()

        run, events = self.stored_events(srv, p["run_id"])
        self.assertEqual(run["status"], "canceled")
        self.assertEqual(events[-1].event, "done")
        self.assertEqual(json.loads(events[-1].data), {"status": "canceled"})
        self.assertEqual([e.event for e in events], [e.event for e in s.events], "stored log == streamed")
        # The partial reply was kept as the assistant's message.
        thread = srv.get_thread(t["thread_id"])
        self.assertEqual([m["role"] for m in thread["messages"]], ["user", "assistant"])
        partial = "".join(json.loads(e.data)["text"] for e in events if e.event == "token")
        self.assertEqual(thread["messages"][1]["content"], partial)

    def test_no_new_connections_during_the_grace_period(self):
        srv = self.start(grace_s=15, token_delay_ms=50)
        t = srv.create_thread()
        p = srv.post_message(t["thread_id"], " ".join("w%d" % i for i in range(40)))  # ~2 s
        s = srv.sse("/api/runs/%s/events" % p["run_id"], timeout=30)
        self.addCleanup(s.close)
        s.next_event(10)
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        refused = False
        while time.monotonic() < deadline and not refused:
            try:
                with socket.create_connection((srv.host, srv.port), timeout=1) as c:
                    # Accepted before the listener closed: try again.
                    c.close()
                time.sleep(0.05)
            except OSError:
                refused = True
        self.assertTrue(refused, "still accepting connections after SIGTERM")
        self.assertIsNone(srv.proc.poll(), "exited before its run finished")
        s.read_all(10)
        self.assertEqual(s.events[-1].event, "done")
        self.assertEqual(srv.proc.wait(10), 0)


class RequestLogTest(unittest.TestCase):
    def run_traffic(self, log_format):
        srv = harness.Server(["--log-format", log_format, "--demo-token-delay-ms", "1"])
        self.addCleanup(srv.cleanup)
        srv.start()
        t = srv.create_thread()
        p = srv.post_message(t["thread_id"], 'quote " backslash \\ tab \t')
        srv.events(p["run_id"])
        r = srv.request("GET", "/api/runs/%s" % p["run_id"], headers={"X-Request-Id": "trace-42"})
        self.assertEqual(r.headers["x-request-id"], "trace-42")
        # Client bytes that reach the log: a request id with a quote and a backslash, and a target
        # with a quote, a backslash and bytes that are not UTF-8 (the stream's open line has it).
        raw = srv.raw(b'GET /api/runs/' + p["run_id"].encode() + b'/events?x="\\\xff\xfe HTTP/1.1\r\n'
                      b'Host: x\r\nX-Request-Id: tr"ace\\43\r\nConnection: close\r\n\r\n')
        self.assertEqual(raw.status, 200)
        self.assertIn(b"event: done", raw.raw)
        self.assertEqual(srv.stop(), 0)
        return srv.stderr_text(), p["run_id"]

    def test_json_lines_parse_and_carry_each_request(self):
        text, run_id = self.run_traffic("json")
        lines = [l for l in text.splitlines() if l.strip()]
        self.assertGreater(len(lines), 5)
        records = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError as e:
                self.fail("not a JSON line (%s): %r" % (e, line))
            self.assertEqual(set(rec) >= {"ts", "level", "msg"}, True, rec)
            self.assertRegex(rec["ts"], harness.TS_RE)
            records.append(rec)
        msgs = [r["msg"] for r in records]
        self.assertTrue(any(re.match(r"^GET /api/runs/\{run_id\} 200 trace-42 \d+us$", m) for m in msgs), msgs)
        self.assertTrue(any(re.match(r"^POST /api/threads/\{thread_id\}/messages 201 \S+ \d+us$", m) for m in msgs),
                        msgs)
        self.assertTrue(any(re.match(r"^GET /api/runs/\{run_id\}/events 200 \S+ stream-open /api/runs/%s/events$"
                                     % run_id, m) for m in msgs), msgs)
        closed = [m for m in msgs if re.match(r"^GET /api/runs/\{run_id\}/events 200 \S+ \d+us stream-closed", m)]
        self.assertEqual(len(closed), 2, msgs)
        self.assertRegex(closed[0], r"events=([1-9]\d*)$")
        self.assertTrue(any(m.startswith('GET /api/runs/{run_id}/events 200 tr"ace\\43 stream-open /api/runs/%s/events?x="\\\ufffd\ufffd'
                                         % run_id) for m in msgs), "the raw request's line: %r" % msgs)
        self.assertTrue(any("stopped" == m for m in msgs), "the shutdown is logged")

    def test_text_lines_carry_each_request(self):
        text, run_id = self.run_traffic("text")
        lines = text.splitlines()
        self.assertTrue(any(re.search(r" info GET /api/runs/\{run_id\} 200 trace-42 \d+us$", l) for l in lines),
                        "\n".join(lines[-20:]))
        self.assertTrue(any(re.search(r" info POST /api/users 201 \S+ \d+us$", l) for l in lines))


if __name__ == "__main__":
    unittest.main()
