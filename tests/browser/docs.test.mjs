// /docs in headless Chromium: Swagger UI, served by the service itself, loads /openapi.json and
// lists every operation; nothing is fetched from anywhere else.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launchBrowser, screenshot, startServer } from "./helpers.mjs";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test("Swagger UI lists every operation of openapi.json", async () => {
  const doc = (await server.api("GET", "/openapi.json")).body;
  const expected = [];
  for (const [p, item] of Object.entries(doc.paths))
    for (const m of Object.keys(item)) expected.push(`${m.toUpperCase()} ${p}`);
  assert.ok(expected.length >= 19, `operations in the document: ${expected.length}`);
  // OpenAPI 3.1 webhooks (what the service sends), listed by name.
  for (const [name, item] of Object.entries(doc.webhooks ?? {}))
    for (const m of Object.keys(item)) expected.push(`${m.toUpperCase()} ${name}`);

  const page = await browser.newPage();
  await page.goto(server.base + "/docs");
  await page.waitForSelector(".opblock", { timeout: 90000 });
  await page.waitForFunction((n) => document.querySelectorAll(".opblock").length >= n, expected.length,
                             { timeout: 90000 });
  const listed = await page.$$eval(".opblock", (blocks) => blocks.map((b) => {
    const method = b.querySelector(".opblock-summary-method")?.textContent.trim();
    const p = b.querySelector(".opblock-summary-path")?.getAttribute("data-path") ||
              b.querySelector(".opblock-summary-path")?.textContent.trim();
    return `${method} ${p.replace(/\u200b/g, "")}`;
  }));
  assert.deepEqual([...listed].sort(), [...expected].sort());
  const title = await page.textContent(".info .title");
  assert.match(title, /Chatbot SSE API/);
  await screenshot(page, "docs-1280x800.png");

  // Open the event stream's operation: its text/event-stream response is documented.
  await page.click('.opblock-get:has([data-path="/api/runs/{run_id}/events"]) .opblock-summary');
  await page.waitForSelector(".opblock.is-open .responses-wrapper");
  const responses = await page.textContent(".opblock.is-open .responses-wrapper");
  assert.match(responses, /text\/event-stream/);
  assert.match(responses, /204/);

  await screenshot(page, "docs-event-stream-1280x800.png");
  assert.deepEqual(browser.offsite, [], "requests outside the service");
  assert.deepEqual(browser.consoleErrors, [], "console errors (a CSP violation shows here)");
  assert.deepEqual(browser.badResponses, [], "failed loads");
  await page.close();
});
