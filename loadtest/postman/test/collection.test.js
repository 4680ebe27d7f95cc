// Tests of the Postman collection that need no pubsubd: the committed files are what build.js
// builds, every request tests its answer, every script parses, and the tests fail newman when
// an answer is wrong (run against a small stand-in server). CI runs the whole collection against
// a real pubsubd (.ci/test); internal/transport/httpapi/postman_test.go holds it to the router.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const newman = require('newman');

const { build, FILES, render } = require('../build.js');

// requests returns every request item of the collection with its folder path, depth first.
function requests(items, where = []) {
  const out = [];
  for (const it of items) {
    if (it.item) out.push(...requests(it.item, [...where, it.name]));
    else out.push({ path: [...where, it.name].join(' / '), item: it });
  }
  return out;
}

// scripts returns every script of the collection (collection, folders, requests) with where it is.
function scripts(node, where = 'collection') {
  const out = (node.event || []).map((e) => ({ where: `${where} (${e.listen})`, code: e.script.exec.join('\n') }));
  for (const it of node.item || []) out.push(...scripts(it, `${where} / ${it.name}`));
  return out;
}

test('the committed collection and environment are what build.js builds', () => {
  const out = build();
  for (const [k, file] of Object.entries(FILES)) {
    assert.equal(fs.readFileSync(file, 'utf8'), render(out[k]), `${file} is stale: run node build.js`);
  }
});

test('the collection is a v2.1 collection that sends the key from apiKey to baseUrl', () => {
  const { collection, environment } = build();
  assert.equal(collection.info.schema, 'https://schema.getpostman.com/json/collection/v2.1.0/collection.json');
  assert.deepEqual(collection.auth.apikey.map((a) => [a.key, a.value]),
    [['key', 'X-API-Key'], ['value', '{{apiKey}}'], ['in', 'header']]);
  assert.deepEqual(environment.values.map((v) => v.key).sort(), ['apiKey', 'baseUrl', 'maxBodyBytes']);
  for (const { path, item } of requests(collection.item)) {
    const raw = typeof item.request.url === 'string' ? item.request.url : item.request.url.raw;
    assert.ok(raw.startsWith('{{baseUrl}}'), `${path}: ${raw} does not start with {{baseUrl}}`);
  }
});

test('every request tests its status, and names are unique', () => {
  const { collection } = build();
  const all = requests(collection.item);
  assert.ok(all.length >= 40, `only ${all.length} requests`);
  const names = new Set();
  for (const { path, item } of all) {
    assert.ok(!names.has(item.name), `two requests are named ${item.name}`);
    names.add(item.name);
    const t = item.event.find((e) => e.listen === 'test');
    assert.ok(t, `${path} has no test script`);
    const code = t.script.exec.join('\n');
    assert.match(code, /pm\.test\(/, `${path}: no pm.test`);
    assert.match(code, /pm\.response\.to\.have\.status\(/, `${path}: its status is not asserted`);
    assert.match(code, /pm\.response\.to\.have\.jsonSchema\(/, `${path}: its body's shape is not asserted`);
    assert.ok(item.response.length > 0, `${path}: no example answer`);
  }
});

test('every script parses', () => {
  const all = scripts(build().collection);
  assert.ok(all.length > 40);
  for (const { where, code } of all) {
    assert.doesNotThrow(() => new Function('pm', 'console', code), `${where} does not parse`);
  }
});

test('the WebSocket folder has no request newman would run, and documents every frame', () => {
  const ws = build().collection.item.find((f) => f.name === 'WebSocket /ws');
  assert.ok(ws, 'no "WebSocket /ws" folder');
  assert.deepEqual(requests(ws.item), []);
  const text = [ws.description, ...ws.item.map((f) => f.description)].join('\n');
  assert.match(text, /newman cannot run/i);
  for (const word of ['"type":"subscribe"', '"type":"unsubscribe"', '"type":"publish"', '"type":"ping"',
    '"type":"ack"', '"type":"event"', '"type":"error"', '"type":"pong"', '"type":"info"',
    '"since_seq"', '"epoch"', '"recovered":true', '"recovered":false', '"seq"', 'Retry-After']) {
    assert.ok(text.includes(word), `the WebSocket folder never shows ${word}`);
  }
});

// stub serves answers from handle(req, body) -> [status, headers, body] on a free port.
async function stub(t, handle) {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const [status, headers, out] = handle(req, body);
      res.writeHead(status, headers);
      res.end(out);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${server.address().port}`;
}

// run runs the named requests of the collection against baseUrl and returns newman's failures.
function run(names, baseUrl) {
  const { collection } = build();
  const picked = requests(collection.item).filter(({ item }) => names.includes(item.name)).map(({ item }) => item);
  assert.equal(picked.length, names.length, 'a request named here is not in the collection');
  return new Promise((resolve, reject) => {
    newman.run({
      collection: { ...collection, item: picked },
      envVar: [{ key: 'baseUrl', value: baseUrl }, { key: 'apiKey', value: 'stand-in-key-0123456789' }],
      reporters: [],
    }, (err, summary) => (err ? reject(err) : resolve(summary.run.failures)));
  });
}

const JSON_HEADERS = { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' };

test('the tests pass an answer as the service gives it', async (t) => {
  // Without this, the failures below could be the stand-in's, not the tests'.
  const url = await stub(t, (req) => (req.url === '/livez' ? [200, JSON_HEADERS, '{"status":"ok"}'] : [500, {}, '']));
  const failures = await run(['Liveness'], url);
  assert.deepEqual(failures.map((f) => f.error.message), []);
});

test('a deliberately wrong answer fails the run', async (t) => {
  const cases = [
    ['Liveness', 'a wrong status', [503, JSON_HEADERS, '{"status":"ok"}'], /status code 200 but got 503/],
    ['Liveness', 'a field too many', [200, JSON_HEADERS, '{"status":"ok","extra":1}'], /schema/i],
    ['Liveness', 'another value', [200, JSON_HEADERS, '{"status":"up"}'], /schema/i],
    ['Liveness', 'not JSON', [200, { 'Content-Type': 'text/plain', 'X-Content-Type-Options': 'nosniff' }, 'ok'], /content-type/i],
    ['Liveness', 'no nosniff', [200, { 'Content-Type': 'application/json' }, '{"status":"ok"}'], /x-content-type-options/i],
    ['List topics without a key: 401', 'no challenge', [401, JSON_HEADERS,
      '{"error":{"code":"UNAUTHORIZED","message":"authentication required: send an X-API-Key header or a token"}}'], /www-authenticate/i],
    ['Delete an unknown topic: 404', 'another code', [404, JSON_HEADERS,
      '{"error":{"code":"BAD_REQUEST","message":"does not exist"}}'], /BAD_REQUEST/],
    ['List topics, first page', 'next without a Link header', [200, JSON_HEADERS,
      '{"topics":[],"next":"b"}'], /next without Link/],
  ];
  for (const [name, what, answer, want] of cases) {
    await t.test(`${name}: ${what}`, async (t) => {
      const url = await stub(t, () => answer);
      const failures = await run([name], url);
      assert.ok(failures.length > 0, 'the run passed');
      assert.ok(failures.some((f) => want.test(f.error.message)),
        `no failure matches ${want}: ${failures.map((f) => f.error.message).join('; ')}`);
    });
  }
});
