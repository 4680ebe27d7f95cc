// The "WebSocket /ws" folder of the collection: the protocol of /ws as descriptions and examples.
//
// A Postman v2.1 collection can hold HTTP requests only: Postman keeps its WebSocket requests in
// another format that the v2.1 schema and newman do not know, so newman cannot run them. The
// frames are therefore documented here, each with examples taken from a real pubsubd, and tested
// elsewhere: internal/transport/ws (the contract tests), cmd/pubsubctl and loadtest/smoke.js.
// The Go test internal/transport/httpapi/postman_test.go holds this folder to the wire package:
// every frame type, error code and info notice it defines is named here.
'use strict';

const EPOCH = '9b2e51c07d3fa468';
const ID = '550e8400-e29b-41d4-a716-446655440000';

// frames renders examples as a json code block, one frame a line, prefixed > (client) or < (server).
function session(...rows) {
  return ['```text', ...rows, '```'].join('\n');
}
const c = (f) => '> ' + JSON.stringify(f);
const s = (f) => '< ' + JSON.stringify(f);

function doc(name, description) {
  return { name, description, item: [] };
}

const overview = [
  'The WebSocket endpoint: `ws://HOST:PORT/ws` (`wss://` behind TLS). One connection may hold any number',
  'of subscriptions and may also publish. Every frame is one UTF-8 JSON text message.',
  '',
  '**Newman cannot run these.** A Postman v2.1 collection holds HTTP requests only, and newman runs',
  'nothing else, so the frames are documented here with examples from a real server; the sub-folders',
  'have no requests. In the Postman app, open a WebSocket request to `ws://127.0.0.1:8080/ws` with the',
  'header `X-API-Key: {{apiKey}}`, and send the frames below. Or use the command-line client',
  '(`pubsubctl tail orders`, `pubsubctl publish orders \'{"n":1}\'`) or `npx wscat -c ws://127.0.0.1:8080/ws',
  '-H "X-API-Key: $KEY"`.',
  '',
  '**The handshake.** With authentication on it carries `X-API-Key` (or, from a browser, the token as a',
  'second subprotocol: `new WebSocket(url, ["pubsub", "pubsub.token." + jwt])`; the server selects',
  '`pubsub`). It is refused before any upgrade, with the REST error body:',
  '',
  '| status | code | when | headers |',
  '|---|---|---|---|',
  '| 400 | `BAD_REQUEST` | not a WebSocket handshake (e.g. a plain GET) | |',
  '| 401 | `UNAUTHORIZED` | missing or wrong key or token | `WWW-Authenticate: APIKey realm="pubsub", header="X-API-Key", Bearer realm="pubsub"` |',
  '| 403 | `UNAUTHORIZED` | a browser `Origin` that is not the host\'s nor in `PUBSUB_ALLOWED_ORIGINS` | |',
  '| 429 | `RATE_LIMITED` | the client\'s address holds `PUBSUB_MAX_CONNECTIONS_PER_ADDR` connections | `Retry-After: 1` |',
  '| 503 | `UNAVAILABLE` | the server holds `PUBSUB_MAX_CONNECTIONS`, or is shutting down | `Retry-After: 1` (limit) |',
  '',
  'The "Errors" and "Authentication" folders test the 400, 403 and 401 answers.',
  '',
  'A session (`>` client, `<` server):',
  '',
  session(
    c({ type: 'subscribe', topic: 'orders', client_id: 's1', last_n: 1, request_id: 'r-1' }),
    s({ type: 'ack', request_id: 'r-1', topic: 'orders', status: 'ok', epoch: EPOCH, seq: 42, ts: '2026-12-06T10:00:00.000Z' }),
    s({ type: 'event', topic: 'orders', message: { id: '6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f', payload: { n: 42 } }, seq: 42, ts: '2026-12-06T09:59:59.310Z' }),
    c({ type: 'publish', topic: 'orders', message: { id: ID, payload: { n: 43 } }, request_id: 'r-2' }),
    s({ type: 'event', topic: 'orders', message: { id: ID, payload: { n: 43 } }, seq: 43, ts: '2026-12-06T10:00:01.002Z' }),
    s({ type: 'ack', request_id: 'r-2', topic: 'orders', status: 'ok', ts: '2026-12-06T10:00:01.002Z' }),
    s({ type: 'info', msg: 'ping', ts: '2026-12-06T10:00:30.000Z' }),
  ),
].join('\n');

