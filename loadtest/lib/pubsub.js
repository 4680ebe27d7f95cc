// Shared pieces of the k6 scripts: configuration from __ENV, REST helpers, frames and payloads,
// the custom metrics, and the accounting of what one subscription receives. Plain k6: it uses
// only k6's own modules, so every script runs unchanged under k6 and under loadtest/harness.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import { Counter, Trend } from 'k6/metrics';

// The shapes of the server's JSON (PROTOCOL.md), for the type checker (`tsc -p loadtest`): k6
// types a response body as any JSON value, and the contract, not k6, says which one it is.
/** @typedef {{code: string, message: string}} WireError */
/** @typedef {{error: WireError}} ErrorBody */
/** @typedef {{uptime_sec: number, topics: number, subscribers: number}} Health */
/** @typedef {{status: string, topic: string}} TopicStatus the reply to POST and DELETE /topics */
/** @typedef {{topics: {name: string, subscribers: number}[]}} TopicList */
/** @typedef {{topics: Record<string, {messages: number, subscribers: number}>}} Stats */
/**
 * A decoded server frame: which fields it has depends on its type (PROTOCOL.md), and the
 * scripts check them as they read them.
 * @typedef {Record<string, any>} Frame
 */
/**
 * What a load script's setup() returns (startRun): the run's timeline, in wall-clock ms.
 * @typedef {{created: boolean, seq0: number, publishFrom: number, publishUntil: number, endAt: number}} RunData
 */
/**
 * The close event k6 passes to onclose: k6 sets code (when a close frame arrived) and reason
 * (internal/js/modules/k6/websockets in grafana/k6), though @types/k6 declares onclose without
 * an argument; hence every onclose handler here takes it as optional.
 * @typedef {{code?: number, reason?: string}} CloseEvent
 */

/**
 * env returns __ENV[name], or fallback when it is unset or empty.
 * @param {string} name
 * @param {string} fallback
 * @returns {string}
 */
