import { readFileSync } from 'node:fs';
import { operatorKey, parseGatewayKeys } from '../core/gateway-keys.js';
import { ROUTE_HEADER, type GatewayRoute } from '../core/nginx-conf.js';
import { readState, statePaths } from '../core/state.js';
import { UsageError } from '../errors.js';
import type { ReportSide } from '../contracts/reports.js';
import { isPaidHost } from './embeddings-shapes.js';

/**
 * Evidence from the right side. Through an embedctl gateway the split decides who answers, so at
 * 0 % a "candidate" URL pointing at the gateway is the hosted API. An operator key plus
 * `X-Embedctl-Route: self-hosted|hosted` pins one side whatever the split; this module finds the
 * gateway and the operator key of a deployment (`.embedctl/state.json`, or the local stack of
 * `up --local`) and checks, after the fact, which side really answered (X-Embedctl-Backend).
 */

export const OPERATOR_KEY_ENV = 'EMBEDCTL_OPERATOR_KEY';

export interface RoutedEndpoint {
  url: string;
  headers: Record<string, string>;
  /** What the report says about where this came from. */
  via: string;
}

export interface DeploymentTarget {
  name: string;
  gateway: string;
  selfHosted: RoutedEndpoint;
  hosted: RoutedEndpoint;
}

function routed(gateway: string, key: string, route: GatewayRoute, name: string): RoutedEndpoint {
  return {
    url: gateway,
    headers: { Authorization: `Bearer ${key}`, [ROUTE_HEADER]: route },
    via: `deployment ${name}: ${gateway} with ${ROUTE_HEADER}: ${route} (operator key)`,
  };
}

/**
 * The gateway and operator key of `--deployment [name]`: "local" (or no name while a local stack
 * runs) is `up --local`, whose keys file holds the operator key; any other name is a deployment
 * in state.json, whose operator key comes from EMBEDCTL_OPERATOR_KEY (it lives in SSM on the
 * instance, never in state).
 */
export async function deploymentTarget(cwd: string, env: Record<string, string | undefined>, name?: string | true): Promise<DeploymentTarget> {
  const paths = statePaths(cwd, env);
  const wanted = typeof name === 'string' ? name : undefined;
  let local: { url?: string; gatewayKeys?: { file?: string } } | undefined;
  try {
    local = JSON.parse(readFileSync(paths.local, 'utf8')) as typeof local;
  } catch {
    local = undefined;
  }
  if (local?.url && (wanted === undefined || wanted === 'local')) {
    const file = local.gatewayKeys?.file;
    let key = env[OPERATOR_KEY_ENV];
    if (!key && file) {
      try {
        key = operatorKey(parseGatewayKeys(readFileSync(file, 'utf8'), file));
      } catch (err) {
        throw new UsageError(`cannot read the local gateway's operator key: ${(err as Error).message}`, { field: '--deployment', hint: 'restart the stack: embedctl down --local && embedctl up --local' });
      }
    }
    if (!key) throw new UsageError('the local stack has no operator key', { field: '--deployment', hint: `restart it with embedctl up --local, or set ${OPERATOR_KEY_ENV}` });
    return { name: 'local', gateway: local.url, selfHosted: routed(local.url, key, 'self-hosted', 'local'), hosted: routed(local.url, key, 'hosted', 'local') };
  }
  const state = await readState(paths.state);
  const names = Object.keys(state.deployments);
  const pick = wanted ?? (names.length === 1 ? names[0] : undefined);
  if (!pick) {
    throw new UsageError(names.length === 0 ? 'no deployment in .embedctl/state.json and no local stack' : `which one? ${names.join(', ')}`, {
      field: '--deployment',
      hint: names.length === 0 ? 'provision one (embedctl provision) or start one here (embedctl up --local)' : 'name it: --deployment <name>',
    });
  }
  const d = state.deployments[pick];
  if (!d) throw new UsageError(`no deployment "${pick}" in ${paths.state}${names.length ? ` (there are: ${names.join(', ')})` : ''}`, { field: '--deployment' });
  if (!d.gateway) throw new UsageError(`deployment "${pick}" has no gateway URL recorded`, { field: '--deployment', hint: 'run embedctl status to refresh it, or pass --candidate with --candidate-header' });
  const key = env[OPERATOR_KEY_ENV];
  if (!key) {
    throw new UsageError(`evidence through the gateway of "${pick}" needs its operator key`, { field: OPERATOR_KEY_ENV, hint: 'export EMBEDCTL_OPERATOR_KEY=<the operator line of the gateway keys parameter in SSM>' });
  }
  return { name: pick, gateway: d.gateway, selfHosted: routed(d.gateway, key, 'self-hosted', pick), hosted: routed(d.gateway, key, 'hosted', pick) };
}

export type Side = 'candidate' | 'reference';

/**
 * The candidate must have answered from self-hosted (or from a runtime directly, which sends no
 * X-Embedctl-Backend). Hosted answers, alone or mixed in, mean the evidence compares hosted with
 * hosted: an error naming what happened and how to reach the self-hosted side.
 */
