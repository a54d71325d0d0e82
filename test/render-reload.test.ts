import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { defaultDeployConfig, type DeployConfig } from '../src/core/deploy-config.js';
import { gatewayKeyFiles, writeGatewayKeyFiles } from '../src/core/gateway-key-files.js';
import { renderDeploy } from '../src/core/render.js';
import { freePort, makePki, nginxOrSkip, tempDir } from './helpers/gateway.js';

/**
 * The nginx commands the instance runs after boot (gateway-keys.sh --reload when keys rotate,
 * certbot's renewal hook) must reach the gateway compose started. They run here as rendered,
 * against this host's real nginx started with compose's own `command`, through a docker stand-in
 * that behaves as `docker compose exec gateway` does: container paths (/etc/nginx/,
 * /var/cache/nginx/, /var/log/embedctl/, /etc/letsencrypt/) map into a scratch tree, and options
 * nginx is not given fall back to the nginx image's built-in ones (prefix /etc/nginx/, config
 * /etc/nginx/nginx.conf), as in the container. A reload without compose's -p then looks for the
 * pid file where there is none and fails, as it does on an instance.
 */

const { bin: NGINX, skip } = nginxOrSkip();
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const tmp = tempDir('embedctl-render-reload-');
afterAll(() => tmp.cleanup());
const masters: number[] = [];
afterEach(() => {
  // Only the masters this file started, by pid.
  while (masters.length) {
    try {
      process.kill(masters.pop()!, 'SIGQUIT');
    } catch {
      /* already gone */
    }
  }
});

const DOCKER = `#!/usr/bin/env node
// docker on the instance, for the gateway container only: compose ps/exec, and run (the keys parser).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const C = process.env.STANDIN_CONTAINER;
let a = process.argv.slice(2);
fs.appendFileSync(process.env.STANDIN_LOG, 'docker ' + a.join(' ') + '\\n');
const inContainer = (p) => (p.startsWith('/') ? path.join(C, p) + (p.endsWith('/') ? '/' : '') : p);
if (a[0] === 'run') {
  // The image's key parser: its output is the test's fixture (render.test.ts runs the real one).
  const mount = a[a.indexOf('-v') + 1].split(':')[0];
  for (const f of fs.readdirSync(process.env.STANDIN_KEYS)) fs.copyFileSync(path.join(process.env.STANDIN_KEYS, f), path.join(mount, f));
  process.exit(0);
}
if (a[0] !== 'compose') process.exit(64);
a = a.slice(1);
if (a[0] === 'ps') {
  const pid = path.join(C, 'var/cache/nginx/nginx.pid');
  if (fs.existsSync(pid)) process.stdout.write('c0ffee\\n');
  process.exit(0);
}
if (a[0] !== 'exec') process.exit(65);
a = a.slice(1);
if (a[0] === '-T') a = a.slice(1);
if (a[0] !== 'gateway' || a[1] !== 'nginx') process.exit(66);
const args = a.slice(2).map(inContainer);
// The official nginx image's build: --prefix=/etc/nginx/ --conf-path=/etc/nginx/nginx.conf.
if (!args.includes('-p')) args.push('-p', path.join(C, 'etc/nginx') + '/');
if (!args.includes('-c')) args.push('-c', path.join(C, 'etc/nginx/nginx.conf'));
try {
  // stdout: /dev/null, not the caller's pipe (a socket here, which nginx cannot open as the
  // config's /dev/stdout access log; in the container it is a FIFO). nginx -t/-s print to stderr.
  execFileSync(process.env.STANDIN_NGINX, args, { stdio: ['ignore', 'ignore', 'inherit'] });
} catch (e) {
  process.exit(e.status ?? 1);
}
`;

interface Instance {
  root: string;
  deployDir: string;
  container: string;
  keysFixture: string;
  log: string;
  env: NodeJS.ProcessEnv;
  userData: string;
  config: DeployConfig;
}

