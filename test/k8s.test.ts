import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { renderDeploy } from '../src/core/render.js';
import { defaultDeployConfig, type DeployConfig } from '../src/core/deploy-config.js';
import { CANARY_WEIGHT_ANNOTATION, K8S_CONFIGMAP, K8S_SPLIT_INGRESS } from '../src/core/render-k8s.js';

/** The Kubernetes API schemas (kubernetes-models, generated from the OpenAPI spec) by apiVersion/kind. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/Ingress': Ingress,
};

type Obj = { apiVersion: string; kind: string; metadata: { name: string; annotations?: Record<string, string> }; spec?: any; data?: any };

function objects(overrides: Partial<DeployConfig>): Obj[] {
  return renderDeploy(defaultDeployConfig(overrides))
    .filter((f) => f.path.startsWith('k8s/'))
    .flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS() as Obj));
}

function schemaErrors(objs: Obj[]): string[] {
  const errors: string[] = [];
  for (const o of objs) {
    const Model = MODELS[`${o.apiVersion}/${o.kind}`];
    if (!Model) {
      errors.push(`${o.apiVersion}/${o.kind}: no schema known`);
      continue;
    }
    try {
      new Model(o as never).validate();
    } catch (err) {
      errors.push(`${o.kind}/${o.metadata.name}: ${(err as Error).message}`);
    }
  }
  return errors;
}

const find = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name)!;

describe('k8s manifests', () => {
  const variants: Array<[string, Partial<DeployConfig>]> = [
    ['GPU, hub model, 12 %', { replicas: 2, maxReplicas: 6, percent: 12, model: 'BAAI/bge-small-en-v1.5' }],
    ['CPU only, built-in model, 0 %', { gpusPerReplica: 0, percent: 0 }],
    ['plain-HTTP hosted on a port, 100 %', { percent: 100, hostedUrl: 'http://10.0.0.5:9000/v1/embeddings' }],
  ];
  for (const [name, o] of variants) {
    it(`validate against the Kubernetes API schemas with 0 errors: ${name}`, () => {
      const objs = objects(o);
      expect(objs.map((x) => x.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'Ingress', 'PodDisruptionBudget', 'Service', 'Service']);
      expect(schemaErrors(objs)).toEqual([]);
    });
  }

  it('the validator does catch a broken object (the check above can fail)', () => {
    const objs = objects({});
    const dep = find(objs, 'Deployment', 'embedctl-runtime');
    dep.spec.replicas = 'two';
    const ing = find(objs, 'Ingress', K8S_SPLIT_INGRESS);
    ing.spec.rules[0].http.paths[0].pathType = 'Sideways';
    expect(schemaErrors(objs)).toHaveLength(2);
  });

  it('GPU pods: GPU request and limit, GPU node selector and toleration, readiness on /ready, hub model fetched by an init container', () => {
    const objs = objects({ model: 'BAAI/bge-small-en-v1.5', gpusPerReplica: 1 });
    const pod = find(objs, 'Deployment', 'embedctl-runtime').spec.template.spec;
    const c = pod.containers[0];
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.resources.requests['nvidia.com/gpu']).toBe(1);
    expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(pod.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'http' });
    expect(pod.initContainers[0].volumeMounts).toEqual([{ name: 'models', mountPath: '/models' }]);
    // The fetch optimises as render chose (auto on a GPU: fp16), not as the image defaults.
    const fetchEnv = (p: typeof pod) => p.initContainers[0].env.find((e: { name: string }) => e.name === 'EMBEDCTL_FETCH_OPTIMIZE')?.value;
    expect(fetchEnv(pod)).toBe('fp16');
    expect(fetchEnv(find(objects({ model: 'BAAI/bge-small-en-v1.5', gpusPerReplica: 1, optimize: 'int8' }), 'Deployment', 'embedctl-runtime').spec.template.spec)).toBe('int8');
    expect(fetchEnv(find(objects({ model: 'BAAI/bge-small-en-v1.5', gpusPerReplica: 0 }), 'Deployment', 'embedctl-runtime').spec.template.spec)).toBe('int8');
    expect(c.volumeMounts).toContainEqual({ name: 'models', mountPath: '/models', readOnly: true });
    const cpu = find(objects({ gpusPerReplica: 0 }), 'Deployment', 'embedctl-runtime').spec.template.spec;
    expect(cpu.nodeSelector).toBeUndefined();
    expect(cpu.containers[0].resources.limits['nvidia.com/gpu']).toBeUndefined();
  });

  it('one ConfigMap name: what the Deployment and the init container read is what render writes', () => {
    const objs = objects({ model: 'BAAI/bge-small-en-v1.5' });
    const cms = objs.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name);
    expect(cms).toEqual([K8S_CONFIGMAP]);
    const pod = find(objs, 'Deployment', 'embedctl-runtime').spec.template.spec;
    for (const c of [...pod.containers, ...pod.initContainers]) expect(c.envFrom).toEqual([{ configMapRef: { name: K8S_CONFIGMAP } }]);
    // The split is not duplicated into the ConfigMap, where nothing would read it.
    expect(find(objs, 'ConfigMap', K8S_CONFIGMAP).data.SELF_HOSTED_TRAFFIC_PERCENT).toBeUndefined();
  });

  it('the split is the canary weight ingress-nginx reads, on the same host and path as the hosted Ingress', () => {
    for (const [percent, weight] of [[0, '0'], [7, '700'], [25, '2500'], [100, '10000']] as const) {
      const objs = objects({ percent });
      const canary = find(objs, 'Ingress', K8S_SPLIT_INGRESS);
      expect(canary.metadata.annotations![CANARY_WEIGHT_ANNOTATION]).toBe(weight);
      expect(canary.metadata.annotations!['nginx.ingress.kubernetes.io/canary']).toBe('true');
      expect(canary.metadata.annotations!['nginx.ingress.kubernetes.io/canary-weight-total']).toBe('10000');
      const hosted = find(objs, 'Ingress', 'embedctl-hosted');
      expect(canary.spec.rules[0].http.paths[0].path).toBe(hosted.spec.rules[0].http.paths[0].path);
      expect(canary.spec.rules[0].http.paths[0].backend.service.name).toBe('embedctl-runtime');
      expect(hosted.spec.rules[0].http.paths[0].backend.service).toEqual({ name: 'embedctl-hosted', port: { number: 443 } });
      expect(hosted.metadata.annotations!['nginx.ingress.kubernetes.io/upstream-vhost']).toBe('api.jina.ai');
      expect(find(objs, 'Service', 'embedctl-hosted').spec).toMatchObject({ type: 'ExternalName', externalName: 'api.jina.ai' });
    }
  });

  it('autoscaling on a serving signal: a Pods metric the runtime exports, not CPU', () => {
    const hpa = find(objects({ replicas: 2, maxReplicas: 6 }), 'HorizontalPodAutoscaler', 'embedctl-runtime');
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([2, 6]);
    expect(hpa.spec.metrics).toEqual([
      { type: 'Pods', pods: { metric: { name: 'embedctl_requests_in_flight' }, target: { type: 'AverageValue', averageValue: '8' } } },
    ]);
  });
});
