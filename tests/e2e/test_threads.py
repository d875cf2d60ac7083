"""Threads: create, get with messages, delete, list runs."""
import json
import time
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support


class ThreadsTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "5", "--demo-tool-delay-ms", "5"]

    def test_create_thread_without_title(self):
        u = self.server.create_user()
        r = self.req("POST", "/api/threads", {"user_id": u["user_id"]})
        self.assertStatus(r, 201, "POST /api/threads")
        self.assertJson(r)
        self.assertUuid4(r.body.get("thread_id"), "thread_id")
        self.assertEqual(r.body.get("user_id"), u["user_id"])
        self.assertIn("title", r.body, "title must be present (null): %r" % r.body)
        self.assertIsNone(r.body["title"])
        self.assertTimestamp(r.body.get("created_at"), "created_at")

    def test_create_thread_with_title(self):
        u = self.server.create_user()
        r = self.req("POST", "/api/threads", {"user_id": u["user_id"], "title": "Über ☃ plans"})
        self.assertStatus(r, 201)
        self.assertEqual(r.body.get("title"), "Über ☃ plans")
        g = self.server.get_thread(r.body["thread_id"])
        self.assertEqual(g.get("title"), "Über ☃ plans")
        self.assertEqual(g.get("user_id"), u["user_id"])
        self.assertEqual(g.get("created_at"), r.body["created_at"])
        self.assertEqual(g.get("messages"), [])

    def test_thread_ids_are_distinct(self):
        u = self.server.create_user()
        ids = {self.server.create_thread(u["user_id"])["thread_id"] for _ in range(5)}
        self.assertEqual(len(ids), 5)

    def test_unknown_user_is_404(self):
        r = self.req("POST", "/api/threads", {"user_id": 987654321})
        self.assertProblem(r, 404, "POST /api/threads for an unknown user")
        self.assertServerAlive()

    def test_get_unknown_thread_is_404(self):
        for tid in ("7d0b8a9e-4c1e-4b7a-9f1e-2a3b4c5d6e7f", "not-a-uuid", "123",
                    "7d0b8a9e4c1e4b7a9f1e2a3b4c5d6e7f", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"):
            with self.subTest(tid):
                r = self.req("GET", "/api/threads/%s" % tid)
                self.assertProblem(r, 404, "GET /api/threads/%s" % tid)

    def test_get_thread_with_messages_oldest_first(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        p = self.server.post_message(tid, "first question")
        run = self.server.wait_run(p["run_id"])
        self.assertEqual(run["status"], "done")
        events = self.server.events(p["run_id"])
        final = [json.loads(e.data) for e in events if e.event == "final"]
        self.assertEqual(len(final), 1, "one final event: %s" % self.signature(events))

        g = self.req("GET", "/api/threads/%s" % tid)
        self.assertStatus(g, 200)
        self.assertJson(g)
        body = g.body
        self.assertEqual(body.get("thread_id"), tid)
        self.assertEqual(body.get("user_id"), t["user_id"])
        self.assertIn("title", body)
        self.assertEqual(body.get("created_at"), t["created_at"])
        msgs = body.get("messages")
        self.assertIsInstance(msgs, list)
        self.assertEqual([m.get("role") for m in msgs], ["user", "assistant"], "messages: %r" % msgs)
        for m in msgs:
            for key in ("id", "role", "content", "created_at", "run_id"):
                self.assertIn(key, m, "message lacks %r: %r" % (key, m))
            self.assertUuid4(m["id"], "message id")
            self.assertTimestamp(m["created_at"], "message created_at")
            self.assertEqual(m["run_id"], p["run_id"], "both messages belong to the run: %r" % m)
        user, assistant = msgs
        self.assertEqual(user["id"], p["message_id"], "user message id == message_id of the post")
        self.assertEqual(user["content"], "first question")
        self.assertEqual(assistant["content"], final[0]["text"], "assistant message == final text")
        self.assertEqual(assistant["id"], final[0]["message_id"], "assistant message id == final.message_id")
        self.assertLessEqual(user["created_at"], assistant["created_at"])

    def test_list_runs_oldest_first(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        posted = [self.server.post_message(tid, "message %d" % i) for i in range(3)]
        for p in posted:
            self.server.wait_run(p["run_id"])
        r = self.req("GET", "/api/threads/%s/runs" % tid)
        self.assertStatus(r, 200, "GET /api/threads/{id}/runs")
        self.assertJson(r)
        runs = r.body.get("runs")
        self.assertIsInstance(runs, list, "body: %r" % r.body)
        self.assertEqual([x.get("run_id") for x in runs], [p["run_id"] for p in posted],
                         "runs must be listed oldest first")
        for x in runs:
            self.assertEqual(x, self.server.get_run(x["run_id"]), "a listed run equals GET /api/runs/{id}")
            self.assertEqual(x.get("thread_id"), tid)
            self.assertEqual(x.get("status"), "done")

    def test_list_runs_of_unknown_thread_is_404(self):
        for tid in ("7d0b8a9e-4c1e-4b7a-9f1e-2a3b4c5d6e7f", "nope"):
            r = self.req("GET", "/api/threads/%s/runs" % tid)
            self.assertProblem(r, 404, "GET runs of %s" % tid)

    def test_delete_thread(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        p = self.server.post_message(tid, "to be deleted")
        self.server.wait_run(p["run_id"])

        r = self.req("DELETE", "/api/threads/%s" % tid)
        self.assertStatus(r, 204, "DELETE /api/threads/{id}")
        self.assertEqual(r.raw, b"", "204 has no body")
        self.assertTrue(r.headers.get("x-request-id"), "204 without X-Request-Id")

        self.assertProblem(self.req("GET", "/api/threads/%s" % tid), 404, "thread after delete")
        self.assertProblem(self.req("GET", "/api/runs/%s" % p["run_id"]), 404, "run after delete")
        self.assertProblem(self.req("GET", "/api/threads/%s/runs" % tid), 404, "runs list after delete")
        with self.server.sse("/api/runs/%s/events" % p["run_id"]) as s:
            self.assertEqual(s.status, 404, "event stream of a deleted run must be 404")
        self.assertProblem(self.req("POST", "/api/runs/%s/cancel" % p["run_id"]), 404, "cancel after delete")
        self.assertProblem(self.req("POST", "/api/threads/%s/messages" % tid, {"content": "x"}), 404,
                           "post message after delete")
        self.assertProblem(self.req("DELETE", "/api/threads/%s" % tid), 404, "second delete")
        lst = self.req("GET", "/api/users/%d/threads" % t["user_id"])
        self.assertNotIn(tid, [x["thread_id"] for x in lst.body.get("threads", [])])

    def test_delete_thread_with_active_run(self):
        """Active runs are canceled first: a client streaming one is not left hanging."""
        srv = harness.Server(["--demo-token-delay-ms", "200", "--demo-tool-delay-ms", "10"])
        self.addCleanup(srv.cleanup)
        srv.start()
        t = srv.create_thread()
        tid = t["thread_id"]
        p1 = srv.post_message(tid, "one two three four five six seven eight nine ten")
        p2 = srv.post_message(tid, "queued behind")
        with srv.sse("/api/runs/%s/events" % p1["run_id"], timeout=20) as s:
            self.assertEqual(s.status, 200)
            while True:
                e = s.next_event(10)
                self.assertIsNotNone(e, "stream ended before the first token")
                if e.event == "token":
                    break
            r = srv.request("DELETE", "/api/threads/%s" % tid)
            self.assertStatus(r, 204, "DELETE a thread with a running and a queued run")
            t0 = time.monotonic()
            try:
                s.read_all(5)
            except TimeoutError:
                self.fail("the stream of a run of a deleted thread is still open 5 s after the delete")
            self.assertLess(time.monotonic() - t0, 5.0)
        for p in (p1, p2):
            self.assertProblem(srv.request("GET", "/api/runs/%s" % p["run_id"]), 404, "run after delete")
        self.assertEqual(srv.request("GET", "/healthz").status, 200)
        # the service keeps working
        t2 = srv.create_thread(t["user_id"])
        p3 = srv.post_message(t2["thread_id"], "still alive")
        srv2_run = srv.get_run(p3["run_id"])
        self.assertIn(srv2_run["status"], ("queued", "running"))


if __name__ == "__main__":
    unittest.main()