const clientFrames = doc('Client frames', [
  'What a client sends. Every frame may carry `request_id` (any string up to `PUBSUB_MAX_ID_BYTES`),',
  'echoed in its `ack`, `error` or `pong`, and a top-level `traceparent`/`tracestate` (W3C trace context)',
  'that the server\'s span continues. Unknown fields are ignored.',
  '',
  '### subscribe',
  'Needs `topic` and `client_id`. Optional `last_n` (integer >= 0): replay up to the last n messages of',
  'the topic\'s history, oldest first, after the `ack` and before any live event.',
  session(c({ type: 'subscribe', topic: 'orders', client_id: 's1', last_n: 5, request_id: 'r-1' })),
  '',
  '**Resume (extension):** `since_seq` (integer 0 to 2^64-1) with `epoch` (from an earlier subscribe',
  '`ack`): "I have every message of this topic up to `since_seq`". It wins over `last_n`.',
  session(c({ type: 'subscribe', topic: 'orders', client_id: 's1', since_seq: 41, epoch: EPOCH, request_id: 'r-2' })),
  '',
  'Subscribing again with a `client_id` that holds the subscription is acknowledged again on the same',
  'connection; from another connection it takes the subscription over (the older one gets',
  '`subscription_replaced`). Never a message twice.',
  '',
  '### unsubscribe',
  'Needs `topic` and `client_id`; idempotent on an existing topic.',
  session(c({ type: 'unsubscribe', topic: 'orders', client_id: 's1', request_id: 'r-3' })),
  '',
  '### publish',
  'Needs `topic` and `message` with `id` (a UUID) and `payload` (any JSON value, `null` included).',
  'Optional `message.headers` (extension): a map of strings, at most 16 entries, keys up to 128 bytes,',
  'values up to `PUBSUB_MAX_HEADER_BYTES`; `traceparent`/`tracestate` there join the publish to a trace.',
  session(
    c({ type: 'publish', topic: 'orders', message: { id: ID, payload: { any: 'json' } }, request_id: 'r-4' }),
    c({ type: 'publish', topic: 'orders', message: { id: '550e8400-e29b-41d4-a716-446655440001', payload: { n: 2 }, headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tenant: 'eu' } }, request_id: 'r-5' }),
  ),
  '',
  'A publisher receives its own message only if it is itself subscribed to the topic.',
  '',
  '### ping',
  session(c({ type: 'ping', request_id: 'r-6' })),
].join('\n'));

const serverFrames = doc('Server frames', [
  'What the server sends. `ts` is RFC 3339 UTC with milliseconds.',
  '',
  '### ack',
  'Of a publish (the message is in the topic\'s history and in every current subscriber\'s queue) and of',
  'an unsubscribe:',
  session(s({ type: 'ack', request_id: 'r-4', topic: 'orders', status: 'ok', ts: '2026-12-06T10:00:01.002Z' })),
  'Of a subscribe, with `epoch` (the topic\'s identity, new each time it is created) and `seq` (the',
  'topic\'s latest `seq` when the subscription started, 0 if none) (extension):',
  session(s({ type: 'ack', request_id: 'r-1', topic: 'orders', status: 'ok', epoch: EPOCH, seq: 0, ts: '2026-12-06T10:00:00.000Z' })),
  'Of a subscribe with `since_seq`, also `recovered`. `true`: every message after `since_seq` follows',
  'as ordinary events, then live ones, nothing lost or repeated:',
  session(
    s({ type: 'ack', request_id: 'r-2', topic: 'orders', status: 'ok', epoch: EPOCH, seq: 43, recovered: true, ts: '2026-12-06T10:00:02.000Z' }),
    s({ type: 'event', topic: 'orders', message: { id: '0b7e1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d', payload: { n: 42 } }, seq: 42, ts: '2026-12-06T09:59:59.310Z' }),
    s({ type: 'event', topic: 'orders', message: { id: ID, payload: { n: 43 } }, seq: 43, ts: '2026-12-06T10:00:01.002Z' }),
  ),
  '`false` (another epoch, a `since_seq` ahead of the topic, or messages no longer in the history): no',
  'replay at all; the subscription is live from the ack\'s `seq`, and the client reloads its state:',
  session(s({ type: 'ack', request_id: 'r-2', topic: 'orders', status: 'ok', epoch: 'c41d2e3f4a5b6c7d', seq: 3, recovered: false, ts: '2026-12-06T10:00:02.000Z' })),
  '',
  '### event',
  '`seq` (extension): 1 for a topic\'s first message, +1 per accepted message; a jump says exactly how',
  'many were missed. `payload` is exactly what was published; `headers` only when the message has some',
  '(a sampled publish\'s events carry the server\'s `traceparent`).',
  session(
    s({ type: 'event', topic: 'orders', message: { id: ID, payload: { n: 1 } }, seq: 1, ts: '2026-12-06T10:00:01.002Z' }),
    s({ type: 'event', topic: 'orders', message: { id: '550e8400-e29b-41d4-a716-446655440001', payload: { n: 2 }, headers: { tenant: 'eu', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } }, seq: 2, ts: '2026-12-06T10:00:01.527Z' }),
  ),
  '',
  '### error',
  'The reply to a frame that failed (with its `request_id`), or, with `topic` and no `request_id`, a',
  'notice about a subscription. The connection stays usable after a bad frame. Codes in "Error codes".',
  session(
    s({ type: 'error', request_id: 'r-10', error: { code: 'TOPIC_NOT_FOUND', message: 'topic "nope" does not exist' }, ts: '2026-12-06T10:00:01.500Z' }),
    s({ type: 'error', request_id: 'r-11', error: { code: 'BAD_REQUEST', message: 'message.id must be a valid UUID' }, ts: '2026-12-06T10:00:01.510Z' }),
    s({ type: 'error', error: { code: 'BAD_REQUEST', message: 'frame is not valid JSON' }, ts: '2026-12-06T10:00:01.520Z' }),
    s({ type: 'error', topic: 'orders', error: { code: 'SLOW_CONSUMER', message: 'dropped 17 messages' }, ts: '2026-12-06T10:00:02.000Z' }),
  ),
  '',
  '### pong',
  session(s({ type: 'pong', request_id: 'r-6', ts: '2026-12-06T10:00:01.600Z' })),
  '',
  '### info',
  'Notices the client did not ask for: see "Info notices".',
].join('\n'));

