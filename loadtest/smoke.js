// Smoke: one VU, one pass over the wire contract (PROTOCOL.md) in a few seconds. Every REST route
// and every frame type is exercised once: ping/pong, subscribe/ack, publish/event, last_n replay,
// subscription takeover, unsubscribe, errors that keep the connection usable, topic deletion,
// the heartbeat (when EXPECT_HEARTBEAT_WITHIN is set) and the frame size limit (close 1009).
//
//   k6 run loadtest/smoke.js
//   k6 run -e PUBSUB_URL=http://127.0.0.1:8080 -e EXPECT_HEARTBEAT_WITHIN=3s loadtest/smoke.js
//     (the second form needs a server started with PUBSUB_HEARTBEAT_INTERVAL=1s)
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import { BASE_URL, WS_URL, createTopic, decodeFrame, deleteTopic, env, envInt, envMs, uuid } from './lib/pubsub.js';

/** @typedef {import('./lib/pubsub.js').CloseEvent} CloseEvent */

const TOPIC = env('TOPIC', 'k6-smoke');
const DOOMED = `${TOPIC}-deleted`; // created and deleted by the iteration
const MISSING = `${TOPIC}-no-such-topic`;
const FRAME_TIMEOUT_MS = envMs('FRAME_TIMEOUT', '2s');
const HEARTBEAT_MS = env('EXPECT_HEARTBEAT_WITHIN', '') === '' ? 0 : envMs('EXPECT_HEARTBEAT_WITHIN', '0s');
const MAX_FRAME_BYTES = envInt('MAX_FRAME_BYTES', 1048576);
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const completed = new Counter('smoke_completed');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    smoke: { executor: 'per-vu-iterations', vus: 1, iterations: 1, maxDuration: '1m' },
  },
  thresholds: {
    checks: ['rate==1'],
    // The walk reached its last step: an exception, an interruption or a promise nothing
    // resolves (which ends a k6 iteration silently) would leave this at 0.
    smoke_completed: ['count==1'],
  },
};

/** @typedef {import('./lib/pubsub.js').Frame} Frame */
/** @typedef {import('k6/http').RefinedResponse<any>} Response */
/** @typedef {(f: Frame | null) => boolean} FrameTest a check on a frame, or on its absence */

const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
/** @param {unknown} v */
const isTs = (v) => typeof v === 'string' && TS.test(v);
/** @param {unknown} v */
const isCount = (v) => Number.isInteger(v) && /** @type {number} */ (v) >= 0;
/** @type {(id: string) => (f: Frame) => boolean} */
const reply = (id) => (f) => f.request_id === id;
/** @type {(topic: string) => FrameTest} */
const isAck = (topic) => (f) => f !== null && f.type === 'ack' && f.status === 'ok' && f.topic === topic && isTs(f.ts);
/** @type {(code: string) => FrameTest} */
const isError = (code) => (f) => f !== null && f.type === 'error' && f.error.code === code && typeof f.error.message === 'string';
/** @type {(id: string) => (f: Frame) => boolean} */
const isEvent = (id) => (f) => f.type === 'event' && f.message.id === id;
/**
 * isStatus: the status and topic of a reply to POST or DELETE /topics.
 * @param {Response} res
 * @param {string} status
 * @param {string} topic
 */
const isStatus = (res, status, topic) => {
  const b = /** @type {import('./lib/pubsub.js').TopicStatus} */ (res.json());
  return b.status === status && b.topic === topic;
};
/** @param {Response} res */
const errorCode = (res) => { try { return /** @type {import('./lib/pubsub.js').ErrorBody} */ (res.json()).error.code; } catch (e) { return undefined; } };

/**
 * same compares two JSON values by content.
 * @param {unknown} a
 * @param {unknown} b
 * @returns {boolean}
 */
function same(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ra = /** @type {Record<string, unknown>} */ (a);
  const rb = /** @type {Record<string, unknown>} */ (b);
  const ka = Object.keys(ra);
  return ka.length === Object.keys(rb).length && ka.every((k) => same(ra[k], rb[k]));
}

