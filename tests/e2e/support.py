"""Shared base class and assertions for the end-to-end tests."""
from __future__ import annotations

import json
import re
import unittest

try:
    from . import harness
except ImportError:  # run from inside tests/e2e
    import harness

from_harness = harness
UUID4_RE = harness.UUID4_RE
TS_RE = harness.TS_RE

SUCCESS_RE = re.compile(r"^state:running (tool_start tool_end )*(token )*final state:done done:done$")
CANCEL_RUNNING_RE = re.compile(
    r"^state:running (tool_start (tool_end )?)*(token )*canceled state:canceled done:canceled$")


class ServerTestCase(unittest.TestCase):
    """One server per TestCase class, started in setUpClass with `server_args`."""

    server_args: list = []
    server_env: dict = {}
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = harness.Server(cls.server_args, env=cls.server_env)
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        """The server must still be running (no crash) and stop without sanitizer reports."""
        srv = cls.server
        problems = []
        if srv.proc is not None and srv.proc.poll() is not None:
            problems.append("the server exited on its own during the tests (status %s)" % srv.proc.returncode)
        srv.stop()
        problems += ["stderr: " + l for l in srv.sanitizer_reports()[:10]]
        super().tearDownClass()
        if problems:
            raise AssertionError("%s: %s\nstderr tail:\n%s" % (cls.__name__, "\n".join(problems),
                                                                srv.all_stderr_text()[-3000:]))

    # ---- shortcuts
    def req(self, method, path, body=None, headers=None, raw_body=None, timeout=15.0):
        return self.server.request(method, path, body=body, headers=headers, raw_body=raw_body,
                                   timeout=timeout)

    # ---- assertions
    def assertStatus(self, resp, status, what=""):
        if isinstance(status, int):
            status = (status,)
        if resp.status not in status:
            self.fail("%sexpected HTTP %s, got %r" % (what + ": " if what else "",
                                                       " or ".join(map(str, status)), resp))

    def assertJson(self, resp, what=""):
        ctype = resp.headers.get("content-type", "")
        self.assertTrue(ctype.lower().startswith("application/json"),
                        "%s: Content-Type should be application/json, got %r (%r)" % (what, ctype, resp))
        self.assertIsInstance(resp.body, (dict, list), "%s: body is not JSON: %r" % (what, resp))

    def assertProblem(self, resp, status, what=""):
        """An RFC 9457 problem with the given status (or one of a tuple)."""
        self.assertStatus(resp, status, what)
        ctype = resp.headers.get("content-type", "")
        self.assertTrue(ctype.lower().startswith("application/problem+json"),
                        "%s: Content-Type should be application/problem+json, got %r (%r)"
                        % (what, ctype, resp))
        body = resp.body
        self.assertIsInstance(body, dict, "%s: problem body is not a JSON object: %r" % (what, resp))
        for key in ("type", "title", "status", "detail"):
            self.assertIn(key, body, "%s: problem lacks %r: %r" % (what, key, body))
        self.assertEqual(body["status"], resp.status, "%s: problem.status != HTTP status: %r" % (what, body))
        self.assertIsInstance(body["detail"], str, "%s: problem.detail must be a string: %r" % (what, body))
        self.assertTrue(body["detail"].strip(), "%s: problem.detail is empty: %r" % (what, body))
        self.assertIsInstance(body["title"], str, "%s: problem.title must be a string" % what)
        self.assertIsInstance(body["type"], str, "%s: problem.type must be a string" % what)
        return body

    def assertValidation(self, resp, what="", loc_suffix=None):
        """422 problem with errors:[{loc:[...], msg}]."""
        body = self.assertProblem(resp, 422, what)
        errors = body.get("errors")
        self.assertIsInstance(errors, list, "%s: 422 problem needs an `errors` list: %r" % (what, body))
        self.assertTrue(errors, "%s: `errors` is empty: %r" % (what, body))
        for e in errors:
            self.assertIsInstance(e, dict, "%s: error entry not an object: %r" % (what, e))
            self.assertIsInstance(e.get("loc"), list, "%s: error entry needs a `loc` list: %r" % (what, e))
            self.assertIsInstance(e.get("msg"), str, "%s: error entry needs a `msg` string: %r" % (what, e))
        if loc_suffix is not None:
            self.assertTrue(any(e["loc"] and e["loc"][-1] == loc_suffix for e in errors),
                            "%s: expected an error whose loc ends with %r: %r" % (what, loc_suffix, errors))
        return body

    def assertUuid4(self, value, what="id"):
        self.assertIsInstance(value, str, "%s should be a string UUID, got %r" % (what, value))
        self.assertRegex(value, UUID4_RE, "%s is not a lowercase UUIDv4" % what)

    def assertTimestamp(self, value, what="timestamp"):
        self.assertIsInstance(value, str, "%s should be a string, got %r" % (what, value))
        self.assertRegex(value, TS_RE, "%s is not RFC 3339 UTC with milliseconds" % what)

    def assertContiguous(self, events, start=1, what="events"):
        ids = [e.id for e in events]
        expected = [str(i) for i in range(start, start + len(events))]
        self.assertEqual(ids, expected, "%s: ids are not contiguous from %d" % (what, start))

    def assertFrames(self, events, what="stream"):
        """Each frame is exactly `id: N\\nevent: T\\ndata: <compact JSON>\\n\\n`."""
        for e in events:
            expected = ("id: %s\nevent: %s\ndata: %s\n\n" % (e.id, e.event, e.data)).encode("utf-8")
            self.assertEqual(e.raw, expected, "%s: frame not in the form id/event/data: %r" % (what, e.raw))
            try:
                obj = json.loads(e.data)
            except ValueError:
                self.fail("%s: data is not JSON: %r" % (what, e.data))
            self.assertIsInstance(obj, dict, "%s: data is not a JSON object: %r" % (what, e.data))
            self.assertEqual(e.data, harness.compact(obj),
                             "%s: data is not compact one-line JSON (no spaces, UTF-8 unescaped)" % what)

    def assertSuccessLog(self, events, what="run"):
        sig = harness.event_signature(events)
        self.assertRegex(" ".join(sig), SUCCESS_RE,
                         "%s: event order is not success order: %s" % (what, harness.compress_signature(sig)))

    def signature(self, events):
        return harness.compress_signature(harness.event_signature(events))

    def tokens_text(self, events):
        return "".join(json.loads(e.data)["text"] for e in events if e.event == "token")

    def event_tuples(self, events):
        return [(e.id, e.event, e.data) for e in events]

    def assertServerAlive(self, what=""):
        r = self.req("GET", "/healthz")
        self.assertEqual(r.status, 200, "%s: server no longer answers /healthz: %r\nstderr tail:\n%s"
                         % (what, r, self.server.stderr_text()[-2000:]))
        self.assertTrue(self.server.alive, "%s: server process died" % what)
