// The playground: pick or create a user, open or create a thread, send a message and watch the
// reply stream through the browser's own EventSource. No framework, no build step.
//
// The stream resumes by itself after a network drop: EventSource reconnects with the
// Last-Event-ID of the last event it saw, and the server sends only what came after (or 204
// once the run is over, which makes EventSource stop). A page reload re-opens the thread from
// the URL (#thread=...) and re-attaches to its active run from the start of its log.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const els = {
    userForm: $("user-form"), userName: $("user-name"), recentUsers: $("recent-users"),
    welcome: $("welcome"), welcomeForm: $("welcome-form"), welcomeName: $("welcome-name"),
    who: $("who"), threadsPanel: $("threads-panel"), threads: $("threads"), newThread: $("new-thread"),
    moreThreads: $("more-threads"), threadTitle: $("thread-title"), runStatus: $("run-status"),
    lastEventId: $("last-event-id"), conn: $("conn"), conversation: $("conversation"),
    eventLog: $("event-log"), eventCount: $("event-count"), composer: $("composer"),
    message: $("message"), send: $("send"), cancel: $("cancel"), toast: $("toast"),
    menuToggle: $("menu-toggle"), scrim: $("scrim"),
  };
  const TERMINAL = new Set(["done", "error", "canceled"]);
  const MAX_LOG = 300;

  const state = {
    user: null,           // {user_id, name}
    threadId: null,
    threadsNext: null,
    runs: new Map(),      // run_id -> RunView (runs streamed by this page)
    currentRun: null,     // the run the status bar follows
    eventCount: 0,
  };

  // ------------------------------------------------------------------ HTTP

  async function api(method, path, body, headers) {
    const init = { method, headers: Object.assign({ Accept: "application/json" }, headers || {}) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    let data = null;
    const ctype = res.headers.get("Content-Type") || "";
    if (res.status !== 204 && ctype.includes("json")) data = await res.json();
    return { status: res.status, ok: res.ok, data };
  }

  function problemText(r) {
    if (r.data && r.data.detail) return r.data.detail;
    return "HTTP " + r.status;
  }

  let toastTimer = null;
  function toast(text) {
    els.toast.textContent = text;
    els.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { els.toast.hidden = true; }, 5000);
  }

  // ------------------------------------------------------------------ users

  function recentUsers() {
    try { return JSON.parse(localStorage.getItem("chatbot.users") || "[]"); } catch (e) { return []; }
  }
  function remember(user) {
    const list = recentUsers().filter((u) => u.user_id !== user.user_id);
    list.unshift({ user_id: user.user_id, name: user.name });
    localStorage.setItem("chatbot.users", JSON.stringify(list.slice(0, 8)));
    localStorage.setItem("chatbot.user", String(user.user_id));
  }
  function renderRecentUsers() {
    els.recentUsers.replaceChildren();
    for (const u of recentUsers()) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = u.name;
      b.title = "user " + u.user_id;
      if (state.user && state.user.user_id === u.user_id) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => loadUser(u.user_id));
      li.append(b);
      els.recentUsers.append(li);
    }
  }

  async function useName(name) {
    name = name.trim();
    if (!name) return;
    const r = await api("POST", "/api/users", { name });
    if (r.status === 201) return setUser(r.data, null);
    if (r.status === 409 && r.data && r.data.user_id) return setUser({ user_id: r.data.user_id, name: r.data.name }, null);
    toast("Could not use that name: " + problemText(r));
  }

  async function loadUser(id, wantThread) {
    const r = await api("GET", "/api/users/" + encodeURIComponent(id));
    if (r.ok) return setUser(r.data, wantThread);
    if (r.status === 404) localStorage.removeItem("chatbot.user");
    return false;
  }

  // Switches to `user`; opens `wantThread` if it is theirs, else their newest thread.
  async function setUser(user, wantThread) {
    const changed = !state.user || state.user.user_id !== user.user_id;
    state.user = user;
    remember(user);
    renderRecentUsers();
    els.welcome.hidden = true;
    els.who.hidden = false;
    els.who.textContent = user.name + " · #" + user.user_id;
    els.userName.value = "";
    els.threadsPanel.hidden = false;
    els.message.disabled = false;
    els.send.disabled = false;
    const threads = await loadThreads(true);
    if (!changed && !wantThread) return true;
    let target = null;
    if (wantThread && (await threadBelongsTo(wantThread, user.user_id))) target = wantThread;
    else if (threads.length) target = threads[0].thread_id;
    if (!target || !(await openThread(target))) {
      clearThread();
      showEmptyThread();
    }
    return true;
  }

  async function threadBelongsTo(threadId, userId) {
    const r = await api("GET", "/api/threads/" + threadId);
    return r.ok && r.data.user_id === userId;
  }

  // ------------------------------------------------------------------ threads

  async function loadThreads(reset) {
    if (!state.user) return [];
    let path = "/api/users/" + state.user.user_id + "/threads?limit=30";
    if (!reset && state.threadsNext) path += "&before=" + encodeURIComponent(state.threadsNext);
    const r = await api("GET", path);
    if (!r.ok) { toast("Could not list threads: " + problemText(r)); return []; }
    if (reset) els.threads.replaceChildren();
    for (const t of r.data.threads) els.threads.append(threadItem(t));
    state.threadsNext = r.data.next;
    els.moreThreads.hidden = !r.data.next;
    if (!els.threads.children.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "No threads yet: write a message to start one.";
      els.threads.append(li);
    }
    markCurrentThread();
    return r.data.threads;
  }

  function threadLabel(t) { return t.title || "Thread " + t.thread_id.slice(0, 8); }

  function threadItem(t) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.threadId = t.thread_id;
    const title = document.createElement("span");
    title.className = "t-title";
    title.textContent = threadLabel(t);
    const meta = document.createElement("span");
    meta.className = "t-meta";
    meta.textContent = new Date(t.created_at).toLocaleString();
    b.append(title, meta);
    b.addEventListener("click", () => { openThread(t.thread_id); closeMenu(); });
    li.append(b);
    return li;
  }

  function markCurrentThread() {
    for (const b of els.threads.querySelectorAll("button[data-thread-id]")) {
      if (b.dataset.threadId === state.threadId) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
  }

  async function createThread(title) {
    const body = { user_id: state.user.user_id };
    if (title) body.title = title;
    const r = await api("POST", "/api/threads", body);
    if (r.status !== 201) { toast("Could not create a thread: " + problemText(r)); return null; }
    const none = els.threads.querySelector(".none");
    if (none) none.remove();
    els.threads.prepend(threadItem(r.data));
    return r.data;
  }

  function clearThread() {
    for (const run of state.runs.values()) run.close();
    state.runs.clear();
    state.threadId = null;
    state.currentRun = null;
    history.replaceState(null, "", location.pathname + location.search);
  }

  function showEmptyThread() {
    els.conversation.replaceChildren();
    els.welcome.hidden = true;
    const div = document.createElement("div");
    div.className = "empty";
    const h = document.createElement("h1");
    h.textContent = "Hello, " + state.user.name;
    const p = document.createElement("p");
    p.textContent = "Write a message below to start a new thread, or open one from the list.";
    div.append(h, p);
    els.conversation.append(div);
    els.threadTitle.textContent = "New thread";
    setRunStatus(null);
    els.message.focus();
  }

  async function openThread(threadId) {
    const r = await api("GET", "/api/threads/" + threadId);
    if (!r.ok) {
      toast("Could not open the thread: " + problemText(r));
      if (r.status === 404 && state.threadId === threadId) clearThread();
      return false;
    }
    clearThread();
    state.threadId = threadId;
    history.replaceState(null, "", "#thread=" + threadId);
    els.threadTitle.textContent = threadLabel(r.data);
    markCurrentThread();
    resetEventLog();
    els.conversation.replaceChildren();

    const runsRes = await api("GET", "/api/threads/" + threadId + "/runs");
    const runs = runsRes.ok ? runsRes.data.runs : [];
    const runById = new Map(runs.map((x) => [x.run_id, x]));
    const replied = new Set(r.data.messages.filter((x) => x.role === "assistant").map((x) => x.run_id));
    for (const m of r.data.messages) {
      const run = m.run_id ? runById.get(m.run_id) : null;
      if (m.role === "assistant") {
        appendAssistantStatic(m.content, run);
        continue;
      }
      appendUserTurn(m.content);
      // A run without a stored reply: live if it is still queued or running, else its outcome.
      if (run && !TERMINAL.has(run.status)) attachRun(run.run_id, run.status);
      else if (run && !replied.has(run.run_id)) appendAssistantStatic("", run);
    }
    if (!r.data.messages.length) {
      showEmptyThread();
      els.threadTitle.textContent = threadLabel(r.data);
    }
    const last = runs[runs.length - 1];
    if (!state.currentRun) setRunStatus(last ? last.status : null, last ? last.last_seq : null);
    scrollDown(true);
    return true;
  }

  // ------------------------------------------------------------------ turns

  function appendUserTurn(text) {
    const emptyCard = els.conversation.querySelector(".empty");
    if (emptyCard) emptyCard.remove();
    const t = document.createElement("div");
    t.className = "turn user";
    t.dataset.testid = "user-turn";
    const b = document.createElement("div");
    b.className = "bubble";
    b.textContent = text;
    t.append(b);
    els.conversation.append(t);
    scrollDown(true);
    return t;
  }

  function appendAssistantStatic(text, run) {
    const t = document.createElement("div");
    t.className = "turn assistant";
    t.dataset.testid = "assistant-turn";
    const b = document.createElement("div");
    b.className = "bubble";
    b.textContent = text;
    const meta = document.createElement("div");
    meta.className = "turn-meta";
    if (run) {
      t.dataset.runId = run.run_id;
      meta.append(pill(run.status), code("run " + run.run_id.slice(0, 8)), code(run.last_seq + " events"));
      if (run.error) {
        const e = document.createElement("div");
        e.className = "turn-error";
        e.textContent = run.error;
        t.append(e);
      }
    }
    t.prepend(b);
    t.append(meta);
    els.conversation.append(t);
  }

  function pill(status) {
    const s = document.createElement("span");
    s.className = "pill";
    s.dataset.status = status;
    s.textContent = status;
    return s;
  }
  function code(text) {
    const c = document.createElement("code");
    c.textContent = text;
    return c;
  }

  function scrollDown(force) {
    const c = els.conversation;
    const near = c.scrollHeight - c.scrollTop - c.clientHeight < 120;
    if (force || near) c.scrollTop = c.scrollHeight;
  }

  // ------------------------------------------------------------------ runs and their streams

  class RunView {
    constructor(runId, status) {
      this.runId = runId;
      this.status = status || "queued";
      this.lastSeq = 0;
      this.text = "";
      this.es = null;
      this.turn = document.createElement("div");
      this.turn.className = "turn assistant streaming";
      this.turn.dataset.testid = "assistant-turn";
      this.turn.dataset.runId = runId;
      this.tool = document.createElement("div");
      this.tool.className = "tool";
      this.tool.hidden = true;
      this.bubble = document.createElement("div");
      this.bubble.className = "bubble";
      this.bubble.dataset.testid = "reply";
      this.meta = document.createElement("div");
      this.meta.className = "turn-meta";
      this.pill = pill(this.status);
      this.pill.dataset.testid = "turn-status";
      this.ids = code("");
      this.ids.dataset.testid = "turn-event-id";
      this.meta.append(this.pill, code("run " + runId.slice(0, 8)), this.ids);
      this.turn.append(this.tool, this.bubble, this.meta);
      els.conversation.append(this.turn);
      this.setStatus(this.status);
    }

    open() {
      // From the start of the log: the replay rebuilds the whole reply, then live events follow.
      const es = new EventSource("/api/runs/" + encodeURIComponent(this.runId) + "/events");
      this.es = es;
      this.setConn("connecting");
      es.addEventListener("open", () => { this.setConn("open"); logSys("stream open, run " + this.runId.slice(0, 8)); });
      for (const type of ["state", "tool_start", "tool_end", "token", "final", "canceled", "done"])
        es.addEventListener(type, (ev) => this.onEvent(type, ev));
      // `error` is both a run event type and EventSource's own connection error event.
      es.addEventListener("error", (ev) => {
        if (typeof ev.data === "string") return this.onEvent("error", ev);
        if (es.readyState === EventSource.CLOSED) {
          this.setConn("closed");
          if (!TERMINAL.has(this.status)) this.refresh();
        } else {
          this.setConn("reconnecting");
          els.conn.dataset.reconnects = String(Number(els.conn.dataset.reconnects || 0) + 1);
          logSys("connection lost; reconnecting with Last-Event-ID " + this.lastSeq);
        }
      });
    }

    onEvent(type, ev) {
      const seq = Number(ev.lastEventId);
      if (seq && seq <= this.lastSeq) return;  // never show an event twice
      if (seq) this.lastSeq = seq;
      let data = {};
      try { data = JSON.parse(ev.data); } catch (e) { /* shown raw in the log */ }
      logEvent(seq, type, ev.data);
      this.ids.textContent = "event " + this.lastSeq;
      if (state.currentRun === this) els.lastEventId.textContent = String(this.lastSeq);
      switch (type) {
        case "state": this.setStatus(data.status); break;
        case "tool_start":
          this.tool.hidden = false;
          this.tool.replaceChildren("⚙ ", code(data.tool || "tool"), " …");
          break;
        case "tool_end":
          this.tool.replaceChildren("⚙ ", code(data.tool || "tool"), " " + JSON.stringify(data.output || {}));
          break;
        case "token":
          this.text += data.text || "";
          this.bubble.textContent = this.text;
          scrollDown(false);
          break;
        case "final":
          if (typeof data.text === "string") { this.text = data.text; this.bubble.textContent = data.text; }
          break;
        case "error": {
          const e = document.createElement("div");
          e.className = "turn-error";
          e.textContent = data.error || "the run failed";
          this.turn.append(e);
          break;
        }
        case "canceled": break;
        case "done":
          this.setStatus(data.status);
          this.close();
          break;
      }
    }

    setStatus(status) {
      if (!status) return;
      this.status = status;
      this.pill.dataset.status = status;
      this.pill.textContent = status;
      this.turn.classList.toggle("streaming", status === "running" || status === "queued");
      if (state.currentRun === this) setRunStatus(status, this.lastSeq);
      updateCancel();
    }

    setConn(s) {
      if (state.currentRun !== this) return;
      setConn(s);
    }

    async refresh() {
      const r = await api("GET", "/api/runs/" + this.runId);
      if (r.ok) this.setStatus(r.data.status);
    }

    close() {
      if (this.es) { this.es.close(); this.es = null; }
      this.setConn("closed");
      this.turn.classList.remove("streaming");
      updateCancel();
    }

    get active() { return !TERMINAL.has(this.status); }
  }

  function attachRun(runId, status) {
    const view = new RunView(runId, status);
    state.runs.set(runId, view);
    state.currentRun = view;
    setRunStatus(view.status, 0);
    view.open();
    return view;
  }

  function updateCancel() {
    const active = [...state.runs.values()].some((v) => v.active);
    els.cancel.hidden = !active;
  }

  async function cancelActive() {
    const active = [...state.runs.values()].filter((v) => v.active);
    els.cancel.disabled = true;
    try {
      // Newest first: a queued run behind a running one must not start after the cancel.
      for (const v of active.reverse()) {
        const r = await api("POST", "/api/runs/" + v.runId + "/cancel");
        if (!r.ok) toast("Could not cancel: " + problemText(r));
        else if (TERMINAL.has(r.data.status) && !v.es) v.setStatus(r.data.status);
      }
    } finally {
      els.cancel.disabled = false;
    }
  }

  async function sendMessage() {
    const content = els.message.value;
    if (!content.trim() || !state.user) return;
    els.send.disabled = true;
    try {
      if (!state.threadId) {
        const t = await createThread(content.trim().slice(0, 60));
        if (!t) return;
        state.threadId = t.thread_id;
        history.replaceState(null, "", "#thread=" + t.thread_id);
        els.threadTitle.textContent = threadLabel(t);
        markCurrentThread();
        resetEventLog();
        els.conversation.replaceChildren();
      }
      const key = (crypto.randomUUID && crypto.randomUUID()) || String(Date.now()) + Math.random();
      const r = await api("POST", "/api/threads/" + state.threadId + "/messages", { content },
                          { "Idempotency-Key": key });
      if (r.status !== 201) { toast("Not sent: " + problemText(r)); return; }
      els.message.value = "";
      autosize();
      appendUserTurn(content);
      attachRun(r.data.run_id, r.data.status);
      scrollDown(true);
    } finally {
      els.send.disabled = false;
      els.message.focus();
    }
  }

  // ------------------------------------------------------------------ status bar and event log

  function setRunStatus(status, lastSeq) {
    const s = status || "idle";
    els.runStatus.dataset.status = s;
    els.runStatus.textContent = s;
    if (lastSeq !== undefined) els.lastEventId.textContent = lastSeq ? String(lastSeq) : "–";
  }

  function setConn(s) {
    els.conn.dataset.state = s;
    const labels = { open: "streaming", connecting: "connecting…", reconnecting: "reconnecting…", closed: "no stream" };
    els.conn.querySelector("span").textContent = labels[s] || s;
  }

  function resetEventLog() {
    els.eventLog.replaceChildren();
    state.eventCount = 0;
    els.eventCount.textContent = "0";
    setConn("closed");
  }

  function pushLog(li) {
    const log = els.eventLog;
    const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(li);
    while (log.children.length > MAX_LOG) log.firstElementChild.remove();
    if (stick) log.scrollTop = log.scrollHeight;
  }

  function logEvent(seq, type, data) {
    const li = document.createElement("li");
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = seq ? String(seq) : "";
    const t = document.createElement("span");
    t.className = "type";
    t.textContent = type;
    const d = document.createElement("span");
    d.className = "data";
    d.textContent = data;
    d.title = data;
    li.append(id, t, d);
    li.dataset.event = type;
    pushLog(li);
    state.eventCount += 1;
    els.eventCount.textContent = String(state.eventCount);
  }

  function logSys(text) {
    const li = document.createElement("li");
    const s = document.createElement("span");
    s.className = "sys";
    s.textContent = "· " + text;
    li.append(s);
    pushLog(li);
  }

  // ------------------------------------------------------------------ wiring

  function autosize() {
    els.message.style.height = "auto";
    els.message.style.height = Math.min(els.message.scrollHeight + 2, 160) + "px";
  }

  function closeMenu() {
    document.body.classList.remove("menu-open");
    els.menuToggle.setAttribute("aria-expanded", "false");
    els.scrim.hidden = true;
  }

  els.menuToggle.addEventListener("click", () => {
    const open = !document.body.classList.contains("menu-open");
    document.body.classList.toggle("menu-open", open);
    els.menuToggle.setAttribute("aria-expanded", String(open));
    els.scrim.hidden = !open;
  });
  els.scrim.addEventListener("click", closeMenu);
  els.userForm.addEventListener("submit", (e) => { e.preventDefault(); useName(els.userName.value).then(closeMenu); });
  els.welcomeForm.addEventListener("submit", (e) => { e.preventDefault(); useName(els.welcomeName.value); });
  els.newThread.addEventListener("click", () => { clearThread(); markCurrentThread(); resetEventLog(); showEmptyThread(); closeMenu(); });
  els.moreThreads.addEventListener("click", () => loadThreads(false));
  els.composer.addEventListener("submit", (e) => { e.preventDefault(); sendMessage(); });
  els.cancel.addEventListener("click", cancelActive);
  els.message.addEventListener("input", autosize);
  els.message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendMessage(); }
  });

  async function start() {
    renderRecentUsers();
    const m = /^#thread=([0-9a-f-]{36})$/.exec(location.hash);
    const saved = localStorage.getItem("chatbot.user");
    if (saved && (await loadUser(saved, m ? m[1] : null))) return;
    els.welcome.hidden = false;
    els.welcomeName.focus();
  }
  start();
})();
