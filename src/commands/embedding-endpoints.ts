import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Context } from '../context.js';
import { parseFlag, parsers } from '../config.js';
import { UsageError } from '../errors.js';
import {
  createEmbeddingsClient,
  estimateCost,
  parseHeaders,
  SHAPES,
  type EmbeddingsClient,
  type Shape,
} from '../adapters/embeddings-client.js';
import { createEmbeddingCache, defaultCacheDir } from '../adapters/embedding-cache.js';
import { deploymentTarget } from '../adapters/evidence-targets.js';
import { parseTexts, type TextItem } from '../core/sample-texts.js';
import { fmtUsd, progress, type Logger } from '../ui/output.js';
import { confirmOrRefuse } from '../ui/prompts.js';

/**
 * The endpoint flags verify-consistency and rag-overlap share (two sides, auth, batching, the
 * cost guard and the cache), and the code that turns them into two embeddings clients.
 */

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function addEndpointOptions(cmd: Command): Command {
  return cmd
    .option('--reference <url>', 'the endpoint you trust today (hosted API or current deployment); with --deployment: its hosted side')
    .option('--candidate <url>', 'the endpoint that should replace it (e.g. the self-hosted runtime); with --deployment: its self-hosted side')
    .option('--deployment [name]', 'take both sides from a deployment\'s gateway (state.json, or "local" for up --local) through the operator route, whatever the split')
    .option('--reference-header <header>', 'extra header for the reference, "Name: value" (repeatable)', collect)
    .option('--candidate-header <header>', 'extra header for the candidate, "Name: value" (repeatable)', collect)
    .option('--header <header>', 'extra header for both sides (repeatable)', collect)
    .option('--reference-shape <shape>', `request shape: ${SHAPES.join(', ')}`, 'auto')
    .option('--candidate-shape <shape>', `request shape: ${SHAPES.join(', ')}`, 'auto')
    .option('--reference-model <name>', 'model name sent to the reference (Jina/OpenAI default to theirs)')
    .option('--candidate-model <name>', 'model name sent to the candidate')
    .option('--dimensions <n>', 'ask both sides for n dimensions (Matryoshka truncation)')
    .option('--batch-size <n>', 'texts per request', '64')
    .option('--concurrency <n>', 'requests in flight per endpoint', '4')
    .option('--timeout <ms>', 'per-request timeout in ms', '60000')
    .option('--retries <n>', 'retries on 429/5xx/network errors', '4')
    .option('--cache <mode>', 'on-disk embeddings cache: paid (hosted APIs only), all, off', 'paid')
    .option('--max-cost <usd>', 'ask before spending more than this on hosted APIs', '1')
    .option('--price-per-million <usd>', 'price per million tokens (treats both sides as paid)')
    .option('-y, --yes', 'go ahead without asking (needed above --max-cost when not on a terminal)');
}

export interface EndpointFlags {
  reference: string;
  candidate: string;
  deployment?: string | true;
  referenceHeader?: string[];
  candidateHeader?: string[];
  header?: string[];
  referenceShape: string;
  candidateShape: string;
  referenceModel?: string;
  candidateModel?: string;
  dimensions?: string;
  batchSize: string;
  concurrency: string;
  timeout: string;
  retries: string;
  cache: string;
  maxCost: string;
  pricePerMillion?: string;
  yes?: boolean;
}

/**
 * With --deployment, the sides not given explicitly are the deployment's gateway pinned to
 * self-hosted (candidate) and hosted (reference) with the operator key. Without it both URLs are
 * required. Returns where each side came from, for the report.
 */
export async function resolveSides(ctx: Context, o: EndpointFlags): Promise<{ candidateVia: string; referenceVia: string }> {
  let candidateVia = 'as given';
  let referenceVia = 'as given';
  if (o.deployment !== undefined) {
    const t = await deploymentTarget(ctx.cwd, ctx.env, o.deployment);
    const headerFlags = (h: Record<string, string>) => Object.entries(h).map(([k, v]) => `${k}: ${v}`);
    if (!o.candidate) {
      o.candidate = t.selfHosted.url;
      o.candidateHeader = [...headerFlags(t.selfHosted.headers), ...(o.candidateHeader ?? [])];
      candidateVia = t.selfHosted.via;
    }
    if (!o.reference) {
      o.reference = t.hosted.url;
      o.referenceHeader = [...headerFlags(t.hosted.headers), ...(o.referenceHeader ?? [])];
      referenceVia = t.hosted.via;
    }
  }
  for (const side of ['reference', 'candidate'] as const) {
    if (!o[side]) throw new UsageError('required: an endpoint URL, or --deployment to use a deployment\'s gateway', { field: `--${side}` });
  }
  return { candidateVia, referenceVia };
}

export interface Sides {
  reference: EmbeddingsClient;
  candidate: EmbeddingsClient;
  pricePerMillion?: number;
  maxCost: number;
}

