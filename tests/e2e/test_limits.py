"""Limits with clear answers (issue 9): header count, URL length, JSON depth and string length,
the connection limit (refused with a 503 problem, counted in /metrics) and the read deadlines
(idle, header, body). Header size and body size are in test_bad_input.py."""
import json
import socket
import time
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support

JSON = {"Content-Type": "application/json"}


def metric(text, name, labels=""):
    """The value of one sample of the Prometheus text, or None."""
    want = name + ("{%s}" % labels if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def read_until_closed(sock, limit_s):
    """Reads until the peer closes; returns (bytes, seconds it took). Fails after limit_s."""
    sock.settimeout(limit_s)
    start = time.monotonic()
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - start


class SizeLimitsTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "1", "--demo-tool-delay-ms", "1",
                   "--max-header-count", "20", "--max-url-bytes", "1024",
                   "--max-json-depth", "8", "--max-json-string-bytes", "256",
                   "--max-content-bytes", "200"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = cls.server.create_user()
        cls.thread = cls.server.create_thread(cls.user["user_id"])

    def msg_path(self):
        return "/api/threads/%s/messages" % self.thread["thread_id"]

    def assertLimitProblem(self, r, status, limit, what):
        body = self.assertProblem(r, status, what)
        self.assertIn(str(limit), body["detail"], "%s: the detail should name the limit %s: %r"
                      % (what, limit, body["detail"]))
        return body

    def test_header_count(self):
        path = "/api/users/%d" % self.user["user_id"]
        few = {"X-H%d" % i: "v" for i in range(15)}
        self.assertStatus(self.req("GET", path, headers=few), 200, "15 header fields")
        many = {"X-H%d" % i: "v" for i in range(30)}
        r = self.req("GET", path, headers=many)
        self.assertLimitProblem(r, 431, 20, "30 header fields with --max-header-count 20")
        self.assertServerAlive("too many header fields")

    def test_url_length(self):
        ok = "/api/users/%d/threads?limit=5&pad=%s" % (self.user["user_id"], "a" * 900)
        self.assertStatus(self.req("GET", ok), 200, "a 950-byte URL under --max-url-bytes 1024")
        for n in (1100, 40000):  # over the URL limit; the second also over the whole head's
            with self.subTest(n=n):
                long = "/api/users/%d/threads?pad=%s" % (self.user["user_id"], "b" * n)
                r = self.server.raw(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                     % long).encode(), timeout=10)
                self.assertLimitProblem(r, 414, 1024, "a %d-byte URL" % n)
        self.assertServerAlive("long URLs")

    def test_json_depth(self):
        ok = {"content": "depth ok", "meta": [[[{"a": [1]}]]]}  # 6 levels
        self.assertStatus(self.req("POST", self.msg_path(), ok), 201, "6 levels of nesting")
        raw = b'{"content":"deep","x":' + b"[" * 9 + b"]" * 9 + b"}"
        r = self.req("POST", self.msg_path(), raw_body=raw, headers=JSON)
        self.assertLimitProblem(r, 422, 8, "10 levels of nesting with --max-json-depth 8")
        self.assertValidation(r, "deep JSON")
        self.assertServerAlive("deep JSON")

    def test_json_string_length(self):
        # Known fields have their own limits (content: --max-content-bytes) ...
        r = self.req("POST", self.msg_path(), {"content": "c" * 230})
        self.assertLimitProblem(r, 422, 200, "content over --max-content-bytes 200")
        # ... and every string or key of a body has --max-json-string-bytes.
        for body, loc in (({"content": "ok", "extra": "s" * 300}, "extra"),
                          ({"content": "ok", "list": ["x", "t" * 300]}, "1"),
                          ({"name": "u" * 300}, "name"),
                          ({"content": "ok", "k" * 300: 1}, None)):
            with self.subTest(loc=loc):
                path = "/api/users" if "name" in body else self.msg_path()
                r = self.req("POST", path, body)
                self.assertLimitProblem(r, 422, 256, "a 300-byte string with --max-json-string-bytes 256")
                self.assertValidation(r, "long JSON string", loc_suffix=loc)
                self.assertNotIn("k" * 300, json.dumps(r.body), "the overlong key is echoed back")
        self.assertServerAlive("long JSON strings")


