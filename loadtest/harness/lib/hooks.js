// Module resolution hook: the k6 built-in modules a script imports resolve to the harness's shims.
const SHIMS = {
  k6: 'k6.js',
  'k6/metrics': 'metrics.js',
  'k6/websockets': 'websockets.js',
  'k6/http': 'http.js',
  'k6/timers': 'timers.js',
};

export async function resolve(specifier, context, next) {
  const file = SHIMS[specifier];
  if (file) return { url: new URL(`./modules/${file}`, import.meta.url).href, shortCircuit: true };
  if (specifier.startsWith('k6/')) throw new Error(`the harness does not provide the k6 module ${specifier}`);
  return next(specifier, context);
}
