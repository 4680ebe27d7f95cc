#!/usr/bin/env node
// A test tool, not k6: runs a k6 script under Node with the subset of the k6 API that the
// scripts in loadtest/ use. Usage mirrors `k6 run`: k6.js run [-e KEY=VALUE]... script.js
import path from 'node:path';
import { run } from './lib/runner.js';

const usage = 'usage: k6.js run [-e KEY=VALUE]... script.js';
const args = process.argv.slice(2);
if (args.shift() !== 'run') {
  console.error(usage);
  process.exit(2);
}
// As with `k6 run`, __ENV holds the process environment plus the -e values.
const env = { ...process.env };
let script;
while (args.length) {
  const a = args.shift();
  if (a === '-e' || a === '--env') {
    const kv = args.shift() ?? '';
    const i = kv.indexOf('=');
    if (i <= 0) {
      console.error(`bad ${a} value ${JSON.stringify(kv)}; ${usage}`);
      process.exit(2);
    }
    env[kv.slice(0, i)] = kv.slice(i + 1);
  } else if (!script && !a.startsWith('-')) {
    script = a;
  } else {
    console.error(`unknown argument ${a}; ${usage}`);
    process.exit(2);
  }
}
if (!script) {
  console.error(usage);
  process.exit(2);
}
process.exit(await run({ script: path.resolve(script), env }));
