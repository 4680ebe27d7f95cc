// k6 durations: "1h30m", "5s", "250ms", "1.5s", "0", or a bare number of milliseconds.
const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/** parseDuration returns the duration in milliseconds, or throws on a malformed value. */
export function parseDuration(value) {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (value === '0') return 0;
  if (typeof value !== 'string' || !WHOLE.test(value)) {
    throw new Error(`invalid duration ${JSON.stringify(value)} (want e.g. "30s", "1m30s", "250ms")`);
  }
  let ms = 0;
  for (const [, n, unit] of value.matchAll(PART)) ms += Number(n) * UNITS[unit];
  return ms;
}