export function env(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

/**
 * envInt returns a non-negative integer from __ENV, refusing anything else at start.
 * @param {string} name
 * @param {number} fallback
 */
export function envInt(name, fallback) {
  const v = env(name, String(fallback));
  if (!/^\d+$/.test(v)) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

/**
 * ms converts a k6-style duration ("90s", "1m30s", "250ms", "2h") to milliseconds.
 * @param {string} duration
 */
export function ms(duration) {
  /** @type {Record<string, number>} */
  const units = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  const s = String(duration);
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(s)) throw new Error(`invalid duration ${JSON.stringify(s)}`);
  let total = 0;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  for (let m = part.exec(s); m !== null; m = part.exec(s)) total += Number(m[1]) * units[m[2]];
  return total;
}

/**
 * envMs reads a duration from __ENV, in milliseconds.
 * @param {string} name
 * @param {string} fallback a duration, as "2s"
 */
export function envMs(name, fallback) {
  return ms(env(name, fallback));
}

export const BASE_URL = env('PUBSUB_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const WS_URL = env('PUBSUB_WS_URL', `${BASE_URL.replace(/^http/, 'ws')}/ws`);
/** POLICY is the overflow policy the server under test was started with (PUBSUB_OVERFLOW_POLICY). */
export const POLICY = env('PUBSUB_OVERFLOW_POLICY', 'drop_oldest');
if (POLICY !== 'drop_oldest' && POLICY !== 'disconnect') {
  throw new Error(`PUBSUB_OVERFLOW_POLICY must be drop_oldest or disconnect, got ${JSON.stringify(POLICY)}`);
}

// Custom metrics. Tags: role (publisher, subscriber, fast, slow, steady, churn) and, where
// useful, code (a wire error code or a WebSocket close code).
export const metrics = {
  /** Publish (payload.sent_ms, taken by the publisher) to arrival at a subscriber. Live events only. */
  latency: new Trend('pubsub_delivery_latency', true),
  /** Publish frame sent to its ack received. */
  ackLatency: new Trend('pubsub_publish_ack_latency', true),
  /** Change of a long-lived subscriber's median latency against its first window (soak). */
  drift: new Trend('pubsub_latency_drift', true),
  published: new Counter('pubsub_messages_published'),
  publishFailures: new Counter('pubsub_publish_failures'),
  events: new Counter('pubsub_events_received'),
  replayed: new Counter('pubsub_events_replayed'),
  /** Messages a subscription never received, from seq gaps (head, middle and tail of its life). */
  lost: new Counter('pubsub_messages_lost'),
  /** Events whose seq did not increase: duplicates or reordering, never allowed. */
  outOfOrder: new Counter('pubsub_events_out_of_order'),
  /** Events whose payload did not arrive as it was published. */
  corrupt: new Counter('pubsub_payload_mismatch'),
  slowConsumer: new Counter('pubsub_slow_consumer_errors'),
  /** Error frames other than SLOW_CONSUMER, by code. */
  errorFrames: new Counter('pubsub_error_frames'),
  /** Connections that ended without the client asking, by close code ("none": no close frame). */
  disconnects: new Counter('pubsub_disconnects'),
  /** Behaviour PROTOCOL.md forbids under the configured overflow policy, by kind. */
  violations: new Counter('pubsub_policy_violations'),
  heartbeats: new Counter('pubsub_heartbeats'),
};

const JSON_HEADERS = { 'Content-Type': 'application/json' };

/**
 * createTopic creates a topic, accepting that it exists already; returns true if it was created.
 * @param {string} name
 */
export function createTopic(name) {
  const res = http.post(`${BASE_URL}/topics`, JSON.stringify({ name }), {
    headers: JSON_HEADERS,
    responseCallback: http.expectedStatuses(201, 409),
  });
  check(res, { 'topic created or already there': (r) => r.status === 201 || r.status === 409 });
  if (res.status !== 201 && res.status !== 409) {
    throw new Error(`POST /topics ${name}: status ${res.status} ${res.body} ${res.error}`);
  }
  return res.status === 201;
}

/**
 * deleteTopic deletes a topic the script created.
 * @param {string} name
 */
export function deleteTopic(name) {
  const res = http.del(`${BASE_URL}/topics/${encodeURIComponent(name)}`);
  check(res, { 'topic deleted': (r) => r.status === 200 });
}

/**
 * topicMessages returns how many messages the topic accepted since it was created (= its last
 * seq), or null when GET /stats fails (a failed check).
 * @param {string} name
 * @returns {number | null}
 */
export function topicMessages(name) {
  const res = http.get(`${BASE_URL}/stats`);
  if (!check(res, { 'GET /stats is 200': (r) => r.status === 200 })) return null;
  const topic = /** @type {Stats} */ (res.json()).topics[name];
  return topic ? topic.messages : 0;
}

/**
 * decodeFrame decodes the server frame a message event carries. k6 types the event as optional and
 * its data as string, ArrayBuffer or Blob; the server sends only text frames (PROTOCOL.md), so
 * anything else is a broken contract and throws, as JSON.parse does on text that is not JSON.
 * @param {import('k6/websockets').MessageEvent} [e]
 * @returns {Frame}
 */
export function decodeFrame(e) {
  if (!e || typeof e.data !== 'string') throw new Error('expected a text frame from the server');
  return JSON.parse(e.data);
}

/** uuid returns a random version 4 UUID (not for cryptography: only to be unique). */
export function uuid() {
  const hex = '0123456789abcdef';
  let s = '';
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) s += '-';
    else if (i === 14) s += '4';
    else if (i === 19) s += hex[8 + Math.floor(Math.random() * 4)];
    else s += hex[Math.floor(Math.random() * 16)];
  }
  return s;
}

/**
 * payload returns a message payload of about `bytes` bytes that carries its send time.
 * @param {number} bytes
 * @param {number} n the message's number in its batch
 */
export function payload(bytes, n) {
  const pad = 'x'.repeat(Math.max(0, bytes - 64));
  return { sent_ms: Date.now(), vu: __VU, n, pad_len: pad.length, pad };
}

/** @param {any} p a received payload, intact if it is as payload() made it */
function intact(p) {
  return p !== null && typeof p === 'object' && typeof p.sent_ms === 'number' &&
    typeof p.pad === 'string' && p.pad.length === p.pad_len;
}

/**
 * Subscription accounts for one subscription (one topic on one socket): it counts events, seq
 * gaps (loss) and their announcement by SLOW_CONSUMER, order, payload integrity, latency, and
 * how the connection ended, against the overflow policy the server runs with.
 */
