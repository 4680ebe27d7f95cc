// The state of the one VU that runs in this worker thread: what k6 keeps per VU (its id, tags,
// iteration, pending event-loop work) and the channel its samples travel to the runner on.
// Only the worker's own thread touches it; the k6 module shims and vu.js share this instance.
import { parentPort, receiveMessageOnPort } from 'node:worker_threads';

const FLUSH_EVERY_MS = 200;
const METRIC_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/;

class VUState {
  id = 0;
  /** phase is "init" while the script's top level runs, then "vu". */
  phase = 'init';
  /** tags are added to every sample: scenario (as k6 does) plus the scenario's own tags. */
  tags = {};
  declared = [];
  samples = [];
  /** pending counts what keeps the event loop (and so the iteration) alive: open sockets, timers. */
  pending = 0;
  /** closers end every socket and timer of the current iteration when it is interrupted. */
  closers = new Set();
  iteration = null;
  #sync = null;

  start({ id, syncPort, syncFlag }) {
    this.id = id;
    this.#sync = { port: syncPort, flag: new Int32Array(syncFlag) };
    setInterval(() => this.flush(), FLUSH_EVERY_MS).unref();
  }

  /** declare registers a custom metric; k6 allows that only in the init context. */
  declare(name, type, isTime) {
    if (this.phase !== 'init') throw new Error('metrics must be declared in the init context');
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    this.declared.push({ name, type, isTime });
  }

  push(name, value, tags) {
    const all = { ...this.tags };
    for (const [k, v] of Object.entries(tags ?? {})) all[k] = String(v);
    this.samples.push([name, value, all]);
  }

  flush() {
    if (this.samples.length === 0) return;
    parentPort.postMessage({ type: 'samples', samples: this.samples });
    this.samples = [];
  }

  /** call asks the runner's main thread for something and blocks this VU until it answers. */
  call(request) {
    const { port, flag } = this.#sync;
    parentPort.postMessage({ type: 'call', request });
    for (;;) {
      Atomics.wait(flag, 0, 0, 1000);
      const reply = receiveMessageOnPort(port);
      if (reply) {
        Atomics.store(flag, 0, 0);
        return reply.message;
      }
    }
  }

  /**
   * track registers event-loop work of the current iteration (a socket, a timer) and returns the
   * function that marks it finished. close ends it early when the iteration is interrupted. A
   * finish that arrives after its iteration ended (a late close event) changes nothing.
   */
  track(close) {
    const it = this.iteration;
    if (it === null) throw new Error('this k6 API is available in VU code only, not in the init context');
    let open = true;
    this.pending++;
    this.closers.add(close);
    return () => {
      if (!open) return;
      open = false;
      this.closers.delete(close);
      if (this.iteration !== it || it.ended) return;
      this.pending--;
      if (this.pending === 0) it.onIdle();
    };
  }

  /** owned returns true while the iteration that created a socket or timer is still running. */
  owned(iteration) {
    return iteration !== null && iteration === this.iteration && !iteration.ended;
  }

  /** invoke calls a script callback; an exception in it ends the iteration, as in k6. */
  invoke(fn, thisArg, ...args) {
    try {
      const r = fn.apply(thisArg, args);
      if (r && typeof r.then === 'function') r.then(null, (e) => this.fail(e));
    } catch (e) {
      this.fail(e);
    }
  }

  fail(error) {
    if (this.iteration && !this.iteration.ended) this.iteration.abort(error);
    else process.emitWarning(`error outside an iteration: ${error?.stack ?? error}`);
  }
}

export const state = new VUState();
