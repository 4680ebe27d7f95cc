// The k6 scripts against k6's own API: TypeScript's checker with @types/k6 (both pinned in
// package.json) passes loadtest/ as it is, and fails a script that misuses the API, on every
// misuse. The harness runs whatever it implements, so only the checker catches these.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
const loadtest = fileURLToPath(new URL('../..', import.meta.url));
const wrongDir = fileURLToPath(new URL('../fixtures/typecheck', import.meta.url));
const wrongScript = new URL('../fixtures/typecheck/wrong-api.js', import.meta.url);

/** check runs `tsc -p project` and resolves to {code, out}. */
function check(project) {
  return new Promise((resolve) => {
    execFile(process.execPath, [tsc, '-p', project, '--pretty', 'false'], { timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout + stderr }));
  });
}

test('the k6 scripts in loadtest/ type-check against @types/k6', async () => {
  const r = await check(loadtest);
  assert.equal(r.code, 0, r.out);
});

test('every misuse of the k6 API in the fixture is a type error, and nothing else is', async () => {
  const marked = new Set();
  readFileSync(wrongScript, 'utf8').split('\n').forEach((line, i) => {
    if (line.includes('// wrong:')) marked.add(i + 1);
  });
  assert.ok(marked.size >= 5, `only ${marked.size} marked lines in the fixture`);
  const r = await check(wrongDir);
  assert.notEqual(r.code, 0, `tsc passed a script that misuses the k6 API:\n${r.out}`);
  const reported = new Set([...r.out.matchAll(/^(?:\S*\/)?wrong-api\.js\((\d+),\d+\): error TS\d+/gm)].map((m) => Number(m[1])));
  assert.deepEqual([...reported].sort((a, b) => a - b), [...marked].sort((a, b) => a - b), r.out);
});
