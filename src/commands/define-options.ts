import { SHAPES } from '../adapters/embeddings-client.js';
import { parseQuantity } from '../core/cost/inputs.js';
import { AWS_UNIT_PRICES, INSTANCES } from '../core/cost/prices.js';
import { opt, types, type OptionDef } from './define.js';

/**
 * The option tables of the commands on defineCommand (./define.ts), in one module that imports
 * nothing heavy: embedctl.yaml is checked against every table (src/config-schema.ts) before any
 * command runs, and loading the commands themselves for that would cost seconds (AWS SDK, ORT).
 */

const int = (min: number) => types.int(min);
const shape = types.oneOf(SHAPES);

/** The endpoint flags verify-consistency and rag-overlap share (two sides, auth, batching, cost guard, cache). */
export const ENDPOINT_OPTIONS = {
  reference: opt({ flag: '--reference <url>', help: 'the endpoint you trust today (hosted API or current deployment); with --deployment: its hosted side', type: types.string }),
  candidate: opt({ flag: '--candidate <url>', help: 'the endpoint that should replace it (e.g. the self-hosted runtime); with --deployment: its self-hosted side', type: types.string }),
  deployment: opt({ flag: '--deployment [name]', help: 'take both sides from a deployment\'s gateway (state.json, or "local" for up --local) through the operator route, whatever the split', type: types.optionalValue }),
  referenceHeader: opt({ flag: '--reference-header <header>', help: 'extra header for the reference, "Name: value" (repeatable)', type: types.list, repeatable: true, default: [] }),
  candidateHeader: opt({ flag: '--candidate-header <header>', help: 'extra header for the candidate, "Name: value" (repeatable)', type: types.list, repeatable: true, default: [] }),
  header: opt({ flag: '--header <header>', help: 'extra header for both sides (repeatable)', type: types.list, repeatable: true, default: [] }),
  referenceShape: opt({ flag: '--reference-shape <shape>', help: `request shape: ${SHAPES.join(', ')}`, type: shape, default: 'auto' }),
  candidateShape: opt({ flag: '--candidate-shape <shape>', help: `request shape: ${SHAPES.join(', ')}`, type: shape, default: 'auto' }),
  referenceModel: opt({ flag: '--reference-model <name>', help: 'model name sent to the reference (Jina/OpenAI default to theirs)', type: types.string }),
  candidateModel: opt({ flag: '--candidate-model <name>', help: 'model name sent to the candidate', type: types.string }),
  dimensions: opt({ flag: '--dimensions <n>', help: 'ask both sides for n dimensions (Matryoshka truncation)', type: int(1) }),
  batchSize: opt({ flag: '--batch-size <n>', help: 'texts per request', type: int(1), default: 64 }),
  concurrency: opt({ flag: '--concurrency <n>', help: 'requests in flight per endpoint', type: int(1), default: 4 }),
  timeout: opt({ flag: '--timeout <ms>', help: 'per-request timeout in ms', type: int(1), default: 60000 }),
  retries: opt({ flag: '--retries <n>', help: 'retries on 429/5xx/network errors', type: int(0), default: 4 }),
  cache: opt({ flag: '--cache <mode>', help: 'on-disk embeddings cache of the reference side: paid (hosted APIs only), all, off (the candidate is always asked)', env: 'EMBEDCTL_CACHE', type: types.oneOf(['paid', 'all', 'off'] as const), default: 'paid' }),
  maxCost: opt({ flag: '--max-cost <usd>', help: 'ask before spending more than this on hosted APIs', env: 'EMBEDCTL_MAX_COST', type: types.number({ min: 0 }), default: 1 }),
  pricePerMillion: opt({ flag: '--price-per-million <usd>', help: 'price per million tokens (treats both sides as paid)', type: types.number({ min: 0 }) }),
  yes: opt({ flag: '-y, --yes', help: 'go ahead without asking (needed above --max-cost when not on a terminal)', type: types.boolean, default: false }),
};

