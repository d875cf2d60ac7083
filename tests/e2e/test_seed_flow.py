"""The seed README's "Minimal Example Flow", steps 1-7: by hand over HTTP, and as the literal curl
commands run by bash."""
import json
import os
import re
import shutil
import subprocess
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support

# Steps 1-7 of the seed README, verbatim (only the port is replaced when run). Markers are echoed
# between the steps so that each step's output can be checked on its own.
SEED_STEPS = [
    ("1", """curl -X POST http://localhost:8000/api/users   -H "Content-Type: application/json"   -d '{"name":"smoke-user"}'"""),
    ("2", """THREAD_ID=$(curl -s -X POST http://localhost:8000/api/threads   -H "Content-Type: application/json"   -d '{"user_id": 1}'   | python3 -c "import sys, json; print(json.load(sys.stdin)['thread_id'])")

echo "THREAD_ID=$THREAD_ID\""""),
    ("3", """RUN_ID=$(curl -s -X POST http://localhost:8000/api/threads/$THREAD_ID/messages   -H "Content-Type: application/json"   -d '{"content":"hello"}'   | python3 -c "import sys, json; print(json.load(sys.stdin)['run_id'])")

echo "RUN_ID=$RUN_ID\""""),
    ("4", """curl http://localhost:8000/api/runs/$RUN_ID"""),
    ("5", """curl -N http://localhost:8000/api/runs/$RUN_ID/events"""),
    ("6", """curl -N http://localhost:8000/api/runs/$RUN_ID/events   -H "Last-Event-ID: 10\""""),
    ("7", """curl -X POST http://localhost:8000/api/runs/$RUN_ID/cancel"""),
]

SERVER_ARGS = ["--demo-token-delay-ms", "10", "--demo-tool-delay-ms", "10"]


def parse_sse_text(text):
    """Frames of an SSE body given as text: list of dicts with id/event/data, plus comments and retry."""
    frames, comments, retries = [], [], []
    cur = {}
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if line == "":
            if cur:
                frames.append(cur)
                cur = {}
            continue
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "retry":
            retries.append(value)
        else:
            cur[name] = value
    if cur:
        frames.append(cur)
    return frames, comments, retries


class SeedFlowHttpTest(support.ServerTestCase):
    """Steps 1-7 with a fresh database, checked over HTTP."""
    server_args = SERVER_ARGS

    @classmethod
    def setUpClass(cls):
        if harness.external_database_url() and not os.environ.get("CHATBOT_TEST_PG_DIR"):
            raise unittest.SkipTest("the seed flow needs a fresh database (user_id 1)")
        super().setUpClass()

    def test_seed_flow_steps_1_to_7(self):
        # 1. Create a user
        r = self.req("POST", "/api/users", {"name": "smoke-user"})
        self.assertStatus(r, 201, "step 1 POST /api/users")
        self.assertJson(r, "step 1")
        self.assertEqual(r.body.get("user_id"), 1, "step 1: the first user of a fresh database is 1: %r" % (r,))
        self.assertEqual(r.body.get("name"), "smoke-user")
        self.assertTimestamp(r.body.get("created_at"), "step 1 created_at")

        # 2. Create a thread
        r = self.req("POST", "/api/threads", {"user_id": 1})
        self.assertStatus(r, 201, "step 2 POST /api/threads")
        self.assertJson(r, "step 2")
        thread_id = r.body.get("thread_id")
        self.assertUuid4(thread_id, "step 2 thread_id")
        self.assertEqual(r.body.get("user_id"), 1)
        self.assertIn("title", r.body)
        self.assertIsNone(r.body["title"])
        self.assertTimestamp(r.body.get("created_at"), "step 2 created_at")

        # 3. Post a message
        r = self.req("POST", "/api/threads/%s/messages" % thread_id, {"content": "hello"})
        self.assertStatus(r, 201, "step 3 POST messages")
        self.assertJson(r, "step 3")
        run_id = r.body.get("run_id")
        self.assertUuid4(run_id, "step 3 run_id")
        self.assertUuid4(r.body.get("message_id"), "step 3 message_id")
        self.assertEqual(r.body.get("thread_id"), thread_id)
        self.assertEqual(r.body.get("status"), "queued")

        # 4. Get run status
        r = self.req("GET", "/api/runs/%s" % run_id)
        self.assertStatus(r, 200, "step 4 GET run")
        self.assertJson(r, "step 4")
        for key in ("run_id", "thread_id", "status", "created_at", "started_at", "finished_at", "error",
                    "last_seq"):
            self.assertIn(key, r.body, "step 4: run lacks %r: %r" % (key, r.body))
        self.assertEqual(r.body["run_id"], run_id)
        self.assertIn(r.body["status"], ("queued", "running", "done"))

        # 5. Stream events
        with self.server.sse("/api/runs/%s/events" % run_id) as s:
            self.assertEqual(s.status, 200, "step 5: %r" % s.body)
            events = s.read_all(30)
        self.assertTrue(events, "step 5: no events")
        self.assertContiguous(events, 1, "step 5")
        self.assertSuccessLog(events, "step 5")
        self.assertFrames(events, "step 5")
        n = events[-1].seq

        # 6. Resume from last event 10
        with self.server.sse("/api/runs/%s/events" % run_id, headers={"Last-Event-ID": "10"}) as s:
            if n > 10:
                self.assertEqual(s.status, 200)
                rest = s.read_all(30)
                self.assertEqual(self.event_tuples(rest), self.event_tuples(events[10:]),
                                 "step 6: resume after 10 must give exactly events 11..%d" % n)
            else:
                self.assertEqual(s.status, 204, "step 6: the run has only %d events, so resuming at 10 "
                                                "is at/past done -> 204" % n)

        # 7. Cancel (the run is done: idempotent, answers its own status)
        r = self.req("POST", "/api/runs/%s/cancel" % run_id)
        self.assertStatus(r, 200, "step 7 cancel")
        self.assertEqual(r.body, {"ok": True, "status": "done"}, "step 7 on a finished run")


