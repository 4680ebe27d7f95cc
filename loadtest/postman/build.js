#!/usr/bin/env node
// Builds the Postman collection (v2.1) of the REST API and its environment file from this one
// source: `node build.js` writes pubsub.postman_collection.json and pubsub.postman_environment.json.
//
// Why a generator and not the JSON by hand: Postman stores every script as an array of lines
// inside a JSON string, where a typo is found only when newman runs it. Here the scripts are real
// functions, which Node parses when it loads this file, and the assertions every request shares
// (an error's shape, a Link header) are written once. The test (test/collection.test.js) holds
// the committed JSON to what this file builds, so the two cannot drift. A change made in the
// Postman app is brought back here by hand: export, diff, edit.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

// The contract's error codes (PROTOCOL.md), RATE_LIMITED being ours.
const CODES = ['BAD_REQUEST', 'UNAUTHORIZED', 'TOPIC_NOT_FOUND', 'TOPIC_EXISTS', 'PAYLOAD_TOO_LARGE',
  'RATE_LIMITED', 'UNAVAILABLE', 'INTERNAL'];

// JSON Schemas of the bodies, strict (additionalProperties false): a field the service adds must
// be added here too, so the collection documents the API as it is.
const nameSchema = { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,255}$' };
const count = { type: 'integer', minimum: 0 };
const SCHEMAS = {
  error: {
    type: 'object', required: ['error'], additionalProperties: false,
    properties: {
      error: {
        type: 'object', required: ['code', 'message'], additionalProperties: false,
        properties: { code: { enum: CODES }, message: { type: 'string', minLength: 1 } },
      },
    },
  },
  topicStatus: {
    type: 'object', required: ['status', 'topic'], additionalProperties: false,
    properties: { status: { enum: ['created', 'deleted'] }, topic: nameSchema },
  },
  topicList: {
    type: 'object', required: ['topics'], additionalProperties: false,
    properties: {
      topics: {
        type: 'array',
        items: {
          type: 'object', required: ['name', 'subscribers'], additionalProperties: false,
          properties: { name: nameSchema, subscribers: count },
        },
      },
      next: nameSchema,
    },
  },
  stats: {
    type: 'object', required: ['topics'], additionalProperties: false,
    properties: {
      topics: {
        type: 'object', propertyNames: nameSchema,
        additionalProperties: {
          type: 'object', required: ['messages', 'subscribers'], additionalProperties: false,
          properties: { messages: count, subscribers: count },
        },
      },
      next: nameSchema,
    },
  },
  health: {
    type: 'object', required: ['uptime_sec', 'topics', 'subscribers'], additionalProperties: false,
    properties: { uptime_sec: count, topics: count, subscribers: count },
  },
  // The API documents: only their kind and version here; the Go tests hold them to the service.
  openapi: {
    type: 'object', required: ['openapi', 'info', 'paths'],
    properties: { openapi: { type: 'string', pattern: '^3\\.1\\.' }, info: { type: 'object', required: ['title', 'version'] }, paths: { type: 'object' } },
  },
  asyncapi: {
    type: 'object', required: ['asyncapi', 'info', 'channels'],
    properties: { asyncapi: { type: 'string', pattern: '^3\\.0\\.' }, info: { type: 'object', required: ['title', 'version'] }, channels: { type: 'object' } },
  },
  livez: { type: 'object', required: ['status'], additionalProperties: false, properties: { status: { const: 'ok' } } },
  readyz: { type: 'object', required: ['status'], additionalProperties: false, properties: { status: { const: 'ready' } } },
};

// The WWW-Authenticate challenge of every 401 (internal/auth.Challenge).
const CHALLENGE = 'APIKey realm="pubsub", header="X-API-Key", Bearer realm="pubsub"';

// A key the server cannot hold: the authentication requests send it as the wrong one.
const WRONG_KEY = 'postman-wrong-key-0000000000000000';

// lines returns the body of fn as script lines, de-indented, after a const line for each entry
// of consts: that is how a script gets the values of this file (schemas, codes).
function lines(fn, consts = {}) {
  const src = fn.toString();
  const body = src.slice(src.indexOf('{') + 1, src.lastIndexOf('}')).split('\n');
  while (body.length && body[0].trim() === '') body.shift();
  while (body.length && body[body.length - 1].trim() === '') body.pop();
  const indent = Math.min(...body.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length));
  const head = Object.entries(consts).map(([k, v]) => `const ${k} = ${JSON.stringify(v)};`);
  return [...head, ...body.map((l) => l.slice(indent).trimEnd())];
}

function event(listen, exec) {
  return { listen, script: { type: 'text/javascript', exec } };
}

// Test-script parts the requests share. Each returns lines.

