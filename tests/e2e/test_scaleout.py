"""Several instances on one PostgreSQL (CHATBOT_INSTANCES=multi), three real processes, no sticky
sessions: any request may go to any instance and sees what one instance would show.

  - post on A, stream from B and C: the same event sequence on every stream, and on A's replay;
  - cancel on C of a run executing on A ends it within 1 s;
  - two posts with one Idempotency-Key on two instances at once make one run;
  - posts on one thread spread over the instances run one at a time, in order;
  - kill -9 of the executing instance: another finalizes the run within the lease (error
    "executor lost", then state/done), streams on the survivors see the ending, a fresh replay is
    contiguous;
  - the database restarts under three instances (own cluster): streams lose nothing and new runs
    work afterwards;
  - kill -9 of the instance sending a webhook: another one delivers it once the attempt's lease
    lapses, although that other one queued nothing itself.
Runs only on the PostgreSQL test cluster (e2e_postgres: CHATBOT_TEST_PG_DIR).
"""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

try:
    from . import harness
    from .test_webhooks import Receiver, SECRET
except ImportError:
    import harness
    from test_webhooks import Receiver, SECRET

LEASE_S = 3
ARGS = ["--instances", "multi", "--run-lease", "%ds" % LEASE_S, "--demo-tool-delay-ms", "5"]
PG_DIR = os.environ.get("CHATBOT_TEST_PG_DIR")
CLUSTER = os.path.join(harness.REPO_ROOT, "scripts", "pg-test-cluster")


def long_text(words):
    return " ".join("w%d" % i for i in range(words))


class Reader(threading.Thread):
    """Reads a run's stream until `done` or the connection ends."""

    def __init__(self, server, run_id, after=None):
        super().__init__(daemon=True)
        self.server, self.run_id, self.after = server, run_id, after
        self.events, self.error, self.ready = [], None, threading.Event()

    def run(self):
        headers = {} if self.after is None else {"Last-Event-ID": str(self.after)}
        try:
            with self.server.sse("/api/runs/%s/events" % self.run_id, headers=headers,
                                 timeout=60) as s:
                self.ready.set()
                if s.status != 200:
                    self.error = "HTTP %s" % s.status
                    return
                while True:
                    e = s.next_event(60)
                    if e is None:
                        return
                    self.events.append((e.seq, e.event, e.data, time.monotonic()))
                    if e.event == "done":
                        return
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.ready.set()

    def tuples(self):
        return [(s, t, d) for s, t, d, _ in self.events]


def thread_wakeups(server):
    """Context switches so far of each named thread of the server: a thread that stays blocked
    (a reader waiting for a job, the LISTEN thread in poll) adds none; any query adds some."""
    out = {}
    task_dir = "/proc/%d/task" % server.proc.pid
    for tid in os.listdir(task_dir):
        try:
            with open(os.path.join(task_dir, tid, "status")) as f:
                status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
        except OSError:
            continue
        name = status["Name"].strip()
        n = int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"])
        out[name] = out.get(name, 0) + n
    return out


