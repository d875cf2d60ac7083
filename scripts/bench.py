#!/usr/bin/env python3
"""`make bench`: the service's benchmark (bench/README.md). Standard library only.

Starts the service itself (a fresh SQLite database per scenario, then the same on a throwaway
PostgreSQL cluster when the binary supports it), drives it with the project's own load generator
(bench/loadgen, `chatbot_loadgen`), and prints one table per backend; with --peer URL it runs the
same scenarios against another server of the same API (e.g. the seed FastAPI peer) and prints the
ratios. Every figure says its conditions; every scenario says how long it took and how much CPU
the generator used next to the server's.

    scripts/bench.py [--build-dir build/release] [--peer URL [--peer-dir DIR]]
                     [--backends sqlite,postgresql] [--only latency,persist,...] [--quick]

--peer-dir (default ../shared/peers/seed_fastapi when it exists): when the peer's port is free,
the driver starts that peer itself (its run.sh/stop.sh) once per scenario, with the scenario's
token/tool delays, on a throwaway PostgreSQL cluster of its own (with track_commit_timestamp, so
the peer's delivery latency can be measured from each event's commit time). When something
already listens on the peer's port, that server is used as it is and the table says so.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_CLUSTER = os.path.join(REPO, "scripts", "pg-test-cluster")
DEFAULT_PEER_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "peers", "seed_fastapi"))

# The seed peer's SQLAlchemy pool for these runs: its default (5 + 10) hangs with ~40 concurrent
# streams (each running run holds a connection while it sleeps; the SSE polls then block the event
# loop waiting for one).
PEER_POOL_SIZE = 100
PEER_MAX_OVERFLOW = 100
# FastAPI runs a request's background task (the seed's run executor) before it reads the next
# request of the same connection: with keep-alive, one connection's posts would run one at a time.
PEER_LOADGEN_ARGS = ["--no-keepalive"]


def log(msg=""):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def http_get(url, timeout=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def wait_http(url, timeout, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if http_get(url, 1)[0] == 200:
            return True
        time.sleep(0.05)
    return False


def proc_stat_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return 0.0
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_io(pid):
    out = {}
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                k, v = line.split(":")
                out[k.strip()] = int(v)
    except OSError:
        pass
    return out


def db_thread_wakeups(pid):
    """Context switches of the service's database threads (named pg-*, sqlite-*): a query on a
    socket is a send and a recv that /proc/pid/io does not count, but it wakes its thread."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                st = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
            if st["Name"].strip().startswith(("pg-", "sqlite-")):
                total += int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
    except (OSError, KeyError, ValueError):
        pass
    return total


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
            if int(s[s.rindex(")") + 2:].split()[1]) == pid:
                kids.append(int(d))
        except (OSError, ValueError):
            pass
    return kids


def pid_listening_on(port):
    """The pid of the process listening on 127.0.0.1:port / 0.0.0.0:port (from /proc)."""
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            pass
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % d):
                link = os.readlink("/proc/%s/fd/%s" % (d, fd))
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(d)
        except OSError:
            pass
    return None


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CHATBOT_") and k not in ("DATABASE_URL", "OPENAI_API_KEY")}
    env.update(extra or {})
    return env


def fmt_num(v):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


# ------------------------------------------------------------------------------------ PostgreSQL

class PgCluster:
    """A throwaway cluster from scripts/pg-test-cluster; databases made per server start."""

    def __init__(self, directory, track_commit_timestamp=False):
        self.dir = directory
        self.track = track_commit_timestamp
        self.port = None
        self.n = 0

    def start(self):
        out = subprocess.run([PG_CLUSTER, "start", self.dir], capture_output=True, text=True, timeout=240)
        if out.returncode != 0:
            raise RuntimeError("pg-test-cluster start failed: " + out.stderr.strip()[-500:])
        url = out.stdout.strip().splitlines()[-1]
        self.port = int(re.search(r":(\d+)/", url).group(1))
        if self.track:
            self.psql("ALTER SYSTEM SET track_commit_timestamp = on", user="postgres")
            subprocess.run([PG_CLUSTER, "down", self.dir], check=True, capture_output=True, timeout=120)
            subprocess.run([PG_CLUSTER, "up", self.dir], check=True, capture_output=True, timeout=120)
        return self

    def psql(self, sql, db="postgres", user="chatbot"):
        psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
        out = subprocess.run([psql, "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", user, "-d", db, "-c", sql],
                             capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PGPASSWORD="chatbot"))
        if out.returncode != 0:
            raise RuntimeError("psql failed: %s: %s" % (sql[:80], out.stderr.strip()))
        return out.stdout

    def new_database(self, prefix):
        self.n += 1
        name = "%s_%d" % (prefix, self.n)
        self.psql("CREATE DATABASE %s OWNER chatbot" % name)
        return name

    def url(self, db, driver=""):
        scheme = "postgresql+psycopg2" if driver == "psycopg2" else "postgresql"
        return "%s://chatbot:chatbot@127.0.0.1:%d/%s" % (scheme, self.port, db)

    def xacts(self, db):
        v = self.psql("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '%s'" % db)
        return int(v.strip() or 0)

    def cpu(self):
        try:
            with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
                pm = int(f.readline())
        except (OSError, ValueError):
            return 0.0
        return proc_stat_cpu(pm) + sum(proc_stat_cpu(k) for k in children(pm))

    def stop(self):
        subprocess.run([PG_CLUSTER, "stop", self.dir], capture_output=True, timeout=120)


