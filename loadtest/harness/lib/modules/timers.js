// Shim of k6/timers. A pending timer keeps the iteration alive, as it does in k6's event loop.
// Node's global timers stay untouched (the ws library uses them), so scripts import these.
import { state } from '../state.js';

const nodeTimers = { setTimeout, clearTimeout, setInterval, clearInterval };
const active = new Map();
let lastId = 0;

function start(fn, ms, args, repeat) {
  if (typeof fn !== 'function') throw new Error('timer callback must be a function');
  const id = ++lastId;
  const it = state.iteration;
  const stop = () => {
    if (!active.delete(id)) return;
    (repeat ? nodeTimers.clearInterval : nodeTimers.clearTimeout)(handle);
    finish();
  };
  const finish = state.track(stop);
  const fire = () => {
    if (!state.owned(it)) return stop();
    state.invoke(fn, undefined, ...args);
    if (!repeat) stop();
  };
  const delay = Math.max(0, Number(ms) || 0);
  const handle = repeat ? nodeTimers.setInterval(fire, delay) : nodeTimers.setTimeout(fire, delay);
  active.set(id, stop);
  return id;
}

const k6SetTimeout = (fn, ms, ...args) => start(fn, ms, args, false);
const k6SetInterval = (fn, ms, ...args) => start(fn, ms, args, true);
const k6Clear = (id) => active.get(id)?.();

export {
  k6SetTimeout as setTimeout,
  k6SetInterval as setInterval,
  k6Clear as clearTimeout,
  k6Clear as clearInterval,
};
export default { setTimeout: k6SetTimeout, setInterval: k6SetInterval, clearTimeout: k6Clear, clearInterval: k6Clear };
