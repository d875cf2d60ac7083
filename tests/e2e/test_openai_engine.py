"""The `openai` engine, end to end: the real binary against the project's scripted
OpenAI-compatible upstream (tests/fake_openai), which records what it received and when the
client closed its connection.

Streams (normal, slow, usage, tool calls, a recorded OpenAI stream, UTF-8 split anywhere), the
request it sends (path, key, model, system prompt, temperature, history in order), every failure
(HTTP 401/429/500, refused, DNS, TLS, time-outs, malformed chunk, no [DONE], abrupt close),
retries before the first token only, cancel closing the upstream connection, connection reuse,
and the API key never showing anywhere."""
import json
import os
import socket
import sys
import time
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support

sys.path.insert(0, os.path.join(harness.REPO_ROOT, "tests", "fake_openai"))
import fake_openai_client as fo  # noqa: E402

API_KEY = "sk-e2e-SECRET-7d3f0c1b9a"
MODEL = "fake-model-1"
SYSTEM = "You are a terse assistant."
RECORDED = os.path.join(harness.REPO_ROOT, "tests", "fake_openai", "recorded", "openai_chat_stream.txt")
ERROR_RE = r"^state:running (tool_start (tool_end )?)*(token )*error state:error done:error$"


def engine_args(base_url, **extra):
    args = ["--engine", "openai", "--openai-base-url", base_url, "--openai-api-key", API_KEY,
            "--openai-model", MODEL]
    for k, v in extra.items():
        args += ["--openai-" + k.replace("_", "-"), str(v)]
    return args


class OpenAITestBase(support.ServerTestCase):
    def run_once(self, content="hello", thread_id=None, server=None, timeout=30):
        srv = server or self.server
        tid = thread_id or srv.create_thread()["thread_id"]
        p = srv.post_message(tid, content)
        events = srv.events(p["run_id"], timeout=timeout)
        return tid, p, events, srv.get_run(p["run_id"])

    def final(self, events):
        finals = [e for e in events if e.event == "final"]
        self.assertEqual(len(finals), 1, "one final event: %s" % self.signature(events))
        return json.loads(finals[0].data)

    def assertDone(self, events, run, what):
        self.assertContiguous(events, 1, what)
        self.assertFrames(events, what)
        self.assertSuccessLog(events, what)
        self.assertEqual(run["status"], "done", "%s: run %r" % (what, run))

    def assertErrorRun(self, events, run, what, *needles):
        """Failure order, the error event and the run's error say what happened; returns it."""
        self.assertContiguous(events, 1, what)
        self.assertFrames(events, what)
        sig = harness.event_signature(events)
        self.assertRegex(" ".join(sig), ERROR_RE, "%s: failure order: %s" % (what, harness.compress_signature(sig)))
        err = json.loads([e for e in events if e.event == "error"][0].data)["error"]
        self.assertEqual(run["status"], "error")
        self.assertEqual(run["error"], err, "%s: the run's error is the error event's" % what)
        for n in needles:
            self.assertIn(n.lower(), err.lower(), "%s: the error should mention %r: %r" % (what, n, err))
        self.assertNotIn(API_KEY, err)
        return err


