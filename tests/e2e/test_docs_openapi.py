"""/openapi.json against what the service really answers: sample responses of every kind (users,
threads, messages, runs, the event stream's events, problems, operations) are validated against
the schema the document gives for that path, method, status and media type.

The validator is a small subset of JSON Schema 2020-12 (what the document uses): $ref, type,
enum, const, properties, required, additionalProperties, items, minItems, minLength, maxLength,
pattern, minimum, maximum, oneOf, anyOf, allOf. `format` and `discriminator` are annotations."""
import json
import re
import unittest
import uuid

try:
    from . import harness, support
except ImportError:
    import harness, support


class SchemaError(AssertionError):
    pass


class Validator:
    def __init__(self, doc):
        self.doc = doc

    def resolve(self, ref):
        if not ref.startswith("#/"):
            raise SchemaError("only local $ref are supported: %r" % ref)
        node = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if part not in node:
                raise SchemaError("unresolved $ref %r" % ref)
            node = node[part]
        return node

    @staticmethod
    def _type_ok(t, v):
        if t == "null":
            return v is None
        if t == "boolean":
            return isinstance(v, bool)
        if t == "integer":
            return isinstance(v, int) and not isinstance(v, bool)
        if t == "number":
            return isinstance(v, (int, float)) and not isinstance(v, bool)
        if t == "string":
            return isinstance(v, str)
        if t == "array":
            return isinstance(v, list)
        if t == "object":
            return isinstance(v, dict)
        raise SchemaError("unknown type %r" % t)

    def errors(self, schema, v, path="$"):
        """Every violation, as 'path: message' strings."""
        out = []
        if schema is True or schema == {}:
            return out
        if schema is False:
            return ["%s: no value is allowed here" % path]
        if "$ref" in schema:
            out += self.errors(self.resolve(schema["$ref"]), v, path)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(self._type_ok(t, v) for t in types):
                return out + ["%s: %r is not of type %s" % (path, v, "/".join(types))]
        if "const" in schema and not (v == schema["const"] and type(v) is type(schema["const"])):
            out.append("%s: %r is not %r" % (path, v, schema["const"]))
        if "enum" in schema and v not in schema["enum"]:
            out.append("%s: %r is not one of %r" % (path, v, schema["enum"]))
        if isinstance(v, str):
            if "minLength" in schema and len(v) < schema["minLength"]:
                out.append("%s: shorter than %d" % (path, schema["minLength"]))
            if "maxLength" in schema and len(v) > schema["maxLength"]:
                out.append("%s: longer than %d" % (path, schema["maxLength"]))
            if "pattern" in schema and not re.search(schema["pattern"], v):
                out.append("%s: %r does not match %s" % (path, v, schema["pattern"]))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in schema and v < schema["minimum"]:
                out.append("%s: %r < %r" % (path, v, schema["minimum"]))
            if "maximum" in schema and v > schema["maximum"]:
                out.append("%s: %r > %r" % (path, v, schema["maximum"]))
        if isinstance(v, list):
            if "minItems" in schema and len(v) < schema["minItems"]:
                out.append("%s: fewer than %d items" % (path, schema["minItems"]))
            if "items" in schema:
                for i, x in enumerate(v):
                    out += self.errors(schema["items"], x, "%s[%d]" % (path, i))
        if isinstance(v, dict):
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in v:
                    out.append("%s: missing required %r" % (path, name))
            for name, x in v.items():
                if name in props:
                    out += self.errors(props[name], x, "%s.%s" % (path, name))
                elif "additionalProperties" in schema:
                    out += self.errors(schema["additionalProperties"], x, "%s.%s" % (path, name))
        for sub in schema.get("allOf", []):
            out += self.errors(sub, v, path)
        if "anyOf" in schema:
            if all(self.errors(sub, v, path) for sub in schema["anyOf"]):
                out.append("%s: matches none of anyOf" % path)
        if "oneOf" in schema:
            results = [self.errors(sub, v, path) for sub in schema["oneOf"]]
            matched = sum(1 for r in results if not r)
            if matched != 1:
                detail = "; ".join(r[0] for r in results if r)[:400]
                out.append("%s: matches %d of oneOf (need exactly 1) %s" % (path, matched, detail))
        return out