// expectError: the status, the error body's shape, its code, and the message matching re.
function expectError(status, code, re) {
  return lines(function () {
    pm.test(`${STATUS} ${CODE}`, function () {
      pm.response.to.have.status(STATUS);
      pm.response.to.have.jsonSchema(SCHEMA);
      pm.expect(pm.response.json().error.code).to.eql(CODE);
    });
    pm.test('the message says why', function () {
      pm.expect(pm.response.json().error.message).to.match(new RegExp(MESSAGE));
    });
  }, { STATUS: status, CODE: code, SCHEMA: SCHEMAS.error, MESSAGE: re });
}

// expectChallenge: a 401 names the ways to authenticate, and is not a challenge a browser would
// answer with a login box (no Basic).
const expectChallenge = lines(function () {
  pm.test('WWW-Authenticate names the X-API-Key header and bearer tokens', function () {
    pm.response.to.have.header('WWW-Authenticate', CHALLENGE);
  });
}, { CHALLENGE });

// expectPage: a paged answer has a Link header (rel=next) exactly when its body has next, and the
// link repeats the limit and continues after next. The link's path is kept in the variable named
// VAR for the request that follows it.
function expectPage(route, varName) {
  return lines(function () {
    pm.test('a Link header (rel="next") exactly when the body has next', function () {
      const next = pm.response.json().next;
      if (next === undefined) {
        pm.expect(pm.response.headers.has('Link'), 'Link without next').to.be.false;
        return;
      }
      const link = pm.response.headers.get('Link');
      pm.expect(link, 'next without Link').to.be.a('string');
      const m = /^<([^>]+)>; rel="next"$/.exec(link);
      pm.expect(m, 'Link is <url>; rel="next"').to.not.be.null;
      // The sandbox has no URL class: the link is a path and a query of Go's url.Values.Encode.
      const [linkPath, linkQuery] = m[1].split('?');
      const params = {};
      for (const kv of (linkQuery || '').split('&')) {
        const [k, v] = kv.split('=').map((x) => decodeURIComponent((x || '').replace(/\+/g, ' ')));
        params[k] = v;
      }
      pm.expect(linkPath).to.eql(ROUTE);
      pm.expect(params.after).to.eql(next);
      const limit = pm.request.url.query.get('limit');
      if (limit) {
        pm.expect(params.limit).to.eql(limit);
      }
      if (VAR) {
        pm.collectionVariables.set(VAR, m[1]);
      }
    });
  }, { ROUTE: route, VAR: varName || '' });
}

// The request builder.

// url turns a path with an optional query (variables allowed) into Postman's URL object.
function url(p) {
  const [pathPart, query] = p.split('?');
  const u = {
    raw: '{{baseUrl}}' + p,
    host: ['{{baseUrl}}'],
    path: pathPart.split('/').filter(Boolean),
  };
  if (query) {
    u.query = query.split('&').map((kv) => {
      const [key, value] = kv.split('=');
      return { key, value };
    });
  }
  return u;
}

// A key header sent on top of (and instead of) the collection's own: the wrong key.
const wrongKeyAuth = {
  type: 'apikey',
  apikey: [
    { key: 'key', value: 'X-API-Key', type: 'string' },
    { key: 'value', value: '{{wrongApiKey}}', type: 'string' },
    { key: 'in', value: 'header', type: 'string' },
  ],
};

// request builds one item. r: name, method, path (or rawUrl: a variable holding a path), body,
// headers, auth ('none' | 'wrong' | inherited when absent), description, pre and test (lines),
// and example: the answer shown in Postman as the saved example {status, body}.
function request(r) {
  const header = [];
  if (r.body !== undefined) header.push({ key: 'Content-Type', value: 'application/json' });
  for (const [key, value] of Object.entries(r.headers || {})) header.push({ key, value });
  const req = {
    method: r.method,
    header,
    url: r.rawUrl ? '{{baseUrl}}' + r.rawUrl : url(r.path),
    description: r.description,
  };
  if (r.body !== undefined) req.body = { mode: 'raw', raw: r.body, options: { raw: { language: 'json' } } };
  if (r.auth === 'none') req.auth = { type: 'noauth' };
  if (r.auth === 'wrong') req.auth = wrongKeyAuth;
  const item = { name: r.name, event: [], request: req, response: [] };
  if (r.pre) item.event.push(event('prerequest', r.pre));
  item.event.push(event('test', r.test));
  if (r.example) {
    const status = { 200: 'OK', 201: 'Created', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
      404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 413: 'Request Entity Too Large' }[r.example.status];
    const exHeader = [{ key: 'Content-Type', value: 'application/json' }, { key: 'X-Content-Type-Options', value: 'nosniff' }];
    for (const [key, value] of Object.entries(r.example.headers || {})) exHeader.push({ key, value });
    item.response.push({
      name: `${r.example.status} ${status}`,
      originalRequest: { method: req.method, header: req.header, url: req.url, body: req.body },
      status, code: r.example.status, _postman_previewlanguage: 'json',
      header: exHeader, cookie: [],
      body: JSON.stringify(r.example.body, null, 2),
    });
  }
  return item;
}

