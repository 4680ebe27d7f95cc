// The run's metrics (k6 built-ins the harness emits plus the script's custom metrics), their
// submetrics selected by threshold tag filters, and the per-check tallies for the summary.
import { newSink } from './sinks.js';
import { parseThresholds, checkAggregation, evaluate } from './thresholds.js';

/**
 * The k6 built-in metrics that the harness emits. A threshold on any other built-in (data_sent,
 * vus, ...) is refused at start rather than silently passing on an empty sink.
 */
export const BUILTINS = {
  checks: ['rate'],
  iterations: ['counter'],
  iteration_duration: ['trend', true],
  dropped_iterations: ['counter'],
  http_reqs: ['counter'],
  http_req_duration: ['trend', true],
  http_req_failed: ['rate'],
  ws_sessions: ['counter'],
  ws_connecting: ['trend', true],
  ws_session_duration: ['trend', true],
  ws_msgs_sent: ['counter'],
  ws_msgs_received: ['counter'],
  ws_ping: ['trend', true],
};

const matches = (filter, tags) => Object.entries(filter).every(([k, v]) => tags[k] === v);

/** Registry aggregates samples by metric. It is owned by the runner's main thread. */
export class Registry {
  metrics = new Map();
  thresholds = [];
  checks = new Map();

  constructor() {
    for (const [name, [type, isTime]] of Object.entries(BUILTINS)) this.define(name, type, Boolean(isTime));
  }

  /** define registers a metric; redefining a name with another type is an error, as in k6. */
  define(name, type, isTime) {
    const m = this.metrics.get(name);
    if (m) {
      if (m.type !== type) throw new Error(`metric ${name} already registered as a ${m.type}, not a ${type}`);
      return m;
    }
    const created = { name, type, isTime, sink: newSink(type), subs: [] };
    this.metrics.set(name, created);
    return created;
  }

  /** add records one sample; tags are the sample's full tag set (string values). */
  add(name, value, tags = {}) {
    const m = this.metrics.get(name);
    if (!m) throw new Error(`sample for undeclared metric ${name}`);
    m.sink.add(value);
    for (const sub of m.subs) if (matches(sub.tags, tags)) sub.sink.add(value);
    if (name === 'checks' && tags.check !== undefined) {
      const tally = this.checks.get(tags.check) ?? { passes: 0, fails: 0 };
      if (value) tally.passes++; else tally.fails++;
      this.checks.set(tags.check, tally);
    }
  }

  /** setThresholds parses options.thresholds and binds each to its (sub)metric, or throws. */
  setThresholds(option) {
    this.thresholds = parseThresholds(option).map((t) => {
      const m = this.metrics.get(t.name);
      if (!m) throw new Error(`invalid threshold defined on ${t.key}; reason: no metric name "${t.name}" found`);
      for (const rule of t.rules) checkAggregation(t.key, m.type, rule);
      if (Object.keys(t.tags).length === 0) return { ...t, metric: m, sink: m.sink };
      let sub = m.subs.find((s) => s.key === t.key);
      if (!sub) {
        sub = { key: t.key, tags: t.tags, sink: newSink(m.type) };
        m.subs.push(sub);
      }
      return { ...t, metric: m, sink: sub.sink };
    });
  }

  /**
   * evaluate runs every threshold rule. With onlyAbort it runs just the abortOnFail rules whose
   * delay has passed and skips empty sinks, as k6's periodic evaluation does.
   */
  evaluate(durationMs, { onlyAbort = false } = {}) {
    const results = [];
    for (const t of this.thresholds) {
      if (onlyAbort && t.sink.count === 0) continue;
      for (const rule of t.rules) {
        if (onlyAbort && !(rule.abortOnFail && durationMs >= rule.delayAbortEval)) continue;
        results.push({ key: t.key, metric: t.metric, rule, ...evaluate(t.metric.type, t.sink, rule, durationMs) });
      }
    }
    return results;
  }
}
