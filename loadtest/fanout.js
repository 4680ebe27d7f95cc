// Fan-out: one topic, many subscribers (several sockets per VU), publishers at a constant rate.
// Measures delivery latency and proves nothing is lost, duplicated or reordered: every subscriber
// that subscribed before the first publish must see every seq from the first to the last.
//
//   k6 run loadtest/fanout.js                       # against 127.0.0.1:8080
//   k6 run -e SUBSCRIBERS=50 -e PUBLISH_RATE=50 -e DURATION=2m loadtest/fanout.js
import {
  arrivalScenario, deleteTopic, env, envInt, envMs, holdSubscriptions, publishBatch, startRun,
} from './lib/pubsub.js';

/** @typedef {import('./lib/pubsub.js').RunData} RunData */

const TOPIC = env('TOPIC', 'k6-fanout');
const SUBSCRIBERS = envInt('SUBSCRIBERS', 10); // VUs
const SOCKETS_PER_VU = envInt('SOCKETS_PER_VU', 5);
const PUBLISH_RATE = envInt('PUBLISH_RATE', 10); // publishing sessions per second
const BATCH = envInt('BATCH', 5); // messages per publishing session
const PAYLOAD_BYTES = envInt('PAYLOAD_BYTES', 256);
const RAMP_MS = envMs('RAMP', '5s');
const SETTLE_MS = 1000; // lets the last subscribers' acks arrive before the first publish
const DURATION_MS = envMs('DURATION', '30s');
const DRAIN_MS = envMs('DRAIN', '3s'); // after the last publish, for the last events to arrive
const ACK_TIMEOUT_MS = envMs('ACK_TIMEOUT', '5s');
const P95_MS = envInt('LATENCY_P95_MS', 250);
const P99_MS = envInt('LATENCY_P99_MS', 1000);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    subscribers: {
      executor: 'ramping-vus',
      exec: 'subscribers',
      startVUs: 0,
      stages: [
        { duration: `${RAMP_MS}ms`, target: SUBSCRIBERS },
        { duration: `${SETTLE_MS + DURATION_MS + DRAIN_MS}ms`, target: SUBSCRIBERS },
      ],
      gracefulRampDown: '10s',
      gracefulStop: '10s',
    },
    publishers: arrivalScenario('publishers', PUBLISH_RATE, {
      startMs: RAMP_MS + SETTLE_MS, durationMs: DURATION_MS, graceMs: ACK_TIMEOUT_MS,
    }),
  },
  thresholds: {
    checks: ['rate==1'],
    pubsub_delivery_latency: [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    pubsub_publish_ack_latency: [`p(95)<${P95_MS}`],
    pubsub_events_received: ['count>0'],
    pubsub_messages_lost: ['count==0'],
    pubsub_events_out_of_order: ['count==0'],
    pubsub_payload_mismatch: ['count==0'],
    pubsub_slow_consumer_errors: ['count==0'],
    pubsub_error_frames: ['count==0'],
    pubsub_disconnects: ['count==0'],
    pubsub_publish_failures: ['count==0'],
    pubsub_policy_violations: ['count==0'],
    dropped_iterations: ['count==0'],
  },
};

export function setup() {
  return startRun(TOPIC, RAMP_MS + SETTLE_MS, DURATION_MS, DRAIN_MS);
}

/**
 * subscribers holds SOCKETS_PER_VU subscriptions until publishing is over, then checks the tail.
 * @param {RunData} data
 */
export function subscribers(data) {
  holdSubscriptions(data, { role: 'subscriber', topic: TOPIC, sockets: SOCKETS_PER_VU, tail: true });
}

export function publishers() {
  publishBatch({ topic: TOPIC, count: BATCH, bytes: PAYLOAD_BYTES, timeoutMs: ACK_TIMEOUT_MS });
}

/** @param {RunData} data */
export function teardown(data) {
  if (data.created) deleteTopic(TOPIC);
}