function folder(name, description, item, extra = {}) {
  return { name, description, item, ...extra };
}

// The requests, in the order a run makes them: probes, topics created, listed and paged, stats
// and health, every refusal, authentication, and the cleanup that leaves the server as found.

const probes = folder('Probes', [
  'The probes answer without authentication (the kubelet has no key): this folder sends none.',
  '`/readyz` answers `503 UNAVAILABLE` while the process drains or its engine does not take work;',
  'a run against a serving process sees 200.',
].join('\n'), [
  request({
    name: 'Liveness', method: 'GET', path: '/livez', auth: 'none',
    description: 'Answers as long as the process serves HTTP; depends on nothing outside it.',
    test: lines(function () {
      pm.test('200 {"status":"ok"}', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
      });
    }, { SCHEMA: SCHEMAS.livez }),
    example: { status: 200, body: { status: 'ok' } },
  }),
  request({
    name: 'Readiness', method: 'GET', path: '/readyz', auth: 'none',
    description: '200 when the process takes new work; `503 UNAVAILABLE` with the reason while draining or while the engine (Redis) does not.',
    test: lines(function () {
      pm.test('200 {"status":"ready"}', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
      });
    }, { SCHEMA: SCHEMAS.readyz }),
    example: { status: 200, body: { status: 'ready' } },
  }),
]);

// created: the test of a create that must succeed for the topic in variable v.
function created(v) {
  return lines(function () {
    pm.test('201 {"status":"created"} naming the topic', function () {
      pm.response.to.have.status(201);
      pm.response.to.have.jsonSchema(SCHEMA);
      pm.expect(pm.response.json()).to.eql({ status: 'created', topic: pm.variables.get(VAR) });
    });
  }, { SCHEMA: SCHEMAS.topicStatus, VAR: v });
}

const descriptions = folder('API descriptions', [
  'The OpenAPI 3.1 document of this REST API and the AsyncAPI 3.0 document of `/ws`, served open (with',
  'or without authentication: they hold no data) exactly as they are in the source tree',
  '(`internal/transport/httpapi/api/`). This folder sends no key.',
].join('\n'), [
  request({
    name: 'OpenAPI document', method: 'GET', path: '/openapi.json', auth: 'none',
    description: 'Import it into Postman (Import > Link) to get a request per operation, or feed it to a code generator.',
    test: lines(function () {
      pm.test('200 and an OpenAPI 3.1 document', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
      });
      pm.test('it describes the routes this collection calls', function () {
        const paths = Object.keys(pm.response.json().paths);
        pm.expect(paths).to.include.members(['/topics', '/topics/{name}', '/health', '/stats', '/livez', '/readyz', '/ws']);
      });
    }, { SCHEMA: SCHEMAS.openapi }),
    example: { status: 200, body: { openapi: '3.1.0', info: { title: 'pubsub REST API', version: '1.0.0' }, paths: {} } },
  }),
  request({
    name: 'AsyncAPI document', method: 'GET', path: '/asyncapi.json', auth: 'none',
    description: 'Every frame of `/ws`, its fields and the extensions; the "WebSocket /ws" folder below shows them by example.',
    test: lines(function () {
      pm.test('200 and an AsyncAPI 3.0 document', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
      });
      pm.test('it has the /ws channel', function () {
        const channels = Object.values(pm.response.json().channels);
        pm.expect(channels.map((c) => c.address)).to.include('/ws');
      });
    }, { SCHEMA: SCHEMAS.asyncapi }),
    example: { status: 200, body: { asyncapi: '3.0.0', info: { title: 'pubsub WebSocket API', version: '1.0.0' }, channels: {} } },
  }),
]);