class OpenAIEngineTest(OpenAITestBase):
    """One service against one fake upstream, re-scripted per test."""

    @classmethod
    def setUpClass(cls):
        cls.fake = fo.FakeOpenAI().start()
        cls.addClassCleanup(cls.fake.stop)
        cls.server_args = engine_args(cls.fake.base_url, system_prompt=SYSTEM, temperature="0.25",
                                      connect_timeout_s=2, first_byte_timeout_s=1, idle_timeout_s=1,
                                      retries=2)
        super().setUpClass()

    def setUp(self):
        self.fake.reset()

    # ------------------------------------------------------------------ streams
    def test_normal_stream_and_the_request_it_sends(self):
        pieces = ["Hel", "lo ", "w\u00f6rld", " \U0001f389", "!"]
        self.fake.script([fo.stream(pieces, delay_ms=5)])
        tid, p, events, run = self.run_once("hello there")
        self.assertDone(events, run, "openai run")
        self.assertEqual([json.loads(e.data)["text"] for e in events if e.event == "token"], pieces,
                         "each delta.content is one token event, in order")
        final = self.final(events)
        self.assertEqual(final["text"], "".join(pieces))
        self.assertNotIn("usage", final, "no usage reported, none in final")
        msgs = self.server.get_thread(tid)["messages"]
        self.assertEqual(msgs[-1]["role"], "assistant")
        self.assertEqual(msgs[-1]["content"], "".join(pieces))

        reqs = self.fake.requests()
        self.assertEqual(len(reqs), 1, "one upstream request per run: %r" % reqs)
        r = reqs[0]
        self.assertEqual(r["method"], "POST")
        self.assertEqual(r["target"], "/v1/chat/completions")
        self.assertEqual(r["headers"].get("authorization"), "Bearer " + API_KEY)
        self.assertTrue(r["headers"].get("content-type", "").startswith("application/json"))
        self.assertEqual(r["headers"].get("host"), "127.0.0.1:%d" % self.fake.port)
        body = r["json"]
        self.assertIsInstance(body, dict, "the body is JSON: %r" % r["body"])
        self.assertEqual(body["model"], MODEL)
        self.assertIs(body["stream"], True)
        self.assertEqual(body["stream_options"], {"include_usage": True})
        self.assertAlmostEqual(body["temperature"], 0.25)
        self.assertEqual(body["messages"], [{"role": "system", "content": SYSTEM},
                                            {"role": "user", "content": "hello there"}])

    def test_slow_stream_arrives_as_it_is_produced(self):
        pieces = ["one ", "two ", "three ", "four ", "five"]
        self.fake.script([fo.stream(pieces, delay_ms=300)])
        tid = self.server.create_thread()["thread_id"]
        p = self.server.post_message(tid, "slowly")
        with self.server.sse("/api/runs/%s/events" % p["run_id"], timeout=30) as s:
            s.read_all(30)
        tokens = [i for i in s.items if i.kind == "event" and i.event == "token"]
        self.assertEqual([json.loads(t.data)["text"] for t in tokens], pieces)
        gaps = [b.t - a.t for a, b in zip(tokens, tokens[1:])]
        self.assertGreater(tokens[-1].t - tokens[0].t, 0.9,
                           "tokens are forwarded as they arrive, not at the end: gaps %r" % gaps)
        self.assertTrue(all(g > 0.15 for g in gaps), "each token came on its own: gaps %r" % gaps)
        self.assertDone(s.events, self.server.get_run(p["run_id"]), "slow stream")

    def test_usage_is_in_final(self):
        usage = fo.usage_chunk(prompt=21, completion=3)
        self.fake.script([fo.stream(["a", "b", "c"], usage=usage)])
        tid, p, events, run = self.run_once("count me")
        self.assertDone(events, run, "usage run")
        final = self.final(events)
        self.assertEqual(final["usage"], usage["usage"])
        self.assertEqual(final["text"], "abc")

    def test_recorded_openai_stream(self):
        with open(RECORDED, encoding="utf-8") as f:
            wire = f.read()
        events_raw = [e + "\n\n" for e in wire.split("\n\n") if e]
        self.fake.script([{"status": 200, "chunks": [{"raw": e} for e in events_raw]}])
        tid, p, events, run = self.run_once("Hello!")
        self.assertDone(events, run, "recorded OpenAI stream")
        final = self.final(events)
        self.assertEqual(final["text"], "Hello! How can I assist you today?")
        self.assertEqual(final["usage"]["total_tokens"], 29)
        self.assertEqual(final["usage"]["completion_tokens_details"]["reasoning_tokens"], 0)

    def test_tool_calls_become_tool_events(self):
        def tc(index, name=None, args=None, call_id=None):
            d = {"index": index, "function": {}}
            if call_id:
                d["id"] = call_id
                d["type"] = "function"
            if name is not None:
                d["function"]["name"] = name
            if args is not None:
                d["function"]["arguments"] = args
            return [d]
        items = [
            {"data": fo.chunk(role="assistant", tool_calls=tc(0, "get_weather", "", "call_1"))},
            {"data": fo.chunk(tool_calls=tc(0, args='{"city": "Pa'))},
            {"data": fo.chunk(tool_calls=tc(0, args='ris", "unit": "C"}'))},
            {"data": fo.chunk(tool_calls=tc(1, "lookup", "", "call_2"))},
            {"data": fo.chunk(tool_calls=tc(1, args="not json"))},
            {"data": fo.chunk(finish_reason="tool_calls")},
            {"data": fo.usage_chunk(5, 7)},
            fo.DONE,
        ]
        self.fake.script([{"status": 200, "chunks": items}])
        tid, p, events, run = self.run_once("weather in Paris?")
        self.assertDone(events, run, "tool calls")
        tools = [(e.event, json.loads(e.data)) for e in events if e.event.startswith("tool_")]
        self.assertEqual(tools, [
            ("tool_start", {"tool": "get_weather", "input": {"city": "Paris", "unit": "C"}}),
            ("tool_end", {"tool": "get_weather", "output": {}}),
            ("tool_start", {"tool": "lookup", "input": {"arguments": "not json"}}),
            ("tool_end", {"tool": "lookup", "output": {}}),
        ])
        self.assertEqual(self.final(events)["text"], "")

    def test_history_of_three_turns_arrives_in_order(self):
        self.fake.script([fo.stream(["first ", "answer"]), fo.stream(["second answer"]),
                          fo.stream(["third answer"])])
        tid, _, ev1, run1 = self.run_once("question one")
        self.run_once("question two", thread_id=tid)
        _, _, ev3, run3 = self.run_once("question three", thread_id=tid)
        self.assertDone(ev3, run3, "third turn")
        reqs = self.fake.requests()
        self.assertEqual(len(reqs), 3)
        self.assertEqual(reqs[2]["json"]["messages"], [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "question one"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "question two"},
            {"role": "assistant", "content": "second answer"},
            {"role": "user", "content": "question three"},
        ])
        self.assertEqual(reqs[1]["json"]["messages"][-1], {"role": "user", "content": "question two"})

    def test_multibyte_characters_split_anywhere_survive(self):
        # 1) A whole SSE event cut into HTTP chunks in the middle of "€" and of "🎉".
        ev = ("data: " + json.dumps(fo.chunk(content="price 5\u20ac \U0001f389 done"), ensure_ascii=False)
              + "\n\n").encode("utf-8")
        euro = ev.index("\u20ac".encode())
        party = ev.index("\U0001f389".encode())
        cuts = [0, euro + 1, euro + 2, party + 1, party + 3, len(ev)]
        pieces = [ev[a:b] for a, b in zip(cuts, cuts[1:])]
        # 2) A character's bytes cut between two deltas (raw token bytes, as some servers send).
        d1 = b'data: {"choices":[{"index":0,"delta":{"content":" caf\xc3"}}]}\n\n'
        d2 = b'data: {"choices":[{"index":0,"delta":{"content":"\xa9 \xe4\xb8"}}]}\n\n'
        d3 = b'data: {"choices":[{"index":0,"delta":{"content":"\x96\xe7\x95\x8c"}}]}\n\n'
        items = [{"hex": b.hex(), "delay_ms": 30} for b in pieces + [d1, d2, d3]] + [fo.DONE]
        self.fake.script([{"status": 200, "chunks": items}])
        tid, p, events, run = self.run_once("unicode please")
        self.assertDone(events, run, "split UTF-8")
        expected = "price 5\u20ac \U0001f389 done caf\u00e9 \u4e16\u754c"
        self.assertEqual(self.tokens_text(events), expected)
        self.assertEqual(self.final(events)["text"], expected)
        self.assertNotIn("\ufffd", self.tokens_text(events), "no replacement character anywhere")
        self.assertEqual(self.server.get_thread(tid)["messages"][-1]["content"], expected)

    def test_connection_is_reused_across_runs(self):
        self.fake.script([fo.stream(["one"]), fo.stream(["two"])])
        self.run_once("first")
        self.run_once("second")
        reqs = self.fake.requests()
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[0]["conn"], reqs[1]["conn"], "the second run reuses the first's connection")

    # ------------------------------------------------------------------ failures
    def test_http_401_is_not_retried_and_says_why(self):
        self.fake.script([fo.error_response(401, "Incorrect API key provided: %s." % API_KEY)],
                         default=fo.stream(["should not be used"]))
        tid, p, events, run = self.run_once("who am i")
        err = self.assertErrorRun(events, run, "HTTP 401", "401", "Incorrect API key provided")
        self.assertIn("[redacted]", err, "the key the upstream echoed is masked: %r" % err)
        self.assertEqual(len(self.fake.requests()), 1, "a 401 is not retried")
        self.assertEqual(self.server.get_thread(tid)["messages"][-1]["role"], "user",
                         "no assistant message for a failed run")

    def test_429_then_success_honours_retry_after(self):
        self.fake.script([fo.error_response(429, "Rate limit reached", headers={"Retry-After": "1"}),
                          fo.stream(["after ", "the wait"])])
        tid, p, events, run = self.run_once("rate limited")
        self.assertDone(events, run, "429 then success")
        self.assertEqual(self.final(events)["text"], "after the wait")
        reqs = self.fake.requests()
        self.assertEqual(len(reqs), 2, "retried once")
        self.assertGreaterEqual(reqs[1]["t"] - reqs[0]["t"], 0.9, "Retry-After: 1 was honoured")
        self.assertEqual(reqs[0]["body"], reqs[1]["body"], "the same request again")

    def test_500_is_retried_a_bounded_number_of_times(self):
        self.fake.script([], default=fo.error_response(500, "The model crashed"))
        t0 = time.monotonic()
        tid, p, events, run = self.run_once("crash")
        self.assertErrorRun(events, run, "HTTP 500", "500", "The model crashed", "3 attempts")
        self.assertEqual(len(self.fake.requests()), 3, "1 attempt + 2 retries")
        self.assertLess(time.monotonic() - t0, 10)

    def test_no_retry_after_the_first_token(self):
        self.fake.script([fo.stream(["partial "], done=False, end="close")],
                         default=fo.stream(["a second attempt"]))
        tid, p, events, run = self.run_once("once only")
        err = self.assertErrorRun(events, run, "abrupt close", "closed", "[DONE]")
        self.assertEqual(self.tokens_text(events), "partial ")
        self.assertEqual(len(self.fake.requests()), 1, "never retried after a token: %r" % err)

    def test_malformed_chunk(self):
        self.fake.script([{"status": 200, "chunks": [{"data": fo.chunk(content="Hel")},
                                                     {"raw": "data: {this is not json\n\n"}, fo.DONE]}])
        tid, p, events, run = self.run_once("garbage")
        self.assertErrorRun(events, run, "malformed chunk", "malformed chunk", "this is not json")
        self.assertEqual(self.tokens_text(events), "Hel")

    def test_stream_without_done(self):
        self.fake.script([fo.stream(["no ", "end"], done=False)])
        tid, p, events, run = self.run_once("no done")
        self.assertErrorRun(events, run, "no [DONE]", "without [DONE]")
        self.assertEqual(self.tokens_text(events), "no end", "the tokens before the failure were sent")

    def test_error_object_mid_stream(self):
        self.fake.script([{"status": 200, "chunks": [
            {"data": fo.chunk(content="so far")},
            {"data": {"error": {"message": "The server is overloaded", "type": "server_error"}}}]}])
        tid, p, events, run = self.run_once("overload")
        self.assertErrorRun(events, run, "error mid-stream", "The server is overloaded")

    def test_first_byte_timeout(self):
        self.fake.script([dict(fo.stream(["late"]), head_delay_ms=3000)])
        t0 = time.monotonic()
        tid, p, events, run = self.run_once("are you there")
        self.assertErrorRun(events, run, "first-byte time-out", "first-byte time-out", "1000 ms")
        self.assertLess(time.monotonic() - t0, 2.8, "the time-out fired before the head came")
        self.assertEqual(len(self.fake.requests()), 1, "a time-out after sending is not retried")

    def test_idle_timeout_between_chunks(self):
        self.fake.script([fo.stream(["quick ", "then silence"], delay_ms=3000, first_delay_ms=0)])
        t0 = time.monotonic()
        tid, p, events, run = self.run_once("stall")
        self.assertErrorRun(events, run, "idle time-out", "idle time-out")
        self.assertLess(time.monotonic() - t0, 2.8)
        self.assertEqual(self.tokens_text(events), "quick ")

    # ------------------------------------------------------------------ cancel
    def test_cancel_closes_the_upstream_connection_at_once(self):
        self.fake.script([fo.stream(["t%d " % i for i in range(100)], delay_ms=100)])
        tid = self.server.create_thread()["thread_id"]
        p = self.server.post_message(tid, "take your time")
        with self.server.sse("/api/runs/%s/events" % p["run_id"], timeout=30) as s:
            tokens = 0
            while tokens < 3:
                e = s.next_event(10)
                self.assertIsNotNone(e, "stream ended early")
                tokens += e.event == "token"
            t_cancel = time.monotonic()
            r = self.req("POST", "/api/runs/%s/cancel" % p["run_id"])
            self.assertEqual(r.body, {"ok": True, "status": "canceled"})
            events = s.read_all(5)
        self.assertRegex(" ".join(harness.event_signature(events)), support.CANCEL_RUNNING_RE)
        conn_id = self.fake.requests()[0]["conn"]
        deadline = time.monotonic() + 3
        conn = None
        while time.monotonic() < deadline:
            conn = [c for c in self.fake.connections() if c["id"] == conn_id][0]
            if conn["closed"] is not None:
                break
            time.sleep(0.02)
        self.assertIsNotNone(conn["closed"], "the upstream connection was not closed: %r" % conn)
        self.assertEqual(conn["closed_by"], "client")
        self.assertLess(conn["closed"] - t_cancel, 0.1,
                        "the upstream connection closed %.0f ms after the cancel request"
                        % ((conn["closed"] - t_cancel) * 1000))
        partial = self.tokens_text(events)
        self.assertTrue(partial.startswith("t0 t1 t2 "), partial)
        msgs = self.server.get_thread(tid)["messages"]
        self.assertEqual(msgs[-1]["role"], "assistant")
        self.assertEqual(msgs[-1]["content"], partial, "the partial reply is kept")
        # The engine goes on working after a cancel (a fresh connection).
        self.fake.script([fo.stream(["fine"])])
        _, _, ev, run = self.run_once("after cancel")
        self.assertDone(ev, run, "run after a cancel")

    # ------------------------------------------------------------------ the key
    def test_api_key_never_appears(self):
        self.fake.script([fo.stream(["ok"]), fo.error_response(403, "key %s is not allowed" % API_KEY),
                          {"status": 200, "chunks": [{"data": {"error": {"message": "bad key " + API_KEY}}}]}])
        seen = []
        for content in ("one", "two", "three"):
            tid, p, events, run = self.run_once(content)
            seen.append(json.dumps(run))
            seen.extend(e.raw.decode("utf-8") for e in events)
            seen.append(json.dumps(self.server.get_thread(tid)))
        blob = "\n".join(seen)
        self.assertIn("[redacted]", blob, "the failing runs did report the upstream's message")
        self.assertNotIn(API_KEY, blob, "the API key leaked into an event, a run or a thread")
        metrics = self.req("GET", "/metrics")
        if metrics.status == 200:
            self.assertNotIn(API_KEY, metrics.raw.decode("utf-8", "replace"))
        logs = self.server.stdout_text() + self.server.stderr_text()
        self.assertNotIn(API_KEY, logs, "the API key leaked into the service's logs")