export const STATUS_OPTIONS = {
  name: opt({ flag: '--name <name>', help: 'only this deployment of the state file', type: types.string }),
  watch: opt({ flag: '--watch', help: 'redraw every --interval until Ctrl-C (with --json: one JSON document per line)', type: types.boolean, default: false }),
  interval: opt({ flag: '--interval <duration>', help: 'redraw interval for --watch', env: 'EMBEDCTL_STATUS_INTERVAL', yaml: 'status.interval', type: types.duration(200), default: '10s' }),
  timeout: opt({ flag: '--timeout <duration>', help: 'per-request timeout for health and metrics probes', env: 'EMBEDCTL_STATUS_TIMEOUT', yaml: 'status.timeout', type: types.duration(1), default: '3s' }),
};

export const TEARDOWN_OPTIONS = {
  name: opt({ flag: '--name <name>', help: 'only this deployment (default: every deployment in the state file)', type: types.string }),
  dryRun: opt({ flag: '--dry-run', help: "check with EC2's DryRun and print what would be removed", type: types.boolean, default: false }),
  yes: opt({ flag: '--yes', help: 'remove without asking (required without a terminal)', type: types.boolean, default: false }),
  force: opt({ flag: '--force', help: 'tear down even though the rollout state still sends traffic to self-hosted', type: types.boolean, default: false }),
};

export const VERIFY_OPTIONS = {
  ...ENDPOINT_OPTIONS,
  texts: opt({ flag: '--texts <file>', help: 'texts to compare (.jsonl with "text" fields, or .txt one per line); default: the built-in multilingual sample', type: types.string }),
  sample: opt({ flag: '--sample <n>', help: 'compare a seeded random sample of n texts', type: types.int(1) }),
  seed: opt({ flag: '--seed <n>', help: 'seed for --sample', type: types.number({ integer: true }), default: 1 }),
  task: opt({ flag: '--task <task>', help: 'task sent to both sides (Jina/embedctl), e.g. retrieval.passage, text-matching', type: types.string }),
  minCosine: opt({ flag: '--min-cosine <x>', help: 'gate: every text must reach this cosine', env: 'EMBEDCTL_MIN_COSINE', yaml: 'verify.minCosine', type: types.number({ min: -1, max: 1 }), default: 0.999 }),
  warnCosine: opt({ flag: '--warn-cosine <x>', help: 'rollback trigger: below this a live rollout goes back', env: 'EMBEDCTL_WARN_COSINE', yaml: 'verify.warnCosine', type: types.number({ min: -1, max: 1 }), default: 0.99 }),
  out: opt({ flag: '--out <file>', help: 'also write the JSON report here (atomically), as evidence for rollout', type: types.string }),
};

const unit = types.number({ min: 0, max: 1 });
const ratio = types.number({ min: 0, max: 2 });

export const RAG_OPTIONS = {
  ...ENDPOINT_OPTIONS,
  corpus: opt({ flag: '--corpus <file>', help: 'passages, .jsonl with "id" (or "_id"), "text" and optional "title"; default: the shipped sample (data/rag)', type: types.string }),
  queries: opt({ flag: '--queries <file>', help: 'queries, .jsonl with "id" and "text"; default: the shipped sample', type: types.string }),
  qrels: opt({ flag: '--qrels <file>', help: 'relevance judgements (TSV: query-id, corpus-id, grade); default with the shipped sample: its qrels', type: types.string }),
  k: opt({ flag: '--k <n>', help: 'how many results per query to compare', type: types.int(1, 1000), default: 10 }),
  queryTask: opt({ flag: '--query-task <task>', help: 'task for queries (Jina/embedctl)', type: types.string, default: 'retrieval.query' }),
  passageTask: opt({ flag: '--passage-task <task>', help: 'task for passages (Jina/embedctl)', type: types.string, default: 'retrieval.passage' }),
  minOverlap: opt({ flag: '--min-overlap <x>', help: 'gate: mean overlap@k must reach this', env: 'EMBEDCTL_MIN_OVERLAP', yaml: 'rag.minOverlap', type: unit, default: 0.8 }),
  warnOverlap: opt({ flag: '--warn-overlap <x>', help: 'rollback trigger: mean overlap@k below this', env: 'EMBEDCTL_WARN_OVERLAP', yaml: 'rag.warnOverlap', type: unit, default: 0.7 }),
  minNdcgRatio: opt({ flag: '--min-ndcg-ratio <x>', help: 're-index gate: candidate nDCG@10 / reference nDCG@10 must reach this', env: 'EMBEDCTL_MIN_NDCG_RATIO', yaml: 'rag.minNdcgRatio', type: ratio, default: 0.95 }),
  warnNdcgRatio: opt({ flag: '--warn-ndcg-ratio <x>', help: 're-index rollback trigger for the nDCG ratio', env: 'EMBEDCTL_WARN_NDCG_RATIO', yaml: 'rag.warnNdcgRatio', type: ratio, default: 0.9 }),
  reindex: opt({ flag: '--reindex', help: 'treat the move as a re-index (different model) even if it does not look like one', type: types.boolean, default: false }),
  out: opt({ flag: '--out <file>', help: 'also write the JSON report here (atomically), as evidence for rollout', type: types.string }),
};