export class Subscription {
  /**
   * opts: role; topic; firstSeq: the seq the first event must have, when the subscription is known
   * to predate every publish (else null); liveAfter: events with payload.sent_ms before this are
   * replays and do not count toward latency; lastN: history to ask for when subscribing;
   * onLatency: optional callback(ms).
   * @param {{role: string, topic: string, firstSeq?: number | null, liveAfter?: number, lastN?: number,
   *   onLatency?: (ms: number) => void}} opts
   */
  constructor(opts) {
    this.role = opts.role;
    this.topic = opts.topic;
    this.firstSeq = opts.firstSeq ?? null;
    this.liveAfter = opts.liveAfter ?? 0;
    this.lastN = opts.lastN ?? 0;
    this.onLatency = opts.onLatency;
    this.tags = { role: opts.role };
    /** @type {number | null} */
    this.lastSeq = null;
    this.count = 0;
    this.told = false; // SLOW_CONSUMER received since the previous event
    this.everTold = false;
  }

  /** @param {number} missing */
  recordGap(missing) {
    metrics.lost.add(missing, this.tags);
    if (!this.told) metrics.violations.add(1, { ...this.tags, kind: 'unannounced_loss' });
  }

  /** @param {Frame} frame an event frame for this subscription's topic */
  onEvent(frame) {
    const now = Date.now();
    const seq = frame.seq;
    this.count++;
    metrics.events.add(1, this.tags);
    if (POLICY === 'disconnect' && this.everTold) {
      metrics.violations.add(1, { ...this.tags, kind: 'event_after_disconnect_notice' });
    }
    if (this.lastSeq === null) {
      if (this.firstSeq !== null && seq > this.firstSeq) this.recordGap(seq - this.firstSeq);
    } else if (seq <= this.lastSeq) {
      metrics.outOfOrder.add(1, this.tags);
    } else if (seq > this.lastSeq + 1) {
      this.recordGap(seq - this.lastSeq - 1);
    }
    if (this.lastSeq === null || seq > this.lastSeq) this.lastSeq = seq;
    this.told = false;
    const p = frame.message && frame.message.payload;
    if (frame.topic !== this.topic || !intact(p)) {
      metrics.corrupt.add(1, this.tags);
      return;
    }
    if (p.sent_ms < this.liveAfter) {
      metrics.replayed.add(1, this.tags);
      return;
    }
    metrics.latency.add(now - p.sent_ms, this.tags);
    if (this.onLatency) this.onLatency(now - p.sent_ms);
  }

  onSlowConsumer() {
    metrics.slowConsumer.add(1, this.tags);
    this.told = true;
    this.everTold = true;
  }

  /**
   * onClosed records a connection end the client did not ask for.
   * @param {number} [code] the close frame's code, if one arrived
   */
  onClosed(code) {
    metrics.disconnects.add(1, { ...this.tags, code: code ? String(code) : 'none' });
    if (code === 1008 && !this.everTold) metrics.violations.add(1, { ...this.tags, kind: 'unannounced_disconnect' });
    if (code === 1008 && POLICY === 'drop_oldest') metrics.violations.add(1, { ...this.tags, kind: 'disconnect_under_drop_oldest' });
  }

  /**
   * finish accounts for messages published before `last` (the topic's final seq) that never
   * arrived. Only call it once publishing has stopped and the connection is still healthy.
   * @param {number | null} last null when it could not be read: nothing to account for
   */
  finish(last) {
    if (last === null) return;
    const seen = this.lastSeq !== null ? this.lastSeq : (this.firstSeq !== null ? this.firstSeq - 1 : null);
    if (seen !== null && last > seen) {
      metrics.lost.add(last - seen, { ...this.tags, where: 'tail' });
      // Under drop_oldest the server tells a subscriber about dropped messages only before its
      // next event, so a slow subscriber's tail loss may go untold; a fast one must lose nothing.
    }
  }
}

/**
 * subscriber opens a socket that subscribes to each of `subs` (Subscription objects sharing the
 * socket) and feeds them its frames. opts: role, clientId; optional callbacks onSubscribed(ack),
 * beforeEvent() (a slow reader's delay), onFrame(frame) for anything else the caller wants to
 * see, onClose(event, byClient). It returns {ws, close()}; close() ends the socket as the
 * client's own decision.
 * @param {Subscription[]} subs
 * @param {{role: string, clientId: string, onSubscribed?: (ack: Frame) => void, beforeEvent?: () => void,
 *   onFrame?: (frame: Frame) => void, onClose?: (event: CloseEvent, byClient: boolean) => void}} opts
 */
