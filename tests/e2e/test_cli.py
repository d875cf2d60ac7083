"""The command line: --version, --help, and refusal of bad settings (exit 2, one line naming it)."""
import os
import re
import subprocess
import tempfile
import unittest

try:
    from . import harness
except ImportError:
    import harness

FLAGS = ["--host", "--port", "--database", "--engine", "--demo-token-delay-ms", "--demo-tool-delay-ms",
         "--ping-interval-s", "--max-body-bytes", "--max-content-bytes", "--max-concurrent-runs",
         "--subscriber-queue", "--log-level", "--no-migrate"]
ENV_VARS = ["CHATBOT_HOST", "CHATBOT_PORT", "DATABASE_URL", "CHATBOT_ENGINE", "CHATBOT_DEMO_TOKEN_DELAY_MS",
            "CHATBOT_DEMO_TOOL_DELAY_MS", "CHATBOT_PING_INTERVAL_S", "CHATBOT_MAX_BODY_BYTES",
            "CHATBOT_MAX_CONTENT_BYTES", "CHATBOT_MAX_CONCURRENT_RUNS", "CHATBOT_OPENAI_BASE_URL",
            "CHATBOT_OPENAI_API_KEY", "CHATBOT_OPENAI_MODEL", "CHATBOT_LOG_LEVEL", "CHATBOT_LOG_FORMAT"]


class CliTest(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        if not os.path.isfile(harness.binary_path()):
            self.fail("chatbot binary not found at %s" % harness.binary_path())
        self.tmp = tempfile.TemporaryDirectory(prefix="chatbot-cli-")
        self.addCleanup(self.tmp.cleanup)

    def run_cli(self, args, env=None, timeout=10):
        """Run the binary in an empty temp dir; returns (status, stdout, stderr). A process that is
        still running after `timeout` (e.g. it started serving) is killed and the test fails."""
        cmd = [harness.binary_path()] + args
        p = subprocess.Popen(cmd, cwd=self.tmp.name, env=harness.clean_env(env),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            self.fail("`%s` did not exit within %d s (it should refuse to start); stderr: %r"
                      % (" ".join(args), timeout, err.decode("utf-8", "replace")[-1000:]))
        return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def test_version_prints_a_version_and_exits_0(self):
        rc, out, err = self.run_cli(["--version"])
        self.assertEqual(rc, 0, "chatbot --version exit status; stderr: %r" % err)
        self.assertRegex(out + err, r"\d+\.\d+", "--version should print a version number")

    def test_help_lists_every_flag_and_env_var(self):
        rc, out, err = self.run_cli(["--help"])
        self.assertEqual(rc, 0, "chatbot --help exit status; stderr: %r" % err)
        text = out + err
        missing_flags = [f for f in FLAGS if not re.search(re.escape(f) + r"\b", text)]
        missing_env = [v for v in ENV_VARS if not re.search(r"\b" + re.escape(v) + r"\b", text)]
        self.assertEqual(missing_flags, [], "--help does not mention these flags:\n" + text)
        self.assertEqual(missing_env, [], "--help does not mention these environment variables:\n" + text)
        self.assertIn("serve", text, "--help should mention the `serve` command")

    def assertRefused(self, args, name, env=None):
        """`chatbot serve <args>` must exit 2 with one stderr line naming `name`."""
        cmd = ["serve"] + args
        rc, out, err = self.run_cli(cmd, env=env)
        what = "`chatbot %s`%s" % (" ".join(cmd), " with env %r" % env if env else "")
        self.assertEqual(rc, 2, "%s should exit with status 2; got %s; stderr: %r" % (what, rc, err))
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "%s should print exactly one line on stderr, got: %r" % (what, err))
        self.assertIn(name, lines[0].lower(), "%s: the error line should name the setting %r: %r"
                      % (what, name, lines[0]))

    def db(self):
        return "sqlite:" + os.path.join(self.tmp.name, "x.db")

    def test_bad_port_flag(self):
        self.assertRefused(["--host", "127.0.0.1", "--port", "abc", "--database", self.db()], "port")

    def test_bad_engine_flag(self):
        self.assertRefused(["--host", "127.0.0.1", "--port", str(harness.free_port()),
                            "--database", self.db(), "--engine", "nope"], "engine")

    def test_bad_port_env(self):
        self.assertRefused(["--host", "127.0.0.1", "--database", self.db()], "port",
                           env={"CHATBOT_PORT": "abc"})

    def test_database_in_missing_directory(self):
        self.assertRefused(["--host", "127.0.0.1", "--port", str(harness.free_port()),
                            "--database", "sqlite:/nonexistent-dir/x.db"], "database")


class ConfigSourcesTest(unittest.TestCase):
    """Every flag also reads an environment variable; the flag wins over the environment."""

    def content_limit(self, srv):
        """The effective --max-content-bytes, probed with 10/20/30-byte contents."""
        t = srv.create_thread()
        ok = []
        for n in (10, 20, 30):
            r = srv.request("POST", "/api/threads/%s/messages" % t["thread_id"], {"content": "x" * n})
            self.assertIn(r.status, (201, 422), "%r" % (r,))
            ok.append(r.status == 201)
        return ok

    def test_environment_variable_is_read(self):
        with harness.Server(["--demo-token-delay-ms", "1", "--demo-tool-delay-ms", "1"],
                            env={"CHATBOT_MAX_CONTENT_BYTES": "15"}) as srv:
            self.assertEqual(self.content_limit(srv), [True, False, False],
                             "CHATBOT_MAX_CONTENT_BYTES=15 must limit content to 15 bytes")

    def test_flag_wins_over_environment(self):
        with harness.Server(["--demo-token-delay-ms", "1", "--demo-tool-delay-ms", "1",
                             "--max-content-bytes", "25"],
                            env={"CHATBOT_MAX_CONTENT_BYTES": "15"}) as srv:
            self.assertEqual(self.content_limit(srv), [True, True, False],
                             "--max-content-bytes 25 must win over CHATBOT_MAX_CONTENT_BYTES=15")

    def test_migrate_then_serve_without_migrating(self):
        with tempfile.TemporaryDirectory(prefix="chatbot-migrate-") as tmp:
            url = harness.fresh_external_database() or "sqlite:" + os.path.join(tmp, "m.db")
            for attempt in (1, 2):
                p = subprocess.run([harness.binary_path(), "migrate", "--database", url], cwd=tmp,
                                   env=harness.clean_env(), capture_output=True, timeout=30)
                self.assertEqual(p.returncode, 0, "chatbot migrate (run %d) failed: %r" % (attempt, p.stderr))
            srv = harness.Server(["--no-migrate"])
            srv.database_url = url
            try:
                srv.start()
                u = srv.create_user()
                self.assertTrue(u["user_id"])
            finally:
                srv.cleanup()


if __name__ == "__main__":
    unittest.main()
