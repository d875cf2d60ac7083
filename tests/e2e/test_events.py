"""Run event logs: the exact orders and data shapes of success and cancel; cancel semantics."""
import json
import time
import unittest
import uuid

try:
    from . import harness, support
except ImportError:
    import harness, support


class SuccessEventsTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "5", "--demo-tool-delay-ms", "5"]

    def run_to_end(self, content):
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], content)
        events = self.server.events(p["run_id"])
        return t, p, events

    def test_success_order_and_data(self):
        marker = "quote-" + uuid.uuid4().hex[:8]
        t, p, events = self.run_to_end("please repeat %s now" % marker)
        self.assertContiguous(events, 1)
        self.assertSuccessLog(events)
        self.assertFrames(events)
        data = [json.loads(e.data) for e in events]
        types = [e.event for e in events]

        self.assertEqual(data[0].get("status"), "running")
        self.assertEqual(data[-2].get("status"), "done")
        self.assertEqual(data[-1].get("status"), "done")

        starts = [d for e, d in zip(events, data) if e.event == "tool_start"]
        ends = [d for e, d in zip(events, data) if e.event == "tool_end"]
        self.assertTrue(starts, "the demo engine emits a tool step: %s" % self.signature(events))
        for s, e in zip(starts, ends):
            self.assertIsInstance(s.get("tool"), str)
            self.assertTrue(s["tool"])
            self.assertIsInstance(s.get("input"), dict, "tool_start.input must be an object: %r" % s)
            self.assertEqual(e.get("tool"), s["tool"], "tool_end names the same tool")
            self.assertIsInstance(e.get("output"), dict, "tool_end.output must be an object: %r" % e)

        tokens = [d for e, d in zip(events, data) if e.event == "token"]
        self.assertTrue(tokens, "no token events")
        for d in tokens:
            self.assertIsInstance(d.get("text"), str, "token.text must be a string: %r" % d)
        final = data[types.index("final")]
        self.assertEqual(final.get("text"), "".join(d["text"] for d in tokens),
                         "final.text must be the concatenation of the tokens")
        self.assertUuid4(final.get("message_id"), "final.message_id")
        self.assertIn(marker, final["text"], "the demo reply quotes the user's message")
        self.assertTrue(any(ord(c) > 127 for c in final["text"]),
                        "the demo reply contains a non-ASCII character: %r" % final["text"])

        run = self.server.get_run(p["run_id"])
        self.assertEqual(run["status"], "done")
        self.assertEqual(run["last_seq"], len(events))
        msgs = self.server.get_thread(t["thread_id"])["messages"]
        self.assertEqual(msgs[-1]["role"], "assistant")
        self.assertEqual(msgs[-1]["content"], final["text"], "the stored reply == final.text")
        self.assertEqual(msgs[-1]["id"], final["message_id"])

    def test_utf8_survives_end_to_end(self):
        content = "Grüße aus Köln — 日本語 🎉 ok"
        t, p, events = self.run_to_end(content)
        self.assertSuccessLog(events)
        self.assertFrames(events)
        final = [json.loads(e.data) for e in events if e.event == "final"][0]
        for word in content.split():
            self.assertIn(word, final["text"], "word %r of the message must come back intact" % word)
        msgs = self.server.get_thread(t["thread_id"])["messages"]
        self.assertEqual(msgs[0]["content"], content, "the stored user message is byte-exact")
        self.assertEqual(msgs[-1]["content"], final["text"])

    def test_state_is_consistent_with_what_the_stream_shows(self):
        """Whatever a client has seen is already stored: last_seq never lags behind a received event,
        and once `done` arrives the run is finished and the reply is in the thread."""
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], "consistency check with some words")
        with self.server.sse("/api/runs/%s/events" % p["run_id"], timeout=30) as s:
            self.assertEqual(s.status, 200)
            while True:
                e = s.next_event(10)
                self.assertIsNotNone(e, "stream ended without done")
                run = self.server.get_run(p["run_id"])
                self.assertGreaterEqual(run["last_seq"], e.seq,
                                        "a client received seq %d but the run says last_seq %d"
                                        % (e.seq, run["last_seq"]))
                if e.event == "done":
                    break
            final = json.loads([x for x in s.events if x.event == "final"][0].data)
        self.assertEqual(run["status"], "done", "at `done` the run is done: %r" % run)
        self.assertTimestamp(run["finished_at"], "finished_at at done")
        self.assertEqual(run["last_seq"], e.seq)
        msgs = self.server.get_thread(t["thread_id"])["messages"]
        self.assertEqual(msgs[-1]["id"], final["message_id"], "at `done` the reply is in the thread: %r" % msgs)
        self.assertEqual(msgs[-1]["content"], final["text"])

    def test_cancel_finished_run_is_idempotent(self):
        t, p, events = self.run_to_end("finish me")
        before = self.server.get_run(p["run_id"])
        for _ in range(2):
            r = self.req("POST", "/api/runs/%s/cancel" % p["run_id"])
            self.assertStatus(r, 200, "cancel of a done run")
            self.assertEqual(r.body, {"ok": True, "status": "done"}, "cancel of a done run answers its status")
        self.assertEqual(self.server.get_run(p["run_id"]), before, "cancel of a done run changes nothing")
        self.assertEqual(self.event_tuples(self.server.events(p["run_id"])), self.event_tuples(events),
                         "cancel of a done run appends nothing")

    def test_cancel_unknown_run_is_404(self):
        for rid in (str(uuid.uuid4()), "nope"):
            with self.subTest(rid):
                self.assertProblem(self.req("POST", "/api/runs/%s/cancel" % rid), 404, "cancel %s" % rid)


