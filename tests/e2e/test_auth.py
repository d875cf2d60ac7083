"""Authentication (CHATBOT_AUTH=api_key): admin key for users, one API key per user, 401 with
WWW-Authenticate, every cross-user access answered 404, ?access_token= on the stream only, tokens
never logged, public operations endpoints, the metrics token, and refusals at start."""
import subprocess
import unittest
import uuid

try:
    from . import harness, support
except ImportError:
    import harness, support

ADMIN = "adm-" + "x" * 40
METRICS = "met-" + "y" * 40


class AuthTest(support.ServerTestCase):
    server_env = {"CHATBOT_AUTH": "api_key", "CHATBOT_ADMIN_KEY": ADMIN,
                  "CHATBOT_METRICS_TOKEN": METRICS}
    server_args = ["--demo-token-delay-ms", "20", "--demo-tool-delay-ms", "5"]

    def make_user(self):
        r = self.req("POST", "/api/users", {"name": harness.unique("auth")},
                     headers={"Authorization": "Bearer " + ADMIN})
        self.assertStatus(r, 201, "create user with the admin key")
        self.assertTrue(r.body["api_key"].startswith("cbk_"), r.body)
        return r.body

    def as_(self, user):
        return {"Authorization": "Bearer " + user["api_key"]}

    def assert401(self, r, what):
        self.assertProblem(r, 401, what)
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer", what)

    def setUp(self):
        self.alice = self.make_user()
        self.bob = self.make_user()
        a = self.as_(self.alice)
        t = self.req("POST", "/api/threads", {"user_id": self.alice["user_id"]}, headers=a)
        self.assertStatus(t, 201, "alice creates a thread")
        self.tid = t.body["thread_id"]
        p = self.req("POST", "/api/threads/%s/messages" % self.tid, {"content": "secret plans"}, headers=a)
        self.assertStatus(p, 201, "alice posts")
        self.rid = p.body["run_id"]

    def test_users_need_the_admin_key(self):
        for h in ({}, {"Authorization": "Bearer " + ADMIN + "z"}, {"Authorization": ADMIN},
                  self.as_(self.alice)):
            self.assert401(self.req("POST", "/api/users", {"name": harness.unique("n")}, headers=h), repr(h))

    def test_the_key_is_shown_once_and_stored_hashed(self):
        u = self.make_user()
        again = self.req("GET", "/api/users/%d" % u["user_id"], headers=self.as_(u))
        self.assertStatus(again, 200)
        self.assertNotIn("api_key", again.body)
        if not harness.external_database_url():
            import sqlite3
            db = sqlite3.connect(self.server.database_url[len("sqlite:"):])
            rows = [r[0] for r in db.execute("SELECT api_key_hash FROM users WHERE id = ?", (u["user_id"],))]
            db.close()
            self.assertEqual(len(rows[0]), 64)
            self.assertNotIn(u["api_key"], rows[0])

    def test_missing_or_wrong_key_is_401_everywhere(self):
        paths = [("GET", "/api/users/%d" % self.alice["user_id"]),
                 ("GET", "/api/users/%d/threads" % self.alice["user_id"]),
                 ("POST", "/api/threads"), ("GET", "/api/threads/" + self.tid),
                 ("DELETE", "/api/threads/" + self.tid), ("GET", "/api/threads/%s/runs" % self.tid),
                 ("POST", "/api/threads/%s/cancel" % self.tid),
                 ("POST", "/api/threads/%s/messages" % self.tid), ("GET", "/api/runs/" + self.rid),
                 ("POST", "/api/runs/%s/cancel" % self.rid), ("GET", "/api/runs/%s/events" % self.rid)]
        bad = "cbk_" + "A" * 43
        for method, path in paths:
            for h in ({}, {"Authorization": "Bearer " + bad}, {"Authorization": "Bearer nonsense"},
                      {"Authorization": "Basic " + self.alice["api_key"]}):
                body = {"content": "x", "user_id": self.alice["user_id"]} if method == "POST" else None
                self.assert401(self.req(method, path, body, headers=h), "%s %s %r" % (method, path, h))
        # ?access_token= is for the event stream only.
        r = self.req("GET", "/api/runs/%s?access_token=%s" % (self.rid, self.alice["api_key"]))
        self.assert401(r, "access_token on GET run")

    def test_cross_user_access_is_404_on_every_endpoint(self):
        b = self.as_(self.bob)
        checks = [
            ("GET", "/api/users/%d" % self.alice["user_id"], None, "User not found"),
            ("GET", "/api/users/%d/threads" % self.alice["user_id"], None, "User not found"),
            ("POST", "/api/threads", {"user_id": self.alice["user_id"]}, "User not found"),
            ("GET", "/api/threads/" + self.tid, None, "Thread not found"),
            ("GET", "/api/threads/%s/runs" % self.tid, None, "Thread not found"),
            ("POST", "/api/threads/%s/messages" % self.tid, {"content": "hijack"}, "Thread not found"),
            ("POST", "/api/threads/%s/cancel" % self.tid, None, "Thread not found"),
            ("GET", "/api/runs/" + self.rid, None, "Run not found"),
            ("POST", "/api/runs/%s/cancel" % self.rid, None, "Run not found"),
            ("GET", "/api/runs/%s/events" % self.rid, None, "Run not found"),
            ("DELETE", "/api/threads/" + self.tid, None, "Thread not found"),
        ]
        for method, path, body, detail in checks:
            r = self.req(method, path, body, headers=b)
            self.assertProblem(r, 404, "bob: %s %s" % (method, path))
            self.assertEqual(r.body["detail"], detail)
            # Exactly as for something that does not exist.
        unknown = self.req("GET", "/api/threads/%s" % uuid.uuid4(), headers=b)
        self.assertEqual(unknown.body["detail"], "Thread not found")
        r = self.req("GET", "/api/runs/%s/events?access_token=%s" % (self.rid, self.bob["api_key"]))
        self.assertProblem(r, 404, "bob's access_token on alice's stream")
        # Nothing of alice's changed.
        a = self.as_(self.alice)
        g = self.req("GET", "/api/threads/" + self.tid, headers=a)
        self.assertStatus(g, 200)
        self.assertEqual([m["content"] for m in g.body["messages"] if m["role"] == "user"], ["secret plans"])
        run = self.req("GET", "/api/runs/" + self.rid, headers=a)
        self.assertNotEqual(run.body["status"], "canceled")
        lst = self.req("GET", "/api/users/%d/threads" % self.bob["user_id"], headers=b)
        self.assertStatus(lst, 200)
        self.assertEqual(lst.body["threads"], [])

    def test_owner_flow_with_header_and_access_token(self):
        a = self.as_(self.alice)
        self.assertStatus(self.req("GET", "/api/users/%d/threads" % self.alice["user_id"], headers=a), 200)
        self.assertStatus(self.req("GET", "/api/threads/%s/runs" % self.tid, headers=a), 200)
        with self.server.sse("/api/runs/%s/events?access_token=%s" % (self.rid, self.alice["api_key"])) as s:
            self.assertEqual(s.status, 200)
            items = s.read_all(30)
        self.assertEqual(harness.event_signature(items)[-1], "done:done")
        with self.server.sse("/api/runs/%s/events" % self.rid, headers=a) as s:
            self.assertIn(s.status, (200, 204))
        self.assertStatus(self.req("POST", "/api/runs/%s/cancel" % self.rid, headers=a), 200)
        self.assertStatus(self.req("POST", "/api/threads/%s/cancel" % self.tid, headers=a), 200)
        self.assertStatus(self.req("DELETE", "/api/threads/" + self.tid, headers=a), 204)
        # Tokens never reach the log, not even the access_token of a stream.
        log = self.server.all_stderr_text() + self.server.stdout_text()
        for secret in (self.alice["api_key"], self.bob["api_key"], ADMIN, METRICS):
            self.assertNotIn(secret, log)

    def test_public_endpoints_and_the_metrics_token(self):
        for path in ("/healthz", "/readyz", "/docs", "/openapi.json", "/"):
            self.assertStatus(self.req("GET", path), 200, path)
        self.assert401(self.req("GET", "/metrics"), "metrics without token")
        self.assert401(self.req("GET", "/metrics", headers=self.as_(self.alice)), "metrics with a user key")
        self.assertStatus(self.req("GET", "/metrics", headers={"Authorization": "Bearer " + METRICS}), 200)


