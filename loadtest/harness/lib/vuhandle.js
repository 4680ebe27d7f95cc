// The runner's handle on one VU worker thread: starts it, sends it iterations, forwards its
// samples to the registry, answers its blocking calls (HTTP), and interrupts or kills it.
import { Worker, MessageChannel } from 'node:worker_threads';

// How long an interrupted VU may take to notice (it may be inside sleep()) before it is killed.
const KILL_AFTER_MS = 5000;

/** VUHandle is owned by the runner's main thread. */
export class VUHandle {
  dead = false;
  busy = false;
  #worker;
  #reply;
  #flag;
  #current = null;
  #iters = new Map();
  #killTimer = null;

  /** spawn starts a VU and resolves once its init context ran (rejects on an init error). */
  static spawn(id, { script, env, registry, serve, onCrash }) {
    const { port1, port2 } = new MessageChannel();
    const flagBuffer = new SharedArrayBuffer(4);
    const worker = new Worker(new URL('./vu.js', import.meta.url), {
      workerData: { id, script, env, syncPort: port2, syncFlag: flagBuffer },
      transferList: [port2],
    });
    const vu = new VUHandle(id, worker, port1, new Int32Array(flagBuffer));
    return new Promise((resolve, reject) => {
      worker.on('message', (msg) => {
        switch (msg.type) {
          case 'samples':
            for (const [name, value, tags] of msg.samples) registry.add(name, value, tags);
            break;
          case 'call':
            serve(msg.request).then((reply) => vu.#answer(reply));
            break;
          case 'iterDone':
            vu.#done(msg);
            break;
          case 'ready':
            for (const m of msg.metrics) registry.define(m.name, m.type, m.isTime);
            vu.options = msg.options;
            vu.functions = msg.functions;
            resolve(vu);
            break;
          case 'initError':
            reject(new Error(`init context of VU ${id}: ${msg.error}`));
            worker.terminate();
        }
      });
      worker.on('error', (err) => {
        reject(err);
        vu.#crash(err, onCrash);
      });
      worker.on('exit', () => vu.#crash(null, onCrash));
    });
  }

  constructor(id, worker, replyPort, flag) {
    this.id = id;
    this.#worker = worker;
    this.#reply = replyPort;
    this.#flag = flag;
  }

  /** nextIter returns this VU's iteration number in a scenario (k6's __ITER). */
  nextIter(scenario) {
    const n = this.#iters.get(scenario) ?? 0;
    this.#iters.set(scenario, n + 1);
    return n;
  }

  setData(json) {
    this.#worker.postMessage({ cmd: 'data', json });
  }

  /** iterate runs one iteration; it resolves to {error, interrupted, result}. */
  iterate(cmd) {
    if (this.dead) return Promise.resolve({ error: null, interrupted: true });
    this.busy = true;
    return new Promise((resolve) => {
      this.#current = resolve;
      this.#worker.postMessage({ cmd: 'iterate', ...cmd });
    });
  }

  /** interrupt ends the running iteration, killing the VU if it does not stop in time. */
  interrupt() {
    if (!this.busy || this.dead || this.#killTimer) return;
    this.#worker.postMessage({ cmd: 'interrupt' });
    this.#killTimer = setTimeout(() => {
      this.dead = true;
      this.#worker.terminate();
      this.#done({ error: null, interrupted: true });
    }, KILL_AFTER_MS);
  }

  async stop() {
    if (this.dead) return;
    this.dead = true;
    const exited = new Promise((resolve) => this.#worker.once('exit', resolve));
    this.#worker.postMessage({ cmd: 'exit' });
    const timer = setTimeout(() => this.#worker.terminate(), KILL_AFTER_MS);
    await exited;
    clearTimeout(timer);
  }

  #answer(reply) {
    this.#reply.postMessage(reply);
    Atomics.store(this.#flag, 0, 1);
    Atomics.notify(this.#flag, 0);
  }

  #done(msg) {
    clearTimeout(this.#killTimer);
    this.#killTimer = null;
    this.busy = false;
    const resolve = this.#current;
    this.#current = null;
    resolve?.(msg);
  }

  #crash(err, onCrash) {
    if (this.dead && !this.busy) return;
    this.dead = true;
    if (err) onCrash(this, err);
    this.#done({ error: err ? String(err.stack ?? err) : null, interrupted: !err });
  }
}
