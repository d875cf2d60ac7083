"""Extensions: multitask strategy on post message, run filters and paging, bulk cancel of a thread."""
import unittest
import uuid

try:
    from . import harness, support
except ImportError:
    import harness, support


class MultitaskTest(support.ServerTestCase):
    # Slow enough that a run is still active when the next message is posted.
    server_args = ["--demo-token-delay-ms", "100", "--demo-tool-delay-ms", "50"]

    def post(self, tid, content="hello", strategy=None, headers=None):
        body = {"content": content}
        if strategy is not None:
            body["multitask_strategy"] = strategy
        return self.req("POST", "/api/threads/%s/messages" % tid, body, headers=headers)

    def runs(self, tid, query=""):
        r = self.req("GET", "/api/threads/%s/runs%s" % (tid, query))
        self.assertStatus(r, 200, "GET runs " + query)
        return r.body

    def test_enqueue_is_the_default_and_explicit(self):
        t = self.server.create_thread()
        a = self.post(t["thread_id"], "first")
        b = self.post(t["thread_id"], "second", "enqueue")
        self.assertStatus(a, 201)
        self.assertStatus(b, 201)
        self.assertEqual(self.server.wait_run(a.body["run_id"])["status"], "done")
        self.assertEqual(self.server.wait_run(b.body["run_id"])["status"], "done")

    def test_reject_answers_409_with_the_active_run_and_stores_nothing(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        a = self.post(tid, "first")
        self.assertStatus(a, 201)
        r = self.post(tid, "second", "reject")
        self.assertProblem(r, 409, "reject while a run is active")
        self.assertEqual(r.body["run_id"], a.body["run_id"])
        msgs = self.server.get_thread(tid)["messages"]
        self.assertEqual([m["content"] for m in msgs if m["role"] == "user"], ["first"])
        self.assertEqual(len(self.runs(tid)["runs"]), 1)
        # Once the thread is idle, reject posts normally.
        self.server.wait_run(a.body["run_id"])
        ok = self.post(tid, "third", "reject")
        self.assertStatus(ok, 201)
        self.server.wait_run(ok.body["run_id"])

    def test_interrupt_cancels_active_runs_and_then_runs(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        a = self.post(tid, "first")
        b = self.post(tid, "second")
        self.server.wait_run(a.body["run_id"], statuses=("running",))
        c = self.post(tid, "third", "interrupt")
        self.assertStatus(c, 201)
        self.assertEqual(self.server.wait_run(a.body["run_id"])["status"], "canceled")
        self.assertEqual(self.server.wait_run(b.body["run_id"])["status"], "canceled")
        self.assertEqual(self.server.wait_run(c.body["run_id"])["status"], "done")
        sig = harness.event_signature(self.server.events(a.body["run_id"]))
        self.assertEqual(sig[-2:], ["state:canceled", "done:canceled"])

    def test_interrupt_repeat_with_idempotency_key_cancels_nothing(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        h = {"Idempotency-Key": "k-" + uuid.uuid4().hex}
        c = self.post(tid, "one", "interrupt", headers=h)
        again = self.post(tid, "one", "interrupt", headers=h)
        self.assertEqual(again.body["run_id"], c.body["run_id"])
        self.assertEqual(self.server.wait_run(c.body["run_id"])["status"], "done")

    def test_unknown_strategy_is_422_naming_the_field(self):
        t = self.server.create_thread()
        for bad in ("queue", "", 3, True, ["reject"]):
            r = self.post(t["thread_id"], "x", bad)
            self.assertProblem(r, 422, "strategy %r" % (bad,))
            self.assertEqual(r.body["errors"][0]["loc"], ["body", "multitask_strategy"])
        self.assertEqual(self.runs(t["thread_id"])["runs"], [])


class RunFiltersTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "100", "--demo-tool-delay-ms", "50"]

    def test_filter_by_status_and_page_with_before(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        ids = [self.server.post_message(tid, "m%d" % i)["run_id"] for i in range(5)]
        # First one running, the rest queued behind it.
        self.server.wait_run(ids[0], statuses=("running",))
        r = self.req("GET", "/api/threads/%s/runs?status=queued" % tid)
        self.assertStatus(r, 200)
        self.assertEqual([x["run_id"] for x in r.body["runs"]], ids[1:])
        self.assertIsNone(r.body["next"])
        r = self.req("GET", "/api/threads/%s/runs?status=running" % tid)
        self.assertEqual([x["run_id"] for x in r.body["runs"]], ids[:1])

        page = self.req("GET", "/api/threads/%s/runs?limit=2" % tid).body
        self.assertEqual([x["run_id"] for x in page["runs"]], ids[3:5])
        self.assertEqual(page["next"], ids[3])
        page = self.req("GET", "/api/threads/%s/runs?limit=2&before=%s" % (tid, page["next"])).body
        self.assertEqual([x["run_id"] for x in page["runs"]], ids[1:3])
        page = self.req("GET", "/api/threads/%s/runs?limit=2&before=%s" % (tid, page["next"])).body
        self.assertEqual([x["run_id"] for x in page["runs"]], ids[0:1])
        self.assertIsNone(page["next"])
        unknown = self.req("GET", "/api/threads/%s/runs?before=%s" % (tid, uuid.uuid4())).body
        self.assertEqual(unknown["runs"], [])

        c = self.req("POST", "/api/threads/%s/cancel" % tid)
        self.assertStatus(c, 200, "bulk cancel")
        self.assertJson(c)
        self.assertEqual(sorted(c.body["canceled"]), sorted(ids))
        for rid in ids:
            self.assertEqual(self.server.get_run(rid)["status"], "canceled")
        again = self.req("POST", "/api/threads/%s/cancel" % tid)
        self.assertStatus(again, 200)
        self.assertEqual(again.body["canceled"], [])
        r = self.req("GET", "/api/threads/%s/runs?status=canceled" % tid)
        self.assertEqual(len(r.body["runs"]), 5)

    def test_bad_filters_are_422(self):
        t = self.server.create_thread()
        for q, field in (("status=finished", "status"), ("limit=0", "limit"), ("limit=201", "limit"),
                         ("limit=x", "limit"), ("before=nope", "before")):
            r = self.req("GET", "/api/threads/%s/runs?%s" % (t["thread_id"], q))
            self.assertProblem(r, 422, q)
            self.assertEqual(r.body["errors"][0]["loc"], ["query", field], q)

    def test_unknown_thread_is_404(self):
        self.assertProblem(self.req("POST", "/api/threads/%s/cancel" % uuid.uuid4()), 404)
        self.assertProblem(self.req("POST", "/api/threads/nope/cancel"), 404)
        self.assertProblem(self.req("GET", "/api/threads/%s/runs?status=done" % uuid.uuid4()), 404)


if __name__ == "__main__":
    unittest.main()
