"""Users: create, trim, uniqueness (409), validation (422), get, list of a user's threads."""
import threading
import time
import uuid
import unittest

try:
    from . import harness, support
except ImportError:
    import harness, support

unique = harness.unique


class UsersTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "5", "--demo-tool-delay-ms", "5"]

    def test_create_user(self):
        name = unique("ann")
        r = self.req("POST", "/api/users", {"name": name})
        self.assertStatus(r, 201, "POST /api/users")
        self.assertJson(r, "POST /api/users")
        self.assertIsInstance(r.body.get("user_id"), int, "user_id must be an integer: %r" % r.body)
        self.assertNotIsInstance(r.body.get("user_id"), bool)
        self.assertEqual(r.body.get("name"), name)
        self.assertTimestamp(r.body.get("created_at"), "created_at")
        self.assertTrue(r.headers.get("x-request-id"), "response without X-Request-Id")

    def test_user_ids_are_distinct(self):
        a = self.server.create_user()["user_id"]
        b = self.server.create_user()["user_id"]
        self.assertNotEqual(a, b)

    def test_name_is_trimmed(self):
        name = unique("trim")
        r = self.req("POST", "/api/users", {"name": "  \t%s  " % name})
        self.assertStatus(r, 201)
        self.assertEqual(r.body.get("name"), name, "the stored name must be trimmed")
        g = self.req("GET", "/api/users/%d" % r.body["user_id"])
        self.assertEqual(g.body.get("name"), name)

    def test_duplicate_name_is_409_with_existing_user(self):
        name = unique("dup")
        first = self.server.create_user(name)
        r = self.req("POST", "/api/users", {"name": name})
        body = self.assertProblem(r, 409, "duplicate user")
        self.assertEqual(body.get("user_id"), first["user_id"], "409 must carry the existing user_id: %r" % body)
        self.assertEqual(body.get("name"), name, "409 must carry the existing name: %r" % body)

    def test_duplicate_after_trimming_is_409(self):
        name = unique("dup2")
        first = self.server.create_user(name)
        r = self.req("POST", "/api/users", {"name": "   %s " % name})
        body = self.assertProblem(r, 409, "duplicate (after trimming)")
        self.assertEqual(body.get("user_id"), first["user_id"])
        self.assertEqual(body.get("name"), name)

    def test_concurrent_duplicates(self):
        """Eight clients create the same name at once: one 201, seven 409 naming that user, no 5xx."""
        name = unique("race")
        barrier = threading.Barrier(8)
        results = [None] * 8

        def create(i):
            barrier.wait(5)
            results[i] = self.server.request("POST", "/api/users", {"name": name})

        ths = [threading.Thread(target=create, args=(i,)) for i in range(8)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(20)
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [201] + [409] * 7, "one create wins, the others conflict: %r" % results)
        winner = [r for r in results if r.status == 201][0].body
        for r in results:
            if r.status == 409:
                self.assertEqual(r.body.get("user_id"), winner["user_id"], "409 names the winner: %r" % (r,))

    def test_invalid_names_are_422_and_store_nothing(self):
        cases = [
            ("empty", {"name": ""}),
            ("blank", {"name": "   \t "}),
            ("missing", {}),
            ("null", {"name": None}),
            ("number", {"name": 123}),
            ("list", {"name": ["x"]}),
            ("object", {"name": {"a": 1}}),
            ("bool", {"name": True}),
            ("121 chars", {"name": "x" * 121}),
        ]
        for label, body in cases:
            with self.subTest(label):
                r = self.req("POST", "/api/users", body)
                self.assertValidation(r, "POST /api/users %s" % label, loc_suffix="name")
        # nothing was stored: "123" is still free (a stored number-name would collide)
        r = self.req("POST", "/api/users", {"name": "123-" + unique("n")})
        self.assertStatus(r, 201)
        self.assertServerAlive("after invalid names")

    def test_name_length_limit_is_in_characters(self):
        hex12 = lambda: uuid.uuid4().hex[:12]
        r = self.req("POST", "/api/users", {"name": "y" * 108 + hex12()})
        self.assertStatus(r, 201, "a 120-character name is valid")
        r = self.req("POST", "/api/users", {"name": "é" * 108 + hex12()})  # 120 chars, 228 bytes
        self.assertStatus(r, 201, "a 120-character non-ASCII name is valid (the limit counts characters)")
        r = self.req("POST", "/api/users", {"name": "   " + "z" * 108 + hex12() + "   "})
        self.assertStatus(r, 201, "trimming happens before the length check (120 chars after trim)")
        r = self.req("POST", "/api/users", {"name": "é" * 109 + hex12()})  # 121 chars
        self.assertValidation(r, "121 characters")

    def test_get_user(self):
        u = self.server.create_user()
        r = self.req("GET", "/api/users/%d" % u["user_id"])
        self.assertStatus(r, 200)
        self.assertJson(r)
        self.assertEqual(r.body.get("user_id"), u["user_id"])
        self.assertEqual(r.body.get("name"), u["name"])
        self.assertEqual(r.body.get("created_at"), u["created_at"])

    def test_get_unknown_user_is_404(self):
        for uid in ("999999999", "0", "-1", "abc", "1.5", "99999999999999999999999"):
            with self.subTest(uid):
                r = self.req("GET", "/api/users/%s" % uid)
                self.assertProblem(r, 404, "GET /api/users/%s" % uid)

    def test_user_threads_newest_first_with_cursor(self):
        u = self.server.create_user()
        other = self.server.create_user()
        self.server.create_thread(other["user_id"], title="not mine")
        created = []
        for i in range(3):
            created.append(self.server.create_thread(u["user_id"], title="t%d" % i))
            time.sleep(0.01)  # distinct created_at
        newest_first = [t["thread_id"] for t in reversed(created)]

        r = self.req("GET", "/api/users/%d/threads" % u["user_id"])
        self.assertStatus(r, 200)
        self.assertJson(r)
        self.assertEqual([t.get("thread_id") for t in r.body.get("threads", [])], newest_first,
                         "threads must be this user's, newest first: %r" % r.body)
        self.assertIn("next", r.body)
        self.assertIsNone(r.body["next"], "no more pages -> next is null")
        for t, c in zip(r.body["threads"], reversed(created)):
            for k in ("thread_id", "user_id", "title", "created_at"):
                self.assertEqual(t.get(k), c[k], "thread list entry %r differs from the created thread %r"
                                 % (t, c))

        r = self.req("GET", "/api/users/%d/threads?limit=2" % u["user_id"])
        self.assertStatus(r, 200)
        self.assertEqual([t["thread_id"] for t in r.body["threads"]], newest_first[:2])
        self.assertIsNotNone(r.body.get("next"), "more threads exist -> next must be a cursor: %r" % r.body)
        r2 = self.req("GET", "/api/users/%d/threads?limit=2&before=%s" % (u["user_id"], r.body["next"]))
        self.assertStatus(r2, 200)
        self.assertEqual([t["thread_id"] for t in r2.body["threads"]], newest_first[2:],
                         "the page after `next` must hold the remaining oldest thread")
        self.assertIsNone(r2.body.get("next"), "last page -> next null: %r" % r2.body)

        r3 = self.req("GET", "/api/users/%d/threads?before=%s" % (u["user_id"], newest_first[0]))
        self.assertEqual([t["thread_id"] for t in r3.body["threads"]], newest_first[1:],
                         "before=<thread> lists the threads older than it")

    def test_user_without_threads(self):
        u = self.server.create_user()
        r = self.req("GET", "/api/users/%d/threads" % u["user_id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.body.get("threads"), [])
        self.assertIsNone(r.body.get("next"))


if __name__ == "__main__":
    unittest.main()
