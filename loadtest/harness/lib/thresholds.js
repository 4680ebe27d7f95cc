// Threshold expressions as k6 writes them: "<aggregation> <operator> <number>", attached to a metric
// or to a submetric selected by tags ("name{tag:value,...}").
import { parseDuration } from './duration.js';

const EXPRESSION =
  /^\s*(avg|min|max|med|count|rate|value|p\(\s*(\d+(?:\.\d+)?)\s*\))\s*(===|==|!=|<=|>=|<|>)\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*$/;
const METRIC_KEY = /^([A-Za-z_][A-Za-z0-9_]*)(?:\{(.*)\})?$/;

/** Aggregations each metric type supports (k6 refuses the others when the test starts). */
export const AGGREGATIONS = {
  counter: ['count', 'rate'],
  gauge: ['value'],
  rate: ['rate'],
  trend: ['avg', 'min', 'max', 'med', 'p'],
};

/** parseExpression parses one threshold expression, e.g. "p(95)<250", or throws. */
export function parseExpression(source) {
  const m = EXPRESSION.exec(source);
  if (!m) throw new Error(`invalid threshold expression ${JSON.stringify(source)}`);
  const [, agg, pct, op, value] = m;
  if (pct !== undefined && Number(pct) > 100) throw new Error(`invalid percentile in ${JSON.stringify(source)}`);
  return {
    source,
    agg: pct === undefined ? agg : 'p',
    pct: pct === undefined ? undefined : Number(pct),
    label: pct === undefined ? agg : `p(${Number(pct)})`,
    op,
    value: Number(value),
  };
}

/** parseMetricKey splits "name{tag:value,other:x}" into the metric name and its tag filter. */
export function parseMetricKey(key) {
  const m = METRIC_KEY.exec(key.trim());
  if (!m) throw new Error(`invalid metric name in threshold key ${JSON.stringify(key)}`);
  const tags = {};
  if (m[2] !== undefined) {
    for (const part of m[2].split(',')) {
      const i = part.indexOf(':');
      if (i <= 0) throw new Error(`invalid tag filter ${JSON.stringify(part)} in ${JSON.stringify(key)}`);
      const unquote = (s) => s.trim().replace(/^(["'])(.*)\1$/, '$2');
      tags[unquote(part.slice(0, i))] = unquote(part.slice(i + 1));
    }
  }
  return { name: m[1], tags };
}

/**
 * parseThresholds turns options.thresholds into [{key, name, tags, rules}], where each rule is a
 * parsed expression plus abortOnFail and delayAbortEval (ms), as k6 accepts them.
 */
export function parseThresholds(option = {}) {
  return Object.entries(option).map(([key, list]) => {
    if (!Array.isArray(list)) throw new Error(`thresholds for ${key} must be an array`);
    const rules = list.map((item) => {
      const cfg = typeof item === 'string' ? { threshold: item } : item;
      if (!cfg || typeof cfg.threshold !== 'string') throw new Error(`invalid threshold for ${key}: ${JSON.stringify(item)}`);
      return {
        ...parseExpression(cfg.threshold),
        abortOnFail: Boolean(cfg.abortOnFail),
        delayAbortEval: cfg.delayAbortEval === undefined ? 0 : parseDuration(cfg.delayAbortEval),
      };
    });
    return { key, ...parseMetricKey(key), rules };
  });
}

/** checkAggregation throws when a metric of this type cannot be aggregated as the rule asks. */
export function checkAggregation(key, type, rule) {
  if (!AGGREGATIONS[type].includes(rule.agg)) {
    throw new Error(`threshold ${JSON.stringify(rule.source)} on ${key}: a ${type} supports ${AGGREGATIONS[type].join(', ')}`);
  }
}

/** aggregate reads the value a rule compares from a sink; undefined means there is no such value. */
export function aggregate(type, sink, rule, durationMs) {
  switch (rule.agg) {
    case 'count': return sink.value;
    case 'rate': return type === 'counter' ? sink.value / (durationMs / 1000) : sink.rate;
    case 'value': return sink.value;
    case 'p': return sink.p(rule.pct / 100);
    default: return sink[rule.agg];
  }
}

/** compare applies a threshold operator. */
export function compare(lhs, op, rhs) {
  switch (op) {
    case '<': return lhs < rhs;
    case '<=': return lhs <= rhs;
    case '>': return lhs > rhs;
    case '>=': return lhs >= rhs;
    case '==': case '===': return lhs === rhs;
    case '!=': return lhs !== rhs;
    default: throw new Error(`unknown operator ${op}`);
  }
}

/**
 * evaluate returns {ok, value} for one rule. A Rate without samples has no rate: k6 reports an
 * error for it rather than a pass, and so the harness counts it as crossed.
 */
export function evaluate(type, sink, rule, durationMs) {
  const value = aggregate(type, sink, rule, durationMs);
  if (value === undefined) return { ok: false, value, reason: 'no samples' };
  return { ok: compare(value, rule.op, rule.value), value };
}
