// Scenario executors, simplified but with k6's semantics where a script can observe them: when
// iterations start, how many VUs run them, when the scenario stops starting new ones, and how
// long running iterations may finish (gracefulStop, gracefulRampDown) before they are interrupted.
// Each executor gets its pre-allocated VUs and the run context (see runner.js).
import { performance } from 'node:perf_hooks';
import { parseDuration as ms } from './duration.js';

/** finish waits for running iterations, interrupting those still running after graceMs. */
async function finish(running, graceMs) {
  if (running.size === 0) return;
  const timer = setTimeout(() => { for (const vu of running.keys()) vu.interrupt(); }, graceMs);
  await Promise.all(running.values());
  clearTimeout(timer);
}

/** vusAt is the VU count of ramping-vus at t ms: one VU more or less per step, as in k6. */
export function vusAt(startVUs, stages, t) {
  let begin = 0;
  let from = startVUs;
  for (const { dur, target } of stages) {
    if (t < begin + dur) {
      const delta = target - from;
      return from + Math.sign(delta) * Math.floor((Math.abs(delta) * (t - begin)) / dur);
    }
    begin += dur;
    from = target;
  }
  return from;
}

async function rampingVUs(sc, ctx, vus) {
  const stages = sc.stages.map((s) => ({ dur: ms(s.duration), target: s.target }));
  const total = stages.reduce((sum, s) => sum + s.dur, 0);
  const rampDown = ms(sc.gracefulRampDown ?? '30s');
  const slots = vus.map((vu) => ({ vu, active: false, loop: null, timer: null }));
  const loop = async (slot) => {
    while (slot.active && !ctx.aborted && !slot.vu.dead) await ctx.iterate(slot.vu, sc);
    clearTimeout(slot.timer);
    slot.loop = null;
  };
  const start = performance.now();
  for (let t = 0; t < total && !ctx.aborted; t = performance.now() - start) {
    const n = vusAt(sc.startVUs ?? 1, stages, t);
    slots.forEach((slot, i) => {
      if (i < n && !slot.active) {
        slot.active = true;
        clearTimeout(slot.timer);
        slot.loop ??= loop(slot);
      } else if (i >= n && slot.active) {
        slot.active = false;
        slot.timer = setTimeout(() => slot.vu.interrupt(), rampDown);
      }
    });
    await ctx.wait(Math.min(50, total - t));
  }
  const running = new Map();
  for (const slot of slots) {
    slot.active = false;
    if (slot.loop) running.set(slot.vu, slot.loop);
  }
  await finish(running, sc.gracefulStop);
  for (const slot of slots) clearTimeout(slot.timer);
}

async function constantArrivalRate(sc, ctx, vus) {
  const period = ms(sc.timeUnit ?? '1s') / sc.rate;
  const duration = ms(sc.duration);
  const maxVUs = Math.max(sc.maxVUs ?? vus.length, vus.length);
  const free = [...vus];
  const running = new Map();
  let allocated = vus.length;
  const start = performance.now();
  for (let i = 0; i * period < duration; i++) {
    await ctx.wait(start + i * period - performance.now());
    if (ctx.aborted) break;
    const vu = free.pop();
    if (!vu) {
      // As in k6: the iteration is dropped, and a VU is added in the background if allowed.
      ctx.registry.add('dropped_iterations', 1, sc.tags);
      if (allocated < maxVUs) {
        allocated++;
        ctx.spawnVU().then((v) => free.push(v), (e) => ctx.fatal(e));
      }
      continue;
    }
    running.set(vu, ctx.iterate(vu, sc).then(() => {
      running.delete(vu);
      if (!vu.dead) free.push(vu);
    }));
  }
  await finish(running, sc.gracefulStop);
}

async function iterationsUntil(sc, ctx, vus, takeIteration) {
  let expired = false;
  const deadline = ms(sc.maxDuration ?? '10m');
  const stopStarting = setTimeout(() => { expired = true; }, deadline);
  const interrupt = setTimeout(() => vus.forEach((vu) => vu.interrupt()), deadline + sc.gracefulStop);
  await Promise.all(vus.map(async (vu, i) => {
    while (!expired && !ctx.aborted && !vu.dead && takeIteration(i)) await ctx.iterate(vu, sc);
  }));
  clearTimeout(stopStarting);
  clearTimeout(interrupt);
}

/** EXECUTORS maps k6 executor names to {initialVUs(scenario), run(scenario, ctx, vus)}. */
export const EXECUTORS = {
  'ramping-vus': {
    initialVUs: (sc) => Math.max(sc.startVUs ?? 1, ...sc.stages.map((s) => s.target)),
    run: rampingVUs,
  },
  'constant-vus': {
    initialVUs: (sc) => sc.vus ?? 1,
    run: (sc, ctx, vus) => rampingVUs(
      { ...sc, startVUs: sc.vus ?? 1, stages: [{ duration: sc.duration, target: sc.vus ?? 1 }], gracefulRampDown: '0s' },
      ctx, vus),
  },
  'constant-arrival-rate': {
    initialVUs: (sc) => sc.preAllocatedVUs ?? 1,
    run: constantArrivalRate,
  },
  'per-vu-iterations': {
    initialVUs: (sc) => sc.vus ?? 1,
    run: (sc, ctx, vus) => {
      const done = vus.map(() => 0);
      return iterationsUntil(sc, ctx, vus, (i) => done[i]++ < (sc.iterations ?? 1));
    },
  },
  'shared-iterations': {
    initialVUs: (sc) => sc.vus ?? 1,
    run: (sc, ctx, vus) => {
      let left = sc.iterations ?? 1;
      return iterationsUntil(sc, ctx, vus, () => left-- > 0);
    },
  },
};
