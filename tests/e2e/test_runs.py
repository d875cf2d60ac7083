"""Messages and runs: posting, validation, run resource, Idempotency-Key, serial runs per thread."""
import json
import threading
import time
import unittest
import uuid

try:
    from . import harness, support
except ImportError:
    import harness, support

RUN_FIELDS = ("run_id", "thread_id", "status", "created_at", "started_at", "finished_at", "error", "last_seq")


class MessagesTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "5", "--demo-tool-delay-ms", "5", "--max-content-bytes", "1000"]

    def assertThreadUntouched(self, tid, what):
        g = self.server.get_thread(tid)
        self.assertEqual(g["messages"], [], "%s stored a message: %r" % (what, g["messages"]))
        r = self.req("GET", "/api/threads/%s/runs" % tid)
        self.assertEqual(r.body.get("runs"), [], "%s created a run: %r" % (what, r.body))

    def test_post_message_creates_queued_run(self):
        t = self.server.create_thread()
        r = self.req("POST", "/api/threads/%s/messages" % t["thread_id"], {"content": "hello"})
        self.assertStatus(r, 201, "POST messages")
        self.assertJson(r)
        self.assertEqual(set(r.body) >= {"run_id", "message_id", "thread_id", "status"}, True,
                         "fields: %r" % r.body)
        self.assertUuid4(r.body["run_id"], "run_id")
        self.assertUuid4(r.body["message_id"], "message_id")
        self.assertNotEqual(r.body["run_id"], r.body["message_id"])
        self.assertEqual(r.body["thread_id"], t["thread_id"])
        self.assertEqual(r.body["status"], "queued")

    def test_get_run_fields_through_completion(self):
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], "status please")
        r = self.req("GET", "/api/runs/%s" % p["run_id"])
        self.assertStatus(r, 200)
        self.assertJson(r)
        for key in RUN_FIELDS:
            self.assertIn(key, r.body, "run lacks %r: %r" % (key, r.body))
        self.assertEqual(r.body["run_id"], p["run_id"])
        self.assertEqual(r.body["thread_id"], t["thread_id"])
        self.assertIn(r.body["status"], ("queued", "running", "done"))
        self.assertTimestamp(r.body["created_at"], "created_at")
        if r.body["status"] == "queued":
            self.assertIsNone(r.body["started_at"], "a queued run has not started")
        if r.body["status"] != "done":
            self.assertIsNone(r.body["finished_at"], "an unfinished run has no finished_at")

        run = self.server.wait_run(p["run_id"])
        self.assertEqual(run["status"], "done")
        self.assertTimestamp(run["started_at"], "started_at")
        self.assertTimestamp(run["finished_at"], "finished_at")
        self.assertIsNone(run["error"], "a done run has error null")
        self.assertLessEqual(run["created_at"], run["started_at"])
        self.assertLessEqual(run["started_at"], run["finished_at"])
        events = self.server.events(p["run_id"])
        self.assertIsInstance(run["last_seq"], int)
        self.assertEqual(run["last_seq"], events[-1].seq, "last_seq == seq of the last event (done)")
        self.assertEqual(run["created_at"], r.body["created_at"], "created_at never changes")

    def test_get_unknown_run_is_404(self):
        for rid in (str(uuid.uuid4()), "abc", "12345", "7D0B8A9E-4C1E-4B7A-9F1E-2A3B4C5D6E7F-00"):
            with self.subTest(rid):
                self.assertProblem(self.req("GET", "/api/runs/%s" % rid), 404, "GET /api/runs/%s" % rid)

    def test_invalid_content_is_422_and_stores_nothing(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        cases = [
            ("empty", {"content": ""}),
            ("blank", {"content": " \n\t  "}),
            ("missing", {}),
            ("null", {"content": None}),
            ("number", {"content": 5}),
            ("list", {"content": ["hello"]}),
            ("object", {"content": {"text": "hello"}}),
            ("over max-content-bytes (1001 bytes)", {"content": "a" * 1001}),
            ("over max-content-bytes in UTF-8 bytes (334 x 3 bytes)", {"content": "€" * 334}),
        ]
        for label, body in cases:
            with self.subTest(label):
                r = self.req("POST", "/api/threads/%s/messages" % tid, body)
                self.assertValidation(r, "POST messages %s" % label, loc_suffix="content")
        self.assertThreadUntouched(tid, "invalid content")
        self.assertServerAlive()

    def test_content_at_the_limit_is_accepted(self):
        t = self.server.create_thread()
        for content in ("b" * 1000, "é" * 500):
            with self.subTest(len(content)):
                r = self.req("POST", "/api/threads/%s/messages" % t["thread_id"], {"content": content})
                self.assertStatus(r, 201, "content of exactly 1000 bytes (limit 1000)")
                self.server.wait_run(r.body["run_id"])
        msgs = self.server.get_thread(t["thread_id"])["messages"]
        self.assertEqual([m["content"] for m in msgs if m["role"] == "user"], ["b" * 1000, "é" * 500])

    def test_post_to_unknown_thread_is_404(self):
        for tid in (str(uuid.uuid4()), "not-a-uuid"):
            with self.subTest(tid):
                r = self.req("POST", "/api/threads/%s/messages" % tid, {"content": "hello"})
                self.assertProblem(r, 404, "POST message to thread %s" % tid)

    # ---- Idempotency-Key
    def test_idempotency_concurrent_posts(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        key = "key-" + uuid.uuid4().hex
        barrier = threading.Barrier(6)
        results = [None] * 6

        def post(i):
            barrier.wait(5)
            results[i] = self.server.request("POST", "/api/threads/%s/messages" % tid, {"content": "once"},
                                             headers={"Idempotency-Key": key})

        ths = [threading.Thread(target=post, args=(i,)) for i in range(6)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(30)
        for i, r in enumerate(results):
            self.assertIsNotNone(r, "request %d did not complete" % i)
            self.assertStatus(r, 201, "concurrent post %d with one Idempotency-Key" % i)
        bodies = [r.body for r in results]
        self.assertTrue(all(b == bodies[0] for b in bodies),
                        "all six must get the identical first response: %r" % bodies)
        self.server.wait_run(bodies[0]["run_id"])
        runs = self.req("GET", "/api/threads/%s/runs" % tid).body["runs"]
        self.assertEqual([x["run_id"] for x in runs], [bodies[0]["run_id"]], "exactly one run: %r" % runs)
        msgs = self.server.get_thread(tid)["messages"]
        users = [m for m in msgs if m["role"] == "user"]
        self.assertEqual(len(users), 1, "exactly one user message: %r" % msgs)
        self.assertEqual(users[0]["id"], bodies[0]["message_id"])

        # a later repeat still answers the first response, and creates nothing
        again = self.req("POST", "/api/threads/%s/messages" % tid, {"content": "once"},
                         headers={"Idempotency-Key": key})
        self.assertStatus(again, 201)
        self.assertEqual(again.body, bodies[0], "a later repeat returns the first response")
        self.assertEqual(len(self.req("GET", "/api/threads/%s/runs" % tid).body["runs"]), 1)

        # a different key makes a new run
        other = self.req("POST", "/api/threads/%s/messages" % tid, {"content": "once"},
                         headers={"Idempotency-Key": key + "-2"})
        self.assertStatus(other, 201)
        self.assertNotEqual(other.body["run_id"], bodies[0]["run_id"], "another key -> a new run")
        self.server.wait_run(other.body["run_id"])
        self.assertEqual(len(self.req("GET", "/api/threads/%s/runs" % tid).body["runs"]), 2)

    def test_idempotency_key_is_per_thread(self):
        t1 = self.server.create_thread()
        t2 = self.server.create_thread()
        key = "shared-" + uuid.uuid4().hex
        a = self.server.post_message(t1["thread_id"], "hi", headers={"Idempotency-Key": key})
        b = self.server.post_message(t2["thread_id"], "hi", headers={"Idempotency-Key": key})
        self.assertNotEqual(a["run_id"], b["run_id"], "the same key on another thread is a new request")
        self.assertEqual(b["thread_id"], t2["thread_id"])

    def test_idempotency_key_length(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        r = self.req("POST", "/api/threads/%s/messages" % tid, {"content": "x"},
                     headers={"Idempotency-Key": "k" * 256})
        self.assertValidation(r, "Idempotency-Key of 256 chars")
        self.assertThreadUntouched(tid, "a too long Idempotency-Key")
        r = self.req("POST", "/api/threads/%s/messages" % tid, {"content": "x"},
                     headers={"Idempotency-Key": uuid.uuid4().hex + "k" * 223})
        self.assertStatus(r, 201, "Idempotency-Key of 255 chars is valid")


class SerialRunsTest(support.ServerTestCase):
    """Runs of one thread execute one at a time, in creation order."""
    server_args = ["--demo-token-delay-ms", "20", "--demo-tool-delay-ms", "10"]

    def test_runs_of_a_thread_do_not_overlap(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        posted = [self.server.post_message(tid, "serial number %d" % i) for i in range(3)]
        runs = [self.server.wait_run(p["run_id"], timeout=30) for p in posted]
        for r in runs:
            self.assertEqual(r["status"], "done")
        for a, b in zip(runs, runs[1:]):
            self.assertGreaterEqual(b["started_at"], a["finished_at"],
                                    "run %s started before the previous run of its thread finished: %r / %r"
                                    % (b["run_id"], a, b))
        msgs = self.server.get_thread(tid)["messages"]
        self.assertEqual([m["role"] for m in msgs], ["user"] * 3 + ["assistant"] * 3,
                         "three posts at once: three user messages, then the replies in order")
        self.assertEqual([m["run_id"] for m in msgs[3:]], [p["run_id"] for p in posted],
                         "assistant messages appear in run order")

    def test_second_run_sees_history(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        p1 = self.server.post_message(tid, "my name is Zoë")
        self.assertEqual(self.server.wait_run(p1["run_id"])["status"], "done")
        p2 = self.server.post_message(tid, "what is my name?")
        r2 = self.server.wait_run(p2["run_id"])
        self.assertEqual(r2["status"], "done")
        msgs = self.server.get_thread(tid)["messages"]
        self.assertEqual([(m["role"], m["run_id"]) for m in msgs],
                         [("user", p1["run_id"]), ("assistant", p1["run_id"]),
                          ("user", p2["run_id"]), ("assistant", p2["run_id"])],
                         "history: user, assistant, user, assistant: %r" % msgs)
        self.assertEqual(msgs[0]["content"], "my name is Zoë")
        self.assertEqual(msgs[2]["content"], "what is my name?")
        for m, p in ((msgs[1], p1), (msgs[3], p2)):
            final = [json.loads(e.data) for e in self.server.events(p["run_id"]) if e.event == "final"]
            self.assertEqual(m["content"], final[0]["text"])
            self.assertEqual(m["id"], final[0]["message_id"])

    def test_independent_threads_run_concurrently(self):
        """Serialization is per thread: runs of two threads overlap in time."""
        srv = harness.Server(["--demo-token-delay-ms", "100", "--demo-tool-delay-ms", "10"])
        self.addCleanup(srv.cleanup)
        srv.start()
        u = srv.create_user()
        a = srv.create_thread(u["user_id"])
        b = srv.create_thread(u["user_id"])
        pa = srv.post_message(a["thread_id"], "one two three four five")
        pb = srv.post_message(b["thread_id"], "one two three four five")
        ra = srv.wait_run(pa["run_id"])
        rb = srv.wait_run(pb["run_id"])
        self.assertLess(rb["started_at"], ra["finished_at"],
                        "runs of different threads should not wait for each other: %r %r" % (ra, rb))


if __name__ == "__main__":
    unittest.main()