class ValidatorSelfTest(unittest.TestCase):
    """The validator rejects what it must (so the checks below can fail)."""

    DOC = {"components": {"schemas": {
        "Id": {"type": "string", "pattern": "^[a-f]+$"},
        "Thing": {"type": "object", "required": ["id", "n"], "additionalProperties": False,
                  "properties": {"id": {"$ref": "#/components/schemas/Id"},
                                 "n": {"type": "integer", "minimum": 1},
                                 "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1},
                                 "opt": {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 3}]},
                                 "k": {"const": True}}}}}}

    def check(self, value):
        v = Validator(self.DOC)
        return v.errors({"$ref": "#/components/schemas/Thing"}, value)

    def test_accepts_and_rejects(self):
        self.assertEqual(self.check({"id": "abc", "n": 2, "tags": ["a"], "opt": None, "k": True}), [])
        self.assertEqual(self.check({"id": "abc", "n": 2, "opt": "xyz"}), [])
        bad = [
            {"n": 2},                                  # missing id
            {"id": "ABC", "n": 2},                     # pattern
            {"id": "a", "n": 0},                       # minimum
            {"id": "a", "n": True},                    # bool is not an integer
            {"id": "a", "n": 1.5},                     # not an integer
            {"id": "a", "n": 1, "extra": 1},           # additionalProperties false
            {"id": "a", "n": 1, "tags": []},           # minItems
            {"id": "a", "n": 1, "tags": ["c"]},        # enum
            {"id": "a", "n": 1, "opt": "long"},        # oneOf: none
            {"id": "a", "n": 1, "k": 1},               # const (type-exact)
            [],                                        # type
        ]
        for b in bad:
            with self.subTest(b):
                self.assertTrue(self.check(b), "should be rejected: %r" % (b,))

    def test_unresolved_ref_fails(self):
        with self.assertRaises(SchemaError):
            Validator(self.DOC).errors({"$ref": "#/components/schemas/Nope"}, 1)


def template_of(method, path):
    """The router's template for a concrete path of the API."""
    p = path.split("?")[0]
    rules = [
        (r"^/api/users/[^/]+/threads$", "/api/users/{user_id}/threads"),
        (r"^/api/users/[^/]+$", "/api/users/{user_id}"),
        (r"^/api/threads/[^/]+/runs$", "/api/threads/{thread_id}/runs"),
        (r"^/api/threads/[^/]+/messages$", "/api/threads/{thread_id}/messages"),
        (r"^/api/threads/[^/]+$", "/api/threads/{thread_id}"),
        (r"^/api/runs/[^/]+/cancel$", "/api/runs/{run_id}/cancel"),
        (r"^/api/runs/[^/]+/events$", "/api/runs/{run_id}/events"),
        (r"^/api/runs/[^/]+$", "/api/runs/{run_id}"),
        (r"^/docs/[^/]+$", "/docs/{file}"),
        (r"^/assets/[^/]+$", "/assets/{file}"),
    ]
    for rx, t in rules:
        if re.match(rx, p):
            return t
    return p


