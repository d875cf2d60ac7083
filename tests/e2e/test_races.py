"""Timing races seen from the outside: resumes at random moments of live runs, cancels racing
with the end of runs."""
import concurrent.futures
import json
import random
import re
import time
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support

ANY_END_RE = re.compile(
    r"^(state:running (tool_start (tool_end )?)*(token )*(final state:done done:done"
    r"|canceled state:canceled done:canceled)"
    r"|canceled state:canceled done:canceled)$")


class RacesTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "3", "--demo-tool-delay-ms", "3"]

    def test_random_resumes_during_live_runs(self):
        """Clients join live runs at random moments with Last-Event-ID <= what exists: each gets exactly
        the events after its resume point (the replay/live hand-over has no gap and no duplicate)."""
        n_runs, n_clients = 10, 8
        u = self.server.create_user()
        runs = []
        for i in range(n_runs):
            t = self.server.create_thread(u["user_id"])
            runs.append(self.server.post_message(t["thread_id"], " ".join("r%dw%d" % (i, j) for j in range(60)))
                        ["run_id"])
        rng = random.Random(42)
        plans = [(rid, rng.uniform(0, 0.35), rng.random()) for rid in runs for _ in range(n_clients)]

        def client(plan):
            rid, delay, frac = plan
            time.sleep(delay)
            last_seq = self.server.get_run(rid)["last_seq"]
            k = int(last_seq * frac)
            with self.server.sse("/api/runs/%s/events" % rid, headers={"Last-Event-ID": str(k)}, timeout=30) as s:
                if s.status == 204:
                    return rid, k, None
                if s.status != 200:
                    return rid, k, "HTTP %s" % s.status
                return rid, k, s.read_all(30)

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(plans)) as pool:
            results = list(pool.map(client, plans, timeout=120))
        logs = {rid: self.event_tuples(self.server.events(rid)) for rid in runs}
        for rid, k, got in results:
            self.assertNotIsInstance(got, str, "run %s resume at %d: %s" % (rid, k, got))
            if got is None:
                self.assertGreaterEqual(k, len(logs[rid]), "204 although events after %d exist" % k)
                continue
            self.assertEqual(self.event_tuples(got), logs[rid][k:],
                             "run %s resumed at %d: got ids %s" % (rid, k, [e.id for e in got][:50]))

    def test_cancel_racing_with_completion(self):
        """Cancels at random moments, some after the run ended: the answer, the run and its log agree."""
        n = 24
        u = self.server.create_user()
        posted = []
        for i in range(n):
            t = self.server.create_thread(u["user_id"])
            posted.append(self.server.post_message(t["thread_id"], "race %d with a few words" % i))
        rng = random.Random(9)

        def cancel(p, delay):
            time.sleep(delay)
            return p, self.server.request("POST", "/api/runs/%s/cancel" % p["run_id"])

        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            results = list(pool.map(cancel, posted, [rng.uniform(0, 0.12) for _ in posted], timeout=60))
        outcomes = set()
        for p, r in results:
            rid = p["run_id"]
            self.assertStatus(r, 200, "cancel %s" % rid)
            self.assertEqual(r.body.get("ok"), True)
            self.assertIn(r.body.get("status"), ("canceled", "done"), "cancel answer: %r" % r.body)
            run = self.server.wait_run(rid, timeout=20)
            events = self.server.events(rid)
            sig = harness.event_signature(events)
            self.assertContiguous(events, 1, "run %s" % rid)
            self.assertRegex(" ".join(sig), ANY_END_RE, "run %s: %s" % (rid, harness.compress_signature(sig)))
            end_status = json.loads(events[-1].data)["status"]
            self.assertEqual(run["status"], end_status, "run status vs its done event")
            self.assertEqual(r.body["status"], run["status"],
                             "run %s: cancel answered %r but the run ended %r"
                             % (rid, r.body["status"], run["status"]))
            self.assertEqual(run["last_seq"], len(events))
            outcomes.add(run["status"])
            msgs = self.server.get_thread(p["thread_id"])["messages"]
            tokens = self.tokens_text(events)
            replies = [m["content"] for m in msgs if m["role"] == "assistant"]
            self.assertEqual(replies, [tokens] if tokens else [],
                             "run %s (%s): the stored reply must be the streamed text" % (rid, run["status"]))
        self.assertServerAlive()


if __name__ == "__main__":
    unittest.main()
