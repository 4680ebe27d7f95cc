// Worker-thread entry point: one k6 VU. Like k6, each VU has its own JS runtime (here a worker
// thread with its own module graph and event loop), runs the script's init context once, then
// runs iterations on the runner's command. An iteration lasts until the exec function has
// returned and no socket or timer it started is pending, as k6's event loop does.
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { state } from './state.js';

register('./hooks.js', import.meta.url);

const { id, script, env, syncPort, syncFlag } = workerData;
state.start({ id, syncPort, syncFlag });
globalThis.__ENV = { ...env };
globalThis.__VU = id;
globalThis.__ITER = 0;
process.on('unhandledRejection', (e) => state.fail(e));

/** Iteration is one call of an exec function together with the event-loop work it started. */
class Iteration {
  ended = false;
  returned = false;
  interrupted = false;
  error = null;
  result = undefined;
  #finish;
  done = new Promise((resolve) => { this.#finish = resolve; });

  /** onIdle re-checks after pending promise jobs ran: a continuation may start new work. */
  onIdle() {
    setImmediate(() => {
      if (!this.ended && this.returned && state.pending === 0) this.#end();
    });
  }

  abort(error, interrupted = false) {
    if (this.ended) return;
    this.error = error;
    this.interrupted = interrupted;
    this.#end();
  }

  #end() {
    this.ended = true;
    for (const close of [...state.closers]) close();
    state.closers.clear();
    this.#finish();
  }
}

const errorText = (e) => (e instanceof Error ? e.stack ?? e.message : String(e));

let exports;
try {
  exports = await import(pathToFileURL(script).href);
} catch (e) {
  parentPort.postMessage({ type: 'initError', error: errorText(e) });
  await new Promise(() => {}); // the runner terminates this worker
}
state.phase = 'vu';

let data;

async function runIteration({ exec, tags, env, iter, wantResult }) {
  state.tags = { ...tags };
  globalThis.__ENV = { ...workerData.env, ...env };
  globalThis.__ITER = iter;
  const it = new Iteration();
  state.iteration = it;
  state.pending = 0;
  const started = performance.now();
  try {
    const value = exports[exec](data);
    if (value && typeof value.then === 'function') {
      value.then((v) => { it.result = v; }, (e) => state.fail(e));
    } else {
      it.result = value;
    }
  } catch (e) {
    it.abort(e);
  }
  it.returned = true;
  it.onIdle();
  await it.done;
  if (!it.interrupted && exec !== 'setup' && exec !== 'teardown') {
    state.push('iterations', 1);
    state.push('iteration_duration', performance.now() - started);
  }
  state.flush();
  parentPort.postMessage({
    type: 'iterDone',
    error: it.error === null ? null : errorText(it.error),
    interrupted: it.interrupted,
    result: wantResult && it.result !== undefined ? JSON.stringify(it.result) : undefined,
  });
}

parentPort.on('message', (msg) => {
  switch (msg.cmd) {
    case 'data':
      data = msg.json === undefined ? undefined : JSON.parse(msg.json);
      break;
    case 'iterate':
      runIteration(msg);
      break;
    case 'interrupt':
      state.iteration?.abort(null, true);
      break;
    case 'exit':
      state.flush();
      process.exit(0);
  }
});

const functions = Object.keys(exports).filter((k) => typeof exports[k] === 'function');
parentPort.postMessage({
  type: 'ready',
  metrics: state.declared,
  functions,
  options: id === 0 ? JSON.parse(JSON.stringify(exports.options ?? {})) : undefined,
});