const topics = folder('Topics', [
  'Creates this run\'s four topics and lists them, whole and by pages.',
  '',
  'Every run names its topics anew (`postman-<run>-a` ... `-d`, made by the pre-request script of',
  '"Create a topic"), so the collection can run any number of times against the same server, and',
  'the "Cleanup" folder deletes them at the end. The pages start `after` the run\'s prefix, so other',
  'topics on the server never change what a page holds.',
].join('\n'), [
  request({
    name: 'Create a topic', method: 'POST', path: '/topics', body: '{"name":"{{topic}}"}',
    description: 'Needs the manage scope when authentication is on. Names: 1-255 characters of `A-Z a-z 0-9 . _ - :`; unknown body fields are ignored.',
    pre: lines(function () {
      // A new name for every run (and every iteration): the collection is idempotent.
      const run = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
      const prefix = 'postman-' + run + '-';
      pm.collectionVariables.set('prefix', prefix);
      pm.collectionVariables.set('topic', prefix + 'a');
      pm.collectionVariables.set('topicB', prefix + 'b');
      // Every character class a name may hold.
      pm.collectionVariables.set('topicC', prefix + 'c.Z_9:x');
      // The longest name there is.
      pm.collectionVariables.set('topicD', (prefix + 'd').padEnd(255, 'x'));
      pm.collectionVariables.set('wrongApiKey', WRONG_KEY);
    }, { WRONG_KEY }),
    test: created('topic'),
    example: { status: 201, body: { status: 'created', topic: 'orders' } },
  }),
  request({
    name: 'Create a second topic', method: 'POST', path: '/topics', body: '{"name":"{{topicB}}","ignored":true}',
    description: 'Unknown fields in the body are ignored, as the contract says.',
    test: created('topicB'),
    example: { status: 201, body: { status: 'created', topic: 'orders.eu' } },
  }),
  request({
    name: 'Create a topic with every allowed character', method: 'POST', path: '/topics', body: '{"name":"{{topicC}}"}',
    test: created('topicC'),
    example: { status: 201, body: { status: 'created', topic: 'orders.EU_1:x' } },
  }),
  request({
    name: 'Create a topic with the longest name (255)', method: 'POST', path: '/topics', body: '{"name":"{{topicD}}"}',
    test: created('topicD'),
    example: { status: 201, body: { status: 'created', topic: 'x'.repeat(255) } },
  }),
  request({
    name: 'Create an existing topic: 409', method: 'POST', path: '/topics', body: '{"name":"{{topic}}"}',
    test: [...expectError(409, 'TOPIC_EXISTS', 'already exists'), ...lines(function () {
      pm.test('the message names the topic', function () {
        pm.expect(pm.response.json().error.message).to.include(pm.variables.get('topic'));
      });
    })],
    example: { status: 409, body: { error: { code: 'TOPIC_EXISTS', message: 'topic "orders" already exists' } } },
  }),
  request({
    name: 'List topics', method: 'GET', path: '/topics',
    description: [
      'Every topic with its subscriber count, sorted by name. Without `limit` and `after`, a server with',
      'at most `PUBSUB_LIST_PAGE_MAX` (1000) topics answers them all, exactly the contract\'s body; above',
      'that, the first page, `next` and a Link header.',
    ].join('\n'),
    test: [...lines(function () {
      pm.test('200 and a topic list', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
      });
      pm.test('sorted by name', function () {
        const names = pm.response.json().topics.map((t) => t.name);
        pm.expect(names).to.eql(names.slice().sort());
      });
      pm.test('holds this run\'s topics, with no subscribers', function () {
        const body = pm.response.json();
        if (body.next !== undefined && pm.variables.get('topicD') > body.next) {
          return; // a server with more topics than one page: the pages below check them
        }
        const ours = body.topics.filter((t) => t.name.startsWith(pm.variables.get('prefix')));
        pm.expect(ours).to.eql(['topic', 'topicB', 'topicC', 'topicD'].map((v) => ({ name: pm.variables.get(v), subscribers: 0 })));
      });
    }, { SCHEMA: SCHEMAS.topicList }), ...expectPage('/topics')],
    example: { status: 200, body: { topics: [{ name: 'orders', subscribers: 3 }] } },
  }),
  request({
    name: 'List topics, first page', method: 'GET', path: '/topics?after={{prefix}}&limit=2',
    description: [
      'Paging (ours): `limit` (1 to `PUBSUB_LIST_PAGE_MAX`; more is lowered to it) and `after` (a topic',
      'name: the page starts after it). When more follow, `next` holds the cursor and the Link header',
      '(RFC 8288) the URL of the next page.',
    ].join('\n'),
    test: [...lines(function () {
      pm.test('200, the run\'s first two topics, and next', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
        pm.expect(pm.response.json()).to.eql({
          topics: [{ name: pm.variables.get('topic'), subscribers: 0 }, { name: pm.variables.get('topicB'), subscribers: 0 }],
          next: pm.variables.get('topicB'),
        });
      });
    }, { SCHEMA: SCHEMAS.topicList }), ...expectPage('/topics', 'topicsNext')],
    example: {
      status: 200, headers: { Link: '</topics?after=orders.eu&limit=2>; rel="next"' },
      body: { topics: [{ name: 'orders', subscribers: 3 }, { name: 'orders.eu', subscribers: 0 }], next: 'orders.eu' },
    },
  }),
  request({
    name: 'List topics, next page (from the Link header)', method: 'GET', rawUrl: '{{topicsNext}}',
    description: 'Follows the Link header of the first page as it came.',
    test: [...lines(function () {
      pm.test('200 and the run\'s other two topics', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
        pm.expect(pm.response.json().topics).to.eql([
          { name: pm.variables.get('topicC'), subscribers: 0 }, { name: pm.variables.get('topicD'), subscribers: 0 }]);
      });
    }, { SCHEMA: SCHEMAS.topicList }), ...expectPage('/topics')],
    example: { status: 200, body: { topics: [{ name: 'payments', subscribers: 1 }] } },
  }),
]);

