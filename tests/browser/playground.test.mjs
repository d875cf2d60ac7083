// The playground at / in headless Chromium: a person creates a user and a thread, sends a
// message and watches the reply stream; cancels mid-stream; reloads mid-stream; survives a
// network drop (EventSource reconnects with Last-Event-ID). Screenshots go to CHATBOT_BROWSER_OUT.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { launchBrowser, screenshot, startDropProxy, startServer } from "./helpers.mjs";

const PHONE = { width: 390, height: 844 };
let browser;

before(async () => { browser = await launchBrowser(); });
after(async () => { if (browser) await browser.close(); });

async function startAs(page, base, name) {
  // A first visit: the page remembers users in localStorage, shared by this profile's pages.
  // Cleared from a page of the origin that runs no script (the playground itself would write
  // its user back while it starts).
  await page.goto(base + "/healthz");
  await page.evaluate(() => localStorage.clear());
  await page.goto(base + "/");
  await page.fill('[data-testid="welcome-name"]', name);
  await page.click('[data-testid="welcome-submit"]');
  await page.waitForSelector('[data-testid="message"]:not([disabled])');
}

async function send(page, text) {
  await page.fill('[data-testid="message"]', text);
  await page.click('[data-testid="send"]');
  await page.waitForSelector('[data-testid="assistant-turn"][data-run-id]');
  return page.getAttribute('[data-testid="assistant-turn"][data-run-id] >> nth=-1', "data-run-id");
}

async function waitStatus(page, runId, status, timeout = 60000) {
  await page.waitForSelector(`[data-run-id="${runId}"] [data-testid="turn-status"][data-status="${status}"]`,
                             { timeout });
}

async function replyOf(page, runId) {
  return page.textContent(`[data-run-id="${runId}"] [data-testid="reply"]`);
}

/** The whole reply as the service stored it (the `final` event's text). */
async function finalText(server, threadId, runId) {
  const t = (await server.api("GET", `/api/threads/${threadId}`)).body;
  const m = t.messages.find((x) => x.role === "assistant" && x.run_id === runId);
  return m ? m.content : null;
}

function threadIdOf(page) {
  const m = /#thread=([0-9a-f-]{36})/.exec(page.url());
  assert.ok(m, "the thread is in the URL: " + page.url());
  return m[1];
}

describe("playground", () => {
  let server;
  before(async () => { server = await startServer(["--demo-token-delay-ms", "40", "--demo-tool-delay-ms", "50"]); });
  after(async () => { if (server) await server.stop(); });

  test("send a message and see the reply stream to done (phone size)", async () => {
    const page = await browser.newPage(PHONE);
    await startAs(page, server.base, "ann-" + Date.now());
    const runId = await send(page, "hello from the browser");
    // Tokens arrive one by one: the reply grows before the run is done.
    await page.waitForFunction((id) => {
      const el = document.querySelector(`[data-run-id="${id}"] [data-testid="reply"]`);
      return el && el.textContent.length > 0;
    }, runId);
    const statusWhileStreaming = await page.getAttribute('[data-testid="run-status"]', "data-status");
    assert.ok(["queued", "running", "done"].includes(statusWhileStreaming), statusWhileStreaming);
    await waitStatus(page, runId, "done");
    await page.waitForSelector('[data-testid="run-status"][data-status="done"]');

    const threadId = threadIdOf(page);
    const reply = await replyOf(page, runId);
    assert.equal(reply, await finalText(server, threadId, runId));
    assert.match(reply, /hello from the browser/);
    assert.match(reply, /[^\x00-\x7f]/, "UTF-8 survives end to end");
    const run = (await server.api("GET", `/api/runs/${runId}`)).body;
    assert.equal(run.status, "done");
    assert.equal(await page.textContent('[data-testid="last-event-id"]'), String(run.last_seq));
    const logged = await page.$$eval('[data-testid="event-log"] li[data-event]', (li) => li.length);
    assert.equal(logged, run.last_seq, "every event shown once in the log");
    assert.equal(await page.isHidden('[data-testid="cancel"]'), true, "nothing to cancel any more");

    // Open the event log for the picture, then take it.
    await page.click("#events-panel summary");
    const file = await screenshot(page, "playground-390x844.png");
    console.log("screenshot: " + file);

    // Earlier turns: a second message shows after the first, and a reload shows both.
    const second = await send(page, "and a second one");
    await waitStatus(page, second, "done");
    await page.reload();
    await page.waitForSelector('[data-testid="assistant-turn"] >> nth=1');
    const turns = await page.$$eval('[data-testid="conversation"] .turn', (t) =>
      t.map((x) => (x.classList.contains("user") ? "user" : "assistant")));
    assert.deepEqual(turns, ["user", "assistant", "user", "assistant"]);
    await page.click('[data-testid="menu-toggle"]');
    await page.waitForSelector(`[data-thread-id="${threadId}"][aria-current="true"]`);
    await screenshot(page, "playground-menu-390x844.png");
    await page.close();
  });

  test("cancel mid-stream shows canceled", async () => {
    const page = await browser.newPage({ width: 1280, height: 800 });
    await startAs(page, server.base, "cancel-" + Date.now());
    const runId = await send(page, Array.from({ length: 200 }, (_, i) => "word" + i).join(" "));
    await page.waitForFunction((id) => {
      const el = document.querySelector(`[data-run-id="${id}"] [data-testid="reply"]`);
      return el && el.textContent.length > 0;
    }, runId);
    await page.click('[data-testid="cancel"]');
    await waitStatus(page, runId, "canceled", 20000);
    await page.waitForSelector('[data-testid="run-status"][data-status="canceled"]');
    const run = (await server.api("GET", `/api/runs/${runId}`)).body;
    assert.equal(run.status, "canceled");
    const types = await page.$$eval('[data-testid="event-log"] li[data-event]', (li) => li.map((x) => x.dataset.event));
    assert.deepEqual(types.slice(-3), ["canceled", "state", "done"]);
    assert.equal(await page.isHidden('[data-testid="cancel"]'), true);
    await screenshot(page, "playground-canceled-1280x800.png");
    await page.close();
  });

  test("reload mid-stream and see the whole reply", async () => {
    const page = await browser.newPage(PHONE);
    await startAs(page, server.base, "reload-" + Date.now());
    const words = Array.from({ length: 150 }, (_, i) => "w" + i).join(" ");  // ~6 s of tokens
    const runId = await send(page, words);
    await page.waitForFunction((id) => {
      const el = document.querySelector(`[data-run-id="${id}"] [data-testid="reply"]`);
      return el && el.textContent.length > 10;
    }, runId);
    const before = (await server.api("GET", `/api/runs/${runId}`)).body;
    assert.equal(before.status, "running", "reloaded while the run streams");
    await screenshot(page, "playground-streaming-390x844.png");
    await page.reload();
    await waitStatus(page, runId, "done");
    const threadId = threadIdOf(page);
    assert.equal(await replyOf(page, runId), await finalText(server, threadId, runId));
    await page.close();
  });
});

