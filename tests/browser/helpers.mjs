// Shared by the browser tests: start the real chatbot binary on a free port with a temporary
// SQLite database, and launch Debian's Chromium through playwright-core (which never downloads a
// browser of its own). Environment:
//   CHATBOT_BIN          the binary (default build/release/chatbot)
//   CHATBOT_BROWSER      the browser (default /usr/bin/chromium)
//   CHATBOT_BROWSER_OUT  where screenshots go (default build/browser)
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "..", "..");
export const outDir = process.env.CHATBOT_BROWSER_OUT || path.join(repoRoot, "build", "browser");

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The chatbot binary serving on a free port; `stop()` sends SIGTERM and waits. */
export async function startServer(args = []) {
  const bin = process.env.CHATBOT_BIN || path.join(repoRoot, "build", "release", "chatbot");
  if (!fs.existsSync(bin)) throw new Error(`chatbot binary not found at ${bin} (set CHATBOT_BIN)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chatbot-browser-"));
  const port = await freePort();
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("CHATBOT_") && k !== "DATABASE_URL"));
  const proc = spawn(bin, ["serve", "--host", "127.0.0.1", "--port", String(port),
                           "--database", "sqlite:" + path.join(dir, "chatbot.db"), ...args],
                     { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`chatbot exited with ${proc.exitCode}:\n${stderr}`);
    try {
      const r = await fetch(base + "/healthz");
      if (r.status === 200) break;
    } catch (e) { /* not listening yet */ }
    if (Date.now() > deadline) { proc.kill("SIGKILL"); throw new Error("chatbot not ready:\n" + stderr); }
    await sleep(50);
  }
  return {
    base, port, proc,
    stderr: () => stderr,
    async api(method, p, body) {
      const init = { method, headers: {} };
      if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
      const r = await fetch(base + p, init);
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    },
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await Promise.race([exited, sleep(10000)]);
        if (proc.exitCode === null) proc.kill("SIGKILL");
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium with a fresh profile; every request outside 127.0.0.1 is recorded. */
export async function launchBrowser() {
  const executablePath = process.env.CHATBOT_BROWSER || "/usr/bin/chromium";
  if (!fs.existsSync(executablePath))
    throw new Error(`${executablePath} not found: scripts/install-deps --test installs Debian's chromium`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "chatbot-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 800 },
  });
  // Generous: CI machines are small and often busy; a wait that times out still fails the test.
  context.setDefaultTimeout(60000);
  const offsite = [];
  const consoleErrors = [];
  const badResponses = [];
  context.on("request", (req) => {
    const u = new URL(req.url());
    if (!["127.0.0.1", "localhost"].includes(u.hostname) && !u.protocol.startsWith("data")) offsite.push(req.url());
  });
  // Failed loads, by URL (the console only says "Failed to load resource"). Chromium asks for
  // /favicon.ico on pages without an icon link (the tests' /healthz visits): not a page's fault.
  context.on("response", (res) => {
    if (res.status() >= 400 && new URL(res.url()).pathname !== "/favicon.ico")
      badResponses.push(`${res.status()} ${res.request().method()} ${res.url()}`);
  });
  context.on("page", (page) => watchConsole(page, consoleErrors));
  return {
    context, offsite, consoleErrors, badResponses,
    async newPage(viewport) {
      const page = await context.newPage();
      watchConsole(page, consoleErrors);
      if (viewport) await page.setViewportSize(viewport);
      return page;
    },
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

function watchConsole(page, sink) {
  if (page.__watched) return;
  page.__watched = true;
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) sink.push(m.text());
  });
  page.on("pageerror", (e) => sink.push(String(e)));
}

export async function screenshot(page, name) {
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, name);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

/** A TCP proxy in front of `port` whose connections can all be cut at once (a network drop). */
export async function startDropProxy(port) {
  const sockets = new Set();
  const requests = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    client.on("data", (d) => {
      const head = d.toString("latin1");
      if (/^[A-Z]+ \S+ HTTP\/1\.1\r\n/.test(head)) requests.push(head.split("\r\n\r\n")[0]);
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const done = () => { sockets.delete(client); sockets.delete(upstream); client.destroy(); upstream.destroy(); };
    client.on("error", done);
    upstream.on("error", done);
    client.on("close", done);
    upstream.on("close", done);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    requests,
    drop() { for (const s of sockets) s.destroy(); sockets.clear(); },
    close() { this.drop(); return new Promise((r) => server.close(r)); },
  };
}
