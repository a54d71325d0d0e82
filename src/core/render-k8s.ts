import { parseHostedUrl } from './render.js';
import type { TemplateVars } from './template.js';

/**
 * The Kubernetes half of `render`: which manifests exist and the values only they need. The
 * traffic split is the canary weight of one Ingress (ingress-nginx), so the rollout driver and
 * this renderer share the names below instead of spelling them twice.
 */

/** The Ingress whose canary weight is the self-hosted share. */
export const K8S_SPLIT_INGRESS = 'embedctl-self-hosted';
export const CANARY_WEIGHT_ANNOTATION = 'nginx.ingress.kubernetes.io/canary-weight';
/** Weights are integers out of this total: percent x 100 keeps the split's two decimals. */
export const CANARY_WEIGHT_TOTAL = 10_000;
/** The runtime's ConfigMap (one name for render, the Deployment's envFrom and the docs). */
export const K8S_CONFIGMAP = 'embedctl-runtime';
/** Requests in flight per pod the HPA aims at (see templates/k8s/hpa.yaml). */
export const IN_FLIGHT_TARGET = 8;

export const K8S_FILES = ['configmap.yaml', 'deployment.yaml', 'service.yaml', 'traffic.yaml', 'hpa.yaml', 'pdb.yaml'] as const;

export function canaryWeight(percent: number): number {
  return Math.round(percent * 100);
}

export function percentFromCanaryWeight(weight: number): number {
  return Math.round(weight) / 100;
}

/** Template values the k8s manifests need beyond the shared ones. */
export function k8sVars(c: { hostedUrl: string; percent: number; clientMaxBodySize: string }): TemplateVars {
  const hosted = parseHostedUrl(c.hostedUrl);
  return {
    hostedHost: hosted.host,
    hostedPort: hosted.port,
    hostedProtocol: hosted.scheme === 'https' ? 'HTTPS' : 'HTTP',
    canaryWeight: canaryWeight(c.percent),
    clientMaxBodySize: c.clientMaxBodySize,
    inFlightTarget: IN_FLIGHT_TARGET,
  };
}
