// Runs loadtest/k6/converse.js under Node, against a simulated gateway (k6-stub.mjs): a check of the
// script where k6 is not installed. It loads the script as k6 would (its protos, its WAVs, its
// options), runs DRYRUN_ITERATIONS conversations (default 1) ten times faster than real time, checks
// that every threshold names a metric the script defines, and prints one JSON object: the metrics'
// samples and what the simulated gateway saw. Settings: the script's LOADTEST_* environment variables,
// DRYRUN_FAIL=llm (every turn gets an ErrorEvent), DRYRUN_SPEED.
//
//   node loadtest/k6/dryrun/dryrun.mjs [path/to/script.js]
import { readFileSync } from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.resolve(process.argv[2] || path.join(here, '..', 'converse.js'));
const scriptUrl = pathToFileURL(script).href;
register('./hooks.mjs', import.meta.url, { data: { script: scriptUrl } });

// k6's globals for the init context.
globalThis.__ENV = { ...process.env };
globalThis.__VU = 1;
globalThis.__ITER = 0;
globalThis.open = (file, mode) => {
  const data = readFileSync(path.resolve(path.dirname(script), file));
  return mode === 'b' ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data.toString('utf8');
};

const k6 = await import('./k6-stub.mjs');
k6.configure({
  scriptDir: path.dirname(script),
  speed: Number(process.env.DRYRUN_SPEED || 10),
  failBackend: process.env.DRYRUN_FAIL || '',
});
const { default: iteration, options } = await import(scriptUrl);

const THRESHOLD = /^(avg|min|max|med|count|rate|value|p\(\d+(\.\d+)?\))\s*(<|<=|>|>=|==|===|!=)\s*\d+(\.\d+)?$/;
for (const [name, rules] of Object.entries(options.thresholds || {})) {
  if (!k6.metrics[name]) {
    throw new Error(`threshold on ${name}: the script defines no such metric`);
  }
  for (const rule of rules) {
    if (!THRESHOLD.test(typeof rule === 'string' ? rule : rule.threshold)) {
      throw new Error(`threshold ${JSON.stringify(rule)} on ${name} is not k6's syntax`);
    }
  }
}

const iterations = Number(process.env.DRYRUN_ITERATIONS || 1);
for (let number = 0; number < iterations; number += 1) {
  globalThis.__ITER = number;
  iteration();
  await k6.idle();
}

const samples = Object.fromEntries(
  Object.entries(k6.metrics).map(([name, metric]) => [name, metric.samples.map((sample) => sample.value)]),
);
console.log(JSON.stringify({ options, metrics: samples, gateway: k6.gateway }));
