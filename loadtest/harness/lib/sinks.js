// Aggregation of the samples of one metric, following k6's sinks so that a threshold evaluates to
// the same number here as under k6 (e.g. percentiles interpolate linearly between samples).

/** TrendSink keeps every value (as k6 does) for min, max, avg, med and percentiles. */
export class TrendSink {
  values = [];
  sum = 0;
  #sorted = true;

  add(v) {
    if (this.values.length > 0 && v < this.values[this.values.length - 1]) this.#sorted = false;
    this.values.push(v);
    this.sum += v;
  }

  get count() { return this.values.length; }
  get min() { return this.count ? this.#ordered()[0] : 0; }
  get max() { return this.count ? this.#ordered()[this.count - 1] : 0; }
  get avg() { return this.count ? this.sum / this.count : 0; }
  get med() { return this.p(0.5); }

  /** p returns the pct quantile (0..1), 0 for an empty sink, like k6's TrendSink.P. */
  p(pct) {
    const v = this.#ordered();
    if (v.length === 0) return 0;
    if (v.length === 1) return v[0];
    const i = pct * (v.length - 1);
    const lo = v[Math.floor(i)];
    const hi = v[Math.ceil(i)];
    return lo + (hi - lo) * (i - Math.floor(i));
  }

  #ordered() {
    if (!this.#sorted) {
      this.values.sort((a, b) => a - b);
      this.#sorted = true;
    }
    return this.values;
  }
}

/** CounterSink sums values; its rate is per second of test run time. */
export class CounterSink {
  value = 0;
  count = 0;
  add(v) { this.value += v; this.count++; }
}

/** RateSink counts non-zero values among all values. */
export class RateSink {
  trues = 0;
  total = 0;
  add(v) { this.total++; if (v !== 0) this.trues++; }
  /** rate is undefined without samples: k6 then has no "rate" to compare either. */
  get rate() { return this.total ? this.trues / this.total : undefined; }
  get count() { return this.total; }
}

/** GaugeSink keeps the last value plus the extremes. */
export class GaugeSink {
  value = 0;
  min = 0;
  max = 0;
  count = 0;
  add(v) {
    this.min = this.count ? Math.min(this.min, v) : v;
    this.max = this.count ? Math.max(this.max, v) : v;
    this.value = v;
    this.count++;
  }
}

const SINKS = { trend: TrendSink, counter: CounterSink, rate: RateSink, gauge: GaugeSink };

/** newSink returns an empty sink for a metric type ("trend", "counter", "rate", "gauge"). */
export function newSink(type) {
  const Sink = SINKS[type];
  if (!Sink) throw new Error(`unknown metric type ${type}`);
  return new Sink();
}