/** Container paths the rendered nginx.conf names, as they lie in this test's container tree. */
function inContainer(container: string, text: string): string {
  return text.replace(/(?<=[\s"'])\/(etc\/nginx|var\/log\/embedctl|etc\/letsencrypt)\//g, `${container}/$1/`);
}

/**
 * An instance after user data: the deploy files, the keys, and the gateway container's tree from
 * compose's volumes (plus what the nginx image's entrypoint renders from templates/).
 */
async function instance(name: string, overrides: Partial<DeployConfig>, keys: string): Promise<Instance> {
  const root = join(tmp.dir, name);
  const deployDir = join(root, 'opt/embedctl/deploy');
  const container = join(root, 'container');
  const config = defaultDeployConfig({ image: 'example/runtime:1', ...overrides });
  const files = renderDeploy(config);
  for (const f of files) {
    if (f.path.startsWith('k8s/')) continue;
    mkdirSync(dirname(join(deployDir, f.path)), { recursive: true });
    writeFileSync(join(deployDir, f.path), f.content);
  }
  mkdirSync(join(deployDir, 'nginx/split'), { recursive: true });
  mkdirSync(join(deployDir, 'nginx/keys'), { recursive: true });
  await writeGatewayKeyFiles(join(deployDir, 'nginx/keys'), gatewayKeyFiles(keys));

  const compose = parseYaml(readFileSync(join(deployDir, 'docker-compose.yml'), 'utf8')) as { services: { gateway: { volumes: string[]; command: string[] } } };
  mkdirSync(join(container, 'var/cache/nginx'), { recursive: true });
  mkdirSync(join(container, 'etc/nginx/conf.d'), { recursive: true });
  for (const v of compose.services.gateway.volumes) {
    const [src, dst] = v.split(':') as [string, string];
    const from = src.startsWith('./') ? join(deployDir, src) : join(root, src);
    mkdirSync(dirname(join(container, dst)), { recursive: true });
    mkdirSync(src.endsWith('.conf') ? dirname(from) : from, { recursive: true });
    // nginx.conf names container paths: a copy with them mapped stands in for the bind mount.
    if (dst === '/etc/nginx/nginx.conf') writeFileSync(join(container, dst), inContainer(container, readFileSync(from, 'utf8')));
    else symlinkSync(from, join(container, dst));
  }
  const auth = readFileSync(join(deployDir, 'nginx/templates/hosted-auth.conf.template'), 'utf8');
  writeFileSync(join(container, 'etc/nginx/conf.d/hosted-auth.conf'), auth.replaceAll('${EMBEDCTL_HOSTED_API_KEY}', 'test-hosted-key'));

  const binDir = join(root, 'bin');
  mkdirSync(binDir, { recursive: true });
  writeFileSync(join(binDir, 'docker'), DOCKER, { mode: 0o755 });
  writeFileSync(join(binDir, 'aws'), '#!/bin/bash\necho "rotated keys from SSM"\n', { mode: 0o755 });
  const keysFixture = join(root, 'keys-fixture');
  mkdirSync(keysFixture, { recursive: true });
  const log = join(root, 'docker.log');
  writeFileSync(log, '');
  const env = { ...process.env, PATH: `${binDir}:${process.env.PATH}`, STANDIN_CONTAINER: container, STANDIN_NGINX: NGINX!, STANDIN_KEYS: keysFixture, STANDIN_LOG: log };
  return { root, deployDir, container, keysFixture, log, env, userData: files.find((f) => f.path === 'user-data.sh')!.content, config };
}

/** The gateway as compose starts it: its `command`, container paths mapped; it answers /health. */
async function composeUp(i: Instance): Promise<void> {
  const compose = parseYaml(readFileSync(join(i.deployDir, 'docker-compose.yml'), 'utf8')) as { services: { gateway: { command: string[] } } };
  const [cmd, ...args] = compose.services.gateway.command;
  expect(cmd).toBe('nginx');
  const mapped = args.map((a) => (a.startsWith('/') ? `${join(i.container, a)}${a.endsWith('/') ? '/' : ''}` : a));
  const child = spawn(NGINX!, mapped, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  masters.push(child.pid!);
  child.unref();
  const url = `http://127.0.0.1:${i.config.gatewayPort}/health`;
  // Ours, not another test's server on a reused port: nginx writes its pid once it has bound.
  const pidFile = join(i.container, 'var/cache/nginx/nginx.pid');
  const ours = () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(child.pid);
  for (let n = 0; n < 400; n++) {
    if (ours() && (await fetch(url).then((r) => r.ok, () => false))) return;
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the gateway did not answer ${url}: ${stderr}`);
}

/** Lines `from` to `to` of the rendered user data, run with bash as user data would. */
function runUserDataLines(i: Instance, from: string, to: string, vars: string): void {
  const lines = i.userData.split('\n');
  const start = lines.findIndex((l) => l.startsWith(from));
  const end = lines.findIndex((l, n) => n > start && l.startsWith(to));
  expect(start, from).toBeGreaterThanOrEqual(0);
  expect(end, to).toBeGreaterThan(start);
  const script = lines.slice(start, end + 1).join('\n').replaceAll('/opt/embedctl/deploy', i.deployDir).replaceAll('/etc/letsencrypt/', `${i.root}/etc/letsencrypt/`);
  execFileSync('bash', ['-c', `set -euo pipefail\n${vars}\n${script}`], { env: i.env, stdio: 'pipe' });
}

// A new connection each time: a kept-alive one may still reach a worker of the old config.
const status = async (port: number, key: string) =>
  (await fetch(`http://127.0.0.1:${port}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', connection: 'close' }, body: '{"input":"x"}' })).status;

/** A reload is asynchronous (new workers start, old ones finish): up to 20 s on a busy machine. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let n = 0; n < 400; n++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never: ${what}`);
}

describe.skipIf(skip)('the instance reloads the gateway compose started (real nginx)', () => {
  it('gateway-keys.sh --reload (a key rotation over SSM) takes effect: the new key in, the revoked one out', async () => {
    const OLD = 'ek_old_client_0123456789abcdef';
    const NEW = 'ek_new_client_0123456789abcdef';
    const i = await instance('keys', { gatewayPort: await freePort() }, `operator ek_operator_0123456789abcdef\nclient ${OLD}\n`);
    await composeUp(i);
    const port = i.config.gatewayPort;
    expect(await status(port, NEW)).toBe(401);
    expect(await status(port, OLD)).not.toBe(401);

    // The script as user data writes it, then a rotation: SSM holds the new keys.
    runUserDataLines(i, 'cat > "${DEPLOY_DIR}/gateway-keys.sh"', 'chmod 0700 "${DEPLOY_DIR}/gateway-keys.sh"', `DEPLOY_DIR=${i.deployDir} REGION=us-east-1 GATEWAY_KEYS_PARAMETER=/embedctl/main/gateway-keys IMAGE=example/runtime:1`);
    await writeGatewayKeyFiles(i.keysFixture, gatewayKeyFiles(`operator ek_operator_0123456789abcdef\nclient ${NEW}\n`));
    const out = spawnSync('bash', [join(i.deployDir, 'gateway-keys.sh'), '--reload'], { env: i.env, encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toContain('embedctl gateway-keys: the gateway reloaded with the keys of /embedctl/main/gateway-keys');
    await eventually('the rotated key is accepted and the revoked one refused', async () => (await status(port, NEW)) !== 401 && (await status(port, OLD)) === 401);
    // Exactly the flags compose starts nginx with.
    const nginxRuns = readFileSync(i.log, 'utf8').split('\n').filter((l) => l.includes(' gateway nginx '));
    expect(nginxRuns).toEqual([
      'docker compose exec -T gateway nginx -t -q -p /var/cache/nginx/ -c /etc/nginx/nginx.conf',
      'docker compose exec -T gateway nginx -s reload -p /var/cache/nginx/ -c /etc/nginx/nginx.conf',
    ]);

    // The stand-in is no pushover: the reload as user data used to send it fails as on an instance.
    const old = spawnSync('docker', ['compose', 'exec', '-T', 'gateway', 'nginx', '-s', 'reload'], { cwd: i.deployDir, env: i.env, encoding: 'utf8' });
    expect(old.status).not.toBe(0);
    expect(old.stderr).toMatch(/open\(\) ".*\/container\/etc\/nginx\/nginx\.pid" failed/);
  });

  it.skipIf(!hasOpenssl)("certbot's renewal hook makes the gateway serve the renewed certificate", async () => {
    const domain = 'embed.example.com';
    const i = await instance('letsencrypt', { gatewayPort: await freePort(), httpsPort: await freePort(), tls: 'letsencrypt', domain, email: 'ops@example.com' }, 'operator ek_operator_0123456789abcdef\n');
    // What certbot leaves in /etc/letsencrypt/live/<domain>/ (on the host; compose mounts the tree).
    const live = join(i.root, 'etc/letsencrypt/live', domain);
    mkdirSync(live, { recursive: true });
    const install = (pki: ReturnType<typeof makePki>) => {
      copyFileSync(pki.certPath, join(live, 'fullchain.pem'));
      copyFileSync(pki.keyPath, join(live, 'privkey.pem'));
    };
    install(makePki(join(i.root, 'pki-1'), domain));
    await composeUp(i);
    const served = () =>
      new Promise<string>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: i.config.httpsPort, servername: domain, rejectUnauthorized: false }, () => {
          resolve(s.getPeerCertificate().fingerprint256);
          s.end();
        });
        s.on('error', reject);
      });
    const before = await served();

    // A renewal: certbot writes the new pair, then runs the deploy hooks.
    const renewed = makePki(join(i.root, 'pki-2'), domain);
    install(renewed);
    runUserDataLines(i, 'install -d /etc/letsencrypt/renewal-hooks/deploy', 'chmod 0755 /etc/letsencrypt/renewal-hooks/deploy/embedctl-nginx-reload.sh', '');
    const hook = join(i.root, 'etc/letsencrypt/renewal-hooks/deploy/embedctl-nginx-reload.sh');
    expect(existsSync(hook)).toBe(true);
    const out = spawnSync('sh', [hook], { env: i.env, encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    const want = new (await import('node:crypto')).X509Certificate(readFileSync(renewed.certPath)).fingerprint256;
    expect(want).not.toBe(before);
    await eventually('the renewed certificate is served', async () => (await served()) === want);
  });
});
