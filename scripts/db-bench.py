#!/usr/bin/env python3
"""`make bench-db`: events persisted/s through the Database port alone (bench/README.md, "The
event log alone"). Standard library only.

Runs build/release/chatbot_db_bench (100 concurrent runs appending events) in each mode (group,
group-single, per-event) on SQLite (a fresh file in a temporary directory per mode, WAL with
synchronous=FULL, the service's default, then NORMAL) and on PostgreSQL (a throwaway cluster
from scripts/pg-test-cluster, a fresh database per mode, fsync=on and synchronous_commit=on,
checked and enforced), and prints one table. Exit status 1 when a run's read-back failed.

    scripts/db-bench.py [--build-dir build/release] [--backends sqlite,postgresql]
                        [--seconds 5] [--single-seconds 3] [--per-event-seconds 3] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib  # noqa: E402

bench = importlib.import_module("bench")  # scripts/bench.py: PgCluster, fsync_probe, CPU of processes

REPO = bench.REPO
MODES = ["group", "group-single", "per-event"]
TARGET = 100000  # events/s, group commit, durability on (issue 4)


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


class ClusterCpu:
    """CPU seconds the cluster's processes used while it ran: every process is sampled each
    100 ms from /proc, so backends that exit with their connections still count (up to their
    last 100 ms)."""

    def __init__(self, cluster):
        with open(os.path.join(cluster.dir, "data", "postmaster.pid")) as f:
            self.pm = int(f.readline())
        self.first, self.last = {}, {}
        self.stop_ev = threading.Event()
        self.sample(initial=True)
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def sample(self, initial=False):
        for pid in [self.pm] + bench.children(self.pm):
            v = bench.proc_stat_cpu(pid)
            self.first.setdefault(pid, v if initial else 0.0)
            if v:
                self.last[pid] = v

    def loop(self):
        while not self.stop_ev.wait(0.1):
            self.sample()

    def stop(self):
        self.stop_ev.set()
        self.thread.join()
        self.sample()
        return sum(v - self.first.get(pid, 0.0) for pid, v in self.last.items())


def run_bench(binary, database, mode, args, extra=(), label="", pg=None):
    cmd = [binary, "--database", database, "--modes", mode, "--seconds", str(args.seconds),
           "--single-seconds", str(args.single_seconds), "--per-event-seconds", str(args.per_event_seconds)]
    cmd += list(extra)
    if label:
        cmd += ["--label", label]
    sampler = ClusterCpu(pg) if pg else None
    pg_cpu = None
    rows = []
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        for line in p.stdout:
            if line.strip() == "measured" and sampler:
                pg_cpu = sampler.stop()  # not the read-back that follows
                sampler = None
            elif line.startswith("{"):
                rows.append(json.loads(line))
        rc = p.wait(timeout=600)
        if sampler:
            sampler.stop()
        err.seek(0)
        stderr = err.read()
    sys.stderr.write(stderr)
    if rc != 0 or not rows:
        return {"backend": "?", "durability": label, "mode": mode, "failed": True,
                "error": (stderr.strip().splitlines() or ["exit %d" % rc])[-1]}
    r = rows[0]
    r["server_cpu_s"] = pg_cpu
    r["load"] = load()
    return r


def pg_durable(cluster):
    """fsync and synchronous_commit on, whatever the test cluster's defaults become."""
    want = {"fsync": "on", "synchronous_commit": "on"}
    have = {k: cluster.psql("SHOW %s" % k).strip() for k in want}
    if have != want:
        for k, v in want.items():
            cluster.psql("ALTER SYSTEM SET %s = %s" % (k, v), user="postgres")
        cluster.psql("SELECT pg_reload_conf()", user="postgres")
        time.sleep(0.5)
        have = {k: cluster.psql("SHOW %s" % k).strip() for k in want}
        if have != want:
            raise RuntimeError("PostgreSQL durability settings: %s" % have)
    method = cluster.psql("SHOW wal_sync_method").strip()
    return "fsync=on, synchronous_commit=on (%s)" % method


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float) and digits:
        return "%.*f" % (digits, v)
    return "{:,}".format(int(round(v)))


def writer_rate(r):
    """Events per CPU-second of what inserts them: SQLite's writer thread (our CPU minus the
    producers' thread) or PostgreSQL's processes. What one uncontended core would sustain."""
    cpu = r["server_cpu_s"] if r.get("server_cpu_s") is not None else r["cpu_s"] - r["io_thread_cpu_s"]
    return r["events"] / cpu if cpu > 0 else None


