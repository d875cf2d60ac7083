"""Persistence across restarts, and recovery of runs left behind by a killed process."""
import json
import time
import unittest
import uuid

try:
    from . import harness, support
except ImportError:
    import harness, support


class RestartTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "5", "--demo-tool-delay-ms", "5"]

    def snapshot(self, users, threads, runs):
        srv = self.server
        snap = {"users": [srv.request("GET", "/api/users/%d" % u).body for u in users],
                "user_threads": [srv.request("GET", "/api/users/%d/threads" % u).body for u in users],
                "threads": [srv.get_thread(t) for t in threads],
                "thread_runs": [srv.request("GET", "/api/threads/%s/runs" % t).body for t in threads],
                "runs": [srv.get_run(r) for r in runs],
                "events": [self.event_tuples(srv.events(r)) for r in runs]}
        return snap

    def test_everything_survives_a_restart(self):
        srv = self.server
        users = [srv.create_user()["user_id"] for _ in range(2)]
        threads, runs = [], []
        for u in users:
            for title in (None, "Titled ✓"):
                t = srv.create_thread(u, title=title)
                threads.append(t["thread_id"])
                for i in range(2):
                    p = srv.post_message(t["thread_id"], "persist me %d ünïcode" % i)
                    runs.append(p["run_id"])
        # one canceled run too
        p = srv.post_message(threads[0], "to be canceled")
        srv.request("POST", "/api/runs/%s/cancel" % p["run_id"])
        runs.append(p["run_id"])
        for r in runs:
            srv.wait_run(r)
        before = self.snapshot(users, threads, runs)

        srv.restart()
        after = self.snapshot(users, threads, runs)
        for key in before:
            self.assertEqual(after[key], before[key], "%s differ after a restart" % key)

        # and the service goes on from there
        nu = srv.create_user()
        self.assertNotIn(nu["user_id"], users, "a new user after restart must get a new id")
        dup = srv.request("POST", "/api/users", {"name": before["users"][0]["name"]})
        self.assertEqual(dup.status, 409, "names stay unique across restarts")
        p = srv.post_message(threads[1], "after restart")
        self.assertEqual(srv.wait_run(p["run_id"])["status"], "done")
        msgs = srv.get_thread(threads[1])["messages"]
        self.assertEqual(msgs[:len(before["threads"][1]["messages"])], before["threads"][1]["messages"])
        self.assertEqual([m["role"] for m in msgs[-2:]], ["user", "assistant"])

    def test_idempotency_key_survives_a_restart(self):
        """Keys are kept >= 24 h, so a restart does not forget them."""
        srv = self.server
        t = srv.create_thread()
        key = "restart-key-" + uuid.uuid4().hex
        first = srv.post_message(t["thread_id"], "idempotent across restarts", headers={"Idempotency-Key": key})
        srv.wait_run(first["run_id"])
        srv.restart()
        again = srv.request("POST", "/api/threads/%s/messages" % t["thread_id"],
                            {"content": "idempotent across restarts"}, headers={"Idempotency-Key": key})
        self.assertEqual((again.status, again.body), (201, first),
                         "an Idempotency-Key is remembered across a restart")
        runs = srv.request("GET", "/api/threads/%s/runs" % t["thread_id"]).body["runs"]
        self.assertEqual([r["run_id"] for r in runs], [first["run_id"]], "the repeated key created nothing")


class KillRecoveryTest(support.ServerTestCase):
    """SIGKILL while one run is running and another is queued on the same thread."""
    server_args = ["--demo-token-delay-ms", "200", "--demo-tool-delay-ms", "10"]

    def test_running_run_becomes_error_and_queued_run_executes(self):
        srv = self.server
        t = srv.create_thread()
        tid = t["thread_id"]
        p1 = srv.post_message(tid, " ".join("w%d" % i for i in range(40)))
        key = "kill-key-" + uuid.uuid4().hex
        p2 = srv.post_message(tid, "queued at kill time", headers={"Idempotency-Key": key})
        with srv.sse("/api/runs/%s/events" % p1["run_id"], timeout=20) as s:
            self.assertEqual(s.status, 200)
            seen = []
            while sum(1 for e in seen if e.event == "token") < 3:
                e = s.next_event(10)
                self.assertIsNotNone(e)
                seen.append(e)
            self.assertEqual(srv.get_run(p1["run_id"])["status"], "running")
            self.assertEqual(srv.get_run(p2["run_id"])["status"], "queued")
            srv.kill()
        srv.restart(args=["--demo-token-delay-ms", "5", "--demo-tool-delay-ms", "5"])

        run1 = srv.wait_run(p1["run_id"], timeout=60, interval=0.1)
        self.assertEqual(run1["status"], "error", "a run left running by a dead process ends in error")
        self.assertEqual(run1["error"], "executor lost")
        self.assertTimestamp(run1["finished_at"], "finished_at")
        ev1 = srv.events(p1["run_id"])
        self.assertContiguous(ev1, 1, "log of the lost run")
        self.assertFrames(ev1)
        self.assertEqual(harness.event_signature(ev1)[-3:], ["error", "state:error", "done:error"],
                         "the lost run's log ends with error, state(error), done: %s" % self.signature(ev1))
        self.assertEqual(json.loads(ev1[-3].data).get("error"), "executor lost")
        self.assertEqual(run1["last_seq"], len(ev1))
        self.assertEqual(self.event_tuples(ev1[:len(seen)]), self.event_tuples(seen),
                         "events a client saw before the crash are still in the log, unchanged")
        self.assertRegex(" ".join(harness.event_signature(ev1)),
                         r"^state:running (tool_start (tool_end )?)?(token )*error state:error done:error$",
                         "order of the lost run's log: %s" % self.signature(ev1))

        run2 = srv.wait_run(p2["run_id"], timeout=30)
        self.assertEqual(run2["status"], "done", "the queued run executes after the restart")
        ev2 = srv.events(p2["run_id"])
        self.assertContiguous(ev2, 1)
        self.assertSuccessLog(ev2, "queued run after restart")
        self.assertGreaterEqual(run2["started_at"], run1["finished_at"],
                                "the queued run starts only after the lost run is finalized")
        msgs = srv.get_thread(tid)["messages"]
        replies = [m for m in msgs if m["role"] == "assistant" and m["run_id"] == p2["run_id"]]
        self.assertEqual(len(replies), 1, "the queued run's reply is stored: %r" % msgs)
        again = srv.request("POST", "/api/threads/%s/messages" % tid, {"content": "queued at kill time"},
                            headers={"Idempotency-Key": key})
        self.assertEqual((again.status, again.body), (201, p2),
                         "an Idempotency-Key accepted before a crash is still honoured after it")


if __name__ == "__main__":
    unittest.main()