class AuthNoneTest(support.ServerTestCase):
    def test_default_keeps_the_open_flow_and_issues_no_key(self):
        u = self.server.create_user()
        self.assertNotIn("api_key", u)
        t = self.server.create_thread(u["user_id"])
        self.server.post_message(t["thread_id"])
        self.assertStatus(self.req("GET", "/metrics"), 200)


class AuthStartupTest(unittest.TestCase):
    def run_bin(self, env):
        return subprocess.run([harness.binary_path(), "serve", "--port", "0", "--database", "sqlite::memory:"],
                              capture_output=True, text=True, timeout=20, env=harness.clean_env(env))

    def test_bad_settings_are_refused_at_start(self):
        for env, needle in (({"CHATBOT_AUTH": "api_key"}, "CHATBOT_ADMIN_KEY"),
                            ({"CHATBOT_AUTH": "api_key", "CHATBOT_ADMIN_KEY": "short"}, "CHATBOT_ADMIN_KEY"),
                            ({"CHATBOT_AUTH": "api_key", "CHATBOT_ADMIN_KEY": "x" * 35 + " y"}, "CHATBOT_ADMIN_KEY"),
                            ({"CHATBOT_AUTH": "apikey"}, "CHATBOT_AUTH"),
                            ({"CHATBOT_METRICS_TOKEN": "tiny"}, "CHATBOT_METRICS_TOKEN")):
            p = self.run_bin(env)
            self.assertEqual(p.returncode, 2, "%r: %s" % (env, p.stderr))
            self.assertIn(needle, p.stderr)
            self.assertNotIn("short", p.stderr.replace("CHATBOT", ""))


if __name__ == "__main__":
    unittest.main()
