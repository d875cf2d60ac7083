"""CORS (CHATBOT_CORS_ORIGINS): preflight, actual responses, streams, refused origins, and none by default."""
import subprocess
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support

ALLOWED = "http://app.example.test:5173"
PREFLIGHT = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,authorization,idempotency-key"}


class CorsTest(support.ServerTestCase):
    server_env = {"CHATBOT_CORS_ORIGINS": "https://other.example.test, " + ALLOWED}
    server_args = ["--demo-token-delay-ms", "1", "--demo-tool-delay-ms", "1"]

    def test_preflight_is_204_with_methods_and_headers(self):
        r = self.req("OPTIONS", "/api/threads/%s/messages" % harness.uuid.uuid4(), headers=PREFLIGHT)
        self.assertStatus(r, 204, "preflight")
        h = r.headers
        self.assertEqual(h["access-control-allow-origin"], ALLOWED)
        for m in ("GET", "POST", "DELETE"):
            self.assertIn(m, h["access-control-allow-methods"])
        allowed = h["access-control-allow-headers"].lower()
        for name in ("content-type", "authorization", "idempotency-key", "last-event-id", "x-request-id"):
            self.assertIn(name, allowed)
        self.assertEqual(h["access-control-expose-headers"], "X-Request-Id")

    def test_actual_responses_and_streams_carry_the_origin(self):
        r = self.req("POST", "/api/users", {"name": harness.unique("c")}, headers={"Origin": ALLOWED})
        self.assertStatus(r, 201)
        self.assertEqual(r.headers["access-control-allow-origin"], ALLOWED)
        self.assertEqual(r.headers["access-control-expose-headers"], "X-Request-Id")
        self.assertIn("Origin", r.headers.get("vary", ""))
        problem = self.req("GET", "/api/runs/nope", headers={"Origin": ALLOWED})
        self.assertProblem(problem, 404)
        self.assertEqual(problem.headers["access-control-allow-origin"], ALLOWED)
        t = self.server.create_thread(r.body["user_id"])
        p = self.server.post_message(t["thread_id"])
        with self.server.sse("/api/runs/%s/events" % p["run_id"], headers={"Origin": ALLOWED}) as s:
            self.assertEqual(s.status, 200)
            self.assertEqual(s.headers["access-control-allow-origin"], ALLOWED)
            s.read_all(30)

    def test_other_origins_get_no_cors_headers_and_a_refused_preflight(self):
        r = self.req("GET", "/healthz", headers={"Origin": "http://evil.example.test"})
        self.assertStatus(r, 200)
        self.assertNotIn("access-control-allow-origin", r.headers)
        pre = dict(PREFLIGHT, Origin="http://evil.example.test")
        r = self.req("OPTIONS", "/api/users", headers=pre)
        self.assertProblem(r, 403, "refused preflight")
        self.assertNotIn("access-control-allow-origin", r.headers)


class CorsAnyTest(support.ServerTestCase):
    server_args = ["--cors-origins", "*"]

    def test_any_origin_is_echoed(self):
        r = self.req("OPTIONS", "/api/users", headers=dict(PREFLIGHT, Origin="http://x.test:1"))
        self.assertStatus(r, 204)
        self.assertEqual(r.headers["access-control-allow-origin"], "http://x.test:1")


class CorsOffTest(support.ServerTestCase):
    def test_default_is_no_cors(self):
        r = self.req("GET", "/healthz", headers={"Origin": ALLOWED})
        self.assertNotIn("access-control-allow-origin", r.headers)
        r = self.req("OPTIONS", "/api/users", headers=PREFLIGHT)
        self.assertProblem(r, 405)

    def test_a_bad_origin_list_is_refused_at_start(self):
        for bad in ("app.example.test", "http://x.test/path", "ftp://x.test", "http://*.x.test"):
            p = subprocess.run([harness.binary_path(), "serve", "--port", "0", "--database",
                                "sqlite::memory:", "--cors-origins", bad],
                               capture_output=True, text=True, timeout=20, env=harness.clean_env())
            self.assertEqual(p.returncode, 2, "%r: %s" % (bad, p.stderr))
            self.assertIn("CHATBOT_CORS_ORIGINS", p.stderr)


if __name__ == "__main__":
    unittest.main()
