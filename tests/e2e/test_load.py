"""Many runs and subscribers at once; a subscriber that never reads."""
import concurrent.futures
import threading
import time
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support


class LoadTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "10", "--demo-tool-delay-ms", "10"]

    def test_50_runs_with_2_subscribers_each(self):
        n_runs = 50
        u = self.server.create_user()
        threads = [self.server.create_thread(u["user_id"]) for _ in range(n_runs)]
        runs = [self.server.post_message(t["thread_id"], "load test message number %d" % i)["run_id"]
                for i, t in enumerate(threads)]

        def subscribe(rid):
            with self.server.sse("/api/runs/%s/events" % rid, timeout=60) as s:
                if s.status != 200:
                    return ("HTTP %s %r" % (s.status, s.body), [])
                return (None, s.read_all(60))

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=2 * n_runs) as pool:
            futures = {(rid, k): pool.submit(subscribe, rid) for rid in runs for k in (0, 1)}
            results = {key: f.result(timeout=90) for key, f in futures.items()}
        elapsed = time.monotonic() - t0

        for rid in runs:
            (err_a, ev_a), (err_b, ev_b) = results[(rid, 0)], results[(rid, 1)]
            self.assertIsNone(err_a, "run %s subscriber a: %s" % (rid, err_a))
            self.assertIsNone(err_b, "run %s subscriber b: %s" % (rid, err_b))
            self.assertContiguous(ev_a, 1, "run %s subscriber a" % rid)
            self.assertSuccessLog(ev_a, "run %s" % rid)
            self.assertEqual(self.event_tuples(ev_a), self.event_tuples(ev_b),
                             "run %s: both subscribers get the same sequence" % rid)
        # and what was delivered is what was stored
        for rid in runs[:: 10]:
            self.assertEqual(self.event_tuples(self.server.events(rid)), self.event_tuples(results[(rid, 0)][1]))
            self.assertEqual(self.server.get_run(rid)["status"], "done")
        self.assertLess(elapsed, 60, "50 short runs x 2 subscribers took %.1f s" % elapsed)


class SlowSubscriberTest(support.ServerTestCase):
    """A client that opens a stream and never reads must not hold back the others.

    The run is large (80,000 tokens, ~4 MB of frames) so that the stuck client's socket buffers fill
    and the server has to deal with it (a few hundred tokens fit in the kernel's buffers)."""
    server_args = ["--demo-token-delay-ms", "0", "--demo-tool-delay-ms", "500", "--subscriber-queue", "16",
                   "--max-content-bytes", "1048576", "--max-body-bytes", "2097152"]
    n_words = 80000

    def read_resuming(self, path, deadline):
        """Read like EventSource: on a cut, reconnect with Last-Event-ID; returns (events, reconnects)."""
        got, reconnects = [], 0
        while time.monotonic() < deadline:
            headers = {"Last-Event-ID": str(got[-1].seq)} if got else {}
            with self.server.sse(path, headers=headers, timeout=30) as s:
                if s.status == 204:
                    break
                if s.status != 200:
                    raise AssertionError("HTTP %s %r" % (s.status, s.body))
                while True:
                    e = s.next_event(max(0.1, deadline - time.monotonic()))
                    if e is None:
                        break
                    got.append(e)
            if got and got[-1].event == "done":
                break
            reconnects += 1
        return got, reconnects

    def test_unread_stream_does_not_block_others(self):
        t = self.server.create_thread()
        content = " ".join("w%05d" % i for i in range(self.n_words))
        p = self.server.post_message(t["thread_id"], content)
        rid = p["run_id"]
        path = "/api/runs/%s/events" % rid
        # the stuck client subscribes while the tool step runs, so it is a live subscriber
        stuck = self.server.open_unread_stream(path, rcvbuf=4096)
        self.addCleanup(stuck.close)
        results = {}
        deadline = time.monotonic() + 90

        def read(name):
            try:
                results[name] = self.read_resuming(path, deadline)
            except Exception as e:  # reported below
                results[name] = e

        t0 = time.monotonic()
        readers = [threading.Thread(target=read, args=(n,)) for n in ("a", "b")]
        for th in readers:
            th.start()
        for th in readers:
            th.join(100)
        elapsed = time.monotonic() - t0
        for name in ("a", "b"):
            self.assertIsInstance(results.get(name), tuple, "subscriber %s failed: %r" % (name, results.get(name)))
        (a, ra), (b, rb) = results["a"], results["b"]
        self.assertContiguous(a, 1, "subscriber a")
        self.assertSuccessLog(a)
        self.assertEqual(self.event_tuples(a), self.event_tuples(b))
        self.assertGreater(len(a), self.n_words, "one token per word at least")
        self.assertLess(elapsed, 45, "the readers needed %.1f s with one stuck client (%d and %d reconnects)"
                        % (elapsed, ra, rb))

        # the server answers other requests at once while the stuck client is still connected
        t1 = time.monotonic()
        self.assertEqual(self.req("GET", "/healthz", timeout=5).status, 200)
        u = self.server.create_user()
        self.assertLess(time.monotonic() - t1, 2.0, "the server is slow to answer with a stuck client")
        self.assertTrue(u["user_id"])

        # the stuck client finally reads: a contiguous prefix (it may have been disconnected), then it
        # resumes with Last-Event-ID and loses nothing
        stuck.read_head(30)
        self.assertEqual(stuck.status, 200)
        try:
            stuck.read_all(30)
        except (TimeoutError, ConnectionError) as e:
            self.fail("the stuck client's stream neither ended nor completed: %r (%d events read)"
                      % (e, len(stuck.events)))
        got = stuck.events
        self.assertContiguous(got, 1, "what the slow client got before it was cut")
        if not got or got[-1].event != "done":
            last = got[-1].seq if got else 0
            rest = self.server.events(rid, last_event_id=last)
            got = got + rest
        self.assertEqual(self.event_tuples(got), self.event_tuples(a),
                         "slow client + resume == the whole log")


class SlowSubscriberDefaultQueueTest(SlowSubscriberTest):
    """The same with the default subscriber queue: the stuck client's socket really fills up."""
    server_args = ["--demo-token-delay-ms", "0", "--demo-tool-delay-ms", "500",
                   "--max-content-bytes", "1048576", "--max-body-bytes", "2097152"]


if __name__ == "__main__":
    unittest.main()
