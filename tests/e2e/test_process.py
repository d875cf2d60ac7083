"""The server's threads as the operating system sees them (/proc/PID/task): what runs at which
priority. SQLite's checkpointer yields the CPU to the rest (nice 19): its bursts of page copying
raised the p99 latency per chunk of a 10,000-chunk/s stream on two cores by 60 % or more
(bench/README.md)."""
import os
import tempfile
import unittest

try:
    from . import harness
except ImportError:
    import harness


def thread_nices(pid):
    """{thread name: [nice of each thread of that name]} of process `pid`."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            stat = open("/proc/%d/task/%s/stat" % (pid, tid)).read()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out.setdefault(name, []).append(int(fields[16]))  # field 19 of stat(5): nice
    return out


class ThreadPriorityTest(unittest.TestCase):
    def test_only_the_sqlite_checkpointer_runs_at_the_lowest_priority(self):
        with tempfile.TemporaryDirectory(prefix="chatbot-threads-") as tmp:
            srv = harness.Server(["--demo-token-delay-ms", "0", "--demo-tool-delay-ms", "0"],
                                 database_url="sqlite:" + os.path.join(tmp, "chatbot.db"))
            srv.start()
            try:
                tid = srv.create_thread()["thread_id"]
                srv.post_message(tid, "hello")  # every database thread has work once
                nices = thread_nices(srv.proc.pid)
                base = nices[os.path.basename(harness.binary_path())[:15]][0]  # the main thread
                self.assertEqual(nices.get("sqlite-checkpoi"), [19], nices)
                for name in ("sqlite-writer", "io-1"):
                    self.assertEqual(nices.get(name), [base], "%s: %r" % (name, nices))
                others = {n: v for n, v in nices.items() if n != "sqlite-checkpoi"}
                self.assertTrue(all(x == base for v in others.values() for x in v), nices)
            finally:
                srv.cleanup()


if __name__ == "__main__":
    unittest.main()
