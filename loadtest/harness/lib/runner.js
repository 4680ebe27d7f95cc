// The k6 run lifecycle: init (options), setup, scenarios, teardown, thresholds, summary.
// Exit codes follow k6 where k6 has one: 99 thresholds crossed, 104 invalid options, 107 script
// error. Stricter than k6, on purpose for CI: a failed check also exits 99, and an exception in
// an iteration (which k6 only logs) exits 107.
import { performance } from 'node:perf_hooks';
import { Registry } from './registry.js';
import { renderSummary } from './summary.js';
import { VUHandle } from './vuhandle.js';
import { EXECUTORS } from './executors.js';
import { parseDuration } from './duration.js';

export const EXIT = { OK: 0, THRESHOLDS: 99, INVALID_CONFIG: 104, SCRIPT_ERROR: 107 };

const ABORT_EVAL_EVERY_MS = 2000;
const MAX_LOGGED_ERRORS = 10;

/** scenariosOf returns the scenarios of options, including k6's shortcut options. */
export function scenariosOf(options, functions) {
  let scenarios = options.scenarios;
  if (!scenarios) {
    const vus = options.vus ?? 1;
    if (options.stages) scenarios = { default: { executor: 'ramping-vus', startVUs: vus, stages: options.stages } };
    else if (options.iterations) scenarios = { default: { executor: 'shared-iterations', vus, iterations: options.iterations } };
    else if (options.duration) scenarios = { default: { executor: 'constant-vus', vus, duration: options.duration } };
    else scenarios = { default: { executor: 'per-vu-iterations', vus: 1, iterations: 1 } };
  }
  return Object.entries(scenarios).map(([name, sc]) => {
    if (!EXECUTORS[sc.executor]) throw new Error(`scenario ${name}: the harness does not provide executor ${JSON.stringify(sc.executor)}`);
    const exec = sc.exec ?? 'default';
    if (!functions.includes(exec)) throw new Error(`scenario ${name}: function ${JSON.stringify(exec)} not found in exports`);
    return {
      ...sc,
      name,
      exec,
      startTime: parseDuration(sc.startTime ?? '0s'),
      gracefulStop: parseDuration(sc.gracefulStop ?? '30s'),
      tags: { ...sc.tags, scenario: name },
    };
  });
}

