"""Python side of tests/fake_openai: start the scripted upstream, script it, read its record.

    with FakeOpenAI() as fake:
        fake.script([stream(["Hel", "lo"])])
        ... run the service against http://127.0.0.1:%d/v1 % fake.port ...
        fake.requests()        # what it received (headers lowercased, body parsed as JSON)
        fake.connections()     # when each client connection opened/closed, and who closed it

The binary is FAKE_OPENAI_BIN, or `fake_openai` beside CHATBOT_BIN (CMake builds both into
the build directory). Standard library only.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))


def fake_binary() -> str:
    if os.environ.get("FAKE_OPENAI_BIN"):
        return os.environ["FAKE_OPENAI_BIN"]
    chatbot = os.environ.get("CHATBOT_BIN") or os.path.join(REPO_ROOT, "build", "release", "chatbot")
    return os.path.join(os.path.dirname(os.path.abspath(chatbot)), "fake_openai")


# ---------------------------------------------------------------------------- script builders

def chunk(content=None, tool_calls=None, finish_reason=None, role=None, model="fake-model"):
    """One chat.completion.chunk object, as OpenAI streams it."""
    delta = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish_reason}]}


def usage_chunk(prompt=9, completion=12):
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "fake-model", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


DONE = {"raw": "data: [DONE]\n\n"}


def stream(pieces, delay_ms=0, usage=None, done=True, end="normal", first_delay_ms=None):
    """A 200 streaming response: a role chunk, one content chunk per piece, a finish chunk,
    the usage chunk (if given) and [DONE]."""
    items = [{"data": chunk(role="assistant", content="")}]
    for i, p in enumerate(pieces):
        d = delay_ms if (i > 0 or first_delay_ms is None) else first_delay_ms
        items.append({"data": chunk(content=p), "delay_ms": d})
    items.append({"data": chunk(finish_reason="stop")})
    if usage is not None:
        items.append({"data": usage})
    if done:
        items.append(DONE)
    return {"status": 200, "chunks": items, "end": end}


def error_response(status, message, headers=None, keep_alive=True):
    r = {"status": status, "json": {"error": {"message": message, "type": "fake_error", "code": None}},
         "keep_alive": keep_alive}
    if headers:
        r["headers"] = headers
    return r


# ---------------------------------------------------------------------------------- the fake

class FakeOpenAI:
    host = "127.0.0.1"

    def __init__(self, tls=False):
        self.tls = tls
        self.tmpdir = tempfile.mkdtemp(prefix="fake-openai-")
        self.proc = None
        self.port = None
        self.tls_port = None
        self.cert = None

    def start(self):
        binary = fake_binary()
        if not os.path.isfile(binary):
            raise AssertionError("fake_openai not found at %s (build the `fake_openai` target, or set "
                                 "FAKE_OPENAI_BIN)" % binary)
        cmd = [binary, "--host", self.host, "--port", "0"]
        if self.tls:
            cmd += ["--tls-dir", self.tmpdir]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("ready "):
            self.stop()
            raise AssertionError("fake_openai did not start: %r" % line)
        fields = dict(kv.split("=", 1) for kv in line.split()[1:])
        self.port = int(fields["port"])
        if "tls_port" in fields:
            self.tls_port = int(fields["tls_port"])
            self.cert = fields["cert"]
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc.stdout.close()
            self.proc = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        return "http://%s:%d/v1" % (self.host, self.port)

    def _control(self, method, path, body=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            raw = resp.read()
            if resp.status != 200:
                raise AssertionError("fake_openai %s %s -> %s %r" % (method, path, resp.status, raw))
            return json.loads(raw)
        finally:
            conn.close()

    def script(self, responses, default=None):
        """Replaces the queue: each request to the API gets the next response."""
        body = {"responses": list(responses)}
        if default is not None:
            body["default"] = default
        self._control("POST", "/_control/script", body)

    def reset(self):
        self._control("POST", "/_control/reset")

    def log(self):
        return self._control("GET", "/_control/log")

    def requests(self):
        out = []
        for r in self.log()["requests"]:
            try:
                r["json"] = json.loads(r["body"])
            except ValueError:
                r["json"] = None
            out.append(r)
        return out

    def connections(self):
        return self.log()["connections"]