/** Conn is a socket whose frames can be awaited one at a time, in any order, with a deadline. */
class Conn {
  constructor() {
    /** @type {any[]} frames received and not yet taken by next() */
    this.inbox = [];
    /** @type {{pred: (f: any) => boolean, resolve: (f: any) => void, timer: import('k6/timers').TimeoutID} | null} */
    this.waiter = null;
    this.ws = new WebSocket(WS_URL, null, { tags: { role: 'smoke' } });
    /** @type {Promise<CloseEvent>} */
    this.ended = new Promise((resolve) => { this.ws.onclose = (/** @type {CloseEvent} */ e = {}) => resolve(e); });
    // opened resolves false if the connection fails instead of leaving the iteration waiting.
    this.opened = new Promise((resolve) => {
      this.ws.onopen = () => resolve(true);
      this.ended.then(() => resolve(false));
    });
    this.ws.onmessage = (e) => {
      this.inbox.push(decodeFrame(e));
      this.pump();
    };
  }

  /** @param {string | object} frame a frame, or raw text to send as it is */
  send(frame) {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /**
   * next resolves with the first frame matching pred (taking it from the inbox), or null after timeoutMs.
   * @param {(f: Frame) => boolean} pred
   * @returns {Promise<Frame | null>}
   */
  next(pred, timeoutMs = FRAME_TIMEOUT_MS) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiter = null; resolve(null); }, timeoutMs);
      this.waiter = { pred, resolve, timer };
      this.pump();
    });
  }

  pump() {
    const w = this.waiter;
    if (w === null) return;
    const i = this.inbox.findIndex(w.pred);
    if (i < 0) return;
    this.waiter = null;
    clearTimeout(w.timer);
    w.resolve(this.inbox.splice(i, 1)[0]);
  }

  /** @param {{request_id: string} & Record<string, unknown>} frame */
  request(frame) {
    this.send(frame);
    return this.next(reply(frame.request_id));
  }

  /**
   * barrier round-trips a ping: whatever the server had queued for this socket before it read
   * the ping arrives before the pong, so "nothing arrived" after it means nothing was sent.
   * @param {string} id
   */
  barrier(id) {
    return this.request({ type: 'ping', request_id: id });
  }

  /** @param {string} id */
  hasEvent(id) {
    return this.inbox.some(isEvent(id));
  }

  close() {
    this.ws.close();
    return this.ended;
  }
}

/**
 * @param {string} id
 * @param {unknown} payload
 * @param {string} requestId
 */
function publishFrame(id, payload, requestId) {
  return { type: 'publish', topic: TOPIC, message: { id, payload }, request_id: requestId };
}

export function setup() {
  return { created: createTopic(TOPIC) };
}

function rest() {
  let r = http.get(`${BASE_URL}/health`);
  check(r, {
    'GET /health: 200 with uptime_sec, topics, subscribers': (x) => {
      const h = /** @type {import('./lib/pubsub.js').Health} */ (x.json());
      return x.status === 200 && isCount(h.uptime_sec) && isCount(h.topics) && isCount(h.subscribers);
    },
  });
  /** @type {(body: string, ...statuses: number[]) => Response} */
  const post = (body, ...statuses) => http.post(`${BASE_URL}/topics`, body, {
    headers: JSON_HEADERS, responseCallback: http.expectedStatuses(...statuses),
  });
  r = post(JSON.stringify({ name: TOPIC }), 409);
  check(r, { 'POST /topics on an existing topic: 409 TOPIC_EXISTS': (x) => x.status === 409 && errorCode(x) === 'TOPIC_EXISTS' });
  r = post(JSON.stringify({ name: 'no spaces allowed' }), 400);
  check(r, { 'POST /topics with an invalid name: 400 BAD_REQUEST': (x) => x.status === 400 && errorCode(x) === 'BAD_REQUEST' });
  r = post('{"name": ', 400);
  check(r, { 'POST /topics with a body that is not JSON: 400 BAD_REQUEST': (x) => x.status === 400 && errorCode(x) === 'BAD_REQUEST' });
  r = post('{}', 400);
  check(r, { 'POST /topics without a name: 400 BAD_REQUEST': (x) => x.status === 400 && errorCode(x) === 'BAD_REQUEST' });
  r = http.del(`${BASE_URL}/topics/${MISSING}`, null, { responseCallback: http.expectedStatuses(404) });
  check(r, { 'DELETE /topics/{unknown}: 404 TOPIC_NOT_FOUND': (x) => x.status === 404 && errorCode(x) === 'TOPIC_NOT_FOUND' });
  // A topic left behind by an interrupted earlier run is removed first.
  http.del(`${BASE_URL}/topics/${DOOMED}`, null, { responseCallback: http.expectedStatuses(200, 404) });
  r = post(JSON.stringify({ name: DOOMED }), 201);
  check(r, { 'POST /topics: 201 {status: created, topic}': (x) => x.status === 201 && isStatus(x, 'created', DOOMED) });
  r = http.get(`${BASE_URL}/topics`);
  check(r, {
    'GET /topics: 200, sorted by name, with subscriber counts': (x) => {
      const topics = /** @type {import('./lib/pubsub.js').TopicList} */ (x.json()).topics;
      const names = topics.map((t) => t.name);
      return x.status === 200 && names.includes(TOPIC) && names.includes(DOOMED) &&
        names.every((n, i) => i === 0 || names[i - 1] < n) && topics.every((t) => isCount(t.subscribers));
    },
  });
}

