import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { OPTION_SPECS } from '../common/runtime-options.js';
import { renderDeploy } from '../src/core/render.js';
import { defaultDeployConfig, type DeployConfig } from '../src/core/deploy-config.js';

/**
 * A pod's SIGTERM and its removal from the Service's endpoints happen at the same time, and
 * ingress-nginx keeps sending it requests until it sees the new EndpointSlice. The runtime answers
 * every request that arrives after SIGTERM with 503 (and ingress-nginx's default
 * proxy-next-upstream, "error timeout", does not retry a 503), so without a pause before SIGTERM
 * each rollout, scale-down and node drain turns a burst of the self-hosted share into 503s.
 */
function runtimeDeployment(overrides: Partial<DeployConfig> = {}) {
  const objs = renderDeploy(defaultDeployConfig(overrides))
    .filter((f) => f.path.startsWith('k8s/'))
    .flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS()));
  return objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'embedctl-runtime');
}

describe('k8s runtime termination', () => {
  for (const [name, o] of [['GPU', {}], ['CPU only', { gpusPerReplica: 0 }]] as const) {
    it(`a preStop pause keeps the pod serving until the ingress stops routing to it, within the grace period: ${name}`, () => {
      const dep = runtimeDeployment(o);
      new Deployment(dep).validate();
      const pod = dep.spec.template.spec;
      const c = pod.containers.find((x: { name: string }) => x.name === 'runtime');
      const cmd: string[] | undefined = c.lifecycle?.preStop?.exec?.command;
      expect(cmd, 'runtime container has no lifecycle.preStop.exec').toBeDefined();
      // node is the one binary the runtime image is sure to have (the Docker healthcheck relies on it too).
      expect(cmd![0]).toBe('node');
      const pauseMs = Number(/setTimeout\([^,]+,\s*(\d+)\)/.exec(cmd!.join(' '))?.[1]);
      expect(pauseMs).toBeGreaterThanOrEqual(5_000);
      // The pause counts against the grace period: pause + the runtime's drain must fit in it.
      const drainMs = OPTION_SPECS.find((s) => s.key === 'drainTimeoutMs')!.default as number;
      expect(pauseMs + drainMs).toBeLessThan(pod.terminationGracePeriodSeconds * 1000);
    });
  }
});
