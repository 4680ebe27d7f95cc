// Shim of the k6 module: check, sleep, group, fail.
import { state } from '../state.js';

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** sleep blocks this VU (and only this VU: it has its own thread), as k6's sleep does. */
export function sleep(seconds) {
  Atomics.wait(sleepCell, 0, 0, Math.max(0, Number(seconds) * 1000));
}

/** check records one "checks" sample per named condition and returns whether all held. */
export function check(value, conditions, tags) {
  let all = true;
  for (const [name, condition] of Object.entries(conditions)) {
    const ok = Boolean(typeof condition === 'function' ? condition(value) : condition);
    state.push('checks', ok ? 1 : 0, { ...tags, check: name });
    all = all && ok;
  }
  return all;
}

/** group tags the samples taken inside fn with the group path, like k6. */
export function group(name, fn) {
  const outer = state.tags.group;
  state.tags.group = `${outer ?? ''}::${name}`;
  try {
    return fn();
  } finally {
    if (outer === undefined) delete state.tags.group;
    else state.tags.group = outer;
  }
}

export function fail(message) {
  throw new Error(message);
}

export default { check, fail, group, sleep };