class SeedFlowCurlTest(support.ServerTestCase):
    """Steps 1-7 as the README's literal curl commands, run by bash."""
    server_args = SERVER_ARGS

    @classmethod
    def setUpClass(cls):
        if harness.external_database_url() and not os.environ.get("CHATBOT_TEST_PG_DIR"):
            raise unittest.SkipTest("the seed flow needs a fresh database (user_id 1)")
        if not shutil.which("curl") or not shutil.which("bash"):
            raise unittest.SkipTest("curl and bash are needed")
        super().setUpClass()

    def test_seed_curl_commands(self):
        port = self.server.port
        parts = ["set -u"]
        for step, cmd in SEED_STEPS:
            parts.append('echo; echo "=== STEP %s ==="' % step)
            parts.append(cmd.replace("localhost:8000", "localhost:%d" % port))
        parts.append('echo; echo "=== END ==="')
        script = "\n".join(parts) + "\n"
        p = subprocess.run(["bash", "-c", script], capture_output=True, timeout=90,
                           env=harness.clean_env(), cwd=self.server.tmpdir)
        out = p.stdout.decode("utf-8")  # strict: the stream must be valid UTF-8
        self.assertEqual(p.returncode, 0, "bash exited %s; stdout:\n%s\nstderr:\n%s"
                         % (p.returncode, out, p.stderr.decode("utf-8", "replace")[-3000:]))
        steps = dict(re.findall(r"=== STEP (\d) ===\n(.*?)(?=\n=== (?:STEP \d|END) ===)", out, re.S))
        self.assertEqual(sorted(steps), list("1234567"), "could not split the output into steps:\n" + out)

        s1 = json.loads(steps["1"])
        self.assertEqual(s1.get("user_id"), 1, "step 1 output: %r" % steps["1"])
        self.assertEqual(s1.get("name"), "smoke-user", "step 1 output: %r" % steps["1"])

        m = re.search(r"^THREAD_ID=(\S+)$", steps["2"], re.M)
        self.assertTrue(m, "step 2 output: %r" % steps["2"])
        thread_id = m.group(1)
        self.assertUuid4(thread_id, "step 2 THREAD_ID")

        m = re.search(r"^RUN_ID=(\S+)$", steps["3"], re.M)
        self.assertTrue(m, "step 3 output: %r" % steps["3"])
        run_id = m.group(1)
        self.assertUuid4(run_id, "step 3 RUN_ID")

        s4 = json.loads(steps["4"])
        self.assertEqual(s4.get("run_id"), run_id)
        self.assertEqual(s4.get("thread_id"), thread_id)
        self.assertIn(s4.get("status"), ("queued", "running", "done"))

        frames, comments, retries = parse_sse_text(steps["5"])
        self.assertEqual(retries, ["3000"], "step 5 should carry `retry: 3000`: %r" % steps["5"][:300])
        self.assertIn("connected", comments, "step 5 should carry `: connected`")
        self.assertTrue(frames, "step 5: no frames")
        self.assertEqual([f.get("id") for f in frames], [str(i) for i in range(1, len(frames) + 1)],
                         "step 5 ids must run 1..N")
        for f in frames:
            json.loads(f["data"])
        types = [f["event"] for f in frames]
        self.assertEqual(types[0], "state")
        self.assertEqual(types[-3:], ["final", "state", "done"], "step 5 types: %r" % types)

        frames6, _, _ = parse_sse_text(steps["6"])
        if len(frames) > 10:
            self.assertEqual(frames6, frames[10:], "step 6 must give exactly events 11..%d" % len(frames))
        else:
            self.assertEqual(frames6, [], "step 6: nothing after 10 (204)")

        s7 = json.loads(steps["7"])
        self.assertEqual(s7, {"ok": True, "status": "done"}, "step 7 on the finished run")


if __name__ == "__main__":
    unittest.main()