def commits(server):
    """Writer transactions the server has committed (its /metrics)."""
    text = server.request("GET", "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith("chatbot_db_commit_batch_size_count "):
            return float(line.split()[-1])
    raise AssertionError("no chatbot_db_commit_batch_size_count in /metrics")


@unittest.skipUnless(PG_DIR, "needs the PostgreSQL test cluster (e2e_postgres)")
class ScaleoutTest(unittest.TestCase):
    token_delay_ms = 20

    def setUp(self):
        self.url = harness.fresh_external_database()
        self.servers = []
        for _ in range(3):
            self.servers.append(harness.Server(
                ARGS + ["--demo-token-delay-ms", str(self.token_delay_ms)],
                database_url=self.url).start())
        self.a, self.b, self.c = self.servers

    def tearDown(self):
        for s in self.servers:
            s.stop()

    def assertContiguousEnded(self, tuples, status, what):
        self.assertTrue(tuples, what + ": no events")
        self.assertEqual([t[0] for t in tuples], list(range(1, len(tuples) + 1)), what + ": seq")
        self.assertEqual(tuples[-1][1], "done", what)
        self.assertEqual(json.loads(tuples[-1][2])["status"], status, what)

    def test_post_on_one_stream_from_the_others_same_sequence(self):
        thread = self.a.create_thread()["thread_id"]
        run = self.a.post_message(thread, long_text(30))["run_id"]
        readers = [Reader(s, run) for s in (self.b, self.c)]
        for r in readers:
            r.start()
        for r in readers:
            r.join(60)
        for r in readers:
            self.assertIsNone(r.error)
        b, c = readers[0].tuples(), readers[1].tuples()
        self.assertContiguousEnded(b, "done", "stream on B")
        self.assertEqual(b, c, "B and C saw the same sequence")
        self.assertGreater(sum(1 for t in b if t[1] == "token"), 20)
        replay = [(e.seq, e.event, e.data) for e in self.a.events(run)]
        self.assertEqual(replay, b, "A's replay is what B and C streamed")
        self.assertEqual(self.a.get_run(run)["status"], "done")
        self.assertEqual(self.c.get_run(run)["status"], "done")
        # The reply is on the thread, seen from any instance.
        msgs = self.b.get_thread(thread)["messages"]
        self.assertEqual([m["role"] for m in msgs], ["user", "assistant"])

    def test_cancel_on_another_instance_takes_effect_within_a_second(self):
        thread = self.a.create_thread()["thread_id"]
        run = self.a.post_message(thread, long_text(400))["run_id"]  # ~8 s of tokens
        reader = Reader(self.b, run)
        reader.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(t[1] == "token" for t in reader.tuples()):
            time.sleep(0.02)
        self.assertTrue(any(t[1] == "token" for t in reader.tuples()), "the run streams")
        t0 = time.monotonic()
        r = self.c.request("POST", "/api/runs/%s/cancel" % run)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["status"], "canceled", r)
        self.assertLess(elapsed, 1.0, "cancel across instances took %.3f s" % elapsed)
        reader.join(10)
        got = reader.tuples()
        self.assertContiguousEnded(got, "canceled", "stream on B")
        self.assertLess(reader.events[-1][3] - t0, 1.0, "B saw the ending within 1 s")
        self.assertEqual(self.a.get_run(run)["status"], "canceled")

    def test_one_idempotency_key_on_two_instances_at_once_makes_one_run(self):
        for i in range(5):
            thread = self.a.create_thread()["thread_id"]
            key = harness.unique("key")
            out = [None, None]
            barrier = threading.Barrier(2)

            def post(k, srv):
                barrier.wait()
                out[k] = srv.request("POST", "/api/threads/%s/messages" % thread,
                                     {"content": "hi"}, headers={"Idempotency-Key": key})

            ts = [threading.Thread(target=post, args=(k, s)) for k, s in enumerate((self.b, self.c))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(15)
            for r in out:
                self.assertIn(r.status, (200, 201), r)
            self.assertEqual(out[0].body["run_id"], out[1].body["run_id"], "round %d" % i)
            runs = self.a.request("GET", "/api/threads/%s/runs" % thread).body
            self.assertEqual(len(runs["runs"] if isinstance(runs, dict) else runs), 1)

    def test_posts_on_one_thread_spread_over_instances_run_one_at_a_time_in_order(self):
        thread = self.a.create_thread()["thread_id"]
        runs = []
        for i in range(6):
            srv = self.servers[i % 3]
            runs.append(srv.post_message(thread, "turn %d %s" % (i, long_text(5)))["run_id"])
        ended = [self.servers[(i + 1) % 3].wait_run(r, timeout=60) for i, r in enumerate(runs)]
        for r in ended:
            self.assertEqual(r["status"], "done", r)
        for prev, cur in zip(ended, ended[1:]):
            self.assertLessEqual(prev["finished_at"], cur["started_at"],
                                 "one run at a time per thread, in order")
        msgs = self.c.get_thread(thread)["messages"]
        users = [m["content"] for m in msgs if m["role"] == "user"]
        self.assertEqual([u.split(" ")[1] for u in users], [str(k) for k in range(6)])
        self.assertEqual(sum(1 for m in msgs if m["role"] == "assistant"), 6)
        for run in runs:
            self.assertContiguousEnded([(e.seq, e.event, e.data) for e in self.b.events(run)],
                                       "done", "run " + run)

    def executing_instance(self, run, timeout=10):
        """The server whose instance holds the run's lease (the posting instance usually claims
        it, but another one's claim loop may get there first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["psql", self.url, "-Atc",
                                  "SELECT owner FROM runs WHERE id = '%s'" % run],
                                 capture_output=True, text=True, timeout=30)
            owner = out.stdout.strip()
            if owner:
                for s in self.servers:
                    if "one of several instances: " + owner in s.stderr_text():
                        return s
                self.fail("no server is instance %s" % owner)
            time.sleep(0.02)
        self.fail("run %s was not claimed within %d s" % (run, timeout))

    def test_kill_9_of_the_executing_instance_another_finalizes_within_the_lease(self):
        thread = self.a.create_thread()["thread_id"]
        run = self.a.post_message(thread, long_text(600))["run_id"]
        executor = self.executing_instance(run)
        survivors = [s for s in self.servers if s is not executor]
        readers = [Reader(s, run) for s in survivors]
        for r in readers:
            r.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(
                1 for t in readers[0].tuples() if t[1] == "token") < 10:
            time.sleep(0.02)
        executor.kill()
        t_kill = time.monotonic()
        for r in readers:
            r.join(LEASE_S * 3 + 10)
        took = max(r.events[-1][3] for r in readers) - t_kill
        for n, r in enumerate(readers):
            self.assertIsNone(r.error)
            got = r.tuples()
            self.assertContiguousEnded(got, "error", "stream on survivor %d" % n)
            self.assertEqual([t[1] for t in got[-3:]], ["error", "state", "done"])
            self.assertEqual(json.loads(got[-3][2])["error"], "executor lost")
        self.assertEqual(readers[0].tuples(), readers[1].tuples())
        self.assertLess(took, LEASE_S + LEASE_S / 3.0 + 2, "finalized within the lease")
        one, two = survivors
        # A fresh subscriber replays the whole log, contiguous, on either survivor.
        replay = [(e.seq, e.event, e.data) for e in two.events(run)]
        self.assertEqual(replay, readers[0].tuples())
        run_now = one.get_run(run)
        self.assertEqual((run_now["status"], run_now["error"]), ("error", "executor lost"))
        # The thread goes on: the next run is claimed by a survivor.
        nxt = one.post_message(thread, "again")["run_id"]
        self.assertEqual(two.wait_run(nxt, timeout=20)["status"], "done")
        # A restarted instance (a new id) takes part again.
        executor.start()
        nxt = executor.post_message(thread, "once more")["run_id"]
        self.assertEqual(one.wait_run(nxt, timeout=20)["status"], "done")

    def test_idle_instances_query_only_to_keep_their_leases(self):
        # Some traffic first, so that every connection and thread has been used.
        thread = self.a.create_thread()["thread_id"]
        run = self.b.post_message(thread, "warm up")["run_id"]
        self.assertEqual(self.c.wait_run(run)["status"], "done")
        for s in self.servers:
            s.request("GET", "/api/runs/%s" % run)
        time.sleep(1.0)
        window = 2 * LEASE_S
        before = [(thread_wakeups(s), commits(s)) for s in self.servers]
        time.sleep(window)
        after = [(thread_wakeups(s), commits(s)) for s in self.servers]
        # The lease loop ticks every lease/3: one writer transaction per tick (renewing what the
        # instance holds, finalizing what others let lapse), nothing else queries.
        most = window / (LEASE_S / 3.0) + 1
        for name, (wake0, c0), (wake1, c1) in zip("ABC", before, after):
            self.assertTrue(any(t.startswith("pg-reader") for t in wake1), "%s: threads %s" % (name, wake1))
            self.assertIn("pg-listen", wake1)
            for t, n in wake1.items():
                if t.startswith("pg-reader") or t == "pg-listen":
                    self.assertEqual(n - wake0.get(t, 0), 0,
                                     "%s: thread %s woke up while idle" % (name, t))
            ticks = c1 - c0
            self.assertGreaterEqual(ticks, 1, "%s: the lease loop ran" % name)
            self.assertLessEqual(ticks, most, "%s: writer transactions while idle" % name)


@unittest.skipUnless(PG_DIR, "needs the PostgreSQL test cluster (e2e_postgres)")
class ScaleoutDatabaseRestartTest(unittest.TestCase):
    """The database restarts under three instances: its own cluster, so nothing else is hit."""

    def test_streams_lose_nothing_when_the_database_restarts(self):
        tmp = tempfile.mkdtemp(prefix="chatbot-scaleout-pg-")
        os.chmod(tmp, 0o755)  # the server may run as user postgres
        cluster = os.path.join(tmp, "pg")
        servers = []
        try:
            url = subprocess.run([CLUSTER, "start", cluster], check=True, capture_output=True,
                                 text=True, timeout=120).stdout.strip()
            for _ in range(3):
                servers.append(harness.Server(
                    ["--instances", "multi", "--run-lease", "10s", "--demo-token-delay-ms", "25"],
                    database_url=url).start())
            a, b, c = servers
            thread = a.create_thread()["thread_id"]
            run = a.post_message(thread, long_text(200))["run_id"]
            readers = [Reader(s, run) for s in (b, c)]
            for r in readers:
                r.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(readers[0].tuples()) < 10:
                time.sleep(0.02)
            subprocess.run([CLUSTER, "down", cluster], check=True, timeout=60)
            time.sleep(1.5)
            subprocess.run([CLUSTER, "up", cluster], check=True, timeout=60)
            for r in readers:
                r.join(60)
            for name, r in zip("BC", readers):
                self.assertIsNone(r.error, name)
                got = r.tuples()
                self.assertTrue(got and got[-1][1] == "done", "%s: %r" % (name, got[-3:]))
                self.assertEqual([t[0] for t in got], list(range(1, len(got) + 1)), name)
                replay = [(e.seq, e.event, e.data) for e in a.events(run)]
                self.assertEqual(got, replay, name + " lost nothing of the stored log")
            # Everything works again across instances.
            deadline = time.monotonic() + 30
            while True:
                r = c.request("POST", "/api/threads/%s/messages" % thread, {"content": "after"})
                if r.status == 201 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(r.status, 201, r)
            nxt = r.body["run_id"]
            reader = Reader(a, nxt)
            reader.start()
            reader.join(30)
            self.assertEqual(reader.tuples()[-1][1], "done")
            self.assertEqual(b.wait_run(nxt, timeout=20)["status"], "done")
            # /metrics tells an operator that each LISTEN connection was lost and made again.
            for name, s in zip("ABC", servers):
                self.assertEqual(metric(s, "chatbot_event_bus_connected"), 1, name)
                self.assertGreaterEqual(metric(s, "chatbot_event_bus_reconnects_total"), 1, name)
                self.assertGreater(metric(s, 'chatbot_event_bus_notifications_total'
                                             '{channel="chatbot_events"}'), 0, name)
        finally:
            for s in servers:
                s.stop()
            subprocess.run([CLUSTER, "stop", cluster], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)


def metric(server, sample):
    """The value of one sample line of /metrics (its name and labels as written there)."""
    for line in server.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError("no %s in /metrics" % sample)


def socket_owner(servers, port):
    """The server whose process holds the local TCP socket bound to 127.0.0.1:`port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    for s in servers:
        fd_dir = "/proc/%d/fd" % s.proc.pid
        for fd in os.listdir(fd_dir):
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return s
    return None


@unittest.skipUnless(PG_DIR, "needs the PostgreSQL test cluster (e2e_postgres)")
class ScaleoutWebhookTest(unittest.TestCase):
    def test_a_webhook_whose_sender_was_killed_is_delivered_by_another_instance(self):
        receiver = Receiver(SECRET, hang_first=True)
        self.addCleanup(receiver.close)
        url = harness.fresh_external_database()
        env = {"CHATBOT_WEBHOOK_SECRET": SECRET, "CHATBOT_WEBHOOK_URL": receiver.url(),
               "CHATBOT_WEBHOOK_TIMEOUT_S": "1"}
        servers = [harness.Server(ARGS + ["--demo-token-delay-ms", "1"], database_url=url,
                                  env=env).start() for _ in range(2)]
        for s in servers:
            self.addCleanup(s.stop)
        a = servers[0]
        run = a.post_message(a.create_thread()["thread_id"], "hello")["run_id"]
        # The first attempt hangs: its sender is killed while it waits for the answer. The
        # delivery stays claimed (leased) by a dead instance.
        host, port = receiver.first_attempt()
        sender = socket_owner(servers, port)
        self.assertIsNotNone(sender, "no instance holds the webhook's connection")
        sender.kill()
        t_kill = time.monotonic()
        other = [s for s in servers if s is not sender][0]
        # The lease of an attempt is its time-out (1 s) + 5 s, counted from the claim.
        attempts = receiver.delivered(run, timeout=20)
        took = time.monotonic() - t_kill
        self.assertEqual(len(attempts), 2, "one hung attempt, one delivery")
        self.assertTrue(attempts[-1][2], "signed")
        deadline = time.monotonic() + 5  # its log line follows the recorded outcome
        while ("webhooks: run %s delivered" % run) not in other.stderr_text():
            self.assertLess(time.monotonic(), deadline, "the survivor logs the delivery")
            time.sleep(0.05)
        self.assertEqual(attempts[0][0]["webhook-id"], attempts[1][0]["webhook-id"])
        self.assertLess(took, 6 + 3, "taken over when the lease lapsed")
        payload = json.loads(attempts[-1][1])
        self.assertEqual(payload["run"], other.get_run(run))


if __name__ == "__main__":
    unittest.main()