describe("playground through a network drop", () => {
  let server;
  let proxy;
  before(async () => {
    server = await startServer(["--demo-token-delay-ms", "60", "--demo-tool-delay-ms", "50"]);
    proxy = await startDropProxy(server.port);
  });
  after(async () => {
    if (proxy) await proxy.close();
    if (server) await server.stop();
  });

  test("the stream resumes with Last-Event-ID and the reply is whole, each token once", async () => {
    const page = await browser.newPage({ width: 1280, height: 800 });
    const base = `http://127.0.0.1:${proxy.port}`;
    await startAs(page, base, "drop-" + Date.now());
    const runId = await send(page, Array.from({ length: 60 }, (_, i) => "t" + i).join(" "));
    await page.waitForFunction((id) => {
      const el = document.querySelector(`[data-run-id="${id}"] [data-testid="reply"]`);
      return el && el.textContent.length > 5;
    }, runId);
    proxy.drop();
    await waitStatus(page, runId, "done");
    const reconnects = await page.getAttribute('[data-testid="connection"]', "data-reconnects");
    assert.ok(Number(reconnects) >= 1, "the page saw the drop and reconnected: " + reconnects);
    const notes = await page.$$eval('[data-testid="event-log"] .sys', (x) => x.map((e) => e.textContent));
    assert.ok(notes.some((n) => /reconnecting with Last-Event-ID [1-9]/.test(n)), notes.join("\n"));
    const resumed = proxy.requests.filter((r) => r.startsWith(`GET /api/runs/${runId}/events `) &&
                                                 /\r\nlast-event-id: [1-9][0-9]*/i.test(r));
    assert.ok(resumed.length >= 1, "a reconnect with Last-Event-ID:\n" + proxy.requests.join("\n---\n"));
    const threadId = threadIdOf(page);
    assert.equal(await replyOf(page, runId), await finalText(server, threadId, runId));
    const ids = await page.$$eval('[data-testid="event-log"] li[data-event] .id', (x) => x.map((e) => Number(e.textContent)));
    assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => i + 1), "each event once, in order");
    await page.close();
  });
});

test("no request leaves the service, fails, or logs an error", () => {
  assert.deepEqual(browser.offsite, []);
  assert.deepEqual(browser.badResponses, []);
  // EventSource reports the deliberate drop as a network error on the console.
  const unexpected = browser.consoleErrors.filter((e) => !/ERR_(EMPTY_RESPONSE|CONNECTION|NETWORK)|net::/.test(e));
  assert.deepEqual(unexpected, []);
});
