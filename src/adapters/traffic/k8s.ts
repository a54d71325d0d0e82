import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseAllDocuments, type Document } from 'yaml';
import { ExternalError, UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import type { ApplyResult, TrafficDriver } from './types.js';

/**
 * The k8s split is the canary Ingress that `render` writes (templates/k8s/traffic.yaml):
 * ingress-nginx sends `canary-weight` out of `canary-weight-total` (10000) of /v1 to the runtime
 * Service, so a share of 12.5 % is weight 1250. This driver moves that one annotation, in the
 * rendered files (`--k8s-manifests DIR`, for GitOps) or live with kubectl, and reads it back.
 */
export const CANARY_WEIGHT = 'nginx.ingress.kubernetes.io/canary-weight';
export const CANARY_TOTAL = 'nginx.ingress.kubernetes.io/canary-weight-total';
export const DEFAULT_INGRESS = 'embedctl-self-hosted';
const TOTAL = 10_000;

export interface K8sDriverOptions {
  ingress: string;
  namespace: string;
  /** Rendered manifests: a directory (render's k8s/) or one file; rewritten instead of a cluster. */
  manifests?: string;
  kubectl?: string;
  /** Extra kubectl args, e.g. ["--context", "prod"]. */
  kubectlArgs?: string[];
  env?: Record<string, string | undefined>;
}

const weightOf = (percent: number) => Math.round(percent * (TOTAL / 100));
const shareOf = (weight: number, total = TOTAL) => Math.round((10_000 * weight) / total) / 100;

export function k8sDriver(o: K8sDriverOptions): TrafficDriver {
  const kubectl = o.kubectl ?? 'kubectl';
  return {
    name: 'k8s',
    target: o.manifests ? `Ingress ${o.ingress} in ${o.manifests}` : `ingress/${o.ingress} in namespace ${o.namespace} (${kubectl})`,
    describe: (percent) =>
      o.manifests
        ? `set ${CANARY_WEIGHT}: "${weightOf(percent)}" (of ${TOTAL}) on Ingress ${o.ingress} in ${o.manifests}`
        : `${kubectl} annotate ingress ${o.ingress} -n ${o.namespace} ${CANARY_WEIGHT}=${weightOf(percent)} --overwrite`,
    async apply(percent): Promise<ApplyResult> {
      return o.manifests ? rewriteManifests(o.manifests, o.ingress, percent) : annotateLive(kubectl, o, percent);
    },
  };
}

async function manifestFiles(path: string): Promise<string[]> {
  let st;
  try {
    st = await fsp.stat(path);
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`, { field: '--k8s-manifests', hint: 'render them first: embedctl render --out deploy (then --k8s-manifests deploy/k8s)' });
  }
  if (!st.isDirectory()) return [path];
  const names = (await fsp.readdir(path)).filter((f) => /\.ya?ml$/.test(f)).sort();
  return names.map((f) => join(path, f));
}

const isCanary = (d: Document, name: string) => d.get('kind') === 'Ingress' && d.getIn(['metadata', 'name']) === name;

async function rewriteManifests(path: string, ingress: string, percent: number): Promise<ApplyResult> {
  for (const file of await manifestFiles(path)) {
    const docs = parseAllDocuments(await fsp.readFile(file, 'utf8'));
    const target = docs.find((d) => isCanary(d, ingress));
    if (!target) continue;
    if (target.getIn(['metadata', 'annotations', 'nginx.ingress.kubernetes.io/canary']) !== 'true') {
      throw new UsageError(`Ingress ${ingress} in ${file} is not an ingress-nginx canary`, { field: '--k8s-manifests' });
    }
    // Document-level edit keeps comments and every other document exactly as rendered.
    target.setIn(['metadata', 'annotations', CANARY_WEIGHT], String(weightOf(percent)));
    await writeFileAtomic(file, docs.map((d) => d.toString()).join(''));
    const back = parseAllDocuments(await fsp.readFile(file, 'utf8')).find((d) => isCanary(d, ingress));
    const weight = Number(back?.getIn(['metadata', 'annotations', CANARY_WEIGHT]));
    const total = Number(back?.getIn(['metadata', 'annotations', CANARY_TOTAL]) ?? 100);
    const observed = Number.isFinite(weight) ? shareOf(weight, total) : null;
    return { confirmed: observed === percent, observedPercent: observed, detail: `${file}: Ingress ${ingress} ${CANARY_WEIGHT}=${weight} of ${total} (${observed}%)` };
  }
  throw new UsageError(`no Ingress named ${ingress} in ${path}`, { field: '--k8s-manifests', hint: 'point at the k8s/ directory `embedctl render` wrote (traffic.yaml holds the canary Ingress)' });
}

async function annotateLive(kubectl: string, o: K8sDriverOptions, percent: number): Promise<ApplyResult> {
  const base = [...(o.kubectlArgs ?? []), '-n', o.namespace];
  const run = async (args: string[]) => {
    try {
      return await execa(kubectl, args, { env: o.env, extendEnv: false, timeout: 60_000 });
    } catch (err) {
      const e = err as { code?: string; stderr?: string; shortMessage?: string };
      if (e.code === 'ENOENT') {
        throw new ExternalError('kubectl', `${kubectl} not found on PATH`, { hint: 'install kubectl, or use --k8s-manifests to rewrite the rendered manifests' });
      }
      throw new ExternalError('kubectl', (e.stderr?.trim().split('\n')[0] || e.shortMessage) ?? String(err), {
        cause: err,
        hint: `check the kube context and that ingress ${o.ingress} exists in namespace ${o.namespace} (kubectl apply -f deploy/k8s/)`,
      });
    }
  };
  await run(['annotate', 'ingress', o.ingress, ...base, `${CANARY_WEIGHT}=${weightOf(percent)}`, '--overwrite']);
  const got = await run(['get', 'ingress', o.ingress, ...base, '-o', `jsonpath={.metadata.annotations.${CANARY_WEIGHT.replace(/\./g, '\\.')}}`]);
  const weight = Number(got.stdout.trim());
  const observed = got.stdout.trim() === '' || !Number.isFinite(weight) ? null : shareOf(weight);
  return { confirmed: observed === percent, observedPercent: observed, detail: `ingress/${o.ingress} in ${o.namespace}: ${CANARY_WEIGHT}=${got.stdout.trim()} of ${TOTAL} (${observed}%)` };
}