const statsAndHealth = folder('Stats and health', 'Per-topic counters, and the process\'s totals.', [
  request({
    name: 'Stats', method: 'GET', path: '/stats',
    description: '`messages` counts the messages a topic accepted since it was created; `subscribers` its subscriptions. Paged like `GET /topics`.',
    test: [...lines(function () {
      pm.test('200 and stats by topic', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
      });
      pm.test('this run\'s topics: no message, no subscriber', function () {
        const body = pm.response.json();
        if (body.next !== undefined && pm.variables.get('topicD') > body.next) {
          return; // more topics than one page: the pages below check them
        }
        for (const v of ['topic', 'topicB', 'topicC', 'topicD']) {
          pm.expect(body.topics[pm.variables.get(v)], v).to.eql({ messages: 0, subscribers: 0 });
        }
      });
    }, { SCHEMA: SCHEMAS.stats }), ...expectPage('/stats')],
    example: { status: 200, body: { topics: { orders: { messages: 42, subscribers: 3 } } } },
  }),
  request({
    name: 'Stats, first page', method: 'GET', path: '/stats?after={{prefix}}&limit=2',
    test: [...lines(function () {
      pm.test('200, the run\'s first two topics, and next', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
        const want = { topics: {}, next: pm.variables.get('topicB') };
        want.topics[pm.variables.get('topic')] = { messages: 0, subscribers: 0 };
        want.topics[pm.variables.get('topicB')] = { messages: 0, subscribers: 0 };
        pm.expect(pm.response.json()).to.eql(want);
      });
    }, { SCHEMA: SCHEMAS.stats }), ...expectPage('/stats', 'statsNext')],
    example: {
      status: 200, headers: { Link: '</stats?after=orders.eu&limit=2>; rel="next"' },
      body: { topics: { orders: { messages: 42, subscribers: 3 }, 'orders.eu': { messages: 0, subscribers: 0 } }, next: 'orders.eu' },
    },
  }),
  request({
    name: 'Stats, next page (from the Link header)', method: 'GET', rawUrl: '{{statsNext}}',
    test: [...lines(function () {
      pm.test('200 and the run\'s other two topics', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
        const topics = pm.response.json().topics;
        const names = Object.keys(topics).sort();
        pm.expect(names.slice(0, 2)).to.eql([pm.variables.get('topicC'), pm.variables.get('topicD')]);
        pm.expect(names.length).to.be.at.most(2);
      });
    }, { SCHEMA: SCHEMAS.stats }), ...expectPage('/stats')],
    example: { status: 200, body: { topics: { payments: { messages: 7, subscribers: 1 } } } },
  }),
  request({
    name: 'Health', method: 'GET', path: '/health',
    description: '`subscribers` is the sum over all topics; `uptime_sec` the process\'s whole seconds.',
    test: lines(function () {
      pm.test('200 and the totals', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
      });
      pm.test('counts this run\'s four topics', function () {
        pm.expect(pm.response.json().topics).to.be.at.least(4);
      });
    }, { SCHEMA: SCHEMAS.health }),
    example: { status: 200, body: { uptime_sec: 123, topics: 2, subscribers: 4 } },
  }),
]);