class ConnectionLimitTest(support.ServerTestCase):
    server_args = ["--max-connections", "6"]

    def test_over_the_limit_is_a_503_problem_counted_in_metrics(self):
        held = []
        try:
            for _ in range(6):
                s = socket.create_connection((self.server.host, self.server.port), timeout=10)
                held.append(s)
                # An answered request proves the server accepted it; keep-alive keeps it open.
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                got = b""
                while b"\r\n\r\n" not in got or not got.endswith(b"}"):
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "a held connection was closed: %r" % got)
                    got += chunk
                self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
            extra = socket.create_connection((self.server.host, self.server.port), timeout=5)
            data, took = read_until_closed(extra, 5)
            extra.close()
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 503"), "the 7th connection got %r" % data[:300])
            self.assertIn(b"application/problem+json", head.lower())
            problem = json.loads(body)
            self.assertEqual(problem["status"], 503)
            self.assertIn("6", problem["detail"], "the detail should name the limit: %r" % problem)
            self.assertLess(took, 3, "the refused connection should be closed at once")
            # The held connections still work.
            held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, _ = read_until_closed(held[0], 5)
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        finally:
            for s in held:
                s.close()
        # Once they are gone, service is back, and /metrics tells what happened.
        deadline = time.monotonic() + 5
        while True:
            try:
                r = self.req("GET", "/metrics", timeout=5)
                if r.status == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "no service after the held connections closed")
            time.sleep(0.1)
        text = r.body.decode() if isinstance(r.body, bytes) else r.body
        self.assertGreaterEqual(metric(text, "chatbot_http_connections_refused_total"), 1, text[-2000:])
        self.assertGreaterEqual(metric(text, "chatbot_http_connections_open"), 1)
        self.assertServerAlive("after the connection limit")


class DeadlinesTest(support.ServerTestCase):
    server_args = ["--idle-timeout-s", "1", "--header-timeout-s", "2", "--body-timeout-s", "2"]

    def connect(self):
        s = socket.create_connection((self.server.host, self.server.port), timeout=10)
        self.addCleanup(s.close)
        return s

    def timed_out(self, deadline):
        r = self.req("GET", "/metrics")
        text = r.body.decode() if isinstance(r.body, bytes) else r.body
        return metric(text, "chatbot_http_connections_timed_out_total", 'deadline="%s"' % deadline)

    def assertCounted(self, deadline, before):
        # The socket closes at the deadline before the session counts it: allow a moment.
        end = time.monotonic() + 3
        while self.timed_out(deadline) <= before and time.monotonic() < end:
            time.sleep(0.05)
        self.assertGreater(self.timed_out(deadline), before, "%s time-out not counted" % deadline)

    def test_a_silent_connection_is_closed_at_the_idle_timeout(self):
        before = self.timed_out("idle")
        s = self.connect()
        data, took = read_until_closed(s, 10)
        self.assertEqual(data, b"", "nothing is sent to a client that sent nothing")
        self.assertGreater(took, 0.7, "closed before the 1 s idle time-out")
        self.assertLess(took, 3, "a silent connection stayed open %.1f s with --idle-timeout-s 1" % took)
        self.assertCounted("idle", before)

    def test_a_kept_alive_connection_is_closed_at_the_idle_timeout(self):
        s = self.connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data, took = read_until_closed(s, 10)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertLess(took, 3, "an idle kept-alive connection stayed open %.1f s" % took)

    def test_slowloris_is_cut_at_the_header_deadline(self):
        before = self.timed_out("header")
        s = self.connect()
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100 + b"\r\n\r\n"
        start = time.monotonic()
        closed_after = None
        for b in head:  # one byte each 0.25 s: every byte well within the idle time-out
            try:
                s.sendall(bytes([b]))
                s.settimeout(0.25)
                try:
                    if s.recv(1024) == b"":
                        closed_after = time.monotonic() - start
                        break
                except socket.timeout:
                    pass
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - start
                break
            if time.monotonic() - start > 10:
                break
        self.assertIsNotNone(closed_after, "a head sent one byte per 0.25 s was never cut")
        self.assertGreater(closed_after, 1.5, "cut before the 2 s header deadline")
        self.assertLess(closed_after, 4, "cut %.1f s after its first byte with --header-timeout-s 2"
                        % closed_after)
        self.assertCounted("header", before)
        self.assertServerAlive("slowloris")

    def test_a_body_that_never_completes_is_cut_at_the_body_deadline(self):
        before = self.timed_out("body")
        s = self.connect()
        s.sendall(b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"name\":")
        data, took = read_until_closed(s, 10)
        self.assertLess(took, 4, "a stalled body kept the connection %.1f s with --body-timeout-s 2" % took)
        self.assertGreater(took, 1.5)
        self.assertCounted("body", before)


if __name__ == "__main__":
    unittest.main()