# -------------------------------------------------------------------------------------- servers

class Instance:
    def __init__(self, url, pid, stop, db=None, db_name=None, log_path=None, loadgen_args=()):
        self.url, self.pid, self._stop, self.db, self.db_name, self.log_path = url, pid, stop, db, db_name, log_path
        self.loadgen_args = list(loadgen_args)

    def stop(self):
        if self._stop:
            self._stop()
            self._stop = None


class OurServer:
    """build/release/chatbot on SQLite or PostgreSQL, one fresh database per start."""

    def __init__(self, binary, backend, tmp, pg=None):
        self.binary, self.backend, self.tmp, self.pg = binary, backend, tmp, pg
        self.label = backend
        self.n = 0

    def start(self, cond, name):
        self.n += 1
        port = free_port()
        db_name = None
        if self.backend == "sqlite":
            db_url = "sqlite:" + os.path.join(self.tmp, "%s-%d.db" % (name, self.n))
        else:
            db_name = self.pg.new_database("bench_" + re.sub(r"\W", "_", name))
            db_url = self.pg.url(db_name)
        args = [self.binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--database", db_url,
                "--demo-token-delay-ms", str(cond.get("token_ms", 0)),
                "--demo-tool-delay-ms", str(cond.get("tool_ms", 0)),
                "--shutdown-grace-s", "0"]
        if cond.get("timestamps"):
            args.append("--demo-token-timestamps")
        if cond.get("ping_s"):
            args += ["--ping-interval-s", str(cond["ping_s"])]
        if cond.get("queue"):
            args += ["--subscriber-queue", str(cond["queue"])]
        if cond.get("sync_normal"):
            args += ["--sqlite-synchronous", "normal"]
        if cond.get("max_runs"):
            args += ["--max-concurrent-runs", str(cond["max_runs"])]
        log_path = os.path.join(self.tmp, "%s-%s-%d.log" % (self.backend, name, self.n))
        logf = open(log_path, "w")
        proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, env=clean_env())
        url = "http://127.0.0.1:%d" % port
        if not wait_http(url + "/healthz", 60, proc):
            proc.kill()
            raise RuntimeError("the server did not start: " + open(log_path).read()[-2000:])

        def stop():
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            logf.close()

        return Instance(url, proc.pid, stop, self.pg, db_name, log_path)


class PeerServer:
    """Another server of the API. Managed: started here, per scenario, from --peer-dir."""

    def __init__(self, url, peer_dir, tmp):
        self.url = url.rstrip("/")
        self.port = int(re.search(r":(\d+)", url.split("//", 1)[-1]).group(1))
        self.tmp = tmp
        self.managed = bool(peer_dir) and os.path.exists(os.path.join(peer_dir or "", "run.sh")) \
            and not port_in_use(self.port)
        self.peer_dir = peer_dir
        self.pg = None
        self.label = "peer"
        if self.managed:
            self.pg = PgCluster(os.path.join(tmp, "peer-pg"), track_commit_timestamp=True).start()

    def describe(self):
        if self.managed:
            return ("seed peer from %s, started here per scenario on %s: uvicorn 1 worker, SQLAlchemy pool "
                    "%d + %d overflow, its own PostgreSQL 15 cluster" % (self.peer_dir, self.url, PEER_POOL_SIZE,
                                                                         PEER_MAX_OVERFLOW))
        return "%s as it runs (not managed here: its own delays and pool apply)" % self.url

    def start(self, cond, name):
        if not self.managed:
            pid = pid_listening_on(self.port)
            return Instance(self.url, pid, None, loadgen_args=PEER_LOADGEN_ARGS)
        db = self.pg.new_database("peer_" + re.sub(r"\W", "_", name))
        run_dir = os.path.join(self.tmp, "peer-run-" + name)
        env = clean_env({
            "PORT": str(self.port), "HOST": "127.0.0.1", "WORKERS": "1",
            "DATABASE_URL": self.pg.url(db, "psycopg2"),
            "SEED_TOKEN_DELAY": str(cond.get("token_ms", 0) / 1000.0),
            "SEED_TOOL_DELAY": str(cond.get("tool_ms", 0) / 1000.0),
            "SEED_HEARTBEAT": str(cond.get("ping_s") or 15),
            "SEED_DB_POOL_SIZE": str(PEER_POOL_SIZE), "SEED_DB_MAX_OVERFLOW": str(PEER_MAX_OVERFLOW),
            "SEED_RUN_DIR": run_dir,
        })
        out = subprocess.run([os.path.join(self.peer_dir, "run.sh")], env=env, capture_output=True, text=True,
                             timeout=300)
        if out.returncode != 0:
            raise RuntimeError("peer run.sh failed: " + (out.stdout + out.stderr)[-1500:])
        with open(os.path.join(run_dir, "uvicorn.pid")) as f:
            pid = int(f.read().strip())

        def stop():
            subprocess.run([os.path.join(self.peer_dir, "stop.sh")], env=env, capture_output=True, timeout=120)

        return Instance(self.url, pid, stop, self.pg, db, loadgen_args=PEER_LOADGEN_ARGS)

    def close(self):
        if self.pg:
            self.pg.stop()