const errors = folder('Errors', [
  'Every refusal a client can provoke over REST: the contract\'s error body `{"error":{"code","message"}}`,',
  'with the status of its code. Paths and methods the API does not have keep their HTTP status (404,',
  '405) with the code `BAD_REQUEST`. `GET /ws` without a WebSocket handshake is refused before any',
  'upgrade. (429 with `Retry-After` is what `/ws` answers when a connection limit is reached; no REST',
  'request can meet it, so it is documented in the WebSocket folder.)',
].join('\n'), [
  request({
    name: 'Create with a bad name: 400', method: 'POST', path: '/topics', body: '{"name":"bad name"}',
    test: expectError(400, 'BAD_REQUEST', 'character outside A-Z a-z 0-9 \\. _ - :'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'topic name "bad name" has a character outside A-Z a-z 0-9 . _ - :' } } },
  }),
  request({
    name: 'Create with a name too long (256): 400', method: 'POST', path: '/topics', body: '{"name":"{{longName}}"}',
    pre: lines(function () {
      pm.variables.set('longName', 'x'.repeat(256));
    }),
    test: expectError(400, 'BAD_REQUEST', 'the limit is 255'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'topic name is 256 characters long; the limit is 255' } } },
  }),
  request({
    name: 'Create without a name: 400', method: 'POST', path: '/topics', body: '{}',
    test: expectError(400, 'BAD_REQUEST', '^name is required$'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'name is required' } } },
  }),
  request({
    name: 'Create with a name that is not a string: 400', method: 'POST', path: '/topics', body: '{"name":42}',
    test: expectError(400, 'BAD_REQUEST', '^name must be a string$'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'name must be a string' } } },
  }),
  request({
    name: 'Create with a body that is not JSON: 400', method: 'POST', path: '/topics', body: '{"name":',
    test: expectError(400, 'BAD_REQUEST', 'not valid JSON'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'request body is not valid JSON' } } },
  }),
  request({
    name: 'Create with no body: 400', method: 'POST', path: '/topics', body: '',
    test: expectError(400, 'BAD_REQUEST', 'must be JSON like'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'request body must be JSON like {"name":"orders"}' } } },
  }),
  request({
    name: 'Create with a body too large: 413', method: 'POST', path: '/topics', body: '{{bigBody}}',
    description: 'A body over `PUBSUB_MAX_BODY_BYTES` (64 KiB; the environment\'s `maxBodyBytes` says the server\'s) is refused before it is read.',
    pre: lines(function () {
      const max = Number(pm.variables.get('maxBodyBytes') || 65536);
      // A name of this run's: should a server take the body after all, the test fails, and a run
      // after it is not refused for a topic this one left.
      pm.variables.set('bigBody', JSON.stringify({ name: pm.variables.get('prefix') + 'big', pad: 'a'.repeat(max) }));
    }),
    test: expectError(413, 'PAYLOAD_TOO_LARGE', 'larger than \\d+ bytes'),
    example: { status: 413, body: { error: { code: 'PAYLOAD_TOO_LARGE', message: 'request body is larger than 65536 bytes' } } },
  }),
  request({
    name: 'Delete an unknown topic: 404', method: 'DELETE', path: '/topics/{{prefix}}missing',
    test: [...expectError(404, 'TOPIC_NOT_FOUND', 'does not exist'), ...lines(function () {
      pm.test('the message names the topic', function () {
        pm.expect(pm.response.json().error.message).to.include(pm.variables.get('prefix') + 'missing');
      });
    })],
    example: { status: 404, body: { error: { code: 'TOPIC_NOT_FOUND', message: 'topic "orders" does not exist' } } },
  }),
  request({
    name: 'Delete with a bad name: 400', method: 'DELETE', path: '/topics/bad*name',
    test: expectError(400, 'BAD_REQUEST', 'character outside'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'topic name "bad*name" has a character outside A-Z a-z 0-9 . _ - :' } } },
  }),
  request({
    name: 'List with a bad limit: 400', method: 'GET', path: '/topics?limit=0',
    test: expectError(400, 'BAD_REQUEST', '^limit must be a positive integer'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'limit must be a positive integer (at most 1000)' } } },
  }),
  request({
    name: 'List after a bad name: 400', method: 'GET', path: '/topics?after=bad*name',
    test: expectError(400, 'BAD_REQUEST', '^after must be a topic name'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'after must be a topic name: topic name "bad*name" has a character outside A-Z a-z 0-9 . _ - :' } } },
  }),
  request({
    name: 'Stats with a bad limit: 400', method: 'GET', path: '/stats?limit=many',
    test: expectError(400, 'BAD_REQUEST', '^limit must be a positive integer'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'limit must be a positive integer (at most 1000)' } } },
  }),
  request({
    name: 'A path the API does not have: 404', method: 'GET', path: '/nope',
    test: expectError(404, 'BAD_REQUEST', 'no such endpoint: /nope'),
    example: { status: 404, body: { error: { code: 'BAD_REQUEST', message: 'no such endpoint: /nope' } } },
  }),
  request({
    name: 'A method the path does not take: 405', method: 'PUT', path: '/topics',
    test: expectError(405, 'BAD_REQUEST', 'method PUT is not allowed on /topics'),
    example: { status: 405, body: { error: { code: 'BAD_REQUEST', message: 'method PUT is not allowed on /topics' } } },
  }),
  request({
    name: 'GET /ws without a WebSocket handshake: 400', method: 'GET', path: '/ws',
    description: '`/ws` is the WebSocket endpoint (see the "WebSocket /ws" folder); a plain GET is refused, with the reason.',
    test: expectError(400, 'BAD_REQUEST', '^websocket handshake failed'),
    example: { status: 400, body: { error: { code: 'BAD_REQUEST', message: "websocket handshake failed: websocket: the client is not using the websocket protocol: 'upgrade' token not found in 'Connection' header" } } },
  }),
  request({
    name: 'GET /ws from a foreign origin: 403', method: 'GET', path: '/ws', headers: { Origin: 'https://elsewhere.example' },
    description: 'A browser page from another origin may not open `/ws` unless `PUBSUB_ALLOWED_ORIGINS` names it: 403 (no credential would help), before any upgrade.',
    test: expectError(403, 'UNAUTHORIZED', 'origin https://elsewhere.example may not open /ws'),
    example: { status: 403, body: { error: { code: 'UNAUTHORIZED', message: 'origin https://elsewhere.example may not open /ws (PUBSUB_ALLOWED_ORIGINS)' } } },
  }),
]);

