#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (small, real inputs: what clients and
upstreams send). Run again after changing it; libFuzzer adds its own finds elsewhere."""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, items):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for data in items:
        name = hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def req(method, target, body=None, headers=()):
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: localhost:8000"]
    lines += ["%s: %s" % h for h in headers]
    b = b""
    if body is not None:
        b = body.encode() if isinstance(body, str) else body
        lines += ["Content-Type: application/json", "Content-Length: %d" % len(b)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + b


http = [
    req("POST", "/api/users", '{"name":"smoke-user"}'),
    req("GET", "/api/users/{U}"),
    req("GET", "/api/users/{U}/threads?limit=2&before={T}"),
    req("POST", "/api/threads", '{"user_id": 1}'),
    req("POST", "/api/threads", '{"user_id": 1, "title": "t\\u00e9"}'),
    req("GET", "/api/threads/{T}"),
    req("GET", "/api/threads/{T}/runs"),
    req("DELETE", "/api/threads/{T}"),
    req("POST", "/api/threads/{T}/messages", '{"content":"hello"}', [("Idempotency-Key", "k1")]),
    req("GET", "/api/runs/{R}"),
    req("POST", "/api/runs/{R}/cancel"),
    req("GET", "/api/runs/{R}/events", headers=[("Last-Event-ID", "3")]),
    req("GET", "/api/runs/{R}/events?last_event_id=5"),
    req("GET", "/healthz") + req("GET", "/readyz") + req("GET", "/metrics"),
    req("GET", "/openapi.json", headers=[("If-None-Match", 'W/"x", "y"')]),
    req("GET", "/docs/swagger-initializer.js"),
    req("GET", "/"),
    req("PUT", "/api/users"),
    req("POST", "/api/threads/{T}/messages", '{"content":"a"}') + req("GET", "/api/runs/{R}/events")
    + req("POST", "/api/runs/{R}/cancel"),
    b"POST /api/threads/{T}/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"con\r\nf\r\ntent\":\"chunked\"}\r\n0\r\n\r\n",
    b"GET /api/runs/{R}/events HTTP/1.0\r\n\r\n",
]
write("fuzz_http", http)

bodies = [(0, '{"name":"ann"}'), (0, '{"name":"  padded  "}'), (0, '{"name":""}'),
          (0, '{"name":"\\u0000nul"}'), (0, '{"name":5}'), (0, '[]'), (0, '{"name":"ann",}'),
          (1, '{"user_id":1}'), (1, '{"user_id":1,"title":null}'), (1, '{"user_id":1,"title":"x"}'),
          (1, '{"user_id":18446744073709551615}'), (1, '{"user_id":-1}'), (1, '{"user_id":1.5}'),
          (2, '{"content":"hello"}'), (2 | 8, '{"content":"idempotent"}'), (2, '{"content":"  "}'),
          (2, '{"content":"caf\\u00e9 \\ud83d\\ude00"}'), (2, '{"content":' + "[" * 40 + "]" * 40 + "}"),
          (2 | 4, '{"content":"x","extra":{"a":[1,2,{"b":null}]}}'), (2, '{"content":"\\ud800"}')]
write("fuzz_json_body", [bytes([s]) + b.encode() for s, b in bodies])

queries = ["\n", "3\n", " 7 \n", "-1\n", "abc\n", "99999999999999999999\n", "\nlast_event_id=4",
           "\nlast_event_id=%35", "2\nlast_event_id=9", "\nlimit=1&before=x", "\nlimit=%32%30%30",
           "\nlast+event+id=1&last_event_id=", "\nlast_event_id", "\n%zz=1&limit=0", "\n&&=&limit=5",
           "\nlast_event_id=1%2", "\nbefore=00000001-abcd-4def-8000-000000000001"]
write("fuzz_query", [q.encode() for q in queries])


def chunk(delta, finish=None, extra=""):
    import json
    c = {"id": "c", "object": "chat.completion.chunk",
         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    s = json.dumps(c, ensure_ascii=False)
    if extra:
        s = s[:-1] + "," + extra + "}"
    return "data: " + s + "\n\n"


streams = [
    chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hello"}) + chunk({"content": " caf\u00e9"})
    + chunk({}, "stop") + "data: [DONE]\n\n",
    chunk({"content": "x"}) + 'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
    + "data: [DONE]\n\n",
    chunk({"tool_calls": [{"index": 0, "id": "t", "function": {"name": "get", "arguments": "{\"a\""}}]})
    + chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]})
    + chunk({"tool_calls": [{"index": 1, "function": {"name": "other", "arguments": "not json"}}]})
    + chunk({}, "tool_calls") + "data: [DONE]\n\n",
    'data: {"error":{"message":"rate limited","type":"requests"}}\n\n',
    ": keep-alive\r\n\r\n" + chunk({"content": "crlf"}).replace("\n", "\r\n") + "data: [DONE]\r\n\r\n",
    "data: {\"choices\":[{\"index\":0,\n" + "data: \"delta\":{\"content\":\"multi\"}}]}\n\n" + "data: [DONE]",
    chunk({"content": "no done"}),
    "data: {not json}\n\n",
    "event: message\nid: 1\nretry: 5\ndata: [DONE]\n\n",
]
out = []
for i, s in enumerate(streams):
    b = s.encode()
    ncuts = i % 4
    cuts = b"".join(struct.pack(">H", (37 * (j + 1) + i) % 65536) for j in range(ncuts))
    out.append(bytes([ncuts]) + cuts + b)
# a character split across two deltas
out.append(b"\x01\x00\x30" + (chunk({"content": "\u00e9\u00e9"}) + "data: [DONE]\n\n").encode())
with open(os.path.join(HERE, "..", "tests", "fake_openai", "recorded", "openai_chat_stream.txt"), "rb") as f:
    out.append(b"\x03\x00\x10\x01\x00\x02\x22" + f.read()[:4000])
write("fuzz_sse_chunks", out)
