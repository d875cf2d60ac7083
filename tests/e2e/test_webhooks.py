"""Webhooks: a run's ending is POSTed to its "webhook" (or CHATBOT_WEBHOOK_URL), signed as
Standard Webhooks do, retried with back-off, and kept in the database until delivered, so a
restart of the service (or a receiver that is down) loses none.

The receiver here verifies every signature (HMAC-SHA256 over "<id>.<timestamp>.<body>",
constant-time comparison, timestamp within 5 minutes) and can fail the first attempts."""
import base64
import hashlib
import hmac
import http.server
import json
import subprocess
import threading
import time
import unittest

try:
    from . import harness, support
    from .test_docs_openapi import Validator
except ImportError:
    import harness, support
    from test_docs_openapi import Validator

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RAW_SECRET = "a-raw-secret-whose-bytes-are-the-key"


def key_of(secret):
    """Standard Webhooks: whsec_<base64> is the decoded bytes; any other secret its raw bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode("utf-8")


def verify(secret, headers, body):
    """True when one of the v1 signatures of `webhook-signature` matches and the timestamp is
    within 5 minutes of now."""
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    signed = ("%s.%s." % (msg_id, ts)).encode("utf-8") + body
    expected = base64.b64encode(hmac.new(key_of(secret), signed, hashlib.sha256).digest()).decode()
    for sig in headers.get("webhook-signature", "").split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


class Receiver:
    """An HTTP server in a thread that records every POST. The first `fail_first` attempts of
    each webhook-id are answered 500, later ones 204. With `hang_first`, the first attempt of
    each webhook-id gets no answer at all (status None) until the receiver closes."""

    def __init__(self, secret, fail_first=0, port=0, hang_first=False):
        self.secret = secret
        self.fail_first = fail_first
        self.hang_first = hang_first
        self.attempts = []  # (headers, body bytes, verified, answered status)
        self.peers = []  # the sender's (host, port) of each attempt
        self.cond = threading.Condition()
        self.closing = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = verify(receiver.secret, headers, body)
                with receiver.cond:
                    tries = sum(1 for h, _, _, _ in receiver.attempts
                                if h.get("webhook-id") == headers.get("webhook-id"))
                    status = 500 if (tries < receiver.fail_first or not ok) else 204
                    if receiver.hang_first and tries == 0:
                        status = None
                    receiver.attempts.append((headers, body, ok, status))
                    receiver.peers.append(self.client_address)
                    receiver.cond.notify_all()
                if status is None:
                    receiver.closing.wait()
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def delivered(self, run_id, timeout=20.0):
        """The attempts for `run_id` up to and including the first answered 2xx."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                mine = [a for a in self.attempts if json.loads(a[1])["run"]["run_id"] == run_id]
                for i, a in enumerate(mine):
                    if a[3] == 204:
                        return mine[:i + 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no delivery for run %s within %.0f s; attempts: %r"
                                         % (run_id, timeout, mine))
                self.cond.wait(left)

    def first_attempt(self, timeout=20.0):
        """The sender's (host, port) of the first attempt, once it came."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.peers:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no webhook attempt within %.0f s" % timeout)
                self.cond.wait(left)
            return self.peers[0]

    def close(self):
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class WebhookTest(support.ServerTestCase):
    server_env = {"CHATBOT_WEBHOOK_SECRET": SECRET, "CHATBOT_WEBHOOK_RETRY_BASE_MS": "100"}
    server_args = ["--demo-token-delay-ms", "20", "--demo-tool-delay-ms", "20"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.receiver = Receiver(SECRET, fail_first=2)
        cls.addClassCleanup(cls.receiver.close)

    def post(self, thread_id, body):
        return self.req("POST", "/api/threads/%s/messages" % thread_id, body)

    def test_signed_delivery_arrives_after_failed_attempts(self):
        t = self.server.create_thread()
        r = self.post(t["thread_id"], {"content": "hi", "webhook": self.receiver.url("/runs?x=1")})
        self.assertStatus(r, 201)
        run_id = r.body["run_id"]
        self.server.wait_run(run_id)
        attempts = self.receiver.delivered(run_id)
        self.assertEqual([a[3] for a in attempts], [500, 500, 204], "retried until it succeeded")
        self.assertTrue(all(a[2] for a in attempts), "every attempt is signed")
        ids = {a[0]["webhook-id"] for a in attempts}
        self.assertEqual(len(ids), 1, "webhook-id is the same on every attempt")
        headers, body, _, _ = attempts[-1]
        self.assertTrue(headers["content-type"].startswith("application/json"))
        payload = json.loads(body)
        self.assertEqual(payload["type"], "run.ended")
        # The run exactly as the API shows it.
        self.assertEqual(payload["run"], self.server.get_run(run_id))
        self.assertEqual(payload["run"]["status"], "done")
        self.assertEqual(payload["run"]["webhook"], self.receiver.url("/runs?x=1"))
        # As the OpenAPI document describes it (its `webhooks.runEnded`).
        doc = self.req("GET", "/openapi.json").body
        schema = doc["webhooks"]["runEnded"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        self.assertEqual(Validator(doc).errors(schema, payload), [])
        # Retried with back-off, not at once.
        t0 = float(attempts[0][0]["webhook-timestamp"])
        self.assertLessEqual(t0, time.time())
        metrics = self.req("GET", "/metrics").raw.decode()
        self.assertRegex(metrics, r'chatbot_webhook_deliveries_total\{outcome="delivered"\} [1-9]')

    def test_canceled_runs_deliver_too(self):
        t = self.server.create_thread()
        first = self.post(t["thread_id"], {"content": "a", "webhook": self.receiver.url()}).body
        queued = self.post(t["thread_id"], {"content": "b", "webhook": self.receiver.url()}).body
        # Canceled while queued (behind the first) and while running.
        self.assertEqual(self.req("POST", "/api/runs/%s/cancel" % queued["run_id"]).body["status"],
                         "canceled")
        self.server.wait_run(first["run_id"], statuses=("running",) + harness.TERMINAL)
        self.req("POST", "/api/runs/%s/cancel" % first["run_id"])
        for p in (first, queued):
            run = self.server.wait_run(p["run_id"])
            attempts = self.receiver.delivered(p["run_id"])
            payload = json.loads(attempts[-1][1])
            self.assertEqual(payload["run"]["status"], run["status"])
            self.assertEqual(payload["run"], self.server.get_run(p["run_id"]))
        self.assertEqual(self.server.get_run(queued["run_id"])["status"], "canceled")

    def test_a_run_without_a_webhook_sends_nothing(self):
        t = self.server.create_thread()
        p = self.server.post_message(t["thread_id"], "no hook")
        run = self.server.wait_run(p["run_id"])
        self.assertNotIn("webhook", run)
        time.sleep(0.3)
        with self.receiver.cond:
            self.assertFalse([a for a in self.receiver.attempts
                              if json.loads(a[1])["run"]["run_id"] == p["run_id"]])

    def test_bad_webhook_urls_are_422_naming_the_field(self):
        t = self.server.create_thread()
        for bad in ("ftp://x", "not a url", "http://", "https://h:99999/", "http://user@h/",
                    "http://h/#x", "", 42, ["http://h/"]):
            r = self.post(t["thread_id"], {"content": "x", "webhook": bad})
            self.assertProblem(r, 422, repr(bad))
            self.assertEqual(r.body["errors"][0]["loc"], ["body", "webhook"], r.body)
            self.assertIn("webhook", r.body["detail"])
        self.assertEqual(self.req("GET", "/api/threads/%s/runs" % t["thread_id"]).body["runs"], [],
                         "nothing is stored")


class WebhookRestartTest(unittest.TestCase):
    """The receiver is down when the run ends and while the service restarts; the delivery is
    kept in the database and arrives once the receiver is back."""

    def test_pending_delivery_survives_a_restart(self):
        hold, port = harness.refusing_port()  # nothing listens here yet
        self.addCleanup(hold.close)
        env = {"CHATBOT_WEBHOOK_SECRET": RAW_SECRET, "CHATBOT_WEBHOOK_RETRY_BASE_MS": "100",
               "CHATBOT_WEBHOOK_URL": "http://127.0.0.1:%d/default" % port}
        srv = harness.Server(["--demo-token-delay-ms", "1", "--demo-tool-delay-ms", "1"], env=env)
        self.addCleanup(srv.cleanup)
        srv.start()
        t = srv.create_thread()
        p = srv.post_message(t["thread_id"], "while the receiver is down")
        run = srv.wait_run(p["run_id"])
        self.assertNotIn("webhook", run, "the default URL is not the run's own")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = srv.request("GET", "/metrics").raw.decode()
            if 'chatbot_webhook_deliveries_total{outcome="failed"} 0' not in m:
                break
            time.sleep(0.05)
        self.assertIn("refused", srv.stderr_text())
        self.assertEqual(srv.stop(), 0)
        hold.close()
        receiver = Receiver(RAW_SECRET, port=port)
        self.addCleanup(receiver.close)
        srv.start()
        # A delivery cut short by the stop waits for its lease (timeout + 5 s).
        attempts = receiver.delivered(p["run_id"], timeout=30)
        self.assertTrue(attempts[-1][2], "signed with the raw secret's bytes")
        payload = json.loads(attempts[-1][1])
        self.assertEqual(payload["run"], srv.get_run(p["run_id"]))
        self.assertEqual(attempts[-1][0].get("content-type"), "application/json")


class WebhookConfigTest(unittest.TestCase):
    def serve(self, env, args=()):
        return subprocess.run([harness.binary_path(), "serve", "--port", "0", "--database",
                               "sqlite::memory:"] + list(args),
                              capture_output=True, text=True, timeout=20, env=harness.clean_env(env))

    def test_bad_settings_are_refused_at_start(self):
        p = self.serve({"CHATBOT_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("CHATBOT_WEBHOOK_SECRET", p.stderr)
        p = self.serve({"CHATBOT_WEBHOOK_URL": "ftp://example.com/", "CHATBOT_WEBHOOK_SECRET": SECRET})
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("CHATBOT_WEBHOOK_URL", p.stderr)
        for bad in ("short", "whsec_***"):
            p = self.serve({"CHATBOT_WEBHOOK_SECRET": bad})
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("CHATBOT_WEBHOOK_SECRET", p.stderr)
            self.assertNotIn(bad, p.stderr, "the secret is never echoed")

    def test_run_webhooks_need_a_secret(self):
        with harness.Server(["--demo-token-delay-ms", "1"]) as srv:
            t = srv.create_thread()
            r = srv.request("POST", "/api/threads/%s/messages" % t["thread_id"],
                            {"content": "x", "webhook": "http://127.0.0.1:9/hook"})
            self.assertEqual(r.status, 422, r)
            self.assertTrue(r.headers["content-type"].startswith("application/problem+json"))
            self.assertEqual(r.body["errors"][0]["loc"], ["body", "webhook"])
            self.assertIn("CHATBOT_WEBHOOK_SECRET", r.body["detail"])


if __name__ == "__main__":
    unittest.main()
