"""SQLite on a full disk and on a read-only filesystem (issue 9, "Database").

The server runs in a mount namespace of its own (util-linux `unshare`) with its database on a
small tmpfs, so the test can fill that filesystem (through /proc/PID/root) while the server
runs, and free it again. A full disk must give clear answers (507 problems naming the cause,
nothing half-written), reads keep working, the service recovers by itself once space is back,
and the database passes `PRAGMA integrity_check`. A read-only database is refused at start
with a message that says so. SQLite only (skipped on the PostgreSQL run of the suite).
"""
import errno
import os
import shutil
import sqlite3
import subprocess
import time
import unittest

try:
    from . import harness
except ImportError:
    import harness


def _unshare_prefix():
    """The `unshare` invocation that can mount a tmpfs here (as root; else in a user namespace),
    or None."""
    for prefix in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
        try:
            r = subprocess.run(prefix + ["sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                               capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return prefix
    return None


UNSHARE = _unshare_prefix()
ON_POSTGRES = bool(os.environ.get("CHATBOT_TEST_PG_DIR") or harness.external_database_url())


class TmpfsServer(harness.Server):
    """The server with its SQLite database on a tmpfs of `size_kb` that only it sees."""

    def __init__(self, size_kb, args=None, env=None):
        super().__init__(args, env)
        self.size_kb = size_kb
        self.mnt = os.path.join(self.tmpdir, "fs")
        os.makedirs(self.mnt)
        self.database_url = "sqlite:" + os.path.join(self.mnt, "chatbot.db")

    def command(self):
        return UNSHARE + ["sh", "-c", 'mount -t tmpfs -o size=%dk tmpfs "$0" && exec "$@"'
                          % self.size_kb, self.mnt] + super().command()

    def path(self, name):
        """`name` on the server's tmpfs, as seen from outside its namespace."""
        return "/proc/%d/root%s/%s" % (self.proc.pid, self.mnt, name)


@unittest.skipIf(ON_POSTGRES, "SQLite's files: the PostgreSQL run of the suite has none")
@unittest.skipIf(UNSHARE is None, "cannot mount a tmpfs here (no mount namespace, even as a "
                 "user namespace's root)")
class SqliteStorageFaultsTest(unittest.TestCase):
    def test_full_disk_gives_clear_answers_and_recovers_when_space_is_back(self):
        srv = TmpfsServer(4096, ["--demo-token-delay-ms", "20", "--demo-tool-delay-ms", "1"])
        self.addCleanup(srv.cleanup)
        srv.start()
        user = srv.request("POST", "/api/users", {"name": "full-disk"}).body
        tid = srv.request("POST", "/api/threads", {"user_id": user["user_id"]}).body["thread_id"]
        first = srv.post_message(tid, "before the disk fills")
        self.assertEqual(srv.wait_run(first["run_id"])["status"], "done")
        # A run that streams while the disk fills: its events cannot be stored for a while.
        streaming = srv.post_message(tid, " ".join("w%d" % i for i in range(60)))
        srv.wait_run(streaming["run_id"], statuses=("running",))

        # Fill the filesystem to the last byte. Unbuffered: a buffered file's close() would
        # flush what the last write left in its buffer and raise ENOSPC outside the try.
        ballast = srv.path("ballast")
        with open(ballast, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)
        try:
            with open(ballast, "ab", buffering=0) as f:
                while True:
                    f.write(b"\0" * 512)
                    f.flush()
        except OSError:
            pass

        time.sleep(0.5)
        accepted, refused = [first["run_id"], streaming["run_id"]], None
        words = " ".join("word%d" % i for i in range(2000))  # ~16 KB a message
        for _ in range(400):
            r = srv.request("POST", "/api/threads/%s/messages" % tid, {"content": words})
            if r.status == 201:
                accepted.append(r.body["run_id"])
                continue
            refused = r
            break
        self.assertIsNotNone(refused, "a write on a full disk must fail at some point")
        print("full disk: %d posts accepted, then %s %s" % (len(accepted) - 2, refused.status, refused.body["detail"]))
        self.assertEqual(refused.status, 507, refused.body)
        self.assertIn("problem+json", refused.headers.get("content-type", ""))
        self.assertIn("full", refused.body["detail"])
        # Reads still work, the process serves.
        self.assertTrue(srv.alive)
        self.assertEqual(srv.request("GET", "/healthz").status, 200)
        self.assertEqual(srv.request("GET", "/api/threads/%s" % tid).status, 200)
        r = srv.request("POST", "/api/users", {"name": "while-full"})
        self.assertEqual(r.status, 507, r.body)

        os.unlink(ballast)
        back = time.monotonic()
        while True:
            r = srv.request("POST", "/api/threads/%s/messages" % tid, {"content": "space is back"})
            if r.status == 201 or time.monotonic() - back > 10:
                break
            time.sleep(0.2)
        self.assertEqual(r.status, 201, "writes work again once space is back: %s" % (r.body,))
        accepted.append(r.body["run_id"])
        self.assertLess(time.monotonic() - back, 5.0)

        # Every run that was accepted ends, with a contiguous log ending in done.
        for rid in accepted:
            run = srv.wait_run(rid, timeout=60)
            self.assertIn(run["status"], ("done", "error"), run)
            if rid == streaming["run_id"]:
                print("the run that streamed while the disk was full: %s (%s), %d events"
                      % (run["status"], run.get("error"), run["last_seq"]))
            evs = [e for e in srv.events(rid) if e.kind == "event"]
            self.assertEqual(evs[-1].event, "done", rid)
            seqs = [int(e.id) for e in evs]
            self.assertEqual(seqs, list(range(1, len(seqs) + 1)), rid)
        # The refused post left nothing: the user messages are exactly the accepted ones.
        msgs = srv.request("GET", "/api/threads/%s" % tid).body["messages"]
        self.assertEqual(sum(1 for m in msgs if m["role"] == "user"), len(accepted))

        # SQLite resolves the /proc/PID/root link itself (and lands outside the namespace), so
        # check a copy, taken while the service is idle.
        copy = os.path.join(srv.tmpdir, "copy")
        os.makedirs(copy)
        for suffix in ("", "-wal"):
            if os.path.exists(srv.path("chatbot.db" + suffix)):
                shutil.copyfile(srv.path("chatbot.db" + suffix),
                                os.path.join(copy, "chatbot.db" + suffix))
        db = sqlite3.connect(os.path.join(copy, "chatbot.db"))
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            self.assertEqual(db.execute("SELECT count(*) FROM runs").fetchone()[0], len(accepted))
        finally:
            db.close()
        self.assertEqual(srv.sanitizer_reports(), [])

    def test_read_only_database_is_refused_at_start(self):
        srv = TmpfsServer(2048)
        self.addCleanup(srv.cleanup)
        srv.port = harness.free_port()
        serve = harness.Server.command(srv)
        migrate = [harness.binary_path(), "migrate", "--database", srv.database_url]
        script = ('mount -t tmpfs -o size=2048k tmpfs "$0" && %s >/dev/null && '
                  'mount -o remount,ro "$0" && exec "$@"' % " ".join(migrate))
        r = subprocess.run(UNSHARE + ["sh", "-c", script, srv.mnt] + serve, capture_output=True,
                           text=True, timeout=30, env=harness.clean_env())
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("read-only", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
