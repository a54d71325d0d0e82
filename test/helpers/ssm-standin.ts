/**
 * The SSM stand-in for tests: src/adapters/aws/ssm-local.ts (what `rehearse` runs too). Put its
 * sendCommand/getInvocation behind aws-sdk-client-mock's callsFake so the real SDK client, and
 * every parameter it sends, stay in the picture.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { localInstance, type LocalInstance } from '../../src/adapters/aws/ssm-local.js';

export type SsmStandin = LocalInstance;

export function ssmStandin(o: { root: string; deployDir: string; prefix: string; instanceId: string }): SsmStandin {
  return localInstance(o);
}

/**
 * The stand-in behind an HTTP endpoint speaking SSM's JSON protocol (X-Amz-Target:
 * AmazonSSM.<Operation>), for a child process: the real binary's SDK client reaches it through
 * AWS_ENDPOINT_URL_SSM, signs and sends as it would to AWS, and reads the answers back.
 */
export async function ssmEndpoint(instance: LocalInstance): Promise<{ url: string; calls: Array<{ operation: string; input: Record<string, unknown> }>; close(): Promise<void> }> {
  const calls: Array<{ operation: string; input: Record<string, unknown> }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      const operation = String(req.headers['x-amz-target'] ?? '').replace(/^AmazonSSM\./, '');
      const input = JSON.parse(body || '{}') as Record<string, unknown>;
      calls.push({ operation, input });
      const answer = async () => {
        if (!req.headers.authorization?.startsWith('AWS4-HMAC-SHA256 ')) throw Object.assign(new Error('request not signed'), { name: 'MissingAuthenticationToken' });
        if (operation === 'SendCommand') return instance.sendCommand(input as never);
        if (operation === 'GetCommandInvocation') return instance.getInvocation(input as never);
        throw Object.assign(new Error(`${operation} is not answered by the stand-in`), { name: 'InvalidAction' });
      };
      answer().then(
        ({ $metadata: _, ...out }) => {
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify(out));
        },
        (err: Error) => {
          res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify({ __type: err.name, message: err.message }));
        },
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
