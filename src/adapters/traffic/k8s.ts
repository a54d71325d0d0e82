import { promises as fsp } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { ExternalError, UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { PERCENT_KEY, type ApplyResult, type TrafficDriver } from './types.js';

export interface K8sDriverOptions {
  configMap: string;
  namespace: string;
  /** Rewrite this rendered manifest instead of talking to a cluster (apply it with GitOps/kubectl). */
  manifest?: string;
  kubectl?: string;
  /** Extra kubectl args, e.g. ["--context", "prod"]. */
  kubectlArgs?: string[];
  env?: Record<string, string | undefined>;
}

/** Sets SELF_HOSTED_TRAFFIC_PERCENT in a ConfigMap: in a rendered manifest, or live with kubectl. */
export function k8sDriver(o: K8sDriverOptions): TrafficDriver {
  const kubectl = o.kubectl ?? 'kubectl';
  return {
    name: 'k8s',
    target: o.manifest ? `ConfigMap ${o.configMap} in ${o.manifest}` : `configmap/${o.configMap} in namespace ${o.namespace} (${kubectl})`,
    describe: (percent) =>
      o.manifest
        ? `set ${PERCENT_KEY}: "${percent}" in ConfigMap ${o.configMap} of ${o.manifest}`
        : `${kubectl} patch configmap ${o.configMap} -n ${o.namespace} --type merge -p '${patchBody(percent)}'`,
    async apply(percent): Promise<ApplyResult> {
      return o.manifest ? rewriteManifest(o.manifest, o.configMap, percent) : patchLive(kubectl, o, percent);
    },
  };
}

const patchBody = (percent: number) => JSON.stringify({ data: { [PERCENT_KEY]: String(percent) } });

async function rewriteManifest(path: string, name: string, percent: number): Promise<ApplyResult> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`, { field: '--k8s-manifest' });
  }
  const docs = parseAllDocuments(text);
  const target = docs.find((d) => d.get('kind') === 'ConfigMap' && d.getIn(['metadata', 'name']) === name);
  if (!target) {
    throw new UsageError(`${path} has no ConfigMap named ${name}`, { field: '--k8s-configmap', hint: 'name the ConfigMap that holds SELF_HOSTED_TRAFFIC_PERCENT' });
  }
  // Document-level edit keeps comments and the other documents exactly as rendered.
  target.setIn(['data', PERCENT_KEY], String(percent));
  await writeFileAtomic(path, docs.map((d) => d.toString()).join(''));
  const back = parseAllDocuments(await fsp.readFile(path, 'utf8'))
    .find((d) => d.get('kind') === 'ConfigMap' && d.getIn(['metadata', 'name']) === name)
    ?.getIn(['data', PERCENT_KEY]);
  const observed = back === undefined ? null : Number(back);
  return { confirmed: observed === percent, observedPercent: observed, detail: `${path}: ConfigMap ${name} ${PERCENT_KEY}=${String(back)}` };
}

async function patchLive(kubectl: string, o: K8sDriverOptions, percent: number): Promise<ApplyResult> {
  const base = [...(o.kubectlArgs ?? []), '-n', o.namespace];
  const run = async (args: string[]) => {
    try {
      const { execa } = await import('execa'); // loaded when kubectl runs, not at CLI start
      return await execa(kubectl, args, { env: o.env, extendEnv: false, timeout: 60_000 });
    } catch (err) {
      const e = err as { code?: string; stderr?: string; shortMessage?: string };
      if (e.code === 'ENOENT') {
        throw new ExternalError('kubectl', `${kubectl} not found on PATH`, { hint: 'install kubectl, or use --k8s-manifest to rewrite a rendered manifest' });
      }
      throw new ExternalError('kubectl', (e.stderr?.trim().split('\n')[0] || e.shortMessage) ?? String(err), {
        cause: err,
        hint: `check the kube context and that ConfigMap ${o.configMap} exists in namespace ${o.namespace}`,
      });
    }
  };
  await run(['patch', 'configmap', o.configMap, ...base, '--type', 'merge', '-p', patchBody(percent)]);
  const got = await run(['get', 'configmap', o.configMap, ...base, '-o', `jsonpath={.data.${PERCENT_KEY}}`]);
  const observed = got.stdout.trim() === '' ? null : Number(got.stdout.trim());
  return { confirmed: observed === percent, observedPercent: observed, detail: `configmap/${o.configMap} in ${o.namespace}: ${PERCENT_KEY}=${got.stdout.trim()}` };
}