export function subscriber(subs, opts) {
  const ws = new WebSocket(WS_URL, null, { tags: { role: opts.role } });
  /** @type {Record<string, Subscription>} */
  const byTopic = {};
  for (const s of subs) byTopic[s.topic] = s;
  let closing = false;
  ws.onopen = () => {
    for (const s of subs) {
      ws.send(JSON.stringify({
        type: 'subscribe', topic: s.topic, client_id: opts.clientId, last_n: s.lastN, request_id: `sub:${s.topic}`,
      }));
    }
  };
  ws.onmessage = (e) => {
    const f = decodeFrame(e);
    if (f.type === 'event') {
      if (opts.beforeEvent) opts.beforeEvent();
      const s = byTopic[f.topic];
      if (s) s.onEvent(f);
      else metrics.corrupt.add(1, { role: opts.role });
    } else if (f.type === 'ack' && String(f.request_id).startsWith('sub:')) {
      check(f, { 'subscribe acknowledged': (a) => a.status === 'ok' && byTopic[a.topic] !== undefined }, { role: opts.role });
      if (opts.onSubscribed) opts.onSubscribed(f);
    } else if (f.type === 'error' && f.error && f.error.code === 'SLOW_CONSUMER') {
      const s = byTopic[f.topic];
      if (s) s.onSlowConsumer();
      else for (const t of subs) t.onSlowConsumer();
    } else if (f.type === 'error') {
      metrics.errorFrames.add(1, { role: opts.role, code: String(f.error && f.error.code) });
    } else if (f.type === 'info' && f.msg === 'ping') {
      metrics.heartbeats.add(1, { role: opts.role });
    }
    if (opts.onFrame) opts.onFrame(f);
  };
  ws.onclose = (/** @type {CloseEvent} */ e = {}) => {
    if (!closing) for (const s of subs) s.onClosed(e.code);
    if (opts.onClose) opts.onClose(e, closing);
  };
  return {
    ws,
    close() {
      if (closing) return;
      closing = true;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
    },
  };
}

/**
 * publishBatch opens a socket, publishes `count` messages pipelined, waits for every ack (up to
 * timeoutMs) and closes. Each ack's latency is recorded; an error frame or a missing ack is a
 * publish failure.
 * @param {{topic: string, count: number, bytes: number, timeoutMs: number, role?: string}} batch
 */
export function publishBatch({ topic, count, bytes, timeoutMs, role = 'publisher' }) {
  const ws = new WebSocket(WS_URL, null, { tags: { role } });
  /** @type {Record<string, number>} request_id -> when it was sent */
  const sentAt = {};
  let outstanding = 0;
  let closing = false;
  /** @type {import('k6/timers').TimeoutID | null} */
  let timer = null;
  const done = () => {
    closing = true;
    if (timer !== null) clearTimeout(timer);
    ws.close();
  };
  ws.onopen = () => {
    for (let i = 0; i < count; i++) {
      const id = `p${__VU}-${__ITER}-${i}`;
      sentAt[id] = Date.now();
      outstanding++;
      ws.send(JSON.stringify({ type: 'publish', topic, request_id: id, message: { id: uuid(), payload: payload(bytes, i) } }));
    }
    timer = setTimeout(() => {
      timer = null;
      metrics.publishFailures.add(outstanding, { role, reason: 'ack_timeout' });
      done();
    }, timeoutMs);
  };
  ws.onmessage = (e) => {
    const f = decodeFrame(e);
    if ((f.type !== 'ack' && f.type !== 'error') || sentAt[f.request_id] === undefined) return;
    outstanding--;
    if (f.type === 'ack' && f.status === 'ok') {
      metrics.ackLatency.add(Date.now() - sentAt[f.request_id], { role });
      metrics.published.add(1, { role });
    } else {
      metrics.publishFailures.add(1, { role, reason: String(f.error ? f.error.code : f.status) });
    }
    delete sentAt[f.request_id];
    if (outstanding === 0) done();
  };
  ws.onclose = (/** @type {CloseEvent} */ e = {}) => {
    if (closing) return;
    if (timer !== null) clearTimeout(timer);
    metrics.disconnects.add(1, { role, code: e.code ? String(e.code) : 'none' });
    if (outstanding > 0) metrics.publishFailures.add(outstanding, { role, reason: 'disconnected' });
  };
}

