// Soak: hours at a steady publishing rate, with long-lived subscribers and churn beside them.
// Long-lived ("steady") subscribers must lose nothing and their latency must not drift; churning
// clients connect, subscribe (one live topic, one quiet topic with last_n replay), unsubscribe and
// disconnect, over and over. Error counters abort the run early (abortOnFail) so that a failing
// soak does not take hours to say so.
//
//   k6 run -e DURATION=4h loadtest/soak.js
//   k6 run -e DURATION=8h -e PUBLISH_RATE=20 -e CHURN_RATE=5 -e WINDOW=5m loadtest/soak.js
import { check } from 'k6';
import { setInterval, clearInterval, setTimeout, clearTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';
import {
  Subscription, arrivalScenario, createTopic, deleteTopic, env, envInt, envMs, holdSubscriptions, metrics,
  publishBatch, startRun, subscriber, topicMessages,
} from './lib/pubsub.js';

/** @typedef {import('./lib/pubsub.js').RunData} RunData */

const TOPIC = env('TOPIC', 'k6-soak');
const REPLAY_TOPIC = `${TOPIC}-replay`; // quiet: its history is known, so replays can be checked exactly
const PUBLISH_RATE = envInt('PUBLISH_RATE', 5); // publishing sessions per second
const BATCH = envInt('BATCH', 2);
const PAYLOAD_BYTES = envInt('PAYLOAD_BYTES', 512);
const STEADY_VUS = envInt('STEADY_VUS', 4);
const SOCKETS_PER_VU = envInt('SOCKETS_PER_VU', 2);
const CHURN_RATE = envInt('CHURN_RATE', 2); // churn sessions per second
const CHURN_HOLD_MS = envMs('CHURN_HOLD', '2s');
const LAST_N = envInt('LAST_N', 10);
const HISTORY_SIZE = envInt('HISTORY_SIZE', 100); // the server's PUBSUB_HISTORY_SIZE
const SETTLE_MS = envMs('SETTLE', '2s');
const DURATION_MS = envMs('DURATION', '1h');
const DRAIN_MS = envMs('DRAIN', '3s');
const WINDOW_MS = envMs('WINDOW', '1m'); // latency drift is compared window by window
const ACK_TIMEOUT_MS = envMs('ACK_TIMEOUT', '5s');
const P95_MS = envInt('LATENCY_P95_MS', 250);
const P99_MS = envInt('LATENCY_P99_MS', 1000);
const DRIFT_MS = envInt('DRIFT_P95_MS', 100);

// Counters that must stay at zero stop a long run as soon as they move.
const zero = [{ threshold: 'count==0', abortOnFail: true }];

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    steady: {
      executor: 'constant-vus',
      exec: 'steady',
      vus: STEADY_VUS,
      duration: `${SETTLE_MS + DURATION_MS + DRAIN_MS}ms`,
      gracefulStop: '10s',
    },
    publishers: arrivalScenario('publishers', PUBLISH_RATE, {
      startMs: SETTLE_MS, durationMs: DURATION_MS, graceMs: ACK_TIMEOUT_MS,
    }),
    churn: arrivalScenario('churn', CHURN_RATE, {
      startMs: SETTLE_MS, durationMs: DURATION_MS, graceMs: ACK_TIMEOUT_MS + 1000,
      iterationSeconds: CHURN_HOLD_MS / 1000 + 1,
    }),
  },
  thresholds: {
    checks: [{ threshold: 'rate==1', abortOnFail: true }],
    pubsub_delivery_latency: [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    pubsub_latency_drift: [`p(95)<${DRIFT_MS}`],
    pubsub_publish_ack_latency: [`p(95)<${P95_MS}`],
    'pubsub_events_received{role:steady}': ['count>0'],
    'pubsub_events_replayed{role:churn}': ['count>0'],
    pubsub_messages_lost: zero,
    pubsub_events_out_of_order: zero,
    pubsub_payload_mismatch: zero,
    pubsub_slow_consumer_errors: zero,
    pubsub_error_frames: zero,
    pubsub_disconnects: zero,
    pubsub_publish_failures: zero,
    pubsub_policy_violations: zero,
    dropped_iterations: ['count==0'],
  },
};

