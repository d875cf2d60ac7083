"""The event stream: headers, preamble, frame format, resume (header, query, bad values, every
position, live), several subscribers, pings, 204 and 404."""
import json
import random
import threading
import time
import unittest
import uuid

try:
    from . import harness, support
except ImportError:
    import harness, support


def words(n, prefix="w"):
    return " ".join("%s%d" % (prefix, i) for i in range(n))


class SSETest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "5", "--demo-tool-delay-ms", "5", "--ping-interval-s", "0.3"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # one finished run shared by the replay tests
        t = cls.server.create_thread()
        cls.done_run = cls.server.post_message(t["thread_id"], "a finished run with a few words in it")["run_id"]
        cls.server.wait_run(cls.done_run)
        cls.done_events = cls.server.events(cls.done_run)

    def path(self, run_id, query=""):
        return "/api/runs/%s/events%s" % (run_id, query)

    def test_headers_preamble_and_frames(self):
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], "stream me")
        rid_header = "req-" + uuid.uuid4().hex
        with self.server.sse(self.path(p["run_id"]), headers={"X-Request-Id": rid_header}) as s:
            self.assertEqual(s.status, 200, "GET events: %r" % s.body)
            ctype = s.headers.get("content-type", "")
            self.assertEqual(ctype.replace(" ", "").lower(), "text/event-stream;charset=utf-8",
                             "Content-Type: %r" % ctype)
            self.assertIn("no-cache", s.headers.get("cache-control", "").lower(), "Cache-Control: %r" % s.headers)
            self.assertEqual(s.headers.get("x-accel-buffering", "").lower(), "no", "X-Accel-Buffering")
            self.assertEqual(s.headers.get("x-request-id"), rid_header, "X-Request-Id echoed on the stream")
            first = s.next_item(5)
            second = s.next_item(5)
            events = s.read_all(30)
        self.assertEqual((first.kind, first.retry), ("retry", "3000"), "the stream starts with `retry: 3000`")
        self.assertEqual(first.raw, b"retry: 3000\n")
        self.assertEqual((second.kind, second.text), ("comment", "connected"), "then `: connected`")
        self.assertFalse(s.crlf_seen, "lines end with \\n")
        self.assertTrue(events)
        self.assertContiguous(events, 1)
        self.assertFrames(events)
        self.assertSuccessLog(events)
        self.assertEqual(events[-1].event, "done")
        self.assertLess(s.eof_time - events[-1].t, 2.0, "the response ends after `done`")
        self.assertIs(s.items[-1], events[-1], "nothing follows `done`: %r" % s.items[-3:])

    def test_replay_of_finished_run(self):
        events = self.server.events(self.done_run)
        self.assertEqual(self.event_tuples(events), self.event_tuples(self.done_events),
                         "two replays of a finished run are identical")
        self.assertContiguous(events, 1)
        self.assertFrames(events)
        self.assertSuccessLog(events)

    def resume(self, headers=None, query="", run_id=None):
        run_id = run_id or self.done_run
        with self.server.sse(self.path(run_id, query), headers=headers or {}) as s:
            if s.status == 204:
                return 204, None
            self.assertEqual(s.status, 200, "resume %r %r: HTTP %s %r" % (headers, query, s.status, s.body))
            return 200, s.read_all(15)

    def test_resume_by_header_and_by_query(self):
        full = self.event_tuples(self.done_events)
        status, ev = self.resume({"Last-Event-ID": "3"})
        self.assertEqual(self.event_tuples(ev), full[3:], "Last-Event-ID: 3 -> seq 4..end")
        status, ev = self.resume(query="?last_event_id=3")
        self.assertEqual(self.event_tuples(ev), full[3:], "?last_event_id=3 -> seq 4..end")
        status, ev = self.resume({"Last-Event-ID": "5"}, query="?last_event_id=2")
        self.assertEqual(self.event_tuples(ev), full[5:], "the header wins over the query parameter")
        status, ev = self.resume({"Last-Event-ID": "2"}, query="?last_event_id=5")
        self.assertEqual(self.event_tuples(ev), full[2:], "the header wins over the query parameter")

    def test_bad_resume_values_mean_whole_log(self):
        full = self.event_tuples(self.done_events)
        for value in ("-1", "abc", "", "99999999999999999999", "1.5", "0"):
            with self.subTest(header=value):
                status, ev = self.resume({"Last-Event-ID": value})
                self.assertEqual(status, 200, "Last-Event-ID %r must be treated as 0, got 204" % value)
                self.assertEqual(self.event_tuples(ev), full, "Last-Event-ID %r -> the whole log" % value)
            with self.subTest(query=value):
                status, ev = self.resume(query="?last_event_id=%s" % value)
                self.assertEqual(status, 200, "last_event_id=%r must be treated as 0, got 204" % value)
                self.assertEqual(self.event_tuples(ev), full, "?last_event_id=%r -> the whole log" % value)

    def test_resume_at_every_position(self):
        full = self.event_tuples(self.done_events)
        n = len(full)
        for k in range(n):
            with self.subTest(k=k):
                status, ev = self.resume({"Last-Event-ID": str(k)})
                self.assertEqual(status, 200)
                self.assertEqual(self.event_tuples(ev), full[k:], "resume at %d -> exactly seq %d..%d"
                                 % (k, k + 1, n))
        for k in (n, n + 1, n + 1000):
            with self.subTest(k=k):
                with self.server.sse(self.path(self.done_run), headers={"Last-Event-ID": str(k)}) as s:
                    self.assertEqual(s.status, 204, "resume at/past done (%d, done=%d) -> 204" % (k, n))
                    self.assertEqual(s.body, b"", "204 has no body")
                    self.assertTrue(s.headers.get("x-request-id"), "204 without X-Request-Id")
                with self.server.sse(self.path(self.done_run, "?last_event_id=%d" % k)) as s:
                    self.assertEqual(s.status, 204, "?last_event_id=%d at/past done -> 204" % k)

    def test_resume_during_live_run(self):
        """Disconnect and resume again and again while the run is producing: no gap, no duplicate."""
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], words(150))
        rid = p["run_id"]
        rng = random.Random(7)
        got = []
        last = None
        resumes = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            headers = {} if last is None else {"Last-Event-ID": str(last)}
            with self.server.sse(self.path(rid), headers=headers) as s:
                if s.status == 204:
                    break
                self.assertEqual(s.status, 200)
                take = rng.randint(1, 12)
                for _ in range(take):
                    e = s.next_event(10)
                    if e is None:
                        break
                    got.append(e)
                    last = e.seq
            resumes += 1
            if got and got[-1].event == "done":
                break
        self.assertTrue(got and got[-1].event == "done", "never reached done: %s" % self.signature(got))
        self.assertContiguous(got, 1, "events gathered over %d resumed connections" % resumes)
        run = self.server.get_run(rid)
        self.assertEqual(run["status"], "done")
        self.assertEqual(self.event_tuples(got), self.event_tuples(self.server.events(rid)),
                         "what the resuming client saw == the stored log")
        self.assertGreater(resumes, 3)

    def test_resume_mid_live_run_once(self):
        """A second client joins mid-run with Last-Event-ID = what the first saw: it gets exactly the rest."""
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], words(120))
        rid = p["run_id"]
        with self.server.sse(self.path(rid)) as a:
            head = []
            while len([e for e in head if e.event == "token"]) < 10:
                e = a.next_event(10)
                self.assertIsNotNone(e)
                head.append(e)
            k = head[-1].seq
            with self.server.sse(self.path(rid), headers={"Last-Event-ID": str(k)}) as b:
                self.assertEqual(b.status, 200)
                rest_b = b.read_all(30)
            rest_a = a.read_all(30)[len(head):]
        self.assertEqual(self.event_tuples(rest_b), self.event_tuples(rest_a),
                         "the resumed client gets exactly the events after %d" % k)
        self.assertContiguous(head + rest_a, 1)

    def test_two_subscribers_identical(self):
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], words(60))
        results = {}

        def read(name):
            with self.server.sse(self.path(p["run_id"]), timeout=30) as s:
                results[name] = s.read_all(30)

        ths = [threading.Thread(target=read, args=(n,)) for n in ("a", "b")]
        for th in ths:
            th.start()
        for th in ths:
            th.join(40)
        self.assertEqual(set(results), {"a", "b"}, "both subscribers finished")
        self.assertEqual(self.event_tuples(results["a"]), self.event_tuples(results["b"]))
        self.assertContiguous(results["a"], 1)
        self.assertSuccessLog(results["a"])

    def test_ping_while_idle(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        p1 = self.server.post_message(tid, words(300))  # keeps the thread busy for > 1.5 s
        p2 = self.server.post_message(tid, "waiting")
        with self.server.sse(self.path(p2["run_id"]), timeout=30) as s:
            self.assertEqual(s.status, 200)
            before = []
            while True:
                item = s.next_item(10)
                self.assertIsNotNone(item, "stream ended before any event")
                if item.kind == "event":
                    break
                before.append(item)
            events = s.read_all(30)
        pings = [i for i in before if i.kind == "comment" and i.text == "ping"]
        self.assertGreaterEqual(len(pings), 2, "`: ping` every 0.3 s while the queued run waits; got %r"
                                % before)
        for ping in pings:
            self.assertEqual(ping.raw, b": ping\n")
        self.assertContiguous(s.events, 1)
        self.assertSuccessLog(s.events)
        self.assertEqual(self.server.get_run(p1["run_id"])["status"], "done")

    def test_unknown_run_is_404_problem(self):
        for rid in (str(uuid.uuid4()), "not-a-uuid", "1"):
            with self.subTest(rid):
                with self.server.sse(self.path(rid), headers={"X-Request-Id": "abc-404"}) as s:
                    self.assertEqual(s.status, 404, "events of unknown run %s" % rid)
                    ctype = s.headers.get("content-type", "")
                    self.assertTrue(ctype.startswith("application/problem+json"), "not a stream: %r" % ctype)
                    body = json.loads(s.body)
                    self.assertEqual(body.get("status"), 404)
                    self.assertIsInstance(body.get("detail"), str)
                    self.assertEqual(s.headers.get("x-request-id"), "abc-404")


if __name__ == "__main__":
    unittest.main()
