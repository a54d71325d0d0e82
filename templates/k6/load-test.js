// k6 load test for an embeddings endpoint, rendered by `embedctl load-test`.
// The two __EMBEDCTL_*__ placeholders are replaced with JSON: `options` (stages, thresholds) and
// the run's config (target, shape, texts, summary path). Run by hand with `k6 run <file>`.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';

export const options = __EMBEDCTL_OPTIONS__;

const CONFIG = __EMBEDCTL_CONFIG__;

// Failed requests by status: k6's summary has no per-status breakdown, and custom metrics can
// only be created in the init context, so the statuses worth naming are fixed here.
const byStatus = {};
for (const key of CONFIG.trackedStatuses.concat(['other', 'network', 'timeout'])) {
  byStatus[key] = new Counter(`embedctl_status_${key}`);
}

// Who answered behind an embedctl gateway (X-Embedctl-Backend); "none": no gateway in front.
const byBackend = {};
for (const key of ['selfhosted', 'hosted', 'none']) byBackend[key] = new Counter(`embedctl_backend_${key}`);

function countBackend(res) {
  if (res.status === 0) return;
  const b = res.headers['X-Embedctl-Backend'];
  byBackend[b === 'selfhosted' || b === 'hosted' ? b : 'none'].add(1);
}

function countFailure(res) {
  if (res.status >= 200 && res.status < 300) return;
  if (res.status === 0) {
    // 1050 is k6's request-timeout error code; other status-0 answers never reached HTTP.
    byStatus[res.error_code === 1050 ? 'timeout' : 'network'].add(1);
  } else {
    (byStatus[String(res.status)] || byStatus.other).add(1);
  }
}

// Random draws mix short and long texts in a batch, as real traffic does.
function pickTexts(n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(CONFIG.texts[Math.floor(Math.random() * CONFIG.texts.length)]);
  return out;
}

function requestBody(input) {
  const body = {};
  if (CONFIG.model) body.model = CONFIG.model;
  body.input = input;
  if (CONFIG.shape === 'openai') body.encoding_format = 'float';
  else body.normalized = true;
  if (CONFIG.dimensions !== null) body.dimensions = CONFIG.dimensions;
  return JSON.stringify(body);
}

// Per VU: without --dimensions the first answer sets the expected size, so a change is caught.
let expectedDims = CONFIG.dimensions;

function dimensionsOk(data) {
  if (!data || data.length === 0) return false;
  for (const d of data) {
    const len = d && Array.isArray(d.embedding) ? d.embedding.length : -1;
    if (expectedDims === null && len > 0) expectedDims = len;
    if (len <= 0 || len !== expectedDims) return false;
  }
  return true;
}

// A saved script carries no credentials: `k6 run -e EMBEDCTL_API_KEY=... load-test.js` adds them.
const hasAuth = Object.keys(CONFIG.headers).some((k) => k.toLowerCase() === 'authorization');
const HEADERS = Object.assign({}, CONFIG.headers, !hasAuth && __ENV.EMBEDCTL_API_KEY ? { Authorization: `Bearer ${__ENV.EMBEDCTL_API_KEY}` } : {});

export default function () {
  // --max-requests bounds the run however long the stages are.
  if (exec.scenario.iterationInTest >= CONFIG.maxRequests) {
    exec.test.abort(`embedctl: --max-requests ${CONFIG.maxRequests} reached`);
  }
  const res = http.post(CONFIG.url, requestBody(pickTexts(CONFIG.batch)), {
    headers: HEADERS,
    timeout: CONFIG.timeout,
    tags: { name: 'embeddings' },
  });
  countFailure(res);
  countBackend(res);
  let data = null;
  if (res.status === 200) {
    try {
      const parsed = JSON.parse(res.body);
      data = Array.isArray(parsed.data) ? parsed.data : null;
    } catch (e) {
      data = null;
    }
  }
  check(res, {
    [CONFIG.checkNames.status]: (r) => r.status === 200,
    [CONFIG.checkNames.dataLength]: () => data !== null && data.length === CONFIG.batch,
    [CONFIG.checkNames.dimensions]: () => dimensionsOk(data),
  });
}

function fmt(n) {
  return typeof n === 'number' ? (Math.round(n * 100) / 100).toString() : 'n/a';
}

function textSummary(data) {
  const m = data.metrics;
  const d = (m.http_req_duration && m.http_req_duration.values) || {};
  const lines = [
    '',
    `embedctl load-test (k6): ${m.http_reqs ? m.http_reqs.values.count : 0} requests`,
    `  latency ms: p50 ${fmt(d['p(50)'])}  p90 ${fmt(d['p(90)'])}  p95 ${fmt(d['p(95)'])}  p99 ${fmt(d['p(99)'])}  max ${fmt(d.max)}`,
    `  failed: ${fmt(m.http_req_failed ? m.http_req_failed.values.rate * 100 : 0)} %`,
  ];
  for (const name of Object.keys(m)) {
    const th = m[name].thresholds || {};
    for (const expr of Object.keys(th)) lines.push(`  threshold ${name} ${expr}: ${th[expr].ok ? 'ok' : 'CROSSED'}`);
  }
  return lines.join('\n') + '\n';
}

// embedctl reads the JSON file; the short text goes to k6's stdout, which embedctl streams to stderr.
export function handleSummary(data) {
  return {
    [CONFIG.summaryPath]: JSON.stringify(data),
    stdout: textSummary(data),
  };
}