async function httpCall({ method, url, body, headers, timeoutMs }) {
  const started = performance.now();
  try {
    const res = await fetch(url, { method, body, headers, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return { status: res.status, body: text, headers: Object.fromEntries(res.headers), durationMs: performance.now() - started };
  } catch (e) {
    return { status: 0, body: null, headers: {}, error: e.cause?.message ?? e.message, durationMs: performance.now() - started };
  }
}

/**
 * run executes a k6 script and returns the process exit code. env is the script's __ENV;
 * out and err are where the summary and the diagnostics go.
 */
export async function run({ script, env, out = process.stdout, err = process.stderr }) {
  const log = (line) => err.write(`harness: ${line}\n`);
  const registry = new Registry();
  const all = new Set();
  const waits = new Set();
  let nextId = 1;
  let errors = 0;
  let fatal = null;
  const ctx = {
    registry,
    aborted: false,
    abort(reason) {
      if (ctx.aborted) return;
      ctx.aborted = true;
      log(`aborting the test: ${reason}`);
      for (const vu of all) vu.interrupt();
      for (const wake of waits) wake();
    },
    fatal(e) {
      fatal = e;
      ctx.abort(e.message);
    },
    /** wait sleeps ms, returning early when the test is aborted. */
    wait(delayMs) {
      if (ctx.aborted || delayMs <= 0) return Promise.resolve();
      return new Promise((resolve) => {
        const wake = () => { clearTimeout(timer); waits.delete(wake); resolve(); };
        const timer = setTimeout(wake, delayMs);
        waits.add(wake);
      });
    },
    spawnVU: () => spawn(nextId++),
    async iterate(vu, sc) {
      const r = await vu.iterate({ exec: sc.exec, tags: sc.tags, env: sc.env, iter: vu.nextIter(sc.name) });
      if (r.error) {
        errors++;
        if (errors <= MAX_LOGGED_ERRORS) log(`VU ${vu.id} (${sc.name}) iteration error: ${r.error}`);
      }
    },
  };
  const onCrash = (vu, e) => {
    errors++;
    log(`VU ${vu.id} crashed: ${e.stack ?? e}`);
  };
  let dataJson;
  const spawn = async (id) => {
    const vu = await VUHandle.spawn(id, { script, env, registry, serve: httpCall, onCrash });
    vu.setData(dataJson);
    all.add(vu);
    return vu;
  };
  const stopAll = () => Promise.all([...all].map((vu) => vu.stop()));

  let setupVU;
  try {
    setupVU = await spawn(0);
  } catch (e) {
    log(e.message);
    await stopAll();
    return EXIT.SCRIPT_ERROR;
  }
  const { options, functions } = setupVU;
  let scenarios;
  try {
    scenarios = scenariosOf(options, functions);
    registry.setThresholds(options.thresholds);
  } catch (e) {
    log(e.message);
    await stopAll();
    return EXIT.INVALID_CONFIG;
  }

  // As in k6, every VU runs its init context before setup() runs.
  let pools;
  try {
    pools = await Promise.all(scenarios.map((sc) => {
      const n = EXECUTORS[sc.executor].initialVUs(sc);
      return Promise.all(Array.from({ length: n }, () => spawn(nextId++)));
    }));
  } catch (e) {
    log(e.message);
    await stopAll();
    return EXIT.SCRIPT_ERROR;
  }

  const lifecycle = (exec) => setupVU.iterate({ exec, tags: { group: `::${exec}` }, iter: 0, wantResult: true });
  if (functions.includes('setup')) {
    const r = await lifecycle('setup');
    if (r.error) {
      log(`setup failed: ${r.error}`);
      await stopAll();
      return EXIT.SCRIPT_ERROR;
    }
    dataJson = r.result;
    for (const vu of all) vu.setData(dataJson);
  }

  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const abortCheck = setInterval(() => {
    const crossed = registry.evaluate(elapsed(), { onlyAbort: true }).filter((r) => !r.ok);
    if (crossed.length) ctx.abort(`threshold ${crossed[0].key} ${crossed[0].rule.source} crossed (abortOnFail)`);
  }, ABORT_EVAL_EVERY_MS);
  await Promise.all(scenarios.map(async (sc, i) => {
    await ctx.wait(sc.startTime);
    if (!ctx.aborted) await EXECUTORS[sc.executor].run(sc, ctx, pools[i]);
  }));
  clearInterval(abortCheck);
  const durationMs = elapsed();

  if (functions.includes('teardown') && !setupVU.dead) {
    const r = await lifecycle('teardown');
    if (r.error) {
      errors++;
      log(`teardown failed: ${r.error}`);
    }
  }
  await stopAll();

  const results = registry.evaluate(durationMs);
  out.write(`${renderSummary(registry, results, durationMs)}\n`);
  const crossed = results.filter((r) => !r.ok).length;
  const failedChecks = [...registry.checks.values()].reduce((n, c) => n + c.fails, 0);
  const verdict = [];
  if (crossed) verdict.push(`${crossed} threshold(s) crossed`);
  if (failedChecks) verdict.push(`${failedChecks} check(s) failed`);
  if (errors) verdict.push(`${errors} script error(s)`);
  if (fatal) verdict.push(`fatal: ${fatal.message}`);
  log(verdict.length ? `FAILED: ${verdict.join(', ')}` : 'passed: all thresholds and checks');
  if (crossed || failedChecks) return EXIT.THRESHOLDS;
  if (errors || fatal) return EXIT.SCRIPT_ERROR;
  return EXIT.OK;
}
