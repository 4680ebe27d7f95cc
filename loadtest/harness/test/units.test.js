// Unit tests of the pieces that decide a run's verdict: durations, sinks, thresholds, registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from '../lib/duration.js';
import { TrendSink, CounterSink, RateSink, GaugeSink } from '../lib/sinks.js';
import { parseExpression, parseMetricKey, parseThresholds, evaluate } from '../lib/thresholds.js';
import { Registry } from '../lib/registry.js';
import { vusAt } from '../lib/executors.js';

test('parseDuration reads k6 durations', () => {
  const cases = [['5s', 5000], ['250ms', 250], ['1m30s', 90000], ['1.5s', 1500], ['2h', 7200000], ['0', 0], [1200, 1200]];
  for (const [input, want] of cases) assert.equal(parseDuration(input), want, String(input));
  for (const bad of ['', '5', 'five s', '5 s', '-1s', null]) assert.throws(() => parseDuration(bad), /invalid duration/, String(bad));
});

test('TrendSink aggregates like k6, interpolating percentiles', () => {
  const t = new TrendSink();
  for (const v of [10, 1, 7, 3, 5]) t.add(v); // out of order on purpose
  assert.equal(t.count, 5);
  assert.equal(t.min, 1);
  assert.equal(t.max, 10);
  assert.equal(t.avg, 26 / 5);
  assert.equal(t.med, 5);
  assert.equal(t.p(0.9), 7 + (10 - 7) * 0.6); // index 3.6 between 7 and 10
  assert.equal(t.p(1), 10);
  const empty = new TrendSink();
  assert.deepEqual([empty.min, empty.max, empty.avg, empty.med, empty.p(0.95)], [0, 0, 0, 0, 0]);
  const one = new TrendSink();
  one.add(42);
  assert.equal(one.p(0.99), 42);
});

test('Counter, Rate and Gauge sinks', () => {
  const c = new CounterSink();
  c.add(2);
  c.add(3);
  assert.equal(c.value, 5);
  const r = new RateSink();
  assert.equal(r.rate, undefined);
  for (const v of [1, 0, 1, 1]) r.add(v);
  assert.equal(r.rate, 0.75);
  const g = new GaugeSink();
  for (const v of [5, 9, 2]) g.add(v);
  assert.deepEqual([g.value, g.min, g.max], [2, 2, 9]);
});

test('parseExpression accepts k6 threshold expressions and refuses others', () => {
  assert.deepEqual(
    (({ agg, pct, op, value }) => ({ agg, pct, op, value }))(parseExpression('p(99.9) <= 250')),
    { agg: 'p', pct: 99.9, op: '<=', value: 250 },
  );
  assert.equal(parseExpression('count==0').agg, 'count');
  assert.equal(parseExpression('rate>0.95').value, 0.95);
  assert.equal(parseExpression('avg<1e3').value, 1000);
  for (const bad of ['p95<1', 'count=0', 'avg <', 'foo<1', 'p(101)<1', 'count==0 extra']) {
    assert.throws(() => parseExpression(bad), /invalid/, bad);
  }
});

test('parseMetricKey splits submetric tag filters', () => {
  assert.deepEqual(parseMetricKey('pubsub_lost'), { name: 'pubsub_lost', tags: {} });
  assert.deepEqual(parseMetricKey('lat{role:fast, code:"1008"}'), { name: 'lat', tags: { role: 'fast', code: '1008' } });
  assert.throws(() => parseMetricKey('lat{role}'), /invalid tag filter/);
  assert.throws(() => parseMetricKey('9lat'), /invalid metric name/);
});

test('parseThresholds accepts strings and objects with abortOnFail', () => {
  const [t] = parseThresholds({ 'x{a:b}': ['count<5', { threshold: 'rate<1', abortOnFail: true, delayAbortEval: '10s' }] });
  assert.equal(t.name, 'x');
  assert.deepEqual(t.tags, { a: 'b' });
  assert.equal(t.rules[1].abortOnFail, true);
  assert.equal(t.rules[1].delayAbortEval, 10000);
  assert.throws(() => parseThresholds({ x: 'count<5' }), /must be an array/);
});

test('evaluate compares the aggregation a rule names', () => {
  const c = new CounterSink();
  c.add(10);
  assert.deepEqual(evaluate('counter', c, parseExpression('count==10'), 5000), { ok: true, value: 10 });
  assert.equal(evaluate('counter', c, parseExpression('rate<=2'), 5000).value, 2); // per second of run
  assert.equal(evaluate('counter', c, parseExpression('count!=10'), 5000).ok, false);
  const t = new TrendSink();
  [1, 2, 3, 4].forEach((v) => t.add(v));
  assert.equal(evaluate('trend', t, parseExpression('p(50)>2.4'), 1).ok, true);
  assert.equal(evaluate('trend', t, parseExpression('max<4'), 1).ok, false);
  const empty = evaluate('rate', new RateSink(), parseExpression('rate==1'), 1);
  assert.equal(empty.ok, false, 'a rate without samples has nothing to pass');
});

test('Registry binds thresholds to (sub)metrics and refuses unknown ones', () => {
  const r = new Registry();
  r.define('lat', 'trend', true);
  r.setThresholds({ 'lat{role:fast}': ['p(95)<10'], lat: ['max<100'], checks: ['rate==1'] });
  r.add('lat', 5, { role: 'fast' });
  r.add('lat', 50, { role: 'slow' });
  r.add('checks', 1, { check: 'a' });
  r.add('checks', 0, { check: 'a' });
  const results = r.evaluate(1000);
  assert.deepEqual(results.map((x) => [x.key, x.ok]), [['lat{role:fast}', true], ['lat', true], ['checks', false]]);
  assert.deepEqual(r.checks.get('a'), { passes: 1, fails: 1 });
  assert.throws(() => r.setThresholds({ nope: ['count==0'] }), /no metric name "nope" found/);
  assert.throws(() => r.setThresholds({ lat: ['count==0'] }), /a trend supports/);
  assert.throws(() => r.setThresholds({ data_received: ['count==0'] }), /no metric name/);
  assert.throws(() => r.define('lat', 'counter'), /already registered as a trend/);
});

test('vusAt steps ramping-vus one VU at a time', () => {
  const stages = [{ dur: 1000, target: 4 }, { dur: 1000, target: 4 }, { dur: 1000, target: 0 }];
  assert.deepEqual([0, 249, 250, 999, 1000, 1500, 2000, 2250, 2999, 3000].map((t) => vusAt(0, stages, t)),
    [0, 0, 1, 3, 4, 4, 4, 3, 1, 0]);
});