/**
 * startRun is the setup() of the load scripts: it creates the topic (or uses the existing one)
 * and fixes the run's timeline, in wall-clock ms: publishing runs from publishFrom to
 * publishUntil, subscribers hold on until endAt. seq0 is the topic's last seq before the run.
 * @param {string} topic
 * @param {number} beforeMs
 * @param {number} durationMs
 * @param {number} drainMs
 * @returns {RunData}
 */
export function startRun(topic, beforeMs, durationMs, drainMs) {
  const created = createTopic(topic);
  const seq0 = topicMessages(topic);
  if (seq0 === null) throw new Error(`GET /stats failed: the last seq of ${topic} before the run is unknown`);
  const t0 = Date.now();
  return {
    created,
    seq0,
    publishFrom: t0 + beforeMs,
    publishUntil: t0 + beforeMs + durationMs,
    endAt: t0 + beforeMs + durationMs + drainMs,
  };
}

/**
 * arrivalScenario is a constant-arrival-rate scenario of `rate` iterations per second, each
 * expected to last about iterationSeconds, with VUs to spare so that none is dropped.
 * @param {string} exec
 * @param {number} rate
 * @param {{startMs: number, durationMs: number, graceMs: number, iterationSeconds?: number}} timing
 * @returns {import('k6/options').ConstantArrivalRateScenario}
 */
export function arrivalScenario(exec, rate, { startMs, durationMs, graceMs, iterationSeconds = 0.5 }) {
  const preAllocated = Math.max(4, Math.ceil(rate * iterationSeconds) + 2);
  return {
    executor: 'constant-arrival-rate',
    exec,
    rate,
    timeUnit: '1s',
    startTime: `${startMs}ms`,
    duration: `${durationMs}ms`,
    preAllocatedVUs: preAllocated,
    maxVUs: Math.max(10, preAllocated * 2),
    gracefulStop: `${graceMs}ms`,
  };
}

/**
 * holdSubscriptions is the body of a long-lived subscriber VU: `sockets` subscriptions to `topic`
 * (data from startRun), held until data.endAt. A subscription acked before the first publish
 * must receive every message from seq0+1 on. At the end each still-open subscription accounts
 * for its tail (if opts.tail) and closes; if every socket closes earlier, the iteration ends and
 * the next one reconnects. opts: role, topic, sockets, tail, beforeEvent, onLatency, onEnd.
 * @param {RunData} data
 * @param {{role: string, topic: string, sockets: number, tail?: boolean, beforeEvent?: () => void,
 *   onLatency?: (ms: number) => void, onEnd?: () => void}} opts
 */
export function holdSubscriptions(data, opts) {
  if (Date.now() >= data.endAt - 1000) {
    if (opts.onEnd) opts.onEnd();
    sleep(1); // too late to observe anything: wait for the scenario to end
    return;
  }
  /** @type {{s: Subscription, conn: ReturnType<typeof subscriber>}[]} */
  const held = [];
  let open = opts.sockets;
  /** @type {import('k6/timers').TimeoutID | null} */
  let timer = null;
  const end = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (opts.onEnd) opts.onEnd();
  };
  for (let i = 0; i < opts.sockets; i++) {
    const s = new Subscription({ role: opts.role, topic: opts.topic, onLatency: opts.onLatency });
    const conn = subscriber([s], {
      role: opts.role,
      clientId: `${opts.topic}-${opts.role}-${__VU}-${__ITER}-${i}`,
      onSubscribed: () => { if (Date.now() < data.publishFrom) s.firstSeq = data.seq0 + 1; },
      beforeEvent: opts.beforeEvent,
      onClose: (e, byClient) => { if (!byClient && --open === 0) end(); },
    });
    held.push({ s, conn });
  }
  timer = setTimeout(() => {
    timer = null;
    const last = opts.tail ? topicMessages(opts.topic) : null;
    for (const { s, conn } of held) {
      if (conn.ws.readyState === WebSocket.OPEN) s.finish(last);
      conn.close();
    }
    end();
  }, data.endAt - Date.now());
}
