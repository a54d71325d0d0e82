import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEPLOY_GATEWAY_KEYS_INCLUDE, DEPLOY_HOSTED_AUTH_INCLUDE, GATEWAY_ACCESS_LOG, type RenderedFile } from '../core/render.js';
import { gatewayKeyFiles, writeGatewayKeyFiles } from '../core/gateway-key-files.js';
import { nginxBinary, testNginxConfig } from './nginx.js';

export type NginxCheck = { status: 'passed'; note?: string } | { status: 'skipped'; reason: string } | { status: 'failed'; message: string };

/** The official nginx image's envsubst, for checking the deploy config with a stand-in key. */
function substitutedAuthSnippet(template: string): string {
  return template.replace(/\$\{EMBEDCTL_HOSTED_API_KEY\}/g, 'embedctl-render-check-not-a-key');
}

const readable = (p: string) => {
  try {
    accessSync(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

/** A throwaway self-signed pair for checking a TLS config whose files live only on the instance. */
function scratchPair(dir: string): { cert: string; key: string } | undefined {
  const cert = join(dir, 'check-cert.pem');
  const key = join(dir, 'check-key.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=embedctl-render-check'], { stdio: 'ignore', timeout: 15_000 });
    return { cert, key };
  } catch {
    return undefined;
  }
}

/**
 * nginx -t on the rendered nginx.conf itself, in a scratch prefix next to the snippets the
 * instance would produce (hosted key from the environment, gateway keys from SSM). A TLS
 * certificate that is not on this machine is stood in for by a throwaway pair.
 */
export async function checkDeployNginx(files: RenderedFile[], env: Record<string, string | undefined>): Promise<NginxCheck> {
  if (!nginxBinary(env)) return { status: 'skipped', reason: 'nginx is not installed here' };
  const dir = mkdtempSync(join(tmpdir(), 'embedctl-render-check-'));
  try {
    const conf = files.find((f) => f.path === 'nginx/nginx.conf')!;
    const auth = files.find((f) => f.path === 'nginx/templates/hosted-auth.conf.template')!;
    let text = conf.content;
    let note: string | undefined;
    const tlsFiles = [...text.matchAll(/^\s*ssl_certificate(?:_key)? (\S+);$/gm)].map((m) => m[1]!);
    if (tlsFiles.some((p) => !readable(p))) {
      const pair = scratchPair(dir);
      if (!pair) return { status: 'skipped', reason: `the TLS files (${tlsFiles.join(', ')}) are not here and openssl is not installed to stand in for them` };
      text = text.replace(/^(\s*ssl_certificate) \S+;$/m, `$1 ${pair.cert};`).replace(/^(\s*ssl_certificate_key) \S+;$/m, `$1 ${pair.key};`);
      note = 'checked with a throwaway certificate: the TLS files are not on this machine';
    }
    // The gateway log file lives on the instance (/var/log/embedctl): nginx -t opens it.
    text = text.split(`access_log ${GATEWAY_ACCESS_LOG} `).join(`access_log ${join(dir, 'gateway.access.log')} `);
    for (const rel of [DEPLOY_HOSTED_AUTH_INCLUDE, DEPLOY_GATEWAY_KEYS_INCLUDE]) mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, 'nginx.conf'), text);
    writeFileSync(join(dir, DEPLOY_HOSTED_AUTH_INCLUDE), substitutedAuthSnippet(auth.content));
    // What user data writes from the keys parameter, with a named, limited caller so the callers'
    // maps and limit_req zones are checked too.
    await writeGatewayKeyFiles(
      join(dir, DEPLOY_GATEWAY_KEYS_INCLUDE, '..'),
      gatewayKeyFiles('operator embedctl-render-check-operator\nclient embedctl-render-check-client-1 name=render-check rpm=60\nclient embedctl-render-check-client-2\n'),
    );
    await testNginxConfig(join(dir, 'nginx.conf'), dir, env);
    return note ? { status: 'passed', note } : { status: 'passed' };
  } catch (err) {
    return { status: 'failed', message: (err as Error).message };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