class CancelTest(support.ServerTestCase):
    """Cancel while running and while queued (long token delay keeps runs alive)."""
    server_args = ["--demo-token-delay-ms", "150", "--demo-tool-delay-ms", "10"]

    def read_until_tokens(self, stream, n):
        seen = []
        while sum(1 for e in seen if e.event == "token") < n:
            e = stream.next_event(10)
            self.assertIsNotNone(e, "stream ended early: %s" % self.signature(seen))
            seen.append(e)
        return seen

    def test_cancel_running_run(self):
        t = self.server.create_thread()
        words = " ".join("w%d" % i for i in range(40))
        p = self.server.post_message(t["thread_id"], words)
        rid = p["run_id"]
        with self.server.sse("/api/runs/%s/events" % rid, timeout=30) as s:
            self.assertEqual(s.status, 200)
            self.read_until_tokens(s, 2)
            r = self.req("POST", "/api/runs/%s/cancel" % rid)
            t_cancel = time.monotonic()
            self.assertStatus(r, 200, "cancel a running run")
            self.assertEqual(r.body, {"ok": True, "status": "canceled"})
            try:
                events = s.read_all(5)
            except TimeoutError:
                self.fail("the stream did not end within 5 s of the cancel: %s" % self.signature(s.events))
            self.assertLess(s.eof_time - t_cancel, 1.0,
                            "the stream should end within ~1 s of the cancel (took %.2f s)"
                            % (s.eof_time - t_cancel))
        self.assertContiguous(events, 1)
        self.assertFrames(events)
        sig = harness.event_signature(events)
        self.assertRegex(" ".join(sig), support.CANCEL_RUNNING_RE,
                         "cancel order: %s" % harness.compress_signature(sig))
        self.assertNotIn("final", sig)
        by_type = {e.event: json.loads(e.data) for e in events}
        self.assertEqual(by_type["canceled"].get("reason"), "canceled")
        self.assertEqual(json.loads(events[-1].data).get("status"), "canceled")

        run = self.server.get_run(rid)
        self.assertEqual(run["status"], "canceled")
        self.assertTimestamp(run["finished_at"], "finished_at")
        self.assertEqual(run["last_seq"], len(events))
        partial = self.tokens_text(events)
        self.assertTrue(partial)
        msgs = self.server.get_thread(t["thread_id"])["messages"]
        assistant = [m for m in msgs if m["role"] == "assistant"]
        self.assertEqual(len(assistant), 1, "the partial reply is stored as an assistant message: %r" % msgs)
        self.assertEqual(assistant[0]["content"], partial, "stored partial reply == the tokens sent")
        self.assertEqual(assistant[0]["run_id"], rid)

        # the log is final: a replay gives the same, a second cancel changes nothing
        self.assertEqual(self.event_tuples(self.server.events(rid)), self.event_tuples(events))
        r = self.req("POST", "/api/runs/%s/cancel" % rid)
        self.assertStatus(r, 200)
        self.assertEqual(r.body, {"ok": True, "status": "canceled"})
        time.sleep(0.3)
        self.assertEqual(self.server.get_run(rid), run, "a second cancel changes nothing")

    def test_cancel_queued_run(self):
        t = self.server.create_thread()
        tid = t["thread_id"]
        p1 = self.server.post_message(tid, "first one")
        p2 = self.server.post_message(tid, "second one")
        with self.server.sse("/api/runs/%s/events" % p1["run_id"], timeout=30) as s1:
            self.assertEqual(s1.status, 200)
            self.read_until_tokens(s1, 1)
            self.assertEqual(self.server.get_run(p2["run_id"])["status"], "queued",
                             "the second run waits while the first runs")
            s2 = self.server.sse("/api/runs/%s/events" % p2["run_id"], timeout=10)
            self.addCleanup(s2.close)
            self.assertEqual(s2.status, 200)
            first = s2.next_item(5)
            self.assertEqual((first.kind, first.retry), ("retry", "3000"))
            r = self.req("POST", "/api/runs/%s/cancel" % p2["run_id"])
            self.assertStatus(r, 200, "cancel a queued run")
            self.assertEqual(r.body, {"ok": True, "status": "canceled"})
            run2 = self.server.get_run(p2["run_id"])
            self.assertEqual(run2["status"], "canceled", "a queued run is canceled at once")
            self.assertIsNone(run2["started_at"], "a run canceled while queued never started")
            try:
                live2 = s2.read_all(2)
            except TimeoutError:
                self.fail("a client streaming the queued run is not told it was canceled: %r" % s2.items)
            self.assertEqual(harness.event_signature(live2), ["canceled", "state:canceled", "done:canceled"],
                             "live stream of the queued run when it is canceled")
            ev2 = self.server.events(p2["run_id"], timeout=5)
            self.assertEqual(harness.event_signature(ev2), ["canceled", "state:canceled", "done:canceled"],
                             "events of a run canceled while queued")
            self.assertContiguous(ev2, 1)
            self.assertFrames(ev2)
            self.assertEqual(json.loads(ev2[0].data).get("reason"), "canceled")
            rest = s1.read_all(30)
        self.assertSuccessLog(rest, "the first run completes")
        run1 = self.server.get_run(p1["run_id"])
        self.assertEqual(run1["status"], "done")
        time.sleep(0.3)
        run2_after = self.server.get_run(p2["run_id"])
        self.assertEqual(run2_after, run2, "the canceled queued run never starts: %r" % run2_after)
        msgs = self.server.get_thread(tid)["messages"]
        self.assertEqual([(m["role"], m["run_id"]) for m in msgs],
                         [("user", p1["run_id"]), ("user", p2["run_id"]), ("assistant", p1["run_id"])],
                         "no reply for the canceled queued run: %r" % msgs)
        r = self.req("POST", "/api/runs/%s/cancel" % p1["run_id"])
        self.assertEqual(r.body, {"ok": True, "status": "done"}, "cancel after done answers done")

    def test_next_run_starts_after_cancel(self):
        """Canceling the running run lets the queued one start."""
        t = self.server.create_thread()
        tid = t["thread_id"]
        p1 = self.server.post_message(tid, " ".join("x%d" % i for i in range(50)))
        p2 = self.server.post_message(tid, "after")
        self.server.wait_run(p1["run_id"], statuses=("running",), timeout=10)
        self.assertEqual(self.req("POST", "/api/runs/%s/cancel" % p1["run_id"]).status, 200)
        r2 = self.server.wait_run(p2["run_id"], timeout=20)
        r1 = self.server.get_run(p1["run_id"])
        self.assertEqual(r1["status"], "canceled")
        self.assertEqual(r2["status"], "done")
        self.assertGreaterEqual(r2["started_at"], r1["finished_at"])


if __name__ == "__main__":
    unittest.main()
