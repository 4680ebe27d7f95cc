// End-to-end tests of the CLI: a script's outcome becomes the process exit code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, harness } from '../fixtures/cli.js';

test('executors, setup/teardown, __ENV and timers behave as the script asserts', async () => {
  const r = await harness(['-e', 'FROM_CLI=yes', fixture('lifecycle.js')]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /teardown got from-setup/);
  assert.match(r.stdout, /✓ iterations\{scenario:rate\}\s+count==20/);
});

const verdicts = [
  ['passes', 0, /passed: all thresholds and checks/],
  ['check-failed', 99, /1 check\(s\) failed/],
  ['threshold-crossed', 99, /1 threshold\(s\) crossed/],
  ['iteration-error', 107, /boom in the iteration/],
  ['init-error', 107, /broken init context/],
  ['unknown-metric', 104, /no metric name "no_such_metric" found/],
  ['bad-aggregation', 104, /a counter supports count, rate/],
  ['bad-executor', 104, /does not provide executor "externally-controlled"/],
  ['missing-exec', 104, /function "nope" not found in exports/],
];

for (const [name, code, message] of verdicts) {
  test(`verdict: ${name} exits ${code}`, async () => {
    const r = await harness([fixture('verdicts.js')], { CASE: name });
    assert.equal(r.code, code, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, message);
  });
}

test('an abortOnFail threshold stops the run early', async () => {
  const r = await harness([fixture('verdicts.js')], { CASE: 'abort' });
  assert.equal(r.code, 99, r.stdout + r.stderr);
  assert.match(r.stderr, /aborting the test: threshold bad_things count==0 crossed/);
  assert.ok(r.ms < 20_000, `took ${r.ms} ms for a 60 s scenario`);
});
