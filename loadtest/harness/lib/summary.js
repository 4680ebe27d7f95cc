// The end-of-test report: checks, thresholds, then every metric that received samples.

const fmtNum = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2));

/** fmtTime renders milliseconds the way k6's summary does (µs, ms or s). */
export function fmtTime(ms) {
  if (ms === undefined) return 'n/a';
  if (ms !== 0 && Math.abs(ms) < 1) return `${(ms * 1000).toFixed(2)}µs`;
  if (Math.abs(ms) < 1000) return `${ms.toFixed(2)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

function describe(m, sink, durationMs) {
  const f = m.isTime ? fmtTime : fmtNum;
  switch (m.type) {
    case 'trend':
      return `avg=${f(sink.avg)} min=${f(sink.min)} med=${f(sink.med)} max=${f(sink.max)} ` +
        `p(90)=${f(sink.p(0.9))} p(95)=${f(sink.p(0.95))} p(99)=${f(sink.p(0.99))} n=${sink.count}`;
    case 'counter':
      return `${fmtNum(sink.value)} ${(sink.value / (durationMs / 1000)).toFixed(2)}/s`;
    case 'rate':
      return `${(100 * (sink.rate ?? 0)).toFixed(2)}% (${sink.trues} of ${sink.total})`;
    default:
      return `value=${f(sink.value)} min=${f(sink.min)} max=${f(sink.max)}`;
  }
}

/** renderSummary returns the report as text. results come from Registry.evaluate. */
export function renderSummary(registry, results, durationMs) {
  const out = [];
  if (registry.checks.size) {
    out.push('checks:');
    for (const [name, { passes, fails }] of registry.checks) {
      out.push(`  ${fails ? '✗' : '✓'} ${name}  (${passes} passed, ${fails} failed)`);
    }
  }
  if (results.length) {
    out.push('thresholds:');
    for (const r of results) {
      const value = r.value === undefined ? r.reason : (r.metric.isTime && r.rule.agg !== 'count' && r.rule.agg !== 'rate' ? fmtTime(r.value) : fmtNum(r.value));
      out.push(`  ${r.ok ? '✓' : '✗'} ${r.key}  ${r.rule.source}  (${r.rule.label}=${value})`);
    }
  }
  out.push(`metrics (run time ${fmtTime(durationMs)}):`);
  for (const m of [...registry.metrics.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    if (m.sink.count === 0 && m.subs.every((s) => s.sink.count === 0)) continue;
    out.push(`  ${m.name.padEnd(36, '.')} ${describe(m, m.sink, durationMs)}`);
    for (const s of m.subs) out.push(`    ${s.key.padEnd(34, '.')} ${describe(m, s.sink, durationMs)}`);
  }
  return out.join('\n');
}
