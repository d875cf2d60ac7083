// CORS from a real browser: a page served on another origin (another port of 127.0.0.1) calls
// the service with fetch (a preflighted JSON POST, with X-Request-Id exposed) and streams a run
// with EventSource. An origin that CHATBOT_CORS_ORIGINS does not list gets nothing readable.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";

import { freePort, launchBrowser, startServer } from "./helpers.mjs";

const PAGE = "<!doctype html><meta charset=utf-8><title>elsewhere</title><p>another origin</p>";

async function startPageServer() {
  const port = await freePort();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

// Runs in the page: create a user and thread, post a message, stream it to the end.
async function flow(base) {
  const out = {};
  const post = async (path, body) => {
    const r = await fetch(base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": "k-" + Math.random() },
      body: JSON.stringify(body),
    });
    return { status: r.status, requestId: r.headers.get("X-Request-Id"), body: await r.json() };
  };
  const user = await post("/api/users", { name: "cors-" + Math.random().toString(36).slice(2) });
  out.userStatus = user.status;
  out.requestId = user.requestId;
  const thread = await post("/api/threads", { user_id: user.body.user_id });
  const msg = await post(`/api/threads/${thread.body.thread_id}/messages`, { content: "hi from afar" });
  out.events = await new Promise((resolve, reject) => {
    const seen = [];
    const es = new EventSource(`${base}/api/runs/${msg.body.run_id}/events`);
    for (const t of ["state", "token", "final", "done"])
      es.addEventListener(t, (e) => {
        seen.push(t);
        if (t === "done") { es.close(); resolve(seen); }
      });
    es.onerror = () => { es.close(); reject(new Error("EventSource failed after " + seen.join(","))); };
  });
  return out;
}

let browser, page1, page2, srv;

before(async () => {
  browser = await launchBrowser();
  page1 = await startPageServer();
  page2 = await startPageServer();
  srv = await startServer(["--cors-origins", page1.origin, "--demo-token-delay-ms", "5",
                           "--demo-tool-delay-ms", "5"]);
});
after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
  if (page1) await page1.close();
  if (page2) await page2.close();
});

describe("CORS", () => {
  test("an allowed origin uses fetch (preflighted) and EventSource", async () => {
    const page = await browser.newPage();
    await page.goto(page1.origin + "/");
    const out = await page.evaluate(flow, srv.base);
    assert.equal(out.userStatus, 201);
    assert.match(out.requestId || "", /^[0-9a-f-]{36}$/, "X-Request-Id is exposed to the page");
    assert.equal(out.events[0], "state");
    assert.equal(out.events.at(-1), "done");
    assert.ok(out.events.includes("final"), out.events.join(","));
    await page.close();
  });

  test("an origin not listed is refused", async () => {
    const page = await browser.newPage();
    await page.goto(page2.origin + "/");
    const err = await page.evaluate(async (base) => {
      try {
        await fetch(base + "/api/users", { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify({ name: "nope" }) });
        return "fetch succeeded";
      } catch (e) { return String(e); }
    }, srv.base);
    assert.match(err, /TypeError|Failed to fetch/);
    const simple = await page.evaluate(async (base) => {
      try { await fetch(base + "/healthz"); return "read"; } catch (e) { return String(e); }
    }, srv.base);
    assert.match(simple, /TypeError|Failed to fetch/);
    const es = await page.evaluate((base) => new Promise((resolve) => {
      const s = new EventSource(base + "/api/runs/00000000-0000-4000-8000-000000000000/events");
      s.onopen = () => { s.close(); resolve("open"); };
      s.onerror = () => { s.close(); resolve("error"); };
    }), srv.base);
    assert.equal(es, "error");
    // Nothing was created by the refused preflight.
    const r = await srv.api("POST", "/api/users", { name: "nope" });
    assert.equal(r.status, 201);
    await page.close();
  });
});
