"""Retention (CHATBOT_EVENT_RETENTION): events of runs ended longer ago are pruned by a periodic
task; the run stays (events_pruned: true) and its stream answers 410, never a silent empty one."""
import subprocess
import time
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support


class RetentionTest(support.ServerTestCase):
    server_env = {"CHATBOT_EVENT_RETENTION": "2s"}
    server_args = ["--demo-token-delay-ms", "1", "--demo-tool-delay-ms", "1"]

    def test_ended_runs_lose_their_events_and_say_so(self):
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], "keep the message")
        run = self.server.wait_run(p["run_id"])
        self.assertEqual(run["status"], "done")
        self.assertFalse(run["events_pruned"])
        last_seq = run["last_seq"]
        self.assertGreater(last_seq, 0)
        # Still streamable within the retention.
        self.assertEqual(harness.event_signature(self.server.events(p["run_id"]))[-1], "done:done")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            run = self.server.get_run(p["run_id"])
            if run["events_pruned"]:
                break
            time.sleep(0.2)
        self.assertTrue(run["events_pruned"], run)
        self.assertEqual(run["status"], "done")
        self.assertEqual(run["last_seq"], last_seq, "last_seq survives the pruning")
        r = self.req("GET", "/api/runs/%s/events" % p["run_id"])
        self.assertProblem(r, 410, "stream of a pruned run")
        self.assertIn("pruned", r.body["detail"])
        r = self.req("GET", "/api/runs/%s/events" % p["run_id"], headers={"Last-Event-ID": str(last_seq)})
        self.assertProblem(r, 410, "stream of a pruned run, resumed at its end")
        # The run and the conversation stay.
        msgs = self.server.get_thread(t["thread_id"])["messages"]
        self.assertEqual([m["role"] for m in msgs], ["user", "assistant"])
        runs = self.req("GET", "/api/threads/%s/runs" % t["thread_id"]).body["runs"]
        self.assertTrue(runs[0]["events_pruned"])
        # A new run is not touched while it is young.
        p2 = self.server.post_message(t["thread_id"], "again")
        self.assertFalse(self.server.wait_run(p2["run_id"])["events_pruned"])

    def test_a_run_in_progress_is_never_pruned(self):
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], "x")
        self.assertFalse(self.server.get_run(p["run_id"])["events_pruned"])


class RetentionConfigTest(unittest.TestCase):
    def test_unparseable_retention_is_refused_at_start(self):
        for bad in ("30", "2x", "-5s", "d", "1.5h", "0s"):
            p = subprocess.run([harness.binary_path(), "serve", "--port", "0", "--database",
                                "sqlite::memory:", "--event-retention", bad],
                               capture_output=True, text=True, timeout=20, env=harness.clean_env())
            self.assertEqual(p.returncode, 2, "%r: %s" % (bad, p.stderr))
            self.assertIn("--event-retention", p.stderr)
        p = subprocess.run([harness.binary_path(), "serve", "--port", "0", "--database", "sqlite::memory:"],
                           capture_output=True, text=True, timeout=20,
                           env=harness.clean_env({"CHATBOT_EVENT_RETENTION": "12 h"}))
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("CHATBOT_EVENT_RETENTION", p.stderr)


if __name__ == "__main__":
    unittest.main()