const infoNotices = doc('Info notices', [
  '`{"type":"info","msg":...}` frames. A client ignores a `msg` it does not know.',
  '',
  '### ping',
  'The heartbeat, every `PUBSUB_HEARTBEAT_INTERVAL` (30 s); the server also sends WebSocket pings',
  '(`PUBSUB_WS_PING_INTERVAL`) and drops a peer that does not answer within `PUBSUB_WS_PING_TIMEOUT`.',
  session(s({ type: 'info', msg: 'ping', ts: '2026-12-06T10:00:30.000Z' })),
  '',
  '### topic_deleted',
  'The topic was deleted: the subscription ended, the connection stays open.',
  session(s({ type: 'info', topic: 'orders', msg: 'topic_deleted', ts: '2026-12-06T10:00:40.000Z' })),
  '',
  '### subscription_replaced (extension)',
  'Another connection subscribed with the same `client_id` and took the subscription over (events',
  'queued before are still delivered first).',
  session(s({ type: 'info', topic: 'orders', msg: 'subscription_replaced', ts: '2026-12-06T10:00:41.000Z' })),
  '',
  '### unsubscribed (extension)',
  'Another connection of the same principal unsubscribed this connection\'s `client_id`.',
  session(s({ type: 'info', topic: 'orders', msg: 'unsubscribed', ts: '2026-12-06T10:00:42.000Z' })),
  '',
  '### server_shutdown',
  'The server drains: queued events were flushed, a close frame 1001 follows. Reconnect (to another',
  'replica) and resume with `since_seq`.',
  session(s({ type: 'info', msg: 'server_shutdown', ts: '2026-12-06T10:00:50.000Z' })),
  '',
  '### gap (extension, Redis engine)',
  'Events `from_seq` to `to_seq` cannot be delivered (this replica missed them and the history no longer',
  'holds them); it comes in order, right after event `from_seq - 1`.',
  session(s({ type: 'info', topic: 'orders', msg: 'gap', from_seq: 41, to_seq: 44, ts: '2026-12-06T10:00:43.000Z' })),
  '',
  '### discontinuity (extension, Redis engine)',
  'The stream the subscriber followed ended (the topic was deleted and created again while this replica',
  'was cut off, or Redis lost acknowledged writes); the events that follow belong to the new `epoch`.',
  session(s({ type: 'info', topic: 'orders', msg: 'discontinuity', epoch: 'c41d2e3f4a5b6c7d', ts: '2026-12-06T10:00:44.000Z' })),
].join('\n'));