class OpenAIConnectFailuresTest(OpenAITestBase):
    """Upstreams that cannot be reached: each on its own service (the base URL is per process)."""

    @classmethod
    def setUpClass(cls):
        unittest.TestCase.setUpClass()  # no class server: each test starts its own

    @classmethod
    def tearDownClass(cls):
        unittest.TestCase.tearDownClass()

    def serve(self, base_url, env=None, **extra):
        srv = harness.Server(engine_args(base_url, **extra), env=env, ready_timeout=60)
        self.addCleanup(srv.cleanup)
        srv.start()
        self.addCleanup(self.assertStoppedCleanly, srv)
        return srv

    def assertStoppedCleanly(self, srv):
        self.assertTrue(srv.alive, "the service died: %s" % srv.stderr_text()[-2000:])
        srv.stop()
        reports = srv.sanitizer_reports() if hasattr(srv, "sanitizer_reports") else []
        self.assertEqual(reports, [], "sanitizer reports")

    def assertKeyNotLogged(self, srv):
        self.assertNotIn(API_KEY, srv.stdout_text() + srv.stderr_text())

    def test_connection_refused_is_retried_then_fails(self):
        hold, port = harness.refusing_port()
        self.addCleanup(hold.close)
        srv = self.serve("http://127.0.0.1:%d/v1" % port, retries=2)
        t0 = time.monotonic()
        _, _, events, run = self.run_once("anyone?", server=srv)
        self.assertErrorRun(events, run, "refused", "refused", "127.0.0.1:%d" % port, "3 attempts")
        self.assertGreater(time.monotonic() - t0, 0.5, "with a back-off between attempts")
        self.assertIn("retrying", srv.stderr_text() + srv.stdout_text(), "retries are logged")
        self.assertKeyNotLogged(srv)

    def test_dns_failure(self):
        srv = self.serve("http://nonexistent.invalid:8080/v1", retries=0)
        _, _, events, run = self.run_once("dns?", server=srv)
        self.assertErrorRun(events, run, "DNS", "nonexistent.invalid", "DNS")
        self.assertKeyNotLogged(srv)

    def test_tls_to_a_plain_http_server(self):
        with fo.FakeOpenAI() as fake:
            srv = self.serve("https://127.0.0.1:%d/v1" % fake.port)
            _, _, events, run = self.run_once("tls?", server=srv)
            self.assertErrorRun(events, run, "TLS failure", "TLS handshake", "failed")
            self.assertEqual(fake.requests(), [], "no request went out in clear text")
            self.assertKeyNotLogged(srv)

    def test_tls_with_a_trusted_certificate_and_hostname_verification(self):
        with fo.FakeOpenAI(tls=True) as fake:
            env = {"SSL_CERT_FILE": fake.cert}
            good = self.serve("https://localhost:%d/v1" % fake.tls_port, env=env)
            fake.script([fo.stream(["secure ", "h\u00e9llo"]), fo.stream(["again"])])
            _, _, events, run = self.run_once("over tls", server=good)
            self.assertDone(events, run, "https upstream")
            self.assertEqual(self.final(events)["text"], "secure h\u00e9llo")
            self.run_once("twice", server=good)
            reqs = fake.requests()
            self.assertEqual(reqs[0]["headers"]["authorization"], "Bearer " + API_KEY)
            self.assertEqual(reqs[0]["headers"]["host"], "localhost:%d" % fake.tls_port)
            self.assertEqual(reqs[0]["conn"], reqs[1]["conn"], "the TLS connection is reused")
            self.assertTrue(fake.connections()[0]["tls"])

            # The same certificate does not name 127.0.0.1: hostname verification refuses it.
            wrong_name = self.serve("https://127.0.0.1:%d/v1" % fake.tls_port, env=env)
            _, _, events, run = self.run_once("wrong name", server=wrong_name)
            self.assertErrorRun(events, run, "hostname mismatch", "TLS handshake", "certificate verify failed")

            # Without the certificate in the trust store: an unknown issuer.
            untrusted = self.serve("https://localhost:%d/v1" % fake.tls_port,
                                   env={"SSL_CERT_FILE": os.devnull})
            _, _, events, run = self.run_once("untrusted", server=untrusted)
            self.assertErrorRun(events, run, "untrusted certificate", "TLS handshake", "certificate")

    def test_connect_timeout(self):
        # A listener whose accept queue is full: the kernel drops further SYNs, connect hangs.
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        self.addCleanup(lst.close)
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(lst.getsockname())
            fillers.append(s)
        for s in fillers:
            self.addCleanup(s.close)
        time.sleep(0.1)
        srv = self.serve("http://127.0.0.1:%d/v1" % lst.getsockname()[1], connect_timeout_s=0.5, retries=0)
        t0 = time.monotonic()
        _, _, events, run = self.run_once("hello?", server=srv)
        self.assertErrorRun(events, run, "connect time-out", "connect time-out", "500 ms")
        self.assertLess(time.monotonic() - t0, 3)


class OpenAIConfigTest(unittest.TestCase):
    def start_fails(self, args, needle):
        srv = harness.Server(args)
        self.addCleanup(srv.cleanup)
        with self.assertRaises(AssertionError) as ctx:
            srv.start()
        self.assertIn("exited with status 2", str(ctx.exception))
        self.assertIn(needle, srv.stderr_text())
        self.assertNotIn(API_KEY, srv.stderr_text() + srv.stdout_text())

    def test_model_is_required(self):
        self.start_fails(["--engine", "openai", "--openai-base-url", "http://127.0.0.1:9/v1",
                          "--openai-api-key", API_KEY], "--openai-model")

    def test_bad_base_url_is_refused(self):
        self.start_fails(engine_args("ftp://example.com/v1"), "--openai-base-url")

    def test_bad_temperature_is_refused(self):
        self.start_fails(engine_args("http://127.0.0.1:9/v1") + ["--openai-temperature", "7"],
                         "--openai-temperature")


if __name__ == "__main__":
    unittest.main()
