"""Black-box harness for the end-to-end tests: start the real `chatbot` binary, talk HTTP and SSE to it.

Standard library only. Nothing here knows how the service is built; it only sees what a client sees.

    with Server(["--demo-token-delay-ms", "10"]) as srv:
        status, headers, body = srv.request("POST", "/api/users", {"name": "ann"})
        stream = srv.sse("/api/runs/%s/events" % run_id)
        events = stream.read_events()

Environment:
    CHATBOT_BIN                 the binary (default: <repo>/build/release/chatbot)
    CHATBOT_TEST_DATABASE_URL   a database URL to use instead of a fresh SQLite file per server
                                (e.g. a throwaway PostgreSQL); it is not cleaned
    CHATBOT_TEST_KEEP_TMP=1     keep each server's temp dir (database, stdout, stderr)
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import namedtuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_BIN = os.path.join(REPO_ROOT, "build", "release", "chatbot")

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TERMINAL = ("done", "error", "canceled")

# Environment variables the binary reads; removed from the child's environment so that the
# runner's own environment can never change what a test starts.
_CHATBOT_ENV_PREFIXES = ("CHATBOT_",)
_CHATBOT_ENV_NAMES = ("DATABASE_URL", "OPENAI_API_KEY")


def binary_path() -> str:
    """CHATBOT_BIN (relative paths are taken from the current directory, then from the repository
    root), else build/release/chatbot of this repository."""
    env = os.environ.get("CHATBOT_BIN")
    if not env:
        return DEFAULT_BIN
    if os.path.isabs(env):
        return env
    for base in (os.getcwd(), REPO_ROOT):
        candidate = os.path.abspath(os.path.join(base, env))
        if os.path.exists(candidate):
            return candidate
    return os.path.abspath(env)


def external_database_url():
    return os.environ.get("CHATBOT_TEST_DATABASE_URL") or None


def fresh_external_database():
    """On the PostgreSQL test cluster (CHATBOT_TEST_PG_DIR, set by `pg-test-cluster exec`): a new
    empty database for each server, so that every test sees what it would on a fresh SQLite
    file (the seed flow's user 1, say). Else CHATBOT_TEST_DATABASE_URL as is, or None."""
    ext = external_database_url()
    pg_dir = os.environ.get("CHATBOT_TEST_PG_DIR")
    if not ext or not pg_dir:
        return ext
    out = subprocess.run([os.path.join(REPO_ROOT, "scripts", "pg-test-cluster"), "newdb", pg_dir],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError("could not create a test database: %s" % out.stderr)
    return out.stdout.strip()


def clean_env(extra=None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_CHATBOT_ENV_PREFIXES) and k not in _CHATBOT_ENV_NAMES}
    if extra:
        env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refusing_port():
    """A port where connections are refused and that nothing else can take meanwhile (a free
    port from free_port() may be handed to the next server started, e.g. the chatbot itself):
    a socket bound to it but not listening. Returns (socket, port); close the socket to free it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def unique(prefix="t") -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def compact(obj) -> str:
    """The compact JSON form the stream must use (no spaces, UTF-8 kept as is)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------------------------------ HTTP

class Response(namedtuple("Response", "status headers body")):
    """(status, headers with lowercased names, parsed JSON or raw bytes). `.raw` holds the bytes."""
    raw = b""

    def __repr__(self):
        body = self.raw[:600]
        return "<HTTP %s %s %r>" % (self.status, dict(self.headers), body)


def _merge_headers(items):
    out = {}
    for k, v in items:
        k = k.lower()
        out[k] = v if k not in out else out[k] + ", " + v
    return out


def _decode_body(headers, raw):
    ctype = headers.get("content-type", "")
    if raw and "json" in ctype.lower():
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return raw
    return raw


def http_request(host, port, method, path, body=None, headers=None, raw_body=None, timeout=15.0):
    """One request on a fresh connection. `body` is JSON-encoded (with Content-Type
    application/json unless `headers` sets one); `raw_body` (bytes) is sent as is."""
    hdrs = dict(headers or {})
    data = None
    if raw_body is not None:
        data = raw_body if isinstance(raw_body, bytes) else raw_body.encode("utf-8")
    elif body is not None:
        data = json.dumps(body).encode("utf-8")
        if not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
    if data is not None and not any(k.lower() == "content-length" for k in hdrs):
        hdrs["Content-Length"] = str(len(data))
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if data:
            try:
                conn.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (e.g. 413) and close before reading everything
        resp = conn.getresponse()
        raw = resp.read()
        headers_out = _merge_headers(resp.getheaders())
        r = Response(resp.status, headers_out, _decode_body(headers_out, raw))
        r.raw = raw
        return r
    finally:
        conn.close()


def raw_http(host, port, request_bytes, timeout=10.0, rcvbuf=None):
    """Send raw bytes, read one response (until the framing says it is complete or the peer closes).
    Returns Response; the body is parsed as JSON when the Content-Type says so. Raises
    ConnectionError if the connection is closed/reset before a full status line arrives."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sender_error = []

        def send():
            try:
                sock.sendall(request_bytes)
            except OSError as e:  # the server may stop reading early
                sender_error.append(e)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        reader = _HttpReader(sock, time.monotonic() + timeout)
        status, headers = reader.read_head()
        raw = reader.read_whole_body(headers, status)
        t.join(timeout)
        r = Response(status, headers, _decode_body(headers, raw))
        r.raw = raw
        return r
    finally:
        try:
            sock.close()
        except OSError:
            pass


class _HttpReader:
    """Minimal HTTP/1.1 response reader over a socket (head, chunked or identity body)."""

    def __init__(self, sock, deadline):
        self.sock = sock
        self.buf = b""
        self.deadline = deadline
        self.closed = False

    def _fill(self, deadline=None):
        deadline = deadline if deadline is not None else self.deadline
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data from the server")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("timed out waiting for data from the server")
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("connection closed before a complete response head; got %r"
                                      % self.buf[:300])
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("iso-8859-1").split("\r\n")
        m = re.match(r"^HTTP/1\.[01] (\d{3})(?: .*)?$", lines[0])
        if not m:
            raise ConnectionError("bad status line %r" % lines[0])
        items = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            items.append((k.strip(), v.strip()))
        return int(m.group(1)), _merge_headers(items)

    def read_exact(self, n, deadline=None):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionError("connection closed in the middle of a body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_line(self, deadline=None):
        while b"\r\n" not in self.buf:
            if not self._fill(deadline):
                raise ConnectionError("connection closed in the middle of chunked framing")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_whole_body(self, headers, status, method="GET"):
        if status in (204, 304) or 100 <= status < 200:
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = b""
            while True:
                size = int(self.read_line().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.read_line() != b"":
                        pass
                    return out
                out += self.read_exact(size)
                self.read_exact(2)
        if "content-length" in headers:
            return self.read_exact(int(headers["content-length"]))
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out


# ------------------------------------------------------------------------------------------- SSE

class SSEItem:
    """One thing seen on an event stream: kind is 'event', 'comment' or 'retry'."""
    __slots__ = ("kind", "id", "event", "data", "raw", "text", "retry", "t")

    def __init__(self, kind, **kw):
        self.kind = kind
        self.id = kw.get("id")
        self.event = kw.get("event")
        self.data = kw.get("data")
        self.raw = kw.get("raw", b"")
        self.text = kw.get("text")
        self.retry = kw.get("retry")
        self.t = time.monotonic()

    @property
    def seq(self):
        return int(self.id)

    @property
    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        if self.kind == "event":
            return "<event id=%s %s %s>" % (self.id, self.event, self.data[:120])
        if self.kind == "comment":
            return "<comment %r>" % self.text
        return "<retry %s>" % self.retry


class SSEStream:
    """An event stream over a raw socket.

    SSEStream(host, port, path, headers, read_head=True): sends the request; with read_head it reads
    the response head at once (status, headers; for non-200 also `body`). With read_head=False the
    request is sent and nothing is read: a client that never reads (use `rcvbuf` to make its
    socket's receive buffer small)."""

    def __init__(self, host, port, path, headers=None, timeout=15.0, read_head=True, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        hdrs = {"Host": "%s:%d" % (host, port), "Accept": "text/event-stream"}
        hdrs.update(headers or {})
        req = "GET %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
        self.sock.sendall(req.encode("utf-8"))
        self.reader = _HttpReader(self.sock, time.monotonic() + timeout)
        self.status = None
        self.headers = None
        self.body = None
        self.items = []          # every SSEItem seen, in order
        self.eof = False
        self.eof_time = None
        self._chunked = False
        self._chunk_left = 0
        self._length_left = None
        self._text = b""         # decoded body bytes not yet split into lines (from _pos)
        self._pos = 0
        self._block = []         # raw lines of the current frame
        self._fields = {}
        self.crlf_seen = False
        self.truncated = False   # the connection ended without the end of the body
        if read_head:
            self.read_head()

    # -- head
    def read_head(self, timeout=None):
        self.reader.deadline = time.monotonic() + (timeout or self.timeout)
        self.status, self.headers = self.reader.read_head()
        if self.status != 200:
            self.body = self.reader.read_whole_body(self.headers, self.status)
            self.eof = True
            self.eof_time = time.monotonic()
            return
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not self._chunked and "content-length" in self.headers:
            self._length_left = int(self.headers["content-length"])

    @property
    def json_body(self):
        return _decode_body(self.headers, self.body or b"")

    # -- body decoding
    def _body_bytes(self, deadline):
        """Next decoded body bytes; b'' at the end of the body."""
        r = self.reader
        if self._chunked:
            while True:
                if self._chunk_left == 0:
                    line = r.read_line(deadline)
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        return b""
                    self._chunk_left = size
                if not r.buf:
                    if not r._fill(deadline):
                        raise ConnectionError("connection closed inside a chunk")
                take = r.buf[:self._chunk_left]
                r.buf = r.buf[len(take):]
                self._chunk_left -= len(take)
                if self._chunk_left == 0:
                    r.read_exact(2, deadline)
                if take:
                    return take
        if self._length_left is not None:
            if self._length_left == 0:
                return b""
            if not r.buf and not r._fill(deadline):
                return b""
            take = r.buf[:self._length_left]
            r.buf = r.buf[len(take):]
            self._length_left -= len(take)
            return take
        if not r.buf and not r._fill(deadline):
            return b""
        take, r.buf = r.buf, b""
        return take

    def next_item(self, timeout=None):
        """The next item, or None at the end of the stream. Raises TimeoutError."""
        assert self.status == 200, "not a stream: HTTP %s" % self.status
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            if self.eof:
                return None
            text = self._text
            while True:
                nl = text.find(b"\n", self._pos)
                if nl < 0:
                    break
                line = text[self._pos:nl + 1]
                self._pos = nl + 1
                item = self._line(line)
                if item is not None:
                    self.items.append(item)
                    return item
            self._text = text[self._pos:]
            self._pos = 0
            try:
                more = self._body_bytes(deadline)
            except ConnectionError:  # reset, or closed in the middle of the chunked framing
                self.truncated = True
                more = b""
            except TimeoutError:
                raise TimeoutError("event stream: no data within the time-out; %d items so far, last: %r"
                                   % (len(self.items), self.items[-3:]))
            if not more:
                self.eof = True
                self.eof_time = time.monotonic()
                return None
            self._text += more

    def _line(self, raw_line):
        line = raw_line[:-1]
        if line.endswith(b"\r"):
            self.crlf_seen = True
            line = line[:-1]
        text = line.decode("utf-8")  # strict: broken UTF-8 fails the test
        if text == "":
            block, fields = self._block, self._fields
            self._block, self._fields = [], {}
            if "id" in fields or "event" in fields or "data" in fields:
                return SSEItem("event", id=fields.get("id"), event=fields.get("event", "message"),
                               data="\n".join(fields.get("data", [])),
                               raw=b"".join(block) + raw_line)
            return None
        if text.startswith(":"):
            c = text[1:]
            return SSEItem("comment", text=c[1:] if c.startswith(" ") else c, raw=raw_line)
        name, sep, value = text.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "retry":
            return SSEItem("retry", retry=value, raw=raw_line)
        self._block.append(raw_line)
        if name == "data":
            self._fields.setdefault("data", []).append(value)
        else:
            self._fields[name] = value
        return None

    def __iter__(self):
        """Yield every item (events, comments, retry) until the stream ends."""
        while True:
            item = self.next_item()
            if item is None:
                return
            yield item

    def next_event(self, timeout=None):
        """The next event (comments and retry are recorded in `items` but skipped)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            item = self.next_item(max(0.0, deadline - time.monotonic()))
            if item is None or item.kind == "event":
                return item

    def read_all(self, timeout=None):
        """Read to the end of the stream; returns the events. TimeoutError if it does not end."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while self.next_item(max(0.0, deadline - time.monotonic())) is not None:
            pass
        return self.events

    read_events = read_all

    @property
    def events(self):
        return [i for i in self.items if i.kind == "event"]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------- Server

class Server:
    """The real binary on a free port with its own temp database.

    Server(args=[...flags...], env={...}). start()/stop() or use as a context manager.
    restart(args=None) stops (SIGTERM) and starts again on the same database; kill() sends SIGKILL."""

    host = "127.0.0.1"

    def __init__(self, args=None, env=None, ready_timeout=15.0, database_url=None):
        """`database_url`: share that database (several instances on one PostgreSQL) instead of
        a fresh one."""
        self.args = list(args or [])
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.tmpdir = tempfile.mkdtemp(prefix="chatbot-e2e-")
        self.database_url = (database_url or fresh_external_database()
                             or "sqlite:%s" % os.path.join(self.tmpdir, "chatbot.db"))
        self.proc = None
        self.port = None
        self.generation = 0
        self.stdout_path = None
        self.stderr_path = None
        self._out = self._err = None

    # -- lifecycle
    def command(self):
        return [binary_path(), "serve", "--host", self.host, "--port", str(self.port),
                "--database", self.database_url] + self.args

    def start(self):
        binary = binary_path()
        if not os.path.isfile(binary):
            raise AssertionError("chatbot binary not found at %s (build it with `make build`, or set "
                                 "CHATBOT_BIN)" % binary)
        # The free port is chosen before the server binds it: a test running beside this one
        # (ctest -j) may take it meanwhile. Only that failure is retried, on another port.
        for attempt in range(5):
            try:
                return self._start_once()
            except AssertionError:
                if attempt == 4 or self.proc is None or self.proc.poll() is None or \
                        "Address already in use" not in self.stderr_text():
                    raise
                self.stop()

    def _start_once(self):
        self.generation += 1
        self.port = free_port()
        self.stdout_path = os.path.join(self.tmpdir, "stdout.%d.log" % self.generation)
        self.stderr_path = os.path.join(self.tmpdir, "stderr.%d.log" % self.generation)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, cwd=self.tmpdir,
                                     env=clean_env(self.env))
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("chatbot exited with status %s before it was ready.\ncommand: %s\n"
                                     "stderr:\n%s\nstdout:\n%s" % (self.proc.returncode,
                                                                   " ".join(self.command()),
                                                                   self.stderr_text()[-4000:],
                                                                   self.stdout_text()[-2000:]))
            try:
                r = http_request(self.host, self.port, "GET", "/healthz", timeout=2)
                if r.status == 200:
                    return
                last = "GET /healthz -> %s" % r.status
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        self.stop()
        raise AssertionError("chatbot not ready within %.0f s (last: %s).\ncommand: %s\nstderr:\n%s"
                             % (self.ready_timeout, last, " ".join(self.command()),
                                self.stderr_text()[-4000:]))

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after `timeout` s. Returns the exit status (None if not running)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(10)
        self._close_files()
        self.last_exit_status = rc
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL (no chance to clean up)."""
        if self.proc is None:
            return None
        self.proc.kill()
        rc = self.proc.wait(10)
        self._close_files()
        self.proc = None
        return rc

    def restart(self, args=None, env=None):
        """Stop (if running) and start again with the same database; optionally new flags/env."""
        self.stop()
        if args is not None:
            self.args = list(args)
        if env is not None:
            self.env = dict(env)
        return self.start()

    def _close_files(self):
        for f in (self._out, self._err):
            if f is not None:
                f.close()
        self._out = self._err = None

    def cleanup(self):
        self.stop()
        if os.environ.get("CHATBOT_TEST_KEEP_TMP") != "1":
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()

    def _read(self, path):
        if not path or not os.path.exists(path):
            return ""
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_text(self):
        return self._read(self.stderr_path)

    def all_stderr_text(self):
        """stderr of every start of this server (restarts included)."""
        return "".join(self._read(os.path.join(self.tmpdir, "stderr.%d.log" % g))
                       for g in range(1, self.generation + 1))

    SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                         "WARNING: ThreadSanitizer", "terminate called")

    def sanitizer_reports(self):
        """Lines of stderr that report memory errors, undefined behaviour or std::terminate."""
        return [l for l in self.all_stderr_text().splitlines()
                if any(m in l for m in self.SANITIZER_MARKERS)]

    def stdout_text(self):
        return self._read(self.stdout_path)

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def base_url(self):
        return "http://%s:%d" % (self.host, self.port)

    # -- client helpers
    def request(self, method, path, body=None, headers=None, raw_body=None, timeout=15.0):
        return http_request(self.host, self.port, method, path, body=body, headers=headers,
                            raw_body=raw_body, timeout=timeout)

    def raw(self, request_bytes, timeout=10.0):
        return raw_http(self.host, self.port, request_bytes, timeout=timeout)

    def sse(self, path, headers=None, timeout=15.0, read_head=True, rcvbuf=None):
        return SSEStream(self.host, self.port, path, headers=headers, timeout=timeout,
                         read_head=read_head, rcvbuf=rcvbuf)

    def open_unread_stream(self, path, headers=None, rcvbuf=4096):
        """Open an event stream and read nothing (not even the response head)."""
        return SSEStream(self.host, self.port, path, headers=headers, read_head=False, rcvbuf=rcvbuf)

    # -- domain helpers (each asserts its own success)
    def create_user(self, name=None):
        name = name or unique("user")
        r = self.request("POST", "/api/users", {"name": name})
        if r.status != 201:
            raise AssertionError("POST /api/users %r -> %r" % (name, r))
        return r.body

    def create_thread(self, user_id=None, title=None):
        if user_id is None:
            user_id = self.create_user()["user_id"]
        body = {"user_id": user_id}
        if title is not None:
            body["title"] = title
        r = self.request("POST", "/api/threads", body)
        if r.status != 201:
            raise AssertionError("POST /api/threads %r -> %r" % (body, r))
        return r.body

    def post_message(self, thread_id, content="hello", headers=None):
        r = self.request("POST", "/api/threads/%s/messages" % thread_id, {"content": content},
                         headers=headers)
        if r.status != 201:
            raise AssertionError("POST message on %s -> %r" % (thread_id, r))
        return r.body

    def get_run(self, run_id):
        r = self.request("GET", "/api/runs/%s" % run_id)
        if r.status != 200:
            raise AssertionError("GET /api/runs/%s -> %r" % (run_id, r))
        return r.body

    def get_thread(self, thread_id):
        r = self.request("GET", "/api/threads/%s" % thread_id)
        if r.status != 200:
            raise AssertionError("GET /api/threads/%s -> %r" % (thread_id, r))
        return r.body

    def wait_run(self, run_id, statuses=TERMINAL, timeout=30.0, interval=0.02):
        """Poll GET /api/runs/{id} until its status is in `statuses`; returns the run."""
        deadline = time.monotonic() + timeout
        run = None
        while time.monotonic() < deadline:
            run = self.get_run(run_id)
            if run.get("status") in statuses:
                return run
            time.sleep(interval)
        raise AssertionError("run %s not in %s within %.0f s; last seen %r"
                             % (run_id, statuses, timeout, run))

    def events(self, run_id, last_event_id=None, timeout=30.0):
        """The whole event stream of a run (replay + live until done) as a list of SSEItem."""
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        with self.sse("/api/runs/%s/events" % run_id, headers=headers, timeout=timeout) as s:
            if s.status != 200:
                raise AssertionError("GET events of %s -> HTTP %s %r" % (run_id, s.status, s.body))
            return s.read_all(timeout)


def event_signature(events):
    """['state:running', 'tool_start', ..., 'done:done'] — types, with the status for state/done."""
    out = []
    for e in events:
        if e.event in ("state", "done"):
            try:
                out.append("%s:%s" % (e.event, json.loads(e.data).get("status")))
            except (ValueError, AttributeError):
                out.append(e.event + ":?")
        else:
            out.append(e.event)
    return out


def compress_signature(sig):
    """Collapse runs of 'token' into 'token+' for readable failure messages."""
    out = []
    for s in sig:
        if s == "token" and out and out[-1] in ("token", "token+"):
            out[-1] = "token+"
        else:
            out.append(s)
    return " ".join(out)