# ---------------------------------------------------------------------------------- load generator

class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.binary = os.path.join(self.build, "chatbot")
        self.loadgen_bin = os.path.join(self.build, "chatbot_loadgen")
        self.quick = args.quick
        self.cpu = {}          # label -> [loadgen CPU s, server CPU s] over every measured window
        self.current = ""

    def add_cpu(self, lg, sv):
        acc = self.cpu.setdefault(self.current, [0.0, 0.0])
        acc[0] += lg or 0.0
        acc[1] += sv or 0.0

    def loadgen(self, scenario, inst, extra, timeout=180):
        cmd = [self.loadgen_bin, scenario, "--url", inst.url, "--timeout-s", str(timeout)] + extra + inst.loadgen_args
        if inst.pid:
            cmd += ["--server-pid", str(inst.pid)]
        db_cpu0 = inst.db.cpu() if inst.db else 0.0
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120)
        for line in p.stderr.splitlines():
            log("      " + line)
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if not lines:
            raise RuntimeError("loadgen %s printed no result (exit %d): %s" % (scenario, p.returncode, p.stderr[-800:]))
        res = json.loads(lines[-1])
        res["_stdout"] = p.stdout
        res["_elapsed"] = time.time() - t0
        if inst.db:
            res["db_cpu_s"] = inst.db.cpu() - db_cpu0
        if scenario != "idle-setup":
            self.add_cpu(res.get("loadgen_cpu_s"), res.get("server_cpu_s"))
        return res


def cpu_note(r):
    lg, sv = r.get("loadgen_cpu_s"), r.get("server_cpu_s")
    if lg is None or sv is None:
        return ""
    s = "loadgen %.2f s / server %.2f s CPU" % (lg, sv)
    if r.get("server_cpu_wait_s") is not None:
        s += ", server threads runnable but waiting for a CPU %.2f s (summed over threads)" % r["server_cpu_wait_s"]
    if r.get("db_cpu_s"):
        s += " / db %.2f s" % r["db_cpu_s"]
    return s


class Row:
    def __init__(self, key, label, value, unit, target=None, met=None, cond="", note="", better="high"):
        self.key, self.label, self.value, self.unit = key, label, value, unit
        self.target, self.met, self.cond, self.note, self.better = target, met, cond, note, better


# --------------------------------------------------------------------------------------- scenarios

def sc_latency_normal(b, srv, is_peer):
    """The same as sc_latency with SQLite's synchronous=NORMAL: no fsync per commit (a commit then
    survives a process crash, not a power loss). Shows what the disk's fsync costs."""
    if is_peer or getattr(srv, "backend", "") != "sqlite":
        return [], 0.0
    return sc_latency(b, srv, is_peer, durable=False)