class OpenApiSamplesTest(support.ServerTestCase):
    server_args = ["--demo-token-delay-ms", "2", "--demo-tool-delay-ms", "2"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.server.request("GET", "/openapi.json")
        assert r.status == 200, r
        cls.doc = r.body
        cls.validator = Validator(cls.doc)
        cls.checked = set()

    def response_spec(self, method, path, status):
        tmpl = template_of(method, path)
        ops = self.doc["paths"].get(tmpl)
        self.assertIsNotNone(ops, "%s is not in openapi.json" % tmpl)
        op = ops.get(method.lower())
        self.assertIsNotNone(op, "%s %s is not in openapi.json" % (method, tmpl))
        spec = op["responses"].get(str(status))
        self.assertIsNotNone(spec, "%s %s answered %s, which openapi.json does not list (it lists %s)"
                             % (method, tmpl, status, sorted(op["responses"])))
        if "$ref" in spec:
            spec = self.validator.resolve(spec["$ref"])
        return tmpl, spec

    def validate(self, method, path, resp, expect_status=None):
        """Checks `resp` (harness.Response) against the document; returns its body."""
        if expect_status is not None:
            self.assertStatus(resp, expect_status, "%s %s" % (method, path))
        tmpl, spec = self.response_spec(method, path, resp.status)
        self.assertIn("x-request-id", resp.headers, "every response carries X-Request-Id")
        self.assertIn("X-Request-Id", spec.get("headers", {}), "%s %s %s: X-Request-Id not documented"
                      % (method, tmpl, resp.status))
        content = spec.get("content")
        if not content:
            self.assertEqual(resp.raw, b"", "%s %s %s: documented without a body" % (method, tmpl, resp.status))
            self.checked.add((method, tmpl, resp.status))
            return None
        ctype = resp.headers.get("content-type", "").split(";")[0].strip()
        ranges = [ctype, ctype.split("/")[0] + "/*", "*/*"]  # the most specific documented range
        media = next((m for r in ranges for m in content if m.split(";")[0].strip() == r), None)
        self.assertIsNotNone(media, "%s %s %s: Content-Type %r is not documented (%s)"
                             % (method, tmpl, resp.status, ctype, list(content)))
        schema = content[media].get("schema", {})
        if "json" in ctype:
            errs = self.validator.errors(schema, resp.body)
            self.assertEqual(errs, [], "%s %s %s does not match its schema; body %r"
                             % (method, tmpl, resp.status, resp.body))
        self.checked.add((method, tmpl, resp.status))
        return resp.body

    def call(self, method, path, body=None, expect=None, **kw):
        r = self.req(method, path, body=body, **kw)
        return self.validate(method, path, r, expect)

    def test_a_whole_flow_matches_the_document(self):
        name = harness.unique("doc")
        user = self.call("POST", "/api/users", {"name": name}, 201)
        conflict = self.call("POST", "/api/users", {"name": name}, 409)
        self.assertEqual(conflict["user_id"], user["user_id"])
        self.call("GET", "/api/users/%d" % user["user_id"], expect=200)
        self.call("GET", "/api/users/999999999", expect=404)
        thread = self.call("POST", "/api/threads", {"user_id": user["user_id"], "title": "docs"}, 201)
        self.call("POST", "/api/threads", {"user_id": user["user_id"]}, 201)
        self.call("POST", "/api/threads", {"user_id": 999999999}, 404)
        page = self.call("GET", "/api/users/%d/threads?limit=1" % user["user_id"], expect=200)
        self.assertIsNotNone(page["next"], "two threads, limit 1: a next cursor")
        self.call("GET", "/api/users/%d/threads?before=%s" % (user["user_id"], page["next"]), expect=200)
        self.call("GET", "/api/users/%d/threads?limit=0" % user["user_id"], expect=422)

        tid = thread["thread_id"]
        posted = self.call("POST", "/api/threads/%s/messages" % tid, {"content": "hello docs"}, 201,
                           headers={"Idempotency-Key": harness.unique("k")})
        self.call("POST", "/api/threads/%s/messages" % tid, {"content": "   "}, 422)
        self.call("POST", "/api/threads/%s/messages" % tid, {"content": 5}, 422)
        self.call("POST", "/api/threads/%s/messages" % tid, {"content": "x"}, 422,
                  headers={"Idempotency-Key": "k" * 300})
        self.call("POST", "/api/threads/not-a-uuid/messages", {"content": "x"}, 404)

        # The stream: every event frame against RunEvent (its id, type and data schema).
        run_id = posted["run_id"]
        with self.server.sse("/api/runs/%s/events" % run_id, timeout=30) as s:
            self.assertEqual(s.status, 200)
            self.validate("GET", "/api/runs/%s/events" % run_id,
                          harness.Response(200, s.headers, None))
            events = s.read_all(30)
        event_schema = {"$ref": "#/components/schemas/RunEvent"}
        seen = set()
        for e in events:
            frame = {"id": e.id, "event": e.event, "data": json.loads(e.data)}
            self.assertEqual(self.validator.errors(event_schema, frame), [], "event %r" % frame)
            seen.add(e.event)
        self.assertTrue({"state", "tool_start", "tool_end", "token", "final", "done"} <= seen, seen)
        after_done = self.req("GET", "/api/runs/%s/events" % run_id,
                              headers={"Last-Event-ID": events[-1].id})
        self.validate("GET", "/api/runs/%s/events" % run_id, after_done, 204)
        self.validate("GET", "/api/runs/%s/events" % uuid.uuid4(),
                      self.req("GET", "/api/runs/%s/events" % uuid.uuid4()), 404)

        run = self.call("GET", "/api/runs/%s" % run_id, expect=200)
        self.assertEqual(run["status"], "done")
        self.call("GET", "/api/runs/%s" % uuid.uuid4(), expect=404)
        self.call("GET", "/api/threads/%s/runs" % tid, expect=200)
        detail = self.call("GET", "/api/threads/%s" % tid, expect=200)
        self.assertEqual([m["role"] for m in detail["messages"]], ["user", "assistant"])
        self.call("POST", "/api/runs/%s/cancel" % run_id, expect=200)

        # A run canceled while queued or running: canceled, error-free shapes.
        slow = self.call("POST", "/api/threads/%s/messages" % tid, {"content": " ".join(["w"] * 200)}, 201)
        self.call("POST", "/api/runs/%s/cancel" % slow["run_id"], expect=200)
        events = self.server.events(slow["run_id"])
        for e in events:
            frame = {"id": e.id, "event": e.event, "data": json.loads(e.data)}
            self.assertEqual(self.validator.errors(event_schema, frame), [], "event %r" % frame)
        self.assertIn("canceled", [e.event for e in events])
        canceled_run = self.call("GET", "/api/runs/%s" % slow["run_id"], expect=200)
        self.assertEqual(canceled_run["status"], "canceled")

        self.call("DELETE", "/api/threads/%s" % tid, expect=204)
        self.call("DELETE", "/api/threads/%s" % tid, expect=404)
        self.call("GET", "/api/threads/%s" % tid, expect=404)

    def test_operations_and_documentation_match_the_document(self):
        self.call("GET", "/healthz", expect=200)
        self.call("GET", "/readyz", expect=200)
        self.call("GET", "/metrics", expect=200)
        self.call("GET", "/openapi.json", expect=200)
        self.call("GET", "/docs", expect=200)
        self.call("GET", "/docs/swagger-ui.css", expect=200)
        self.call("GET", "/docs/missing.js", expect=404)
        self.call("GET", "/", expect=200)
        self.call("GET", "/assets/playground.js", expect=200)
        r = self.req("GET", "/openapi.json")
        again = self.req("GET", "/openapi.json", headers={"If-None-Match": r.headers["etag"]})
        self.validate("GET", "/openapi.json", again, 304)

    def test_request_problems_match_the_problem_schema(self):
        self.call("POST", "/api/users", raw_body="{not json", expect=422,
                  headers={"Content-Type": "application/json"})
        self.call("POST", "/api/users", {"name": "x"}, 422, headers={"Content-Type": "text/plain"})
        self.call("POST", "/api/users", {"name": ""}, 422)
        self.call("POST", "/api/threads", {"user_id": "one"}, 422)
        big = {"content": "x" * (1024 * 1024 + 10)}
        self.call("POST", "/api/threads/%s/messages" % uuid.uuid4(), big, 413)

    def test_the_document_is_complete_for_the_api(self):
        """Every path of API.md is in the document, with a JSON request body where one is needed."""
        for path, method in [("/api/users", "post"), ("/api/threads", "post"),
                             ("/api/threads/{thread_id}/messages", "post")]:
            op = self.doc["paths"][path][method]
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            self.assertTrue(self.validator.errors(schema, {}), "%s %s accepts an empty body" % (method, path))
        ev = self.doc["paths"]["/api/runs/{run_id}/events"]["get"]
        names = {p.get("name") or p.get("$ref", "").rsplit("/", 1)[-1] for p in ev["parameters"]}
        self.assertTrue({"Last-Event-ID", "last_event_id", "run_id"} <= names, names)


if __name__ == "__main__":
    unittest.main()
