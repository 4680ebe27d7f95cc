// The pubsub web console: polls the service's REST API (through the admin listener's
// /console/app mount) for the cluster, topics and incidents, and speaks the WebSocket protocol
// for the live tail and the publish form. No framework and no build step: everything a reader
// needs is in this file. Data from the server only ever reaches the page through textContent.
"use strict";

const CRED_KEY = "pubsub.console.credential"; // sessionStorage: gone when the tab closes
const POLL_MS = 1000;
const TAIL_MAX = 500; // rows kept in the tail: older ones are removed

const $ = (id) => document.getElementById(id);
const state = {
  cfg: null,         // /console/config.json
  cred: sessionStorage.getItem(CRED_KEY) || "",
  prev: new Map(),   // topic -> {messages, t}: the previous /stats reading, for rates
  timer: null,
  polling: false,    // a refresh is in flight: a slow server gets no pile of overlapping polls
  ws: null,
  wsReady: false,
  clientId: "console-" + randomHex(6),
  pending: new Map(), // request_id -> {kind, topic, id}
  tail: null,        // {topic, epoch, seq, reqId}
  nextReq: 1,
};

function randomHex(bytes) {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// uuid4 works on plain http too, where crypto.randomUUID is not offered.
function uuid4() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const isToken = (c) => /^eyJ[\w-]*\.[\w-]+\.[\w-]+$/.test(c);

function b64url(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = "";
  for (const x of bytes) bin += String.fromCharCode(x);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function authHeaders() {
  if (!state.cred) return {};
  return isToken(state.cred) ? { Authorization: "Bearer " + state.cred } : { "X-API-Key": state.cred };
}

class Unauthorized extends Error {}

async function getJSON(path) {
  const r = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  if (r.status === 401) throw new Unauthorized(await errorText(r));
  if (!r.ok) throw new Error(await errorText(r));
  return r.json();
}

async function errorText(r) {
  try {
    const b = await r.json();
    return (b.error && b.error.code + ": " + b.error.message) || r.statusText;
  } catch {
    return r.status + " " + r.statusText;
  }
}

function setStatus(text, cls) {
  const s = $("status");
  s.textContent = text;
  s.className = "pill " + (cls || "");
}

// ---- sign in -------------------------------------------------------------------------------

function showLogin(message) {
  stop();
  $("main").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("login-error").textContent = message || "";
  setStatus("signed out");
  $("credential").focus();
}

async function signIn(cred) {
  state.cred = cred;
  try {
    await getJSON(state.cfg.api + "/health"); // any valid credential may read it
  } catch (e) {
    state.cred = "";
    sessionStorage.removeItem(CRED_KEY);
    showLogin(e instanceof Unauthorized ? "Refused: " + e.message : "Cannot reach the service: " + e.message);
    return;
  }
  if (cred) sessionStorage.setItem(CRED_KEY, cred);
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = !state.cfg.auth;
  start();
}

function start() {
  refresh();
  state.timer = setInterval(refresh, POLL_MS);
  connect();
}

function stop() {
  clearInterval(state.timer);
  state.timer = null;
  if (state.ws) {
    const ws = state.ws;
    state.ws = null;
    ws.close(1000);
  }
}

// ---- polling: cluster, topics, incidents ---------------------------------------------------

async function refresh() {
  if (state.polling) return;
  state.polling = true;
  const api = state.cfg.api;
  try {
    const [health, stats, cluster, incidents] = await Promise.all([
      getJSON(api + "/health"), getJSON(api + "/stats"),
      getJSON("/console/cluster.json"), getJSON("/console/incidents.json"),
    ]);
    const rates = renderTopics(stats, performance.now());
    renderCluster(health, cluster, rates);
    renderIncidents(incidents.incidents);
    setStatus(state.wsReady ? "live" : "polling", "ok");
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("Refused: " + e.message);
    setStatus("unreachable", "bad");
  } finally {
    state.polling = false;
  }
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

const rate = (x) => (x === null ? "–" : x.toFixed(1));

function renderTopics(stats, now) {
  const body = $("topics").tBodies[0];
  const rows = [];
  let pub = 0, del = 0, known = false;
  const seen = new Map();
  for (const [name, t] of Object.entries(stats.topics).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const prev = state.prev.get(name);
    let r = null;
    if (prev && now > prev.t) {
      // A topic deleted and created again starts from 0: count from there.
      const d = t.messages >= prev.messages ? t.messages - prev.messages : t.messages;
      r = (d * 1000) / (now - prev.t);
      pub += r;
      del += r * t.subscribers;
      known = true;
    }
    seen.set(name, { messages: t.messages, t: now });
    const tr = document.createElement("tr");
    tr.dataset.topic = name;
    cell(tr, name, "name");
    cell(tr, String(t.messages), "num messages");
    cell(tr, String(t.subscribers), "num subscribers");
    cell(tr, rate(r), "num pubrate");
    cell(tr, rate(r === null ? null : r * t.subscribers), "num delrate");
    const actions = cell(tr, "");
    for (const [label, f] of [["tail", () => startTail(name)], ["publish", () => { $("pub-topic").value = name; $("pub-payload").focus(); }]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "link";
      b.textContent = label;
      b.addEventListener("click", f);
      actions.appendChild(b);
    }
    rows.push(tr);
  }
  state.prev = seen;
  body.replaceChildren(...rows);
  const more = $("topics-more");
  more.hidden = !stats.next;
  more.textContent = stats.next ? "More topics follow; the first page is shown." : "";
  return known ? { pub, del } : null;
}

function ago(ms) {
  return ms < 1000 ? "now" : (ms / 1000).toFixed(0) + " s ago";
}

function duration(sec) {
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  return (h ? h + "h " : "") + (h || m ? String(m).padStart(h ? 2 : 1, "0") + "m " : "") + String(s).padStart(h || m ? 2 : 1, "0") + "s";
}

function renderCluster(health, cluster, rates) {
  $("engine").textContent = cluster.engine + (cluster.engine === "redis" ? ` · ${cluster.replicas.length} replicas` : "");
  $("uptime").textContent = duration(health.uptime_sec);
  $("total-topics").textContent = String(health.topics);
  $("total-subscribers").textContent = String(health.subscribers);
  $("total-pubrate").textContent = rates ? rate(rates.pub) : "–";
  $("total-delrate").textContent = rates ? rate(rates.del) : "–";
  const rows = cluster.replicas.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.replica = r.id;
    if (r.self && r.id) tr.className = "self"; // the memory engine's only process needs no "(this one)"
    cell(tr, r.id || "this process (in memory)");
    cell(tr, String(r.topics), "num");
    cell(tr, String(r.subscribers), "num");
    cell(tr, r.heartbeat ? ago(r.heartbeat_age_ms) : "live");
    return tr;
  });
  $("replicas").tBodies[0].replaceChildren(...rows);
}

function renderIncidents(list) {
  $("incidents-empty").hidden = list.length > 0;
  const rows = list.map((i) => {
    const tr = document.createElement("tr");
    tr.dataset.kind = i.kind;
    tr.dataset.id = String(i.id);
    cell(tr, new Date(i.time).toLocaleTimeString());
    cell(tr, i.kind === "slow_consumer" ? "slow consumer (" + i.policy + ")" : "limit " + i.limit);
    cell(tr, i.topic || "");
    cell(tr, i.client_id || i.remote || "");
    cell(tr, i.dropped ? String(i.dropped) : "", "num");
    cell(tr, String(i.count), "num");
    return tr;
  });
  $("incidents").tBodies[0].replaceChildren(...rows);
}

// ---- the WebSocket: tail and publish -------------------------------------------------------

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const protocols = ["pubsub"];
  if (state.cred) protocols.push(isToken(state.cred) ? "pubsub.token." + state.cred : "pubsub.key." + b64url(state.cred));
  const ws = new WebSocket(proto + "//" + location.host + state.cfg.api + "/ws", protocols);
  state.ws = ws;
  ws.onopen = () => {
    state.wsReady = true;
    if (state.tail) subscribeTail(true);
  };
  ws.onmessage = (m) => onFrame(JSON.parse(m.data));
  ws.onclose = () => {
    state.wsReady = false;
    if (state.ws !== ws) return; // closed on purpose
    state.ws = null;
    tailState("connection lost; reconnecting", true);
    setTimeout(() => { if (!state.ws && state.timer) connect(); }, 2000);
  };
}

function send(frame) {
  if (!state.ws || !state.wsReady) return false;
  state.ws.send(JSON.stringify(frame));
  return true;
}

function request(kind, frame, extra) {
  const id = "c-" + state.nextReq++;
  state.pending.set(id, Object.assign({ kind }, extra));
  frame.request_id = id;
  if (!send(frame)) {
    state.pending.delete(id);
    return null;
  }
  return id;
}

function tailState(text, bad) {
  const p = $("tail-state");
  p.textContent = text;
  p.className = bad ? "error" : "dim";
}

function startTail(topic) {
  $("tail-topic").value = topic;
  $("tail-form").requestSubmit();
}

function subscribeTail(resume) {
  const t = state.tail;
  const frame = { type: "subscribe", topic: t.topic, client_id: state.clientId };
  if (resume && t.epoch) {
    frame.since_seq = t.seq;
    frame.epoch = t.epoch;
  } else {
    frame.last_n = t.lastN;
  }
  t.reqId = request("subscribe", frame, { topic: t.topic });
  if (!t.reqId) tailState("not connected yet; retrying when the connection is up", true);
}

function stopTail() {
  if (state.tail) {
    request("unsubscribe", { type: "unsubscribe", topic: state.tail.topic, client_id: state.clientId });
    state.tail = null;
  }
  $("tail-stop").disabled = true;
  tailState("not tailing");
}

function tailLine(cls, parts) {
  const ol = $("tail-events");
  const li = document.createElement("li");
  if (cls) li.className = cls;
  for (const [c, text] of parts) {
    const s = document.createElement("span");
    if (c) s.className = c;
    s.textContent = text;
    li.appendChild(s);
  }
  const atBottom = ol.scrollTop + ol.clientHeight >= ol.scrollHeight - 4;
  ol.appendChild(li);
  while (ol.children.length > TAIL_MAX) ol.firstChild.remove();
  if (atBottom) ol.scrollTop = ol.scrollHeight;
  return li;
}

function onFrame(f) {
  const p = f.request_id ? state.pending.get(f.request_id) : null;
  if (p) state.pending.delete(f.request_id);
  const tail = state.tail;
  switch (f.type) {
    case "event":
      if (!tail || f.topic !== tail.topic) return;
      tail.seq = f.seq;
      tailLine("", [["seq", "#" + f.seq], ["ts", f.ts], ["payload", JSON.stringify(f.message.payload)]]).dataset.seq = String(f.seq);
      return;
    case "ack":
      if (p && p.kind === "subscribe" && tail && f.request_id === tail.reqId) {
        const resumed = f.recovered === undefined ? "" : f.recovered ? " · resumed" : " · could not resume: live from here";
        if (!tail.epoch || f.epoch !== tail.epoch) tail.seq = f.seq;
        tail.epoch = f.epoch;
        tailState(`tailing ${f.topic} (epoch ${f.epoch}, seq ${f.seq})${resumed}`);
      } else if (p && p.kind === "publish") {
        pubStatus(`published ${p.id} to ${p.topic}`);
      }
      return;
    case "error": {
      const msg = f.error.code + ": " + f.error.message;
      if (p && p.kind === "publish") return pubStatus(msg, true);
      if (p && p.kind === "subscribe") {
        state.tail = null;
        $("tail-stop").disabled = true;
        return tailState(msg, true);
      }
      if (tail && f.topic === tail.topic) tailLine("notice", [["", msg]]);
      return;
    }
    case "info":
      if (tail && f.topic === tail.topic) {
        tailLine("notice", [["", f.msg + (f.from_seq ? ` ${f.from_seq}-${f.to_seq}` : "")]]);
        if (f.msg === "topic_deleted" || f.msg === "subscription_replaced" || f.msg === "unsubscribed") {
          state.tail = null;
          $("tail-stop").disabled = true;
          tailState("tail ended: " + f.msg, true);
        }
      } else if (f.msg === "server_shutdown") {
        tailState("the server is shutting down", true);
      }
      return;
  }
}

function pubStatus(text, bad) {
  const p = $("pub-status");
  p.textContent = text;
  p.className = bad ? "error" : "dim";
}

// ---- wiring --------------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("credential").value.trim());
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(CRED_KEY);
    state.cred = "";
    showLogin("");
  });
  $("tail-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const topic = $("tail-topic").value.trim();
    if (state.tail) stopTail();
    $("tail-events").replaceChildren();
    state.tail = { topic, lastN: Math.max(0, parseInt($("tail-lastn").value, 10) || 0), epoch: "", seq: 0, reqId: null };
    $("tail-stop").disabled = false;
    tailState("subscribing to " + topic);
    subscribeTail(false);
  });
  $("tail-stop").addEventListener("click", stopTail);
  $("pub-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const topic = $("pub-topic").value.trim();
    const text = $("pub-payload").value;
    let payload;
    try {
      payload = JSON.parse(text);
    } catch {
      payload = text; // not JSON: sent as a JSON string
    }
    const id = uuid4();
    const req = request("publish", { type: "publish", topic, message: { id, payload } }, { topic, id });
    pubStatus(req ? "publishing…" : "not connected; try again in a moment", !req);
  });
}

async function main() {
  wire();
  try {
    state.cfg = await (await fetch("/console/config.json", { cache: "no-store" })).json();
  } catch (e) {
    setStatus("unreachable", "bad");
    return;
  }
  if (state.cfg.auth && !state.cred) return showLogin("");
  signIn(state.cred);
}

main();
