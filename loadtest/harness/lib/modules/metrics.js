// Shim of k6/metrics: custom metrics, declared in the init context, aggregated by the runner.
import { state } from '../state.js';

class Metric {
  constructor(name, isTime = false) {
    state.declare(name, this.constructor.type, Boolean(isTime));
    this.name = name;
  }

  add(value, tags) {
    const v = Number(value);
    if (Number.isNaN(v)) throw new Error(`${this.name}.add: ${JSON.stringify(value)} is not a number`);
    state.push(this.name, v, tags);
    return true;
  }
}

export class Counter extends Metric { static type = 'counter'; }
export class Gauge extends Metric { static type = 'gauge'; }
export class Rate extends Metric { static type = 'rate'; }
export class Trend extends Metric { static type = 'trend'; }

export default { Counter, Gauge, Rate, Trend };