/** cost-report: every value row also reads EMBEDCTL_<NAME> and embedctl.yaml cost.<name>. */
const qty = (min = 0) => parseQuantity({ min });
const cost = <T>(key: string, d: Omit<OptionDef<T>, 'env' | 'yaml'>): OptionDef<T> => ({ ...d, env: `EMBEDCTL_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`, yaml: `cost.${key}` });

export const COST_OPTIONS = {
  tokensPerMonth: cost('tokensPerMonth', { flag: '--tokens-per-month <n>', help: 'monthly embedding volume in tokens (2e9, 1_000_000, 10M, 2B)', type: qty() }),
  queriesPerMonth: cost('queriesPerMonth', { flag: '--queries-per-month <n>', help: 'or: queries embedded per month ...', type: qty() }),
  tokensPerQuery: cost('tokensPerQuery', { flag: '--tokens-per-query <n>', help: '... times tokens per query ...', type: qty() }),
  corpusTokens: cost('corpusTokens', { flag: '--corpus-tokens <n>', help: '... plus the corpus size in tokens (indexed once, reported as one-time cost) ...', type: qty() }),
  churn: cost('churn', { flag: '--churn <fraction>', help: '... times the share re-embedded each month (0.1 or 10%)', type: parseQuantity({ min: 0, percent: true }) }),
  tokensPerText: opt({ ...cost('tokensPerText', { flag: '--tokens-per-text <n>', help: 'average tokens per embedded document chunk', type: qty(1) }), default: 256 }),
  peakFactor: opt({ ...cost('peakFactor', { flag: '--peak-factor <x>', help: 'busiest minute over the average minute', type: qty(1) }), default: 3 }),
  provider: opt({ ...cost('provider', { flag: '--provider <name>', help: 'hosted provider: jina, openai or custom', type: types.oneOf(['jina', 'openai', 'custom'] as const) }), default: 'jina' }),
  // EMBEDCTL_MODEL is the model a deployment serves (render, up, serve); the hosted one priced
  // here has a name of its own, so one environment can hold both.
  model: { ...cost('model', { flag: '--model <name>', help: 'hosted model', defaultText: 'jina-embeddings-v3 / text-embedding-3-small', type: types.string }), env: 'EMBEDCTL_HOSTED_MODEL' },
  pricePerMillion: cost('pricePerMillion', { flag: '--price-per-million <usd>', help: 'hosted price per 1M tokens (overrides the built-in one)', type: qty() }),
  hostedDimensions: cost('hostedDimensions', { flag: '--hosted-dimensions <n>', help: "dimensions of the hosted model's vectors (for the indexed-data trigger)", type: qty(1) }),
  hostedP95Ms: cost('hostedP95Ms', { flag: '--hosted-p95-ms <ms>', help: 'p95 latency you see from the hosted API today', type: qty() }),
  instanceType: opt({ ...cost('instanceType', { flag: '--instance-type <type>', help: `EC2 instance type (built in: ${Object.keys(INSTANCES).join(', ')})`, type: types.string }), default: 'g4dn.xlarge' }),
  region: opt({ ...cost('region', { flag: '--region <region>', help: 'AWS region (others than us-east-1 need --live-pricing)', type: types.string }), default: 'us-east-1' }),
  pricing: opt({ ...cost('pricing', { flag: '--pricing <option>', help: 'on-demand, reserved, spot or all', type: types.oneOf(['on-demand', 'reserved', 'spot', 'all'] as const) }), default: 'all' }),
  instances: cost('instances', { flag: '--instances <n>', help: 'fixed instance count', defaultText: 'enough for the peak', type: parseQuantity({ min: 1, integer: true }) }),
  capacityFrom: cost('capacityFrom', { flag: '--capacity-from <file>', help: 'load-test report (embedctl.load-test/v1): its capacity at the SLO, converted by tokens to --tokens-per-text, sizes the fleet', type: types.string }),
  dimensions: opt({ ...cost('dimensions', { flag: '--dimensions <n>', help: 'self-hosted model dimensions', type: qty(1) }), default: 384 }),
  encoding: opt({ ...cost('encoding', { flag: '--encoding <enc>', help: 'response encoding, float or base64', type: types.oneOf(['float', 'base64'] as const) }), default: 'float' }),
  ebsGb: opt({ ...cost('ebsGb', { flag: '--ebs-gb <n>', help: 'gp3 volume per instance in GB', type: qty(1) }), default: 100 }),
  ebsIops: opt({ ...cost('ebsIops', { flag: '--ebs-iops <n>', help: 'gp3 IOPS per volume (3000 is the free baseline)', type: qty() }), default: AWS_UNIT_PRICES.ebsGp3BaselineIops.value }),
  ebsThroughput: opt({ ...cost('ebsThroughput', { flag: '--ebs-throughput <MBps>', help: 'gp3 throughput per volume (125 is the free baseline)', type: qty() }), default: AWS_UNIT_PRICES.ebsGp3BaselineThroughput.value }),
  snapshotGb: cost('snapshotGb', { flag: '--snapshot-gb <n>', help: 'snapshot GB kept', defaultText: 'one volume', type: qty() }),
  egressShare: opt({ ...cost('egressShare', { flag: '--egress-share <fraction>', help: 'share of responses leaving AWS to the internet (0 when callers are in-region)', type: parseQuantity({ min: 0, percent: true }) }), default: 1 }),
  loadBalancer: opt({ ...cost('loadBalancer', { flag: '--load-balancer', help: 'add an application load balancer', type: types.boolean }), default: false }),
  alarms: opt({ ...cost('alarms', { flag: '--alarms <n>', help: 'CloudWatch alarms', type: qty() }), default: 4 }),
  customMetrics: opt({ ...cost('customMetrics', { flag: '--custom-metrics <n>', help: 'CloudWatch custom metrics', type: qty() }), default: 3 }),
  engineeringHours: opt({ ...cost('engineeringHours', { flag: '--engineering-hours <h>', help: 'one-time set-up effort in hours', type: qty() }), default: 0 }),
  maintenanceHours: opt({ ...cost('maintenanceHours', { flag: '--maintenance-hours <h>', help: 'upkeep hours per month', type: qty() }), default: 0 }),
  hourlyRate: opt({ ...cost('hourlyRate', { flag: '--hourly-rate <usd>', help: 'engineering cost per hour', type: qty() }), default: 100 }),
  months: opt({ ...cost('months', { flag: '--months <n>', help: 'horizon for the total', type: qty(1) }), default: 12 }),
  livePricing: opt({ ...cost('livePricing', { flag: '--live-pricing', help: 'read EC2 prices from the AWS Pricing API and spot price history', type: types.boolean }), default: false }),
  actual: opt({ ...cost('actual', { flag: '--actual', help: 'add the real bill (Cost Explorer, $0.01 per request) and usage (CloudWatch)', type: types.boolean }), default: false }),
  csv: opt({ flag: '--csv', help: 'print the cost-by-volume table as CSV on stdout', type: types.boolean, default: false }),
  html: opt({ flag: '--html <file>', help: 'also write a self-contained HTML report with an SVG chart', type: types.string }),
  out: opt({ flag: '--out <file>', help: 'also write the JSON report here (atomically); rollout reads it as cost evidence', type: types.string }),
};