const errorCodes = doc('Error codes', [
  'The `error.code` of an `error` frame (and of the REST error body, with its HTTP status).',
  '',
  '| code | over WebSocket | over REST |',
  '|---|---|---|',
  '| `BAD_REQUEST` | malformed JSON, a binary frame, an unknown `type`, a missing or invalid field | 400 |',
  '| `UNAUTHORIZED` | the principal may not publish to, subscribe to or unsubscribe from the topic, or take over another principal\'s `client_id` | 401 (403 for a foreign origin on `/ws`) |',
  '| `TOPIC_NOT_FOUND` | subscribe, unsubscribe or publish on a topic that does not exist | 404 |',
  '| `TOPIC_EXISTS` | (REST only) | 409 |',
  '| `PAYLOAD_TOO_LARGE` | (REST only; a frame too large closes with 1009) | 413 |',
  '| `SLOW_CONSUMER` | the queue overflowed: `drop_oldest` says how many were dropped, `disconnect` closes with 1008 next | |',
  '| `RATE_LIMITED` (extension) | a limit: publish rate, topics, subscriptions, subscriptions per connection, event memory; the message names it | 429 |',
  '| `UNAVAILABLE` | (REST only: the server drains or its engine does not take work; over WebSocket that is `INTERNAL`) | 503 |',
  '| `INTERNAL` | an unexpected failure, also while shutting down | 500 |',
  '',
  session(
    s({ type: 'error', request_id: 'r-12', error: { code: 'BAD_REQUEST', message: 'last_n must be a non-negative integer' }, ts: '2026-12-06T10:00:01.000Z' }),
    s({ type: 'error', request_id: 'r-13', error: { code: 'BAD_REQUEST', message: 'epoch is required with since_seq: send the epoch of the ack that gave you the seq' }, ts: '2026-12-06T10:00:01.000Z' }),
    s({ type: 'error', request_id: 'r-14', error: { code: 'BAD_REQUEST', message: 'unknown type "jump": expected subscribe, unsubscribe, publish or ping' }, ts: '2026-12-06T10:00:01.000Z' }),
    s({ type: 'error', request_id: 'r-15', error: { code: 'UNAUTHORIZED', message: 'principal "ingest" may not subscribe to topic "payments"' }, ts: '2026-12-06T10:00:01.000Z' }),
    s({ type: 'error', request_id: 'r-16', error: { code: 'RATE_LIMITED', message: 'publish rate limit reached (10000 a second, bursts of 1000); slow down and retry' }, ts: '2026-12-06T10:00:01.000Z' }),
    s({ type: 'error', request_id: 'r-17', error: { code: 'INTERNAL', message: 'server is shutting down' }, ts: '2026-12-06T10:00:01.000Z' }),
  ),
].join('\n'));

const closeCodes = doc('Close codes', [
  'The close frames the server sends, and why.',
  '',
  '| code | reason | when |',
  '|---|---|---|',
  '| 1001 | `server shutting down` | graceful shutdown, after `server_shutdown` and the queued events |',
  '| 1002 | the violation | a WebSocket protocol violation: an unmasked client frame, reserved bits, a fragmented or oversized control frame, a bad close code |',
  '| 1007 | `text message is not valid UTF-8` | never stored or relayed |',
  '| 1008 | `slow consumer` | the `disconnect` overflow policy, after the `SLOW_CONSUMER` error |',
  '| 1008 | `replies not read` | 4096 replies or `PUBSUB_MAX_REPLY_BYTES` of them wait and the socket has no room |',
  '| 1008 | `message not complete within PUBSUB_MESSAGE_TIMEOUT` | a message begun and not finished in time |',
  '| 1009 | `message too big (PUBSUB_MAX_FRAME_BYTES)` | a frame over the limit |',
  '| 1011 | `internal error` | a fault in the connection (it is logged; the process goes on) |',
  '| 1013 | `server buffer memory exhausted (PUBSUB_MAX_BUFFER_BYTES); try again later` | the connection-buffer budget is spent |',
  '',
  'A peer that stops answering WebSocket pings, or a write that exceeds `PUBSUB_WRITE_TIMEOUT`, is cut',
  'without a close frame (the client sees 1006).',
].join('\n'));

// folder returns the "WebSocket /ws" folder.
function folder() {
  return { name: 'WebSocket /ws', description: overview, item: [clientFrames, serverFrames, infoNotices, errorCodes, closeCodes] };
}

module.exports = { folder };
