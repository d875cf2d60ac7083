"""Bad input: never a 5xx, never stored, the server keeps working. Plus routing (404/405) and
X-Request-Id on every response."""
import http.client
import json
import socket
import unittest
import uuid

try:
    from . import harness, support
except ImportError:
    import harness, support

unique = harness.unique
JSON = {"Content-Type": "application/json"}


class BadInputTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "5", "--demo-tool-delay-ms", "5", "--max-body-bytes", "2048"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = cls.server.create_user()
        cls.thread = cls.server.create_thread(cls.user["user_id"])
        p = cls.server.post_message(cls.thread["thread_id"], "baseline")
        cls.run_id = p["run_id"]
        cls.server.wait_run(cls.run_id)

    def setUp(self):
        # a fresh user and thread that bad requests must leave untouched
        self.u = self.server.create_user()
        self.t = self.server.create_thread(self.u["user_id"])

    def assertNothingStored(self, what, name=None):
        g = self.server.get_thread(self.t["thread_id"])
        self.assertEqual(g["messages"], [], "%s stored a message" % what)
        runs = self.req("GET", "/api/threads/%s/runs" % self.t["thread_id"]).body["runs"]
        self.assertEqual(runs, [], "%s created a run" % what)
        lst = self.req("GET", "/api/users/%d/threads" % self.u["user_id"]).body["threads"]
        self.assertEqual([x["thread_id"] for x in lst], [self.t["thread_id"]], "%s created a thread" % what)
        if name is not None:
            r = self.req("POST", "/api/users", {"name": name})
            self.assertEqual(r.status, 201, "%s stored the user %r (now %r)" % (what, name, r))
        self.assertServerAlive(what)

    def assertRejected(self, resp, statuses, what):
        self.assertLess(resp.status, 500, "%s: a 5xx for bad input: %r" % (what, resp))
        body = self.assertProblem(resp, statuses, what)
        self.assertServerAlive("after " + what)
        return body

    def msg_path(self):
        return "/api/threads/%s/messages" % self.t["thread_id"]

    # ---- bodies
    def test_malformed_json(self):
        name = unique("mal")
        for path, raw in (("/api/users", '{"name": "%s"' % name),
                          ("/api/users", "{name: '%s'}" % name),
                          ("/api/threads", '{"user_id": %d,}' % self.u["user_id"]),
                          (self.msg_path(), '{"content": "hi"'),
                          (self.msg_path(), 'not json at all'),
                          (self.msg_path(), '')):
            with self.subTest(path=path, raw=raw):
                r = self.req("POST", path, raw_body=raw.encode(), headers=JSON)
                self.assertRejected(r, (400, 422), "POST %s %r" % (path, raw))
        self.assertNothingStored("malformed JSON", name)

    def test_json_that_is_not_an_object(self):
        for path in ("/api/users", "/api/threads", self.msg_path()):
            for raw in ('[]', '[{"name":"x","user_id":1,"content":"x"}]', '1', '"text"', 'null', 'true'):
                with self.subTest(path=path, raw=raw):
                    r = self.req("POST", path, raw_body=raw.encode(), headers=JSON)
                    self.assertRejected(r, 422, "POST %s %s" % (path, raw))
        self.assertNothingStored("non-object JSON")

    def test_wrong_field_types(self):
        uid = self.u["user_id"]
        cases = [("/api/threads", {"user_id": str(uid)}, "user_id"),
                 ("/api/threads", {"user_id": uid + 0.5}, "user_id"),
                 ("/api/threads", {"user_id": True}, "user_id"), ("/api/threads", {"user_id": None}, "user_id"),
                 ("/api/threads", {"user_id": [uid]}, "user_id"), ("/api/threads", {}, "user_id"),
                 ("/api/threads", {"user_id": uid, "title": 5}, "title"),
                 ("/api/threads", {"user_id": uid, "title": ["x"]}, "title"),
                 (self.msg_path(), {"content": 1}, "content"), (self.msg_path(), {"content": ["hi"]}, "content"),
                 (self.msg_path(), {"content": {"text": "hi"}}, "content"),
                 (self.msg_path(), {"content": False}, "content"),
                 (self.msg_path(), {"text": "hi"}, "content")]
        for path, body, field in cases:
            with self.subTest(path=path, body=body):
                r = self.req("POST", path, body)
                self.assertRejected(r, 422, "POST %s %r" % (path, body))
                self.assertValidation(r, "POST %s %r" % (path, body), loc_suffix=field)
        self.assertNothingStored("wrong field types")

    def test_wrong_content_type(self):
        name = unique("ctype")
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
            with self.subTest(ctype):
                r = self.req("POST", "/api/users", raw_body=json.dumps({"name": name}).encode(),
                             headers={"Content-Type": ctype})
                self.assertRejected(r, 422, "POST /api/users with Content-Type %s" % ctype)
                r = self.req("POST", self.msg_path(), raw_body=b'{"content":"hi"}',
                             headers={"Content-Type": ctype})
                self.assertRejected(r, 422, "POST message with Content-Type %s" % ctype)
        self.assertNothingStored("wrong Content-Type", name)

    def test_json_content_type_with_charset_is_accepted(self):
        r = self.req("POST", "/api/users", raw_body=json.dumps({"name": unique("cs")}).encode(),
                     headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertStatus(r, 201, "application/json; charset=utf-8 is JSON")

    def test_invalid_utf8(self):
        name = unique("utf")
        raw = b'{"name":"' + name.encode() + b'\xff\xfe"}'
        r = self.req("POST", "/api/users", raw_body=raw, headers=JSON)
        self.assertRejected(r, (400, 422), "invalid UTF-8 in the body")
        r = self.req("POST", self.msg_path(), raw_body=b'{"content":"\xc3\x28"}', headers=JSON)
        self.assertRejected(r, (400, 422), "invalid UTF-8 in content")
        self.assertNothingStored("invalid UTF-8")

    def test_deeply_nested_json(self):
        raw = ('{"content":' + "[" * 900 + "]" * 900 + "}").encode()
        r = self.req("POST", self.msg_path(), raw_body=raw, headers=JSON)
        self.assertRejected(r, (400, 422), "deeply nested JSON")
        raw = ("[" * 1000 + "]" * 1000).encode()
        r = self.req("POST", "/api/users", raw_body=raw, headers=JSON)
        self.assertRejected(r, (400, 422), "deeply nested JSON array")
        self.assertNothingStored("deep JSON")

    def test_nul_is_refused_and_other_control_characters_are_kept(self):
        # U+0000 is refused the same way on every backend (PostgreSQL cannot store it).
        name = "nul\u0000" + unique("c")
        r = self.req("POST", "/api/users", {"name": name})
        self.assertRejected(r, 422, "name with NUL")
        self.assertValidation(r, "name with NUL", loc_suffix="name")
        r = self.req("POST", "/api/threads", {"user_id": self.u["user_id"], "title": "a\u0000"})
        self.assertRejected(r, 422, "title with NUL")
        self.assertValidation(r, "title with NUL", loc_suffix="title")
        r = self.req("POST", self.msg_path(), {"content": "a\u0000b"})
        self.assertRejected(r, 422, "content with NUL")
        self.assertValidation(r, "content with NUL", loc_suffix="content")
        self.assertNothingStored("NUL characters")
        bell = "\u0007bell\u001f" + unique("c")
        r = self.req("POST", "/api/users", {"name": bell})
        self.assertStatus(r, 201, "other control characters are text")
        self.assertEqual(r.body["name"], bell)
        r = self.req("POST", self.msg_path(), {"content": "tab\there\u0001"})
        self.assertStatus(r, 201, "content with control characters")

    def test_body_over_limit_is_413(self):
        name = unique("big")
        raw = json.dumps({"name": name, "pad": "x" * 3000}).encode()
        r = self.req("POST", "/api/users", raw_body=raw, headers=JSON)
        self.assertRejected(r, 413, "a 3 KB body with --max-body-bytes 2048")
        raw = json.dumps({"content": "y" * 3000}).encode()
        r = self.req("POST", self.msg_path(), raw_body=raw, headers=JSON)
        self.assertRejected(r, 413, "a 3 KB message body with --max-body-bytes 2048")
        self.assertNothingStored("body over the limit", name)

    def test_chunked_body_over_limit_is_413(self):
        body = json.dumps({"content": "z" * 3000}).encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 500]), body[i:i + 500])
                          for i in range(0, len(body), 500)) + b"0\r\n\r\n"
        req = (("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % self.msg_path()).encode() + chunks)
        r = self.server.raw(req)
        self.assertRejected(r, 413, "a 3 KB chunked body with --max-body-bytes 2048")
        self.assertNothingStored("chunked body over the limit")

    def test_chunked_body_under_limit_is_accepted(self):
        body = json.dumps({"content": "chunked hello"}).encode()
        req = (("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % self.msg_path()).encode()
               + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        r = self.server.raw(req)
        self.assertStatus(r, 201, "a small chunked JSON body is a normal request")

    def test_huge_header(self):
        req = (b"GET /api/users/%d HTTP/1.1\r\nHost: x\r\nX-Big: " % self.u["user_id"]
               + b"a" * 65536 + b"\r\nConnection: close\r\n\r\n")
        try:
            r = self.server.raw(req, timeout=10)
        except ConnectionError as e:
            self.fail("a 64 KiB header got no HTTP answer at all (%r); expected 431 or 400" % e)
        self.assertIn(r.status, (400, 431), "a 64 KiB header: expected 431 or 400, got %r" % (r,))
        self.assertServerAlive("huge header")

    def test_garbage_request_line(self):
        for req in (b"HELLO\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n"):
            with self.subTest(req):
                try:
                    r = self.server.raw(req, timeout=5)
                    self.assertLess(r.status, 500, "%r -> %r" % (req, r))
                    self.assertGreaterEqual(r.status, 400, "%r -> %r" % (req, r))
                except ConnectionError:
                    pass  # closing the connection is an acceptable answer to garbage
        self.assertServerAlive("garbage request lines")

    def test_half_sent_request_does_not_block_the_server(self):
        s = socket.create_connection((self.server.host, self.server.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"na")
        self.assertServerAlive("a client stuck in the middle of its body")
        self.server.create_user()

    def test_keep_alive_across_errors(self):
        """One connection, many requests, errors among them (with bodies the server must consume)."""
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
        self.addCleanup(conn.close)
        tid = self.t["thread_id"]
        name = unique("ka")
        steps = [("GET", "/healthz", None, 200),
                 ("POST", "/api/users", {"name": name}, 201),
                 ("POST", "/api/threads/%s/messages" % uuid.uuid4(), {"content": "x" * 500}, 404),
                 ("POST", "/api/users", {"name": ""}, 422),
                 ("POST", "/api/users", {"name": name}, 409),
                 ("DELETE", "/api/users", {"pad": "y" * 300}, 405),
                 ("POST", "/api/nope", {"pad": "z" * 300}, 404),
                 ("GET", "/api/users/%d" % self.u["user_id"], None, 200),
                 ("POST", "/api/threads/%s/messages" % tid, {"content": ""}, 422),
                 ("GET", "/api/threads/%s" % tid, None, 200)]
        for i, (method, path, body, status) in enumerate(steps):
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            self.assertEqual(resp.status, status, "request %d on one connection: %s %s -> %s %r"
                             % (i, method, path, resp.status, raw[:300]))
            if raw:
                json.loads(raw)
        self.assertNothingStored("keep-alive sequence")

    # ---- ids, routes, methods
    def test_ids_of_the_wrong_shape_are_404(self):
        bad_ids = ["not-a-uuid", "123", "7d0b8a9e4c1e4b7a9f1e2a3b4c5d6e7f",
                   "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "7d0b8a9e-4c1e-4b7a-9f1e-2a3b4c5d6e7f0",
                   "%27%3B%20drop%20table%20runs%3B--", "..%2F..%2Fetc%2Fpasswd", "%00"]
        for bid in bad_ids:
            for method, path, body in (("GET", "/api/threads/%s", None),
                                       ("DELETE", "/api/threads/%s", None),
                                       ("GET", "/api/threads/%s/runs", None),
                                       ("POST", "/api/threads/%s/messages", {"content": "x"}),
                                       ("GET", "/api/runs/%s", None),
                                       ("POST", "/api/runs/%s/cancel", None),
                                       ("GET", "/api/runs/%s/events", None)):
                with self.subTest(method=method, path=path % bid):
                    r = self.req(method, path % bid, body)
                    self.assertRejected(r, 404, "%s %s" % (method, path % bid))
        for bid in ("abc", "-5", "1e3", "99999999999999999999999999", "0x10"):
            for path in ("/api/users/%s", "/api/users/%s/threads"):
                with self.subTest(path=path % bid):
                    self.assertRejected(self.req("GET", path % bid), 404, "GET " + path % bid)
        self.assertServerAlive("wrong ids")

    def test_unknown_routes_are_404(self):
        for method, path in (("GET", "/api/nope"), ("GET", "/nope"), ("POST", "/api/users/1/whatever"),
                             ("GET", "/api/runs"), ("GET", "/api/threads/%s/nope" % self.t["thread_id"]),
                             ("GET", "/api"), ("GET", "/api/"), ("DELETE", "/api/runs/x/y/z")):
            with self.subTest(method=method, path=path):
                self.assertRejected(self.req(method, path), 404, "%s %s" % (method, path))

    def test_wrong_method_is_405_with_allow(self):
        tid = self.thread["thread_id"]
        rid = self.run_id
        cases = [("DELETE", "/api/users", {"POST"}), ("GET", "/api/users", {"POST"}),
                 ("PUT", "/api/users/%d" % self.user["user_id"], {"GET"}),
                 ("GET", "/api/threads", {"POST"}),
                 ("PUT", "/api/threads/%s" % tid, {"GET", "DELETE"}),
                 ("PATCH", "/api/threads/%s" % tid, {"GET", "DELETE"}),
                 ("GET", "/api/threads/%s/messages" % tid, {"POST"}),
                 ("POST", "/api/threads/%s/runs" % tid, {"GET"}),
                 ("POST", "/api/runs/%s" % rid, {"GET"}), ("DELETE", "/api/runs/%s" % rid, {"GET"}),
                 ("GET", "/api/runs/%s/cancel" % rid, {"POST"}),
                 ("POST", "/api/runs/%s/events" % rid, {"GET"})]
        for method, path, allowed in cases:
            with self.subTest(method=method, path=path):
                r = self.req(method, path, {} if method in ("POST", "PUT", "PATCH") else None)
                self.assertRejected(r, 405, "%s %s" % (method, path))
                allow = r.headers.get("allow")
                self.assertTrue(allow, "405 without an Allow header: %r" % (r,))
                got = {m.strip().upper() for m in allow.split(",") if m.strip()}
                self.assertTrue(allowed <= got, "%s %s: Allow %r should list %s" % (method, path, allow, allowed))
                self.assertNotIn(method, got, "Allow must not list the refused method")
        # nothing changed
        self.assertEqual(self.server.get_run(rid)["status"], "done")
        self.server.get_thread(tid)

    def test_query_parameter_oddities(self):
        uid = self.u["user_id"]
        for q in ("limit=abc", "limit=-1", "limit=0", "limit=1000000", "limit=99999999999999999999",
                  "before=not-a-uuid", "before=%s" % uuid.uuid4(), "limit=", "before="):
            with self.subTest(q):
                r = self.req("GET", "/api/users/%d/threads?%s" % (uid, q))
                self.assertLess(r.status, 500, "GET threads?%s -> %r" % (q, r))
                if r.status >= 400:
                    self.assertProblem(r, r.status, "GET threads?%s" % q)
        self.assertServerAlive("query oddities")

    # ---- X-Request-Id
    def test_every_response_has_x_request_id(self):
        tid, rid = self.thread["thread_id"], self.run_id
        requests = [("GET", "/healthz", None), ("POST", "/api/users", {"name": unique("rid")}),
                    ("POST", "/api/users", {"name": ""}), ("GET", "/api/users/%d" % self.user["user_id"], None),
                    ("GET", "/api/users/999999999", None), ("GET", "/api/threads/%s" % tid, None),
                    ("GET", "/api/runs/%s" % rid, None), ("POST", "/api/runs/%s/cancel" % rid, None),
                    ("GET", "/api/nope", None), ("DELETE", "/api/users", None),
                    ("POST", "/api/threads", {"user_id": "x"})]
        seen_ids = set()
        for method, path, body in requests:
            with self.subTest(method=method, path=path):
                r = self.req(method, path, body)
                gen = r.headers.get("x-request-id")
                self.assertTrue(gen, "%s %s (HTTP %s) has no X-Request-Id" % (method, path, r.status))
                seen_ids.add(gen)
                mine = "e2e-" + uuid.uuid4().hex
                r = self.req(method, path, body, headers={"X-Request-Id": mine})
                self.assertEqual(r.headers.get("x-request-id"), mine,
                                 "%s %s (HTTP %s) must echo X-Request-Id" % (method, path, r.status))
        self.assertEqual(len(seen_ids), len(requests), "generated request ids should be unique")
        # 413, 204 (delete), stream and stream 204 too
        mine = "e2e-" + uuid.uuid4().hex
        with self.subTest("413"):
            r = self.req("POST", "/api/users", raw_body=b'{"name":"' + b"x" * 3000 + b'"}',
                         headers={"Content-Type": "application/json", "X-Request-Id": mine})
            self.assertGreaterEqual(r.status, 400)
            self.assertEqual(r.headers.get("x-request-id"), mine,
                             "an oversized body's answer (HTTP %s) must echo X-Request-Id" % r.status)
        with self.subTest("204 delete"):
            t = self.server.create_thread(self.u["user_id"])
            r = self.req("DELETE", "/api/threads/%s" % t["thread_id"], headers={"X-Request-Id": mine})
            self.assertEqual(r.status, 204)
            self.assertEqual(r.headers.get("x-request-id"), mine, "204 must echo X-Request-Id")
        with self.subTest("stream"):
            with self.server.sse("/api/runs/%s/events" % rid, headers={"X-Request-Id": mine}) as s:
                self.assertEqual(s.status, 200)
                self.assertEqual(s.headers.get("x-request-id"), mine, "the stream must echo X-Request-Id")
        with self.subTest("stream 204"):
            with self.server.sse("/api/runs/%s/events" % rid, headers={"X-Request-Id": mine,
                                                                        "Last-Event-ID": "100000"}) as s:
                self.assertEqual(s.status, 204)
                self.assertEqual(s.headers.get("x-request-id"), mine, "the stream's 204 must echo X-Request-Id")

if __name__ == "__main__":
    unittest.main()