export function checkCandidateBackends(backends: Record<string, number>, url: string, field = '--candidate', cached = 0): void {
  // A cached vector is an old answer from whichever side filled the cache: not a measurement.
  if (cached > 0) {
    throw new UsageError(`${cached} of the ${field === '--candidate' ? 'candidate' : 'target'}'s answers came from the embeddings cache, not from ${url}: that is not evidence about the self-hosted side`, {
      field,
      hint: 'the candidate is never cached; rerun with this embedctl, or with --cache off',
    });
  }
  const hosted = backends.hosted ?? 0;
  if (hosted === 0) return;
  const total = Object.values(backends).reduce((a, b) => a + b, 0);
  const what = hosted === total ? 'answered from hosted' : 'answered from a mix of self-hosted and hosted';
  const counts = Object.entries(backends).map(([k, n]) => `${k} ${n}`).join(', ');
  throw new UsageError(
    field === '--candidate'
      ? `the candidate ${what} (X-Embedctl-Backend: ${counts} of ${total} answers): this would compare hosted with hosted, not the self-hosted side`
      : `the target ${what} (X-Embedctl-Backend: ${counts} of ${total} answers): this would measure the hosted API, not the self-hosted side`,
    {
      field,
      hint:
        field === '--deployment'
          ? `${url} did not keep the operator route to self-hosted: check ${OPERATOR_KEY_ENV} and that the gateway honours ${ROUTE_HEADER} (re-render it with this embedctl)`
          : `${url} is a gateway splitting traffic; target the self-hosted side with --deployment (operator route), or add ${field === '--candidate' ? '--candidate-header' : '--header'} "Authorization: Bearer <operator key>" ${field === '--candidate' ? '--candidate-header' : '--header'} "${ROUTE_HEADER}: self-hosted"`,
    },
  );
}

/** "selfhosted" / "hosted" / "mixed" / "direct" (no gateway header): what reports record. */
export function answeredBy(backends: Record<string, number>): string {
  const sides = Object.keys(backends).filter((k) => (backends[k] ?? 0) > 0);
  if (sides.length === 0) return 'cache';
  if (sides.length > 1) return 'mixed';
  return sides[0] === 'none' ? 'direct' : sides[0]!;
}

/** What rollout is moving traffic to, when it knows: a report about something else is not evidence. */
export interface ExpectedTarget {
  deployment?: string;
  model?: string;
}

/**
 * Why a verify-consistency or rag-overlap report says nothing about the self-hosted side, or
 * undefined when its sides hold up. The candidate must have been answered by self-hosted: through
 * a gateway its X-Embedctl-Backend says so ("selfhosted"); straight from a runtime there is no
 * header ("direct"), so the candidate must then be another endpoint than the reference and not a
 * hosted API. Cached candidate answers are old answers from whoever filled the cache.
 */
export function reportSidesProblem(doc: { reference?: ReportSide; candidate?: ReportSide }, expected: ExpectedTarget = {}): string | undefined {
  const c = doc.candidate;
  const r = doc.reference;
  if (!c || !r) return undefined;
  const cEnd = c.endpoint ?? c.url;
  const rEnd = r.endpoint ?? r.url;
  const by = c.answeredBy;
  if ((c.cached ?? 0) > 0 || by === 'cache') return `the candidate was answered from the embeddings cache (${c.cached ?? 'all'} texts), not asked`;
  if (by === undefined) return 'it does not record who answered the candidate (candidate.answeredBy)';
  if (by === 'hosted' || by === 'mixed') return `the candidate was answered by ${by === 'hosted' ? 'the hosted side' : 'a mix of hosted and self-hosted'} of the gateway (candidate.answeredBy ${by}): hosted compared with hosted`;
  if (by !== 'selfhosted' && by !== 'direct') return `the candidate was answered by "${by}", not by self-hosted`;
  if (r.answeredBy === 'selfhosted' || r.answeredBy === 'mixed') return `the reference was answered by ${r.answeredBy === 'mixed' ? 'a mix of hosted and ' : ''}self-hosted (reference.answeredBy ${r.answeredBy}): self-hosted compared with itself`;
  // Through a gateway both sides share one URL; its backend header is what tells them apart.
  if (by === 'direct' && cEnd === rEnd) return `candidate and reference are the same endpoint (${cEnd}) with no gateway saying which side answered: it compared an endpoint with itself`;
  if (by === 'direct' && isPaidHost(cEnd)) return `the candidate is the hosted API (${cEnd}), not self-hosted`;
  if (expected.deployment && c.deployment && c.deployment !== expected.deployment) return `it measured deployment "${c.deployment}", and this rollout moves "${expected.deployment}"`;
  if (expected.model && c.model && c.model !== expected.model) return `the candidate served model ${c.model}, and this rollout moves ${expected.model}`;
  return undefined;
}
