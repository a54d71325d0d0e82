/**
 * The SSM stand-in for tests: src/adapters/aws/ssm-local.ts (what `rehearse` runs too). Put its
 * sendCommand/getInvocation behind aws-sdk-client-mock's callsFake so the real SDK client, and
 * every parameter it sends, stay in the picture.
 */
import { localInstance, type LocalInstance } from '../../src/adapters/aws/ssm-local.js';

export type SsmStandin = LocalInstance;

export function ssmStandin(o: { root: string; deployDir: string; prefix: string; instanceId: string }): SsmStandin {
  return localInstance(o);
}