const unauthorized = (re) => [...expectError(401, 'UNAUTHORIZED', re), ...expectChallenge];
const missingExample = {
  status: 401, headers: { 'WWW-Authenticate': CHALLENGE },
  body: { error: { code: 'UNAUTHORIZED', message: 'authentication required: send an X-API-Key header or a token' } },
};
const wrongExample = { ...missingExample, body: { error: { code: 'UNAUTHORIZED', message: 'the API key is not valid' } } };

const authentication = folder('Authentication', [
  'With authentication on (`PUBSUB_API_KEY`, `PUBSUB_API_KEYS_FILE` or `PUBSUB_TOKEN_KEY_FILE`), every',
  'request but the probes carries `X-API-Key` (the collection sends the environment\'s `apiKey`) or',
  '`Authorization: Bearer <token>`. A missing or wrong credential is `401 UNAUTHORIZED` with a',
  '`WWW-Authenticate` header; `/ws` refuses it before any upgrade.',
  '',
  'When `apiKey` is empty (a server with authentication off), this folder\'s requests are skipped.',
].join('\n'), [
  request({
    name: 'List topics without a key: 401', method: 'GET', path: '/topics', auth: 'none',
    test: unauthorized('^authentication required'), example: missingExample,
  }),
  request({
    name: 'List topics with a wrong key: 401', method: 'GET', path: '/topics', auth: 'wrong',
    test: unauthorized('^the API key is not valid$'), example: wrongExample,
  }),
  request({
    name: 'Create a topic with a wrong key: 401', method: 'POST', path: '/topics', auth: 'wrong',
    body: '{"name":"{{prefix}}refused"}',
    test: unauthorized('^the API key is not valid$'), example: wrongExample,
  }),
  request({
    name: 'Delete a topic without a key: 401', method: 'DELETE', path: '/topics/{{topic}}', auth: 'none',
    description: 'The topic is still there after: the "Cleanup" folder deletes it with the key.',
    test: unauthorized('^authentication required'), example: missingExample,
  }),
  request({
    name: 'Stats without a key: 401', method: 'GET', path: '/stats', auth: 'none',
    test: unauthorized('^authentication required'), example: missingExample,
  }),
  request({
    name: 'Health with a wrong key: 401', method: 'GET', path: '/health', auth: 'wrong',
    test: unauthorized('^the API key is not valid$'), example: wrongExample,
  }),
  request({
    name: 'Bearer token that is not one: 401', method: 'GET', path: '/topics', auth: 'none',
    headers: { Authorization: 'Bearer not-a-token' },
    description: 'Browser tokens (JWT, HS256) are minted by `pubsubd token` or `pubsubctl token` from `PUBSUB_TOKEN_KEY_FILE`.',
    test: unauthorized('token'),
    example: { ...missingExample, body: { error: { code: 'UNAUTHORIZED', message: 'tokens are not accepted: the server has no token key' } } },
  }),
  request({
    name: 'GET /ws without a key: 401', method: 'GET', path: '/ws', auth: 'none',
    description: 'The handshake is authenticated before the upgrade: a client without a credential never gets a socket.',
    test: unauthorized('^authentication required'), example: missingExample,
  }),
], {
  event: [event('prerequest', lines(function () {
    if (!pm.variables.get('apiKey')) {
      console.info('apiKey is empty (authentication off): skipping ' + pm.info.requestName);
      pm.execution.skipRequest();
    }
  }))],
});

// deleted: the test of a delete that must succeed for the topic in variable v.
function deleted(v) {
  return lines(function () {
    pm.test('200 {"status":"deleted"} naming the topic', function () {
      pm.response.to.have.status(200);
      pm.response.to.have.jsonSchema(SCHEMA);
      pm.expect(pm.response.json()).to.eql({ status: 'deleted', topic: pm.variables.get(VAR) });
    });
  }, { SCHEMA: SCHEMAS.topicStatus, VAR: v });
}

