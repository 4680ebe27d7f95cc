// Backpressure: fast subscribers beside subscribers that read slowly or stop reading for a while,
// on one topic, under the overflow policy the server runs with (PUBSUB_OVERFLOW_POLICY, which this
// script must be told). Thresholds: fast subscribers lose nothing and keep their latency; slow
// ones may lose messages but are always told (SLOW_CONSUMER before the gap, or before the 1008
// close under `disconnect`), and drop_oldest never disconnects anyone.
//
// What k6 can and cannot model: a k6 VU is "slow" by blocking its JS (sleep in the message
// handler), but k6 keeps reading the socket into memory meanwhile, so the server never sees a
// full socket and real k6 rarely provokes SLOW_CONSUMER; leave EXPECT_SLOW_CONSUMER unset then.
// The Node harness in loadtest/harness reads sockets on the VU's own thread, so there a blocked
// VU does stop reading and the server's queue really overflows (CI sets EXPECT_SLOW_CONSUMER=true).
// Subscribers whose sockets stall at the TCP level are covered by `pubsub-bench -scenario slow`.
//
//   k6 run loadtest/backpressure.js                                    # server on drop_oldest
//   k6 run -e PUBSUB_OVERFLOW_POLICY=disconnect loadtest/backpressure.js  # server on disconnect
import { sleep } from 'k6';
import {
  POLICY, arrivalScenario, deleteTopic, env, envInt, envMs, holdSubscriptions, publishBatch, startRun,
} from './lib/pubsub.js';

/** @typedef {import('./lib/pubsub.js').RunData} RunData */

const TOPIC = env('TOPIC', 'k6-backpressure');
const FAST_VUS = envInt('FAST_VUS', 4);
const SOCKETS_PER_VU = envInt('SOCKETS_PER_VU', 2); // fast subscribers' sockets per VU
const SLOW_VUS = envInt('SLOW_VUS', 2);
const SLOW_MS = envInt('SLOW_MS', 50); // processing time per event of a slow subscriber
const STALLED_VUS = envInt('STALLED_VUS', 1);
const STALL_MS = envMs('STALL', '3s'); // how long a stalled subscriber stops reading, once
const PUBLISH_RATE = envInt('PUBLISH_RATE', 20); // publishing sessions per second
const BURST = envInt('BURST', 10); // messages per session, sent back to back
const PAYLOAD_BYTES = envInt('PAYLOAD_BYTES', 16384);
const SETTLE_MS = envMs('SETTLE', '2s'); // for every subscriber to be subscribed before publishing
const DURATION_MS = envMs('DURATION', '30s');
const DRAIN_MS = envMs('DRAIN', '3s');
const ACK_TIMEOUT_MS = envMs('ACK_TIMEOUT', '5s');
const P95_MS = envInt('LATENCY_P95_MS', 250);
const EXPECT_SLOW_CONSUMER = env('EXPECT_SLOW_CONSUMER', 'false') === 'true';
const HOLD = `${SETTLE_MS + DURATION_MS + DRAIN_MS}ms`;

/** @type {(vus: number, exec: string) => import('k6/options').ConstantVUsScenario} */
const subscribers = (vus, exec) => ({ executor: 'constant-vus', exec, vus, duration: HOLD, gracefulStop: '10s' });

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    fast: subscribers(FAST_VUS, 'fast'),
    ...(SLOW_VUS > 0 ? { slow: subscribers(SLOW_VUS, 'slow') } : {}),
    ...(STALLED_VUS > 0 ? { stalled: subscribers(STALLED_VUS, 'stalled') } : {}),
    publishers: arrivalScenario('publishers', PUBLISH_RATE, {
      startMs: SETTLE_MS, durationMs: DURATION_MS, graceMs: ACK_TIMEOUT_MS,
    }),
  },
  thresholds: {
    checks: ['rate==1'],
    // Fast subscribers are untouched by the slow ones.
    'pubsub_delivery_latency{role:fast}': [`p(95)<${P95_MS}`],
    'pubsub_events_received{role:fast}': ['count>0'],
    'pubsub_messages_lost{role:fast}': ['count==0'],
    'pubsub_slow_consumer_errors{role:fast}': ['count==0'],
    'pubsub_disconnects{role:fast}': ['count==0'],
    // Publishers are never blocked or refused because of a slow subscriber.
    'pubsub_publish_ack_latency{role:publisher}': [`p(95)<${P95_MS}`],
    'pubsub_disconnects{role:publisher}': ['count==0'],
    pubsub_publish_failures: ['count==0'],
    // Slow subscribers are told: no silent gap, no unannounced 1008, the policy is the one configured.
    pubsub_policy_violations: ['count==0'],
    pubsub_events_out_of_order: ['count==0'],
    pubsub_payload_mismatch: ['count==0'],
    pubsub_error_frames: ['count==0'],
    ...(POLICY === 'drop_oldest' ? { pubsub_disconnects: ['count==0'] } : {}),
    ...(EXPECT_SLOW_CONSUMER && STALLED_VUS > 0 ? { 'pubsub_slow_consumer_errors{role:stalled}': ['count>0'] } : {}),
    ...(EXPECT_SLOW_CONSUMER && STALLED_VUS > 0 && POLICY === 'disconnect'
      ? { 'pubsub_disconnects{role:stalled,code:1008}': ['count>0'] } : {}),
  },
};

export function setup() {
  return startRun(TOPIC, SETTLE_MS, DURATION_MS, DRAIN_MS);
}

/**
 * hold subscribes `sockets` times until the end of the run; delay() is the reader's slowness,
 * which stops with publishing so that the backlog drains before the run ends. Only fast
 * subscribers account for their tail: a slow one may lose it without a later event to carry the
 * SLOW_CONSUMER notice. A subscriber disconnected under `disconnect` comes back in a new iteration.
 */
/**
 * @param {RunData} data
 * @param {string} role
 * @param {number} sockets
 * @param {() => void} delay
 */
function hold(data, role, sockets, delay) {
  holdSubscriptions(data, {
    role,
    topic: TOPIC,
    sockets,
    tail: role === 'fast',
    beforeEvent: () => { if (Date.now() < data.publishUntil) delay(); },
  });
}

/** @param {RunData} data */
export function fast(data) {
  hold(data, 'fast', SOCKETS_PER_VU, () => {});
}

/** @param {RunData} data */
export function slow(data) {
  hold(data, 'slow', 1, () => sleep(SLOW_MS / 1000));
}

/** @param {RunData} data */
export function stalled(data) {
  let stalledOnce = false;
  hold(data, 'stalled', 1, () => {
    if (stalledOnce) return;
    stalledOnce = true;
    sleep(STALL_MS / 1000);
  });
}

export function publishers() {
  publishBatch({ topic: TOPIC, count: BURST, bytes: PAYLOAD_BYTES, timeoutMs: ACK_TIMEOUT_MS });
}

/** @param {RunData} data */
export function teardown(data) {
  if (data.created) deleteTopic(TOPIC);
}