def print_table(rows, out):
    head = ["backend", "durability", "mode", "events", "seconds", "events/s", "commits", "events/commit",
            "ms/commit", "our CPU s", "PG CPU s", "waited s", "events/writer-CPU-s", ">=100k"]
    table = []
    for r in rows:
        if r.get("failed"):
            table.append([r["backend"], r["durability"], r["mode"], "FAILED: " + r["error"][:60]] + [""] * 10)
            continue
        met = ""
        if r["mode"] == "group":
            met = "yes" if r["events_per_s"] >= TARGET else "NO"
        table.append([r["backend"], r["durability"], r["mode"], fmt(r["events"]), fmt(r["seconds"], 2),
                      fmt(r["events_per_s"]), fmt(r["commits"]), fmt(r["events_per_commit"], 1),
                      fmt(r["ms_per_commit"], 2), fmt(r["cpu_s"], 2),
                      fmt(r["server_cpu_s"], 2) if r.get("server_cpu_s") is not None else "-",
                      fmt(r["run_delay_s"], 2), fmt(writer_rate(r)), met])
    w = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    line = lambda cells: "  ".join(str(c).ljust(w[i]) if i < 3 else str(c).rjust(w[i]) for i, c in enumerate(cells))
    out.write(line(head).rstrip() + "\n")
    for t in table:
        out.write(line(t).rstrip() + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"))
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--seconds", type=float, default=5.0, help="group mode's production time")
    ap.add_argument("--single-seconds", type=float, default=3.0)
    ap.add_argument("--per-event-seconds", type=float, default=3.0)
    ap.add_argument("--json", default="", help="also write the rows here")
    args = ap.parse_args()
    binary = os.path.join(args.build_dir, "chatbot_db_bench")
    if not os.access(binary, os.X_OK):
        sys.exit("db-bench: %s is missing (make bench-db builds it)" % binary)
    backends = [x for x in args.backends.split(",") if x]
    modes = [x for x in args.modes.split(",") if x]
    out = sys.stdout
    started = time.time()
    tmp = tempfile.mkdtemp(prefix="chatbot-db-bench-")
    os.chmod(tmp, 0o755)  # the PostgreSQL cluster inside runs as user postgres
    rows = []
    cluster = None
    try:
        f50, f90 = bench.fsync_probe(tmp)
        header = ("event log alone (chatbot_db_bench): 100 concurrent runs; machine: %d cores, load average %s "
                  "at start; this disk's fdatasync p50 %.1f ms, p90 %.1f ms" % (os.cpu_count() or 0, load(), f50, f90))
        log("db-bench: " + header)
        n = 0
        if "sqlite" in backends:
            for sync in ("full", "normal"):
                for mode in modes:
                    n += 1
                    path = os.path.join(tmp, "bench-%d.db" % n)
                    rows.append(run_bench(binary, "sqlite:" + path, mode, args, ["--sqlite-synchronous", sync]))
                    for suffix in ("", "-wal", "-shm"):
                        if os.path.exists(path + suffix):
                            os.unlink(path + suffix)
        if "postgresql" in backends:
            log("db-bench: starting a throwaway PostgreSQL cluster")
            cluster = bench.PgCluster(os.path.join(tmp, "pg")).start()
            label = pg_durable(cluster)
            for mode in modes:
                db = cluster.new_database("dbbench")
                rows.append(run_bench(binary, cluster.url(db), mode, args, label=label, pg=cluster))
                cluster.psql("DROP DATABASE %s" % db)
    finally:
        if cluster:
            try:
                cluster.stop()
            except Exception:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    out.write("\n%s\n" % header)
    print_table(rows, out)
    out.write("group: each run keeps one write job in flight carrying every event produced since its last one "
              "(the service's pipelining); group-single: one event per job, awaited; per-event: max_batch=1. "
              "events/s = events committed / (start .. last commit); every run's log read back (seq 1..N) "
              "after each mode. PG CPU = the cluster's processes; waited = our threads runnable but not running; "
              "events/writer-CPU-s = events / CPU of SQLite's writer thread or of PostgreSQL (a core's worth).\n")
    out.write("total %.0f s, load average %s at the end\n" % (time.time() - started, load()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    failed = [r for r in rows if r.get("failed") or not r.get("verified")]
    if failed:
        out.write("FAILED: %s\n" % ", ".join("%s/%s" % (r["backend"], r["mode"]) for r in failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