export function setup() {
  const replayCreated = createTopic(REPLAY_TOPIC);
  // Seed the quiet topic's history once; the publish completes before setup ends, as setup's
  // event loop runs until the socket closes.
  const seeded = topicMessages(REPLAY_TOPIC);
  if (seeded === null) throw new Error(`GET /stats failed: the history of ${REPLAY_TOPIC} is unknown`);
  if (seeded < LAST_N) {
    publishBatch({ topic: REPLAY_TOPIC, count: LAST_N, bytes: PAYLOAD_BYTES, timeoutMs: ACK_TIMEOUT_MS, role: 'seed' });
  }
  return { replayCreated, ...startRun(TOPIC, SETTLE_MS, DURATION_MS, DRAIN_MS) };
}

/** @param {number[]} values */
function median(values) {
  const v = values.slice().sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

/**
 * steady holds SOCKETS_PER_VU subscriptions for the whole run. Its latency median per WINDOW is
 * compared with its first full window: the difference is the drift.
 * @param {RunData} data
 */
export function steady(data) {
  /** @type {number[]} */
  let window = [];
  /** @type {number | null} */
  let baseline = null;
  const windows = setInterval(() => {
    const now = Date.now();
    // Only windows fully inside the publishing period compare like with like.
    if (now - WINDOW_MS >= data.publishFrom && now <= data.publishUntil && window.length >= 10) {
      const m = median(window);
      if (baseline === null) baseline = m;
      else metrics.drift.add(m - baseline, { role: 'steady' });
    }
    window = [];
  }, WINDOW_MS);
  holdSubscriptions(data, {
    role: 'steady',
    topic: TOPIC,
    sockets: SOCKETS_PER_VU,
    tail: true,
    onLatency: (ms) => window.push(ms),
    onEnd: () => clearInterval(windows),
  });
}

export function publishers() {
  publishBatch({ topic: TOPIC, count: BATCH, bytes: PAYLOAD_BYTES, timeoutMs: ACK_TIMEOUT_MS });
}

/**
 * churn: connect, subscribe to the live topic and (with last_n) to the quiet one, receive for
 * CHURN_HOLD, unsubscribe from both, disconnect. The replay must be exactly the quiet topic's
 * last min(LAST_N, HISTORY_SIZE) messages, in order.
 */
export function churn() {
  const last = topicMessages(REPLAY_TOPIC);
  if (last === null) return; // a failed check already: without the topic's seq there is nothing to compare
  const expected = Math.min(LAST_N, HISTORY_SIZE, last);
  const live = new Subscription({ role: 'churn', topic: TOPIC });
  const replay = new Subscription({
    role: 'churn', topic: REPLAY_TOPIC, lastN: LAST_N, firstSeq: last - expected + 1, liveAfter: Date.now(),
  });
  const clientId = `soak-churn-${__VU}-${__ITER}`;
  let unsubscribed = 0;
  /** @type {import('k6/timers').TimeoutID | null} */
  let giveUp = null;
  const conn = subscriber([live, replay], {
    role: 'churn',
    clientId,
    onFrame: (f) => {
      if (f.type !== 'ack' || !String(f.request_id).startsWith('unsub:')) return;
      check(f, { 'unsubscribe acknowledged': (a) => a.status === 'ok' }, { role: 'churn' });
      if (++unsubscribed < 2) return;
      if (giveUp !== null) clearTimeout(giveUp);
      replay.finish(last);
      check(replay, { 'last_n replays the last n messages': (r) => r.count === expected }, { role: 'churn' });
      conn.close();
    },
    onClose: (e, byClient) => {
      if (!byClient) {
        clearTimeout(hold);
        if (giveUp !== null) clearTimeout(giveUp);
      }
    },
  });
  const hold = setTimeout(() => {
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    for (const s of [live, replay]) {
      conn.ws.send(JSON.stringify({ type: 'unsubscribe', topic: s.topic, client_id: clientId, request_id: `unsub:${s.topic}` }));
    }
    giveUp = setTimeout(() => {
      check(null, { 'unsubscribe acknowledged': () => false }, { role: 'churn' });
      conn.close();
    }, ACK_TIMEOUT_MS);
  }, CHURN_HOLD_MS);
}

/** @param {RunData & {replayCreated: boolean}} data */
export function teardown(data) {
  if (data.created) deleteTopic(TOPIC);
  if (data.replayCreated) deleteTopic(REPLAY_TOPIC);
}