const cleanup = folder('Cleanup', 'Deletes this run\'s topics: the server is left as the run found it.', [
  ...[['topic', 'a'], ['topicB', 'b'], ['topicC', 'c'], ['topicD', 'd']].map(([v, s]) => request({
    name: `Delete topic ${s}`, method: 'DELETE', path: `/topics/{{${v}}}`,
    description: s === 'a' ? 'Needs the manage scope. Subscribers of the topic get `{"type":"info","msg":"topic_deleted"}` and stay connected; a topic created again starts empty.' : undefined,
    test: deleted(v),
    example: { status: 200, body: { status: 'deleted', topic: 'orders' } },
  })),
  request({
    name: 'Delete a deleted topic: 404', method: 'DELETE', path: '/topics/{{topic}}',
    test: expectError(404, 'TOPIC_NOT_FOUND', 'does not exist'),
    example: { status: 404, body: { error: { code: 'TOPIC_NOT_FOUND', message: 'topic "orders" does not exist' } } },
  }),
  request({
    name: 'Stats after the cleanup', method: 'GET', path: '/stats?after={{prefix}}&limit=10',
    test: lines(function () {
      pm.test('200 and none of this run\'s topics', function () {
        pm.response.to.have.status(200);
        pm.response.to.have.jsonSchema(SCHEMA);
        const left = Object.keys(pm.response.json().topics).filter((n) => n.startsWith(pm.variables.get('prefix')));
        pm.expect(left).to.eql([]);
      });
    }, { SCHEMA: SCHEMAS.stats }),
    example: { status: 200, body: { topics: {} } },
  }),
]);

module.exports = { build, SCHEMAS, CODES };

const ws = require('./websocket.js');

// build returns the collection and the environment as objects.
function build() {
  const collection = {
    info: {
      _postman_id: '5f1e9f0c-3a4b-4c6d-9e7f-0a1b2c3d4e5f',
      name: 'pubsub',
      description: [
        'The REST API of pubsub (topics, stats, health, probes, API descriptions) with a test in every request, and the',
        'WebSocket protocol of `/ws` documented in the "WebSocket /ws" folder.',
        '',
        'Variables (the environment `pubsub.postman_environment.json`): `baseUrl` (e.g.',
        '`http://127.0.0.1:8080`), `apiKey` (the server\'s `PUBSUB_API_KEY`; empty when authentication is',
        'off, which skips the "Authentication" folder) and `maxBodyBytes` (the server\'s',
        '`PUBSUB_MAX_BODY_BYTES`, 65536 by default).',
        '',
        'Run it in order (the Collection Runner, or `newman run`): the requests chain variables, and each',
        'run names its topics anew and deletes them at the end, so it can run again against the same',
        'server. Built by `loadtest/postman/build.js`; edit that, not this file.',
      ].join('\n'),
      schema: 'https://schema.getpostman.com/json/collection/v2.1.0/collection.json',
    },
    auth: {
      type: 'apikey',
      apikey: [
        { key: 'key', value: 'X-API-Key', type: 'string' },
        { key: 'value', value: '{{apiKey}}', type: 'string' },
        { key: 'in', value: 'header', type: 'string' },
      ],
    },
    event: [
      event('test', lines(function () {
        // Every answer of the service, success or refusal, is JSON that a browser must not sniff.
        pm.test('the answer is JSON (application/json, nosniff)', function () {
          pm.response.to.have.header('Content-Type', 'application/json');
          pm.response.to.have.header('X-Content-Type-Options', 'nosniff');
          pm.response.to.be.json;
        });
      })),
    ],
    variable: [
      { key: 'prefix', value: '' },
      { key: 'topic', value: '' },
      { key: 'topicB', value: '' },
      { key: 'topicC', value: '' },
      { key: 'topicD', value: '' },
      { key: 'topicsNext', value: '' },
      { key: 'statsNext', value: '' },
      { key: 'wrongApiKey', value: WRONG_KEY },
    ],
    item: [probes, descriptions, topics, statsAndHealth, errors, authentication, cleanup, ws.folder()],
  };
  const environment = {
    id: '0c6b1d2e-8f4a-4b7c-a1d2-3e4f5a6b7c8d',
    name: 'pubsub (local)',
    values: [
      { key: 'baseUrl', value: 'http://127.0.0.1:8080', type: 'default', enabled: true },
      { key: 'apiKey', value: '', type: 'secret', enabled: true },
      { key: 'maxBodyBytes', value: '65536', type: 'default', enabled: true },
    ],
    _postman_variable_scope: 'environment',
  };
  return { collection, environment };
}

// FILES are where build writes, beside this file.
const FILES = {
  collection: path.join(__dirname, 'pubsub.postman_collection.json'),
  environment: path.join(__dirname, 'pubsub.postman_environment.json'),
};
module.exports.FILES = FILES;

// render is the exact text of a file: two-space JSON and a final newline.
function render(obj) {
  return JSON.stringify(obj, null, 2) + '\n';
}
module.exports.render = render;

if (require.main === module) {
  const out = build();
  fs.writeFileSync(FILES.collection, render(out.collection));
  fs.writeFileSync(FILES.environment, render(out.environment));
  console.log('wrote ' + Object.values(FILES).map((f) => path.basename(f)).join(', '));
}