/** Builds both clients; `task` may differ per call, so callers ask `make(task)` for each. */
export function endpointClients(ctx: Context, o: EndpointFlags, task?: string): Sides {
  const int = (flag: string, v: string, min: number) => parseFlag(flag, v, parsers.number({ integer: true, min }));
  const dimensions = o.dimensions === undefined ? undefined : int('--dimensions', o.dimensions, 1);
  const batchSize = int('--batch-size', o.batchSize, 1);
  const concurrency = int('--concurrency', o.concurrency, 1);
  const timeoutMs = int('--timeout', o.timeout, 1);
  const retries = int('--retries', o.retries, 0);
  const cacheMode = parseFlag('--cache', o.cache, parsers.oneOf(['paid', 'all', 'off'] as const));
  const maxCost = parseFlag('--max-cost', o.maxCost, parsers.number({ min: 0 }));
  const pricePerMillion = o.pricePerMillion === undefined ? undefined : parseFlag('--price-per-million', o.pricePerMillion, parsers.number({ min: 0 }));
  const both = parseHeaders(o.header, '--header');
  const cache = cacheMode === 'off' ? undefined : createEmbeddingCache(resolve(ctx.cwd, defaultCacheDir(ctx.env, ctx.cwd)));
  const make = (side: 'reference' | 'candidate') => {
    const url = o[side];
    const shape = parseFlag(`--${side}-shape`, o[`${side}Shape`], parsers.oneOf(SHAPES)) as Shape | 'auto';
    // Validate the URL with the flag's name before the client sees it.
    try {
      new URL(url);
    } catch {
      throw new UsageError(`not a URL: ${JSON.stringify(url)}`, { field: `--${side}`, hint: 'e.g. http://127.0.0.1:8080 or https://api.jina.ai/v1/embeddings' });
    }
    const probe = createEmbeddingsClient({ url, shape, env: ctx.env });
    const useCache = cacheMode === 'all' || (cacheMode === 'paid' && (probe.paid || pricePerMillion !== undefined));
    return createEmbeddingsClient({
      url,
      shape,
      model: o[`${side}Model`],
      headers: { ...both, ...parseHeaders(o[`${side}Header`], `--${side}-header`) },
      task,
      dimensions,
      batchSize,
      concurrency,
      timeoutMs,
      retries,
      env: ctx.env,
      cache: useCache ? cache : undefined,
      fetch: ctx.adapters.fetch,
      sleep: ctx.sleep,
      signal: ctx.signal,
    });
  };
  return { reference: make('reference'), candidate: make('candidate'), pricePerMillion, maxCost };
}

/**
 * Before paying a hosted API: estimate tokens and dollars for everything about to be sent;
 * above --max-cost ask on a terminal, or require --yes without one.
 */
export async function guardCost(
  ctx: Context,
  log: Logger,
  plan: Array<{ client: EmbeddingsClient; texts: string[] }>,
  o: { maxCost: number; pricePerMillion?: number; yes?: boolean },
): Promise<{ tokens: number; usd: number } | undefined> {
  let tokens = 0;
  let usd = 0;
  const parts: string[] = [];
  for (const { client, texts } of plan) {
    const est = estimateCost(client, texts, o.pricePerMillion);
    if (!est) continue;
    tokens += est.tokens;
    usd += est.usd;
    parts.push(`${new URL(est.endpoint).host}: ~${est.tokens.toLocaleString('en-US')} tokens at ${fmtUsd(est.pricePerMillion)}/M`);
  }
  if (parts.length === 0) return undefined;
  const summary = `estimated cost ${fmtUsd(usd)} (${parts.join('; ')}; cached texts are not re-sent)`;
  log.info(summary);
  if (usd <= o.maxCost || o.yes) return { tokens, usd };
  await confirmOrRefuse(ctx, {
    message: `Spend about ${fmtUsd(usd)} on embeddings?`,
    noTerminal: `${summary} is over --max-cost ${fmtUsd(o.maxCost)}; not asking without a terminal`,
    hint: 'pass --yes to accept, raise --max-cost, or use --sample to send fewer texts',
    refused: 'cancelled: the estimated cost was not accepted',
  });
  return { tokens, usd };
}

/** Embeds with a progress bar on stderr. */
export async function embedWithProgress(ctx: Context, label: string, client: EmbeddingsClient, texts: string[]) {
  const bar = progress(ctx, label, texts.length);
  let seen = 0;
  const r = await client.embed(texts, {
    onProgress: (done) => {
      bar.tick(done - seen);
      seen = done;
    },
  });
  bar.done();
  return r;
}

export function readTextFile(ctx: Context, flag: string, path: string, fields?: string[]): TextItem[] {
  const full = resolve(ctx.cwd, path);
  let content: string;
  try {
    content = readFileSync(full, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { field: flag });
  }
  try {
    return parseTexts(content, path, fields);
  } catch (err) {
    throw new UsageError((err as Error).message, { field: flag });
  }
}

/** Sums per-backend answer counts of several embed calls. */
export function mergeCounts(...counts: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of counts) for (const [k, n] of Object.entries(c)) out[k] = (out[k] ?? 0) + n;
  return out;
}
