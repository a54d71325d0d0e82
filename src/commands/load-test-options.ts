import { opt, types } from './define.js';

/**
 * load-test's option table (flag, help, default as typed): commander's options and --help come
 * from it (addOptions), and run() fills in the same defaults. The gate flags read their
 * EMBEDCTL_* variable and embedctl.yaml key inside the command (loadTest.*), as their help says.
 */
export const LOAD_TEST_OPTIONS = {
  target: opt({ flag: '--target <url>', help: 'endpoint to load (a bare origin means <origin>/v1/embeddings); loopback only unless --allow-remote [env EMBEDCTL_LOAD_TEST_TARGET]', type: types.string }),
  deployment: opt({ flag: '--deployment [name]', help: "load the self-hosted side of a deployment's gateway (state.json, or \"local\" for up --local) through the operator route, whatever the split", type: types.optionalValue }),
  profile: opt({ flag: '--profile <name>', help: 'smoke (30s, 2 VUs), seed (2m->10, 5m->50, 5m at 50, 2m->0), soak (30m at 20)', type: types.string, default: 'smoke' }),
  stages: opt({ flag: '--stages <list>', help: 'custom stages "duration:VUs,...", e.g. "2m:10,5m:50,5m:50,2m:0" (overrides --profile)', type: types.string }),
  engine: opt({ flag: '--engine <name>', help: 'auto | k6 | autocannon (auto: k6 when on PATH) [env EMBEDCTL_LOAD_TEST_ENGINE]', type: types.string }),
  texts: opt({ flag: '--texts <file>', help: 'texts to embed: one per line, JSONL ({"text": ...}) or a JSON array (default: bundled samples)', type: types.string }),
  shape: opt({ flag: '--shape <shape>', help: 'request shape: openai | jina', type: types.string, default: 'openai' }),
  model: opt({ flag: '--model <name>', help: 'model name sent in each request (omitted when not given)', type: types.string }),
  batch: opt({ flag: '--batch <n>', help: 'texts per request', type: types.string, default: '8' }),
  dimensions: opt({ flag: '--dimensions <n>', help: 'request this many dimensions and check every embedding has them', type: types.string }),
  p95: opt({ flag: '--p95 <ms>', help: 'gate: p95 latency must stay below this [env EMBEDCTL_LOAD_TEST_P95, embedctl.yaml loadTest.p95Ms] (default 500)', type: types.string }),
  maxErrorRate: opt({ flag: '--max-error-rate <r>', help: 'gate: failed requests must stay below this fraction [env EMBEDCTL_LOAD_TEST_MAX_ERROR_RATE, embedctl.yaml loadTest.maxErrorRate] (default 0.05)', type: types.string }),
  durationScale: opt({ flag: '--duration-scale <f>', help: 'multiply every stage duration by this (min 1 s per stage), e.g. 0.01 for a quick run', type: types.string, default: '1' }),
  maxRequests: opt({ flag: '--max-requests <n>', help: 'stop after this many requests whatever the stages say', type: types.string, default: '1000000' }),
  timeout: opt({ flag: '--timeout <s>', help: 'per-request timeout in seconds', type: types.string, default: '30' }),
  header: opt({ flag: '--header <header>', help: 'extra request header "Name: value" (repeatable); EMBEDCTL_API_KEY adds a Bearer token', type: types.list, repeatable: true, default: [] }),
  allowRemote: opt({ flag: '--allow-remote', help: 'allow a non-loopback target (your own deployment only)', type: types.boolean }),
  out: opt({ flag: '--out <file>', help: 'also write the JSON report here (atomically); cost-report and rollout read it', type: types.string }),
  saveScript: opt({ flag: '--save-script <file>', help: 'write the rendered k6 script here (for `k6 run` by hand)', type: types.string }),
  dryRun: opt({ flag: '--dry-run', help: 'print the plan (stages, phases, thresholds) and send nothing', type: types.boolean }),
};

/** The defaults of the table's rows, as the flags' raw strings (what run() and the action start from). */
export const LOAD_TEST_DEFAULTS = Object.fromEntries(
  Object.entries(LOAD_TEST_OPTIONS).flatMap(([k, d]) => ('default' in d && d.default !== undefined && !Array.isArray(d.default) ? [[k, String(d.default)]] : [])),
) as { profile: string; shape: string; batch: string; durationScale: string; maxRequests: string; timeout: string };
