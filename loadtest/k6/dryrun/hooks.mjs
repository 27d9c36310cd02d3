// Node module hooks for dryrun.mjs: every 'k6' and 'k6/...' import resolves to k6-stub.mjs, and
// the k6 script (a .js file with ES module imports) loads as an ES module.
let script = null;

export async function initialize(data) {
  script = data.script;
}

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'k6' || specifier.startsWith('k6/')) {
    return { url: new URL('./k6-stub.mjs', import.meta.url).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (url === script) {
    return nextLoad(url, { ...context, format: 'module' });
  }
  return nextLoad(url, context);
}