def sc_latency(b, srv, is_peer, durable=True):
    runs, subs, words = (20, 2, 50) if b.quick else (100, 2, 100)
    cond = dict(token_ms=20, tool_ms=0, timestamps=True)
    if not durable:
        cond["sync_normal"] = True
    inst = srv.start(cond, "latency" if durable else "latency-normal")
    receipts = os.path.join(b.args.tmp, "receipts-%s.txt" % srv.label)
    try:
        r = b.loadgen("latency", inst, ["--runs", str(runs), "--subs", str(subs), "--words", str(words),
                                        "--receipts", receipts], timeout=120)
    finally:
        inst.stop()
    p50, p99, mx, n = r["p50_us"], r["p99_us"], r["max_us"], r["samples"]
    how = "engine append (token timestamp) -> client receipt"
    if r.get("tokens_untimed") and inst.db and inst.db_name:
        # A server without token timestamps (the seed peer): commit time of each event's row.
        commit = {}
        out = inst.db.psql("SELECT run_id::text, seq, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint "
                           "FROM run_events WHERE type = 'token'", db=inst.db_name)
        for line in out.splitlines():
            rid, seq, ts = line.split("|")
            commit[(rid, int(seq))] = int(ts)
        lat = []
        with open(receipts) as f:
            for line in f:
                rid, seq, recv, conn = line.split()
                ts = commit.get((rid, int(seq)))
                if ts is not None and ts >= int(conn):
                    lat.append(int(recv) - ts)
        lat.sort()
        n = len(lat)
        if lat:
            p50 = lat[max(0, -(-50 * n // 100) - 1)]
            p99 = lat[max(0, -(-99 * n // 100) - 1)]
            mx = lat[-1]
        how = "row commit (pg_xact_commit_timestamp) -> client receipt"
    elif r.get("tokens_untimed"):
        p50 = p99 = mx = None
        how = "n/a: the server's tokens carry no timestamp and its database is not reachable here"
    c = "%d runs x %d subscribers, %d-word replies, token delay 20 ms, tool 0; %s; %s samples" % (
        runs, subs, words, how, fmt_num(n))
    ms = lambda v: None if v is None else v / 1000.0
    note = cpu_note(r) + ("; %d streams ended early" % (r["streams"] - r["streams_done"])
                          if r.get("streams_done", 0) < r.get("streams", 0) else "")
    if not durable:
        c = "as above but --sqlite-synchronous normal (no fsync per commit: not the durability target's " \
            "condition, shown to separate the disk's fsync from the rest); %s samples" % fmt_num(n)
        return [Row("lat_p50_normal", "  same, synchronous=normal, p50", ms(p50), "ms", None, None, c, note, "low"),
                Row("lat_p99_normal", "  same, synchronous=normal, p99", ms(p99), "ms", None, None, "", "", "low")], \
            r["_elapsed"]
    return [Row("lat_p50", "delivery latency p50", ms(p50), "ms", "<= 2", p50 is not None and p50 <= 2000, c, note, "low"),
            Row("lat_p99", "delivery latency p99", ms(p99), "ms", "<= 10", p99 is not None and p99 <= 10000, "", "", "low"),
            Row("lat_max", "delivery latency max", ms(mx), "ms", None, None, "", "", "low")], r["_elapsed"]


def sc_persist(b, srv, is_peer):
    runs, words = (50, 500) if b.quick else (200, 2000)
    inst = srv.start(dict(token_ms=0, tool_ms=0), "persist")
    try:
        extra = ["--runs", str(runs), "--words", str(words)]
        if is_peer:
            extra.append("--done-not-stored")  # the seed's `done` frame is synthetic
        r = b.loadgen("persist", inst, extra, timeout=240)
    finally:
        inst.stop()
    c = ("%d runs posted at once over 16 connections, %d-word messages (demo reply quotes them: ~%d events/run), "
         "token and tool delay 0; sum of last_seq / (first post .. last run ended); %d events, %d runs done"
         % (runs, words, words + 12, r["events"], r["runs_done"]))
    if is_peer:
        c = ("%d runs posted at once, token and tool delay 0 (the seed's reply is fixed: 14 tokens); stored events "
             "counted by replay; %d events, %d runs done" % (runs, r["events"], r["runs_done"]))
    rows = [Row("persist", "events persisted/s", r["events_per_s"], "events/s", ">= 100,000",
                r["events_per_s"] >= 100000, c, cpu_note(r))]
    if r.get("posts_per_s"):
        rows.append(Row("posts", "posts/s (the same burst)", r["posts_per_s"], "posts/s", None, None,
                        "%d POST /messages over 16 keep-alive connections" % runs, ""))
    if r.get("server_cpu_s") and r["events"]:
        rows.append(Row("cpu_per_1k", "server CPU per 1,000 events persisted", 1e6 * r["server_cpu_s"] / r["events"],
                        "ms", None, None, "the persist burst", "", "low"))
    return rows, r["_elapsed"]


def sc_fanout(b, srv, is_peer):
    subs, words = (200, 500) if b.quick else (1000, 2000)
    inst = srv.start(dict(token_ms=0, tool_ms=1000, queue=16384), "fanout")
    try:
        r = b.loadgen("fanout", inst, ["--subs", str(subs), "--words", str(words)], timeout=60 if is_peer else 120)
    finally:
        inst.stop()
    c = ("1 run x %d subscribers, all connected while it was queued behind a blocker run of the same thread "
         "(then canceled); %d-word reply (%s events/stream), token delay 0, tool step 1 s; rate = frames from each "
         "stream's first token to its done, summed, / (first token .. last done); %d of %d streams complete"
         % (subs, words, fmt_num(r.get("events_per_run")), r["streams_done"], subs))
    if is_peer:
        c = ("1 run x %d subscribers (the seed does not queue runs: both started at once), tool step 1 s, token delay 0; "
             "%d of %d streams complete%s" % (subs, r["streams_done"], subs, ", TIMED OUT" if r.get("timed_out") else ""))
    return [Row("fanout", "events delivered/s", r["events_per_s"], "events/s", ">= 1,000,000",
                r["events_per_s"] >= 1e6, c, cpu_note(r))], r["_elapsed"]


def sc_ttft(b, srv, is_peer):
    n = 20 if is_peer else (50 if b.quick else 300)
    inst = srv.start(dict(token_ms=0, tool_ms=0), "ttft")
    try:
        r = b.loadgen("ttft", inst, ["--iterations", str(n), "--concurrency", "1"], timeout=180)
    finally:
        inst.stop()
    c = ("%d runs one after another, each on its own thread: POST message, then a new connection to its event "
         "stream; demo engine, token and tool delay 0; %d samples; POST alone p50 %.2f ms"
         % (n, r["samples"], r["post_p50_us"] / 1000.0))
    return [Row("ttft_p50", "post -> first token p50", r["p50_us"] / 1000.0, "ms", "<= 5", r["p50_us"] <= 5000, c,
                cpu_note(r), "low"),
            Row("ttft_p99", "post -> first token p99", r["p99_us"] / 1000.0, "ms", "<= 20", r["p99_us"] <= 20000, "", "",
                "low")], r["_elapsed"]


def sc_streams(b, srv, is_peer):
    ping_s = 2
    if is_peer:
        total, procs = b.args.peer_streams, 1
    else:
        total, procs = (2000, 2) if b.quick else (b.args.streams, 4)
    inst = srv.start(dict(token_ms=0, tool_ms=600000, ping_s=ping_s), "streams")
    t0 = time.time()
    hold = []
    try:
        # The seed runs each run (and each sync endpoint) on anyio's 40-thread pool: 40 runs parked
        # in their tool step would leave no thread to answer the next request.
        queued = 30 if is_peer else 100
        setup = b.loadgen("idle-setup", inst, ["--runs", str(queued)], timeout=120)
        ids = [l for l in setup["_stdout"].splitlines() if l and not l.startswith("{")]
        runs_file = os.path.join(b.args.tmp, "idle-runs-%s.txt" % srv.label)
        with open(runs_file, "w") as f:
            f.write("\n".join(ids) + "\n")
        time.sleep(1.0)
        rss0 = proc_rss_kib(inst.pid) if inst.pid else 0
        cpu0 = proc_stat_cpu(inst.pid) if inst.pid else 0
        per = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
        for i in range(procs):
            cmd = [b.loadgen_bin, "idle-hold", "--url", inst.url, "--runs-file", runs_file, "--streams", str(per[i]),
                   "--source", "127.0.0.%d" % (2 + i), "--timeout-s", "30" if is_peer else "300",
                   "--connect-concurrency", "128"]
            if inst.pid:
                cmd += ["--server-pid", str(inst.pid)]
            errf = open(os.path.join(b.args.tmp, "idle-hold-%s-%d.err" % (srv.label, i)), "w")
            hold.append((subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf, text=True),
                         errf))
        connected, connect_s, early = 0, 0.0, {}
        for p, _ in hold:
            line = p.stdout.readline()
            if line.startswith("READY "):
                ready = json.loads(line[6:])
                connected += ready["connected"]
                connect_s = max(connect_s, ready["connect_s"])
            elif line.startswith("{"):
                early[p.pid] = json.loads(line)  # it gave up (timeout) before all were connected
        # Let pings flow on every stream (two intervals) before measuring.
        time.sleep(2 * ping_s + 1)
        rss1 = proc_rss_kib(inst.pid) if inst.pid else 0
        fds = len(os.listdir("/proc/%d/fd" % inst.pid)) if inst.pid else 0
        results = []
        for p, errf in hold:
            try:
                p.stdin.write("stop\n")
                p.stdin.flush()
                p.stdin.close()
            except OSError:
                pass
            out = p.stdout.read()
            p.wait(timeout=60)
            errf.close()
            lines = [l for l in out.splitlines() if l.startswith("{")]
            if lines:
                results.append(json.loads(lines[-1]))
            elif p.pid in early:
                results.append(early[p.pid])
        cpu1 = proc_stat_cpu(inst.pid) if inst.pid else 0
    finally:
        for p, _ in hold:
            if p.poll() is None:
                p.kill()
        inst.stop()
    held = sum(r["held"] for r in results)
    dropped = sum(r["dropped"] for r in results)
    min_pings = min([r["min_pings_per_stream"] for r in results] or [0])
    lg_cpu = sum(r.get("loadgen_cpu_s", 0) for r in results)
    per_stream = (rss1 - rss0) * 1024.0 / held if held else None
    if early:
        pings_txt = "NOT all connected before the loadgen gave up (%s s): pings not counted" % ("30" if is_peer else "300")
    else:
        pings_txt = "every held stream got >= %d pings in the hold" % min_pings
    c = ("%d streams asked over %d loadgen processes (sources 127.0.0.2-%d), on %d runs queued behind a blocker%s; "
         "ping every %d s; connected in %.1f s; %s; %d dropped; "
         "server RSS %s -> %s MiB, %d descriptors open"
         % (total, procs, 1 + procs, queued,
            " (the seed runs them all at once: they sit in a 600 s tool step)" if is_peer else "",
            ping_s, connect_s, pings_txt, dropped, fmt_num(rss0 / 1024.0),
            fmt_num(rss1 / 1024.0), fds))
    note = "connect + hold: loadgen %.2f s / server %.2f s CPU" % (lg_cpu, cpu1 - cpu0)
    b.add_cpu(lg_cpu, cpu1 - cpu0)
    target_streams = 19000 if not is_peer else None
    return [Row("streams", "idle streams held", held, "streams", ">= 19,000" if not is_peer else None,
                held >= 19000 if target_streams else None, c, note),
            Row("rss_stream", "server RSS per stream", per_stream / 1024.0 if per_stream else None, "KiB", "<= 4",
                per_stream is not None and per_stream <= 4096, "(RSS with streams - RSS before) / streams held", "",
                "low")], time.time() - t0


class IdleProbe:
    """Scenario 6: a server started first and left alone; read at the end of its backend's run."""

    def __init__(self, b, srv):
        self.b, self.srv = b, srv
        self.inst = srv.start(dict(token_ms=50, tool_ms=100), "idle-db")
        self.started = time.time()
        self.t0 = None
        self.strace = None

    def _snapshot(self):
        snap = {"io": proc_io(self.inst.pid)}
        st, body = http_get(self.inst.url + "/metrics")
        if st == 200:
            m = re.search(r"^chatbot_db_commit_batch_size_count(?:\{\})? (\d+)", body, re.M)
            snap["batches"] = int(m.group(1)) if m else None
        if self.inst.db and self.inst.db_name:
            snap["xacts"] = self.inst.db.xacts(self.inst.db_name)
        return snap

    def begin(self):
        # PostgreSQL backends report their counters up to ~10 s after their last query.
        time.sleep(max(0.0, self.started + 12 - time.time()))
        self.before = self._snapshot()
        self.io0 = proc_io(self.inst.pid)
        self.t0 = time.time()
        if shutil.which("strace"):
            self.strace_out = os.path.join(self.b.args.tmp, "idle-strace-%s.txt" % self.srv.label)
            self.strace = subprocess.Popen(["strace", "-f", "-c", "-p", str(self.inst.pid), "-o", self.strace_out],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # attaching stops and resumes every thread: not a wake-up of the service's
        self.wake0 = db_thread_wakeups(self.inst.pid)

    def end(self):
        idle_s = self.b.args.idle_s
        left = self.t0 + idle_s - time.time()
        if left > 0:
            log("    waiting %.0f s more for the idle window" % left)
            time.sleep(left)
        io1 = proc_io(self.inst.pid)
        wakeups = db_thread_wakeups(self.inst.pid) - self.wake0
        window = time.time() - self.t0
        syscalls = None
        if self.strace:
            self.strace.send_signal(signal.SIGINT)
            try:
                self.strace.wait(timeout=10)
                syscalls, names = 0, []
                with open(self.strace_out) as f:
                    for line in f:
                        fields = line.split()
                        if len(fields) >= 5 and fields[-1] == "total":
                            syscalls = int(fields[3])
                        elif len(fields) >= 5 and re.match(r"^[\d.]+$", fields[0]):
                            names.append("%s %s" % (fields[-1], fields[3]))
            except (subprocess.TimeoutExpired, OSError):
                self.strace.kill()
        # /proc/<pid>/io: read/write system calls of the idle window (before any scrape below).
        rw = (io1.get("syscr", 0) - self.io0.get("syscr", 0)) + (io1.get("syscw", 0) - self.io0.get("syscw", 0))
        after = self._snapshot()
        self.inst.stop()
        parts, queries = [], 0
        if self.before.get("batches") is not None and after.get("batches") is not None:
            d = after["batches"] - self.before["batches"]
            queries += d
            parts.append("writer transactions %d (/metrics)" % d)
        parts.append("read/write syscalls of the service %d (/proc/pid/io: a query needs at least one, a "
                     "send to PostgreSQL or SQLite's file I/O)" % rw)
        queries += rw
        parts.append("wake-ups of its database threads %d (/proc/pid/task/*/status: a query on a socket "
                     "wakes its thread)" % wakeups)
        queries += wakeups
        if syscalls is not None:
            parts.append("syscalls of all its threads %d%s (strace -c -f)" % (
                syscalls, (" (" + ", ".join(names) + ")") if names else ""))
        if "xacts" in after:
            # Not counted: autovacuum's workers visit every database of the cluster each minute and
            # their transactions count in pg_stat_database too.
            d = after["xacts"] - self.before["xacts"]
            parts.append("for information, transactions on its database by anyone %d (pg_stat_database: "
                         "autovacuum's visits count there too)" % d)
        queries_note = ("queries = writer transactions + the service's read/write syscalls + its database "
                        "threads' wake-ups")
        c = "fresh server, no client, %.0f s (started before the other scenarios, read after them); %s; %s" % (
            window, "; ".join(parts), queries_note)
        return [Row("idle", "database queries while idle", queries, "queries", "0", queries == 0, c, "")], window


def fsync_probe(directory, n=40):
    """p50/p90 of fdatasync of a 4 KiB append in `directory`, in ms: the floor of a durable commit."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    ts = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            ts.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    ts.sort()
    return ts[n // 2], ts[n * 9 // 10]


# ------------------------------------------------------------------------------------------ report

SCENARIOS = [("latency", sc_latency), ("latency-normal", sc_latency_normal), ("persist", sc_persist), ("fanout", sc_fanout), ("streams", sc_streams),
             ("ttft", sc_ttft)]


def print_table(title, rows, times, out, cpu=None):
    out.write("\n%s\n%s\n" % (title, "=" * len(title)))
    w = max(len(r.label) for r in rows) if rows else 10
    out.write("%-*s  %14s  %-9s  %-12s  %s\n" % (w, "figure", "value", "unit", "target", "met"))
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        out.write("%-*s  %14s  %-9s  %-12s  %s\n" % (w, r.label, fmt_num(r.value), r.unit, r.target or "", met))
    out.write("\nconditions:\n")
    for r in rows:
        if r.cond or r.note:
            out.write("  - %s: %s%s\n" % (r.label, r.cond, (" [" + r.note + "]") if r.note else ""))
    out.write("time per scenario: %s\n" % ", ".join("%s %.0f s" % (k, v) for k, v in times))
    if cpu and cpu[1] > 0:
        out.write("load generator CPU over all measured windows: %.2f s, the server's: %.2f s (%.0f%%): the generator "
                  "%s the bottleneck\n" % (cpu[0], cpu[1], 100.0 * cpu[0] / cpu[1],
                                           "was not" if cpu[0] < 0.5 * cpu[1] else "MAY HAVE BEEN"))


def print_ratios(ours_by_backend, peer_rows, out):
    peer = {r.key: r for r in peer_rows}
    backs = list(ours_by_backend)
    title = "ratios against the peer (ours/peer; 'x better' = how many times better ours is)"
    out.write("\n%s\n%s\n" % (title, "=" * len(title)))
    out.write("%-36s  %12s" % ("figure", "peer"))
    for bk in backs:
        out.write("  %14s  %12s" % (bk + " ours/peer", "x better"))
    out.write("\n")
    for key, label in [("lat_p50", "delivery latency p50 (ms)"), ("lat_p99", "delivery latency p99 (ms)"),
                       ("persist", "events persisted/s"), ("posts", "posts/s"),
                       ("fanout", "events delivered/s"), ("ttft_p50", "post -> first token p50 (ms)"),
                       ("ttft_p99", "post -> first token p99 (ms)"), ("streams", "idle streams held"),
                       ("rss_stream", "server RSS per stream (KiB)")]:
        p = peer.get(key)
        if p is None:
            continue
        out.write("%-36s  %12s" % (label, fmt_num(p.value)))
        for bk in backs:
            o = {r.key: r for r in ours_by_backend[bk]}.get(key)
            if o is None or o.value is None or p.value in (None, 0) or o.value == 0:
                out.write("  %14s  %12s" % ("n/a", ""))
                continue
            ratio = o.value / p.value
            better = ratio if o.better == "high" else 1.0 / ratio
            out.write("  %14s  %11sx" % ("%.3g" % ratio, "%.3g" % better))
        out.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"))
    ap.add_argument("--peer", default=os.environ.get("PEER", ""))
    ap.add_argument("--peer-dir", default=os.environ.get("PEER_DIR", DEFAULT_PEER_DIR))
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--only", default="", help="comma list of: latency,persist,fanout,streams,ttft,idle")
    ap.add_argument("--quick", action="store_true", help="smaller loads (a check of the bench itself)")
    ap.add_argument("--idle-s", type=float, default=60.0)
    ap.add_argument("--streams", type=int, default=19000)
    ap.add_argument("--peer-streams", type=int, default=1000)
    ap.add_argument("--json", default="", help="also write the figures here")
    args = ap.parse_args()
    b = Bench(args)
    for path in (b.binary, b.loadgen_bin):
        if not os.access(path, os.X_OK):
            sys.exit("bench: %s is missing (make bench builds it)" % path)
    only = set(x for x in args.only.split(",") if x)
    started = time.time()
    help_text = subprocess.run([b.binary, "--help"], capture_output=True, text=True).stdout
    backends = [x for x in args.backends.split(",") if x]
    pg_ok = "postgresql" in help_text
    messages = []
    tmp = tempfile.mkdtemp(prefix="chatbot-bench-")
    os.chmod(tmp, 0o755)  # the PostgreSQL clusters inside run as user postgres
    args.tmp = tmp
    results = {}
    out = sys.stdout
    f50, f90 = fsync_probe(tmp)
    out.write("machine: %d cores, load average %s at start; this disk's fdatasync p50 %.1f ms, p90 %.1f ms "
              "(a durable commit costs at least one)\n" % (os.cpu_count() or 0,
                                                          " ".join(open("/proc/loadavg").read().split()[:3]), f50, f90))
    clusters = []
    try:
        servers, probes = [], {}
        for bk in backends:
            if bk == "postgresql" and not pg_ok:
                messages.append("postgresql: not available in this build")
                continue
            pg = None
            if bk == "postgresql":
                log("bench: starting a throwaway PostgreSQL cluster")
                pg = PgCluster(os.path.join(tmp, "pg")).start()
                clusters.append(pg)
            servers.append(OurServer(b.binary, bk, tmp, pg))
        # Scenario 6 runs beside the others: its servers start now and are read at the end.
        if not only or "idle" in only:
            for s in servers:
                probes[s.backend] = IdleProbe(b, s)
        peer = None
        if args.peer:
            log("bench: peer %s" % args.peer)
            peer = PeerServer(args.peer, args.peer_dir, tmp)
            if peer.pg:
                clusters.append(peer.pg)
        for s in servers + ([peer] if peer else []):
            is_peer = s is peer
            b.current = s.label
            rows, times = [], []
            probe = probes.get(getattr(s, "backend", None)) if not is_peer else None
            for name, fn in SCENARIOS:
                if only and name.split("-")[0] not in only:
                    continue
                if name == "latency-normal" and (is_peer or s.backend != "sqlite"):
                    continue
                log("bench: %s: %s" % (s.label, name))
                t0 = time.time()
                try:
                    r, _ = fn(b, s, is_peer)
                    rows += r
                except Exception as e:  # one scenario failing must not hide the others
                    log("bench: %s %s failed: %s" % (s.label, name, e))
                    rows.append(Row(name, name + " (FAILED)", None, "", None, False, str(e)[:300]))
                times.append((name, time.time() - t0))
                if probe and probe.t0 is None:
                    probe.begin()
            if probe:
                if probe.t0 is None:
                    probe.begin()
                log("bench: %s: idle" % s.label)
                t0 = time.time()
                r, _ = probe.end()
                rows += r
                times.append(("idle (overlapped)", time.time() - t0))
            results[s.label] = (rows, times)
            title = ("%s: %s" % (s.label, peer.describe())) if is_peer else \
                ("%s backend (chatbot %s, %s)" % (s.label, b.binary, "release build"))
            print_table(title, rows, times, out, b.cpu.get(s.label))
            out.flush()
        ours = {k: v[0] for k, v in results.items() if k != "peer"}
        if peer and "peer" in results:
            print_ratios(ours, results["peer"][0], out)
        if peer:
            peer.close()
    finally:
        for c in clusters:
            try:
                c.stop()
            except Exception:
                pass
        if not os.environ.get("BENCH_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    for m in messages:
        out.write("\n%s\n" % m)
    out.write("\ntotal bench time: %.0f s (machine: %d cores, load average %s)\n"
              % (time.time() - started, os.cpu_count() or 0, " ".join(open("/proc/loadavg").read().split()[:3])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: [vars(r) for r in v[0]] for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