export default async function () {
  rest();

  const sub = new Conn();
  const pub = new Conn();
  check(await Promise.all([sub.opened, pub.opened]), { 'WebSocket /ws opens': (o) => o.every(Boolean) });

  let f = await sub.request({ type: 'ping', request_id: 'r-ping' });
  check(f, { 'ping: pong echoing request_id': (x) => x !== null && x.type === 'pong' && isTs(x.ts) });

  f = await sub.request({ type: 'subscribe', topic: TOPIC, client_id: 'smoke-sub', request_id: 'r-sub' });
  check(f, { 'subscribe: ack ok echoing request_id': isAck(TOPIC) });

  const first = { id: uuid(), payload: { text: 'hello', n: 1, nested: { list: [1, 'two', null, true] } } };
  f = await pub.request(publishFrame(first.id, first.payload, 'r-pub'));
  check(f, { 'publish: ack ok': isAck(TOPIC) });
  const event = await sub.next(isEvent(first.id));
  check(event, {
    'event: delivered with topic, seq, ts and the payload exactly as published': (e) => e !== null &&
      e.topic === TOPIC && Number.isInteger(e.seq) && e.seq >= 1 && isTs(e.ts) && same(e.message.payload, first.payload),
  });
  f = await pub.barrier('r-barrier-1');
  check(f, { 'a publisher does not receive its own message': (x) => x !== null && !pub.hasEvent(first.id) });

  // Bad frames get an error and leave the connection usable.
  f = await pub.request({ type: 'no-such-type', request_id: 'r-bad-type' });
  check(f, { 'unknown type: error BAD_REQUEST echoing request_id': isError('BAD_REQUEST') });
  pub.send('{"type": "ping",');
  f = await pub.next((x) => x.type === 'error');
  check(f, { 'malformed JSON: error BAD_REQUEST': isError('BAD_REQUEST') });
  f = await pub.request(publishFrame('not-a-uuid', 1, 'r-bad-id'));
  check(f, { 'publish with an invalid message.id: error BAD_REQUEST': isError('BAD_REQUEST') });
  f = await pub.request({ type: 'publish', topic: MISSING, message: { id: uuid(), payload: null }, request_id: 'r-missing' });
  check(f, { 'publish to an unknown topic: error TOPIC_NOT_FOUND': isError('TOPIC_NOT_FOUND') });
  f = await pub.request({ type: 'subscribe', topic: TOPIC, client_id: 'smoke-x', last_n: -1, request_id: 'r-neg' });
  check(f, { 'subscribe with a negative last_n: error BAD_REQUEST': isError('BAD_REQUEST') });
  f = await pub.barrier('r-barrier-2');
  check(f, { 'the connection stays usable after bad frames': (x) => x !== null && x.type === 'pong' });

  const stats = http.get(`${BASE_URL}/stats`);
  check(stats, {
    'GET /stats: messages and subscribers of the topic': (x) => {
      const topic = /** @type {import('./lib/pubsub.js').Stats} */ (x.json()).topics[TOPIC];
      return x.status === 200 && event !== null && topic.messages >= event.seq && topic.subscribers === 1;
    },
  });

  // last_n replays history after the ack.
  const replay = new Conn();
  await replay.opened;
  f = await replay.request({ type: 'subscribe', topic: TOPIC, client_id: 'smoke-replay', last_n: 1, request_id: 'r-replay' });
  check(f, { 'subscribe with last_n: ack ok': isAck(TOPIC) });
  f = await replay.next((x) => x.type === 'event');
  check(f, { 'last_n=1 replays the latest message with its seq': (x) => x !== null && event !== null && x.message.id === first.id && x.seq === event.seq });

  // The same client_id from another connection takes the subscription over.
  const other = new Conn();
  await other.opened;
  f = await other.request({ type: 'subscribe', topic: TOPIC, client_id: 'smoke-sub', request_id: 'r-takeover' });
  check(f, { 'subscribe with a client_id held elsewhere: ack ok': isAck(TOPIC) });
  f = await sub.next((x) => x.type === 'info' && x.msg === 'subscription_replaced');
  check(f, { 'the older connection is told subscription_replaced': (x) => x !== null && x.topic === TOPIC });
  const second = { id: uuid(), payload: [2, 'second'] };
  f = await pub.request(publishFrame(second.id, second.payload, 'r-pub-2'));
  check(f, { 'second publish: ack ok': isAck(TOPIC) });
  f = await other.next(isEvent(second.id));
  check(f, { 'the newer connection receives the next message': (x) => x !== null && event !== null && x.seq === event.seq + 1 });
  f = await replay.next(isEvent(second.id));
  check(f, { 'a replayed subscriber then receives live messages': (x) => x !== null });
  f = await sub.barrier('r-barrier-3');
  check(f, { 'the replaced connection receives the topic no more': (x) => x !== null && !sub.hasEvent(second.id) });

  // Unsubscribe, also idempotently; nothing arrives afterwards.
  f = await other.request({ type: 'unsubscribe', topic: TOPIC, client_id: 'smoke-sub', request_id: 'r-unsub' });
  check(f, { 'unsubscribe: ack ok': isAck(TOPIC) });
  f = await other.request({ type: 'unsubscribe', topic: TOPIC, client_id: 'smoke-sub', request_id: 'r-unsub-again' });
  check(f, { 'unsubscribe without a subscription: ack ok (idempotent)': isAck(TOPIC) });
  f = await other.request({ type: 'unsubscribe', topic: MISSING, client_id: 'smoke-sub', request_id: 'r-unsub-missing' });
  check(f, { 'unsubscribe from an unknown topic: error TOPIC_NOT_FOUND': isError('TOPIC_NOT_FOUND') });
  const third = { id: uuid(), payload: null };
  f = await pub.request(publishFrame(third.id, third.payload, 'r-pub-3'));
  check(f, { 'publish with a null payload: ack ok': isAck(TOPIC) });
  f = await replay.next(isEvent(third.id));
  check(f, { 'a null payload is delivered as null': (x) => x !== null && x.message.payload === null });
  f = await other.barrier('r-barrier-4');
  check(f, { 'an unsubscribed connection receives nothing more': (x) => x !== null && !other.hasEvent(third.id) });

  // Deleting a topic tells its subscribers and keeps their connections open.
  f = await replay.request({ type: 'subscribe', topic: DOOMED, client_id: 'smoke-doomed', request_id: 'r-doomed' });
  check(f, { 'subscribe to a second topic on the same connection: ack ok': isAck(DOOMED) });
  const del = http.del(`${BASE_URL}/topics/${DOOMED}`);
  check(del, { 'DELETE /topics/{name}: 200 {status: deleted, topic}': (x) => x.status === 200 && isStatus(x, 'deleted', DOOMED) });
  f = await replay.next((x) => x.type === 'info' && x.msg === 'topic_deleted');
  check(f, { 'subscribers of a deleted topic get info topic_deleted': (x) => x !== null && x.topic === DOOMED && isTs(x.ts) });
  f = await replay.barrier('r-barrier-5');
  check(f, { 'their connection stays open': (x) => x !== null });

  if (HEARTBEAT_MS > 0) {
    f = await sub.next((x) => x.type === 'info' && x.msg === 'ping', HEARTBEAT_MS);
    check(f, { 'the server sends info ping heartbeats': (x) => x !== null && isTs(x.ts) });
  }

  const big = new Conn();
  await big.opened;
  big.send(JSON.stringify({ type: 'ping', request_id: 'x'.repeat(MAX_FRAME_BYTES) }));
  /** @type {import('k6/timers').TimeoutID | undefined} */
  let timer;
  /** @type {Promise<null>} */
  const deadline = new Promise((resolve) => { timer = setTimeout(() => resolve(null), FRAME_TIMEOUT_MS); });
  const closed = await Promise.race([big.ended, deadline]);
  if (timer !== undefined) clearTimeout(timer);
  check(closed, { 'a frame over the size limit closes the connection with 1009': (e) => e !== null && e.code === 1009 });
  if (closed === null) big.ws.close();

  const ends = await Promise.all([sub.close(), pub.close(), replay.close(), other.close()]);
  check(ends, { 'connections close cleanly (1000) when the client asks': (es) => es.every((e) => e.code === 1000) });
  completed.add(1);
}

/** @param {{created: boolean}} data */
export function teardown(data) {
  if (data.created) deleteTopic(TOPIC);
}
