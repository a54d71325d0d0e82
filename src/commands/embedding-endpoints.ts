import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Context } from '../context.js';
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
import { answeredBy, deploymentTarget } from '../adapters/evidence-targets.js';
import { parseTexts, type TextItem } from '../core/sample-texts.js';
import { fmtUsd, printJson, progress, withSchema, type Logger } from '../ui/output.js';
import type { Contract } from '../contracts/contract.js';
import { confirmOrRefuse } from '../ui/prompts.js';
import type { Values } from './define.js';
import { ENDPOINT_OPTIONS } from './define-options.js';

export { ENDPOINT_OPTIONS };

/**
 * The endpoint flags verify-consistency and rag-overlap share (two sides, auth, batching, the
 * cost guard and the cache), and the code that turns them into two embeddings clients.
 */

export type EndpointFlags = Values<typeof ENDPOINT_OPTIONS>;

export interface SidesVia {
  candidateVia: string;
  referenceVia: string;
  /** The deployment whose gateway a side went through (--deployment), for rollout to match. */
  candidateDeployment?: string;
  referenceDeployment?: string;
}

/**
 * With --deployment, the sides not given explicitly are the deployment's gateway pinned to
 * self-hosted (candidate) and hosted (reference) with the operator key. Without it both URLs are
 * required. Returns where each side came from, for the report.
 */
export async function resolveSides(ctx: Context, o: EndpointFlags): Promise<SidesVia> {
  const via: SidesVia = { candidateVia: 'as given', referenceVia: 'as given' };
  if (o.deployment !== undefined) {
    const t = await deploymentTarget(ctx.cwd, ctx.env, o.deployment);
    const headerFlags = (h: Record<string, string>) => Object.entries(h).map(([k, v]) => `${k}: ${v}`);
    if (!o.candidate) {
      o.candidate = t.selfHosted.url;
      o.candidateHeader = [...headerFlags(t.selfHosted.headers), ...(o.candidateHeader ?? [])];
      via.candidateVia = t.selfHosted.via;
      via.candidateDeployment = t.name;
    }
    if (!o.reference) {
      o.reference = t.hosted.url;
      o.referenceHeader = [...headerFlags(t.hosted.headers), ...(o.referenceHeader ?? [])];
      via.referenceVia = t.hosted.via;
      via.referenceDeployment = t.name;
    }
  }
  for (const side of ['reference', 'candidate'] as const) {
    if (!o[side]) throw new UsageError('required: an endpoint URL, or --deployment to use a deployment\'s gateway', { field: `--${side}` });
  }
  return via;
}

export interface Sides {
  reference: EmbeddingsClient;
  candidate: EmbeddingsClient;
  pricePerMillion?: number;
  maxCost: number;
}

/** Builds both clients; `task` may differ per call, so callers ask `make(task)` for each. */
export function endpointClients(ctx: Context, o: EndpointFlags, task?: string): Sides {
  const { dimensions, batchSize, concurrency, retries, pricePerMillion, maxCost } = o;
  const cacheMode = o.cache;
  const timeoutMs = o.timeout;
  const both = parseHeaders(o.header, '--header');
  const cache = cacheMode === 'off' ? undefined : createEmbeddingCache(resolve(ctx.cwd, defaultCacheDir(ctx.env, ctx.cwd)));
  const make = (side: 'reference' | 'candidate') => {
    const url = o[side]!;
    const shape = o[`${side}Shape`] as Shape | 'auto';
    // Validate the URL with the flag's name before the client sees it.
    try {
      new URL(url);
    } catch {
      throw new UsageError(`not a URL: ${JSON.stringify(url)}`, { field: `--${side}`, hint: 'e.g. http://127.0.0.1:8080 or https://api.jina.ai/v1/embeddings' });
    }
    const probe = createEmbeddingsClient({ url, shape, env: ctx.env });
    // The candidate is what is measured: never served from a cache, whatever --cache says (a
    // gateway URL is the same for both sides, so its answers would be the reference's).
    const useCache = side === 'reference' && (cacheMode === 'all' || (cacheMode === 'paid' && (probe.paid || pricePerMillion !== undefined)));
    return createEmbeddingsClient({
      side,
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

export type Verdict = 'pass' | 'warn' | 'fail';

/** At or above the gate passes; between the rollback trigger and the gate holds (warn). */
export function judge(value: number, gate: number, trigger: number): Verdict {
  return value >= gate ? 'pass' : value >= trigger ? 'warn' : 'fail';
}

/** A rollback trigger above its gate would roll back what the gate passed. */
export function triggerBelowGate(trigger: number, triggerFlag: string, gate: number, gateFlag: string): void {
  if (trigger > gate) throw new UsageError(`${trigger} is above ${gateFlag} ${gate}; the rollback trigger must sit at or below the gate`, { field: triggerFlag });
}


/** One side of an evidence report: where it was asked, what answered, and through which route. */
export function sideDoc(url: string, client: EmbeddingsClient, r: { model?: string; cached: number; backends: Record<string, number> }, via: string, deployment?: string) {
  return { url, endpoint: client.endpoint, model: r.model ?? null, cached: r.cached, answeredBy: answeredBy(r.backends), backends: r.backends, via, ...(deployment ? { deployment } : {}) };
}

/**
 * The tail every evidence command shares: the report to --out (through its contract, atomically),
 * then one JSON document under --json or the text lines.
 */
export async function emitReport(
  ctx: Context,
  json: boolean,
  o: { command: string; contract: Pick<Contract<unknown>, 'write'>; out?: string; doc: Record<string, unknown>; text: () => string[] },
): Promise<void> {
  if (o.out) await o.contract.write(resolve(ctx.cwd, o.out), withSchema(o.command, o.doc));
  if (json) printJson(ctx, o.command, o.doc);
  else ctx.stdout.write(`${o.text().join('\n')}\n`);
}
