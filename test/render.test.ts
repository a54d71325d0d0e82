import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { nginxBinary } from '../src/adapters/nginx.js';
import { defaultDeployConfig } from '../src/core/deploy-config.js';
import { DEPLOY_TRUSTED_PROXY, renderDeploy, renderUserData, userDataBytes } from '../src/core/render.js';
import { gatewayKeyFiles } from '../src/core/gateway-key-files.js';
import { runCli } from './helpers/cli.js';
import { packedFile } from './helpers/user-data.js';
import { freshDirs, tempDir } from './helpers/gateway.js';

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), 'golden', 'render');
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const GOLDEN_ARGS = ['--allow-demo-model', '--replicas', '2', '--percent', '10', '--image', 'ghcr.io/embedctl/runtime:golden', '--prometheus', '--cache-redis', 'bundled', '--cache-size', '10000'];
const tmp = tempDir('embedctl-render-');
afterAll(() => tmp.cleanup());
const fresh = freshDirs(tmp.dir);

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? listFiles(p, base) : [p.slice(base.length + 1)];
  });
}

describe('embedctl render', () => {
  it('matches the golden files (UPDATE_GOLDEN=1 rewrites them)', async () => {
    const cwd = fresh();
    const r = await runCli(['render', ...GOLDEN_ARGS, '--out', 'deploy'], { cwd });
    expect(r.stderr).toBe(nginxBinary() ? 'nginx -t: passed\n' : expect.stringContaining('skipped'));
    expect(r.code).toBe(0);
    const files = listFiles(join(cwd, 'deploy')).sort();
    if (process.env.UPDATE_GOLDEN) {
      for (const f of files) {
        mkdirSync(dirname(join(GOLDEN, f)), { recursive: true });
        writeFileSync(join(GOLDEN, f), readFileSync(join(cwd, 'deploy', f)));
      }
    }
    expect(files).toEqual(listFiles(GOLDEN).sort());
    for (const f of files) {
      expect(readFileSync(join(cwd, 'deploy', f), 'utf8'), `${f} differs from test/golden/render/${f}; if intended, run UPDATE_GOLDEN=1 npx vitest run test/render.test.ts`).toBe(
        readFileSync(join(GOLDEN, f), 'utf8'),
      );
    }
    expect(statSync(join(cwd, 'deploy', 'user-data.sh')).mode & 0o777).toBe(0o755);
  });

  it('renders compose with GPU reservations, /ready healthchecks, restart policy, log rotation and memory limits', () => {
    const files = renderDeploy(defaultDeployConfig({ replicas: 3, maxReplicas: 4, memoryLimit: '10g' }));
    const compose = parseYaml(files.find((f) => f.path === 'docker-compose.yml')!.content);
    const runtimes = Object.keys(compose.services).filter((s) => s.startsWith('runtime-'));
    expect(runtimes).toEqual(['runtime-1', 'runtime-2', 'runtime-3']);
    for (const [i, name] of runtimes.entries()) {
      const s = compose.services[name];
      expect(s.deploy.resources.reservations.devices).toEqual([{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
      expect(s.healthcheck.test.join(' ')).toContain('/ready');
      expect(s.restart).toBe('unless-stopped');
      expect(s.logging).toEqual({ driver: 'json-file', options: { 'max-size': '50m', 'max-file': '5' } });
      expect(s.mem_limit).toBe('10g');
      expect(s.ports).toEqual([`127.0.0.1:${8081 + i}:8080`]);
      expect(s.environment.EMBEDCTL_PORT).toBe('8080');
    }
    expect(compose.services.gateway.network_mode).toBe('host');
    expect(compose.services.gateway.environment.EMBEDCTL_HOSTED_API_KEY).toMatch(/^\$\{EMBEDCTL_HOSTED_API_KEY:\?/);
    expect(compose.services.prometheus.profiles).toEqual(['monitoring']);
    const nginx = files.find((f) => f.path === 'nginx/nginx.conf')!.content;
    expect(nginx).toContain('server 127.0.0.1:8083 max_fails=3 fail_timeout=5s;');
    expect(nginx).toContain('include conf.d/hosted-auth.conf;');
    const cpu = parseYaml(renderDeploy(defaultDeployConfig({ gpusPerReplica: 0 })).find((f) => f.path === 'docker-compose.yml')!.content);
    expect(cpu.services['runtime-1'].deploy).toBeUndefined();
  });

  it('renders k8s objects a cluster would accept: GPU limit, probes, non-root, autoscaling/v2, PDB, canary share', () => {
    const files = renderDeploy(defaultDeployConfig({ replicas: 2, maxReplicas: 6, percent: 25, model: 'BAAI/bge-small-en-v1.5' }));
    const get = (p: string) => parseYaml(files.find((f) => f.path === `k8s/${p}`)!.content);
    const dep = get('deployment.yaml');
    expect(dep.spec.replicas).toBe(2);
    const c = dep.spec.template.spec.containers[0];
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.resources.limits.memory).toBe('12Gi');
    expect(c.readinessProbe.httpGet.path).toBe('/ready');
    expect(c.livenessProbe.httpGet.path).toBe('/health');
    expect(dep.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    // A hub model is fetched by an init container into the pod's volume.
    const init = dep.spec.template.spec.initContainers[0];
    expect(init.command.slice(0, 3)).toEqual(['node', '--input-type=module', '-e']);
    expect(init.command[3]).toContain("'models','fetch',process.env.EMBEDCTL_MODEL");
    expect(get('configmap.yaml').data).toMatchObject({ EMBEDCTL_MODEL: 'BAAI/bge-small-en-v1.5' });
    // The share lives in the canary Ingress weight (percent x 100 of 10000); test/k8s.test.ts has the rest.
    expect(parseAllDocuments(files.find((f) => f.path === 'k8s/traffic.yaml')!.content)[2]!.getIn(['metadata', 'annotations', 'nginx.ingress.kubernetes.io/canary-weight'])).toBe('2500');
    const hpa = get('hpa.yaml');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([2, 6]);
    expect(get('pdb.yaml')).toMatchObject({ apiVersion: 'policy/v1', spec: { maxUnavailable: 1 } });
    expect(get('service.yaml').spec.selector).toEqual(dep.spec.selector.matchLabels);
    expect(renderDeploy(defaultDeployConfig()).find((f) => f.path === 'k8s/deployment.yaml')!.content).not.toContain('initContainers');
  });

  it('user-data is valid bash that installs what is missing, writes the same files, and starts compose', () => {
    const config = defaultDeployConfig({ replicas: 2, model: 'BAAI/bge-small-en-v1.5', hfTokenParameter: '/embedctl/hf' });
    const script = renderUserData(config);
    const path = join(fresh(), 'user-data.sh');
    writeFileSync(path, script);
    execFileSync('bash', ['-n', path]);
    expect(script.startsWith('#!/bin/bash\n')).toBe(true);
    expect(script).toContain('set -euo pipefail');
    expect(script).toContain('exec >>/var/log/embedctl-user-data.log 2>&1');
    expect(script).toMatch(/nvidia-ctk runtime configure --runtime=docker/);
    expect(script).toContain('"namespace": "Embedctl"');
    expect(script).toContain('"nvidia_gpu"');
    expect(script).toContain('docker compose up -d');
    // The embedded compose file is the rendered one (minus comments), packed (gzip + base64) like nginx.conf.
    const embedded = packedFile(script, 'EMBEDCTL_COMPOSE_EOF');
    expect(parseYaml(embedded)).toEqual(parseYaml(renderDeploy(config).find((f) => f.path === 'docker-compose.yml')!.content));
    // The fetch script reaches node intact through bash's quoting.
    const line = script.split('\n').find((l) => l.includes('--input-type=module'))!;
    const jsArg = execFileSync('bash', ['-c', `f() { printf '%s' "$3"; }; f ${line.trim().replace(/^-v "\$\{MODELS_DIR\}:\/models" "\$\{IMAGE\}" /, '').replace(/ "\$\{MODEL\}" --optimize "\$\{FETCH_OPTIMIZE\}"$/, '')}`], { encoding: 'utf8' });
    expect(jsArg).toBe("const {main}=await import('/app/dist/src/cli.js');process.exitCode=await main(['node','embedctl','models','fetch',...process.argv.slice(1)]);");
    expect(Buffer.byteLength(script)).toBeLessThanOrEqual(16_384);
    // (Compose and nginx.conf travel packed, so even 16 replicas fit; a script past 16 KB goes gzipped whole.)
    const big = `${renderUserData(defaultDeployConfig({ replicas: 16, maxReplicas: 16 }))}${'# padding\n'.repeat(200)}`;
    const packed = userDataBytes(big);
    expect(Buffer.byteLength(big)).toBeGreaterThan(16_384);
    expect(packed.length).toBeLessThanOrEqual(16_384);
    expect([packed[0], packed[1]]).toEqual([0x1f, 0x8b]);
  });

  it('user-data runs end to end against stub commands: secrets from SSM, model fetch, compose up, CloudWatch agent', () => {
    const config = defaultDeployConfig({ replicas: 2, model: 'BAAI/bge-small-en-v1.5', hfTokenParameter: '/embedctl/hf', prometheus: true, image: 'example/runtime:1' });
    const root = fresh();
    const bin = join(root, 'bin');
    for (const d of ['bin', 'var/log', 'opt/aws/amazon-cloudwatch-agent/etc', 'opt/aws/amazon-cloudwatch-agent/bin']) mkdirSync(join(root, d), { recursive: true });
    const stub = (name: string, body: string, dir = bin) => {
      writeFileSync(join(dir, name), `#!/bin/bash\necho "${name} $*" >> "$ROOT/calls.log"\n${body}\n`, { mode: 0o755 });
    };
    // The deployment tag answers like IMDS: the value, or a 404 (curl -f exits 22) when tags are not exposed.
    stub('curl', 'case "$*" in *api/token*) echo tok;; *placement/region*) echo eu-west-1;; *tags/instance/embedctl:deployment*) [ -n "$DEPLOYMENT_TAG" ] || exit 22; echo "$DEPLOYMENT_TAG";; esac; exit 0');
    stub('docker', '[ "$1" = run ] && echo "docker-run-env HF_TOKEN=$HF_TOKEN" >> "$ROOT/calls.log"; [ "$1" = run ] && [[ "$*" == *:/keys* ]] && exec node "$CONTAINER" "$@"; [ "$1 $2" = "compose ps" ] && echo "$GATEWAY_RUNNING"; exit 0');
    // The container the gateway-keys step runs: node on its argv after the image, with /app the
    // build here and each -v mount's container path mapped to its host directory.
    const container = join(root, 'container.mjs');
    writeFileSync(
      container,
      [
        "import { spawnSync } from 'node:child_process';",
        'const args = process.argv.slice(3);',
        'const mounts = [];',
        "for (let i = 0; i < args.length; i++) if (args[i] === '-v') mounts.push(args[++i].split(':'));",
        "const image = args.findIndex((a, i) => i > 0 && !a.startsWith('-') && !args[i - 1].match(/^-(v|e|-user|-network|-entrypoint)$/));",
        `const map = (a) => mounts.reduce((t, [host, inner]) => t.replaceAll(\`'\${inner}'\`, \`'\${host}'\`), a.replaceAll('/app/dist/', ${JSON.stringify(`${join(repoRoot, 'dist')}/`)}));`,
        "const r = spawnSync('node', args.slice(image + 1).map(map), { stdio: 'inherit' });",
        'process.exit(r.status ?? 1);',
      ].join('\n'),
    );
    // The keys parameter as provision stores it: an operator, a named client with a limit, an anonymous client.
    stub('aws', 'while [ $# -gt 0 ]; do [ "$1" = --name ] && { [ "$2" = "$FAIL_PARAM" ] && exit 255; [ "$2" = /embedctl/main/gateway-keys ] && { printf "# keys\\noperator op-key-0123456789abcdef\\nclient team-a-key-0123456789 name=team-a rpm=600\\nclient ${CLIENT_KEY:-client-key-0123456789ab}\\n"; exit 0; }; echo "secret-for-$2"; exit 0; }; shift; done; exit 1');
    for (const name of ['nvidia-ctk', 'nvidia-smi', 'systemctl', 'apt-get', 'dpkg', 'sleep', 'chown']) stub(name, 'exit 0');
    stub('amazon-cloudwatch-agent-ctl', 'exit 0', join(root, 'opt/aws/amazon-cloudwatch-agent/bin'));
    // Same script, with its absolute system paths moved under a scratch root.
    const script = renderUserData(config).replace(/(?<=[\s"'=:>])\/(opt|var\/log|var\/lib\/cloud)\//g, '$ROOT/$1/');
    const path = join(root, 'user-data.sh');
    writeFileSync(path, script);
    const env = { ...process.env, ROOT: root, PATH: `${bin}:${process.env.PATH}`, DEPLOYMENT_TAG: 'blue-1', CONTAINER: container };
    execFileSync('bash', [path], { env });
    const calls = readFileSync(join(root, 'calls.log'), 'utf8');
    expect(calls).toContain('aws ssm get-parameter --with-decryption --name /embedctl/hf');
    expect(calls).toMatch(/docker run --rm --user 0 --entrypoint node -e HF_TOKEN -e EMBEDCTL_MODELS_DIR=\/models -v \S+\/opt\/embedctl\/models:\/models example\/runtime:1 --input-type=module -e .* BAAI\/bge-small-en-v1\.5/);
    expect(calls).toContain('docker-run-env HF_TOKEN=secret-for-/embedctl/hf');
    expect(calls).not.toMatch(/docker run.*secret-for/);
    expect(calls).toContain('docker compose --profile monitoring up -d');
    expect(calls).toContain('amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s');
    const deployDir = join(root, 'opt/embedctl/deploy');
    // The deployment comes from the instance's embedctl:deployment tag: compose passes it to the runtimes.
    expect(readFileSync(join(deployDir, '.env'), 'utf8')).toBe('EMBEDCTL_HOSTED_API_KEY=secret-for-/embedctl/hosted-api-key\nEMBEDCTL_DEPLOYMENT=blue-1\n');
    expect(statSync(join(deployDir, '.env')).mode & 0o777).toBe(0o600);
    // nginx.conf travels packed and arrives as rendered, minus its comments after the header
    // (config id, listen, split directory: what embedctl reads on the instance).
    const rendered = renderDeploy(config).find((f) => f.path === 'nginx/nginx.conf')!.content;
    const arrived = readFileSync(join(deployDir, 'nginx/nginx.conf'), 'utf8');
    const header = (t: string) => t.slice(0, t.indexOf('\n\n'));
    expect(header(arrived)).toBe(header(rendered));
    expect(header(arrived)).toMatch(/^# embedctl-split-dir: \/etc\/nginx\/embedctl-split$/m);
    expect(arrived).toBe(rendered.split('\n').filter((l, i, all) => !/^\s*#/.test(l) || all.slice(0, i + 1).every((x) => x.startsWith('#'))).join('\n'));
    // The gateway keys from SSM become nginx's map, the named callers and their limits, by the
    // parser provision checks them with (and a malformed key stops the boot, below).
    const keysDir = join(deployDir, 'nginx/keys');
    const expected = gatewayKeyFiles('operator op-key-0123456789abcdef\nclient team-a-key-0123456789 name=team-a rpm=600\nclient client-key-0123456789ab\n');
    expect(readdirSync(keysDir).sort()).toEqual(Object.keys(expected.files).sort());
    for (const [name, text] of Object.entries(expected.files)) {
      expect(readFileSync(join(keysDir, name), 'utf8'), name).toBe(text);
      expect(statSync(join(keysDir, name)).mode & 0o777, name).toBe(0o600);
    }
    expect(readFileSync(join(keysDir, 'gateway-callers.conf'), 'utf8')).toContain('"Bearer team-a-key-0123456789" "team-a";');
    expect(readFileSync(join(keysDir, 'gateway-limits.conf'), 'utf8')).toMatch(/^limit_req zone=embedctl_rpm_600_600 burst=599 nodelay;$/m);
    expect(readFileSync(join(root, 'var/log/embedctl-user-data.log'), 'utf8')).toMatch(/gateway keys: 3 keys \(1 operator\), 1 named callers, 1 with a request limit/);
    // The same step is a script on the instance: run at first boot, at every later boot with
    // --reload (cloud-init per-boot), and by provision over SSM when the keys rotate.
    const keysScript = join(deployDir, 'gateway-keys.sh');
    expect(statSync(keysScript).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(root, 'var/lib/cloud/scripts/per-boot/embedctl-gateway-keys.sh'), 'utf8')).toBe(`#!/bin/bash\nfor _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 2; done\nexec ${keysScript} --reload\n`);
    // --reload (a rotation over SSM, or a later boot): the files again, then nginx -t and a reload
    // of the running gateway; with no gateway running, the files only.
    writeFileSync(join(root, 'calls.log'), '');
    const reloaded = execFileSync('bash', [keysScript, '--reload'], { env: { ...env, GATEWAY_RUNNING: 'c0ffee' }, encoding: 'utf8' });
    expect(reloaded).toContain('embedctl gateway-keys: the gateway reloaded with the keys of /embedctl/main/gateway-keys');
    // With compose's -p and -c (test/render-reload.test.ts runs them against a real nginx).
    expect(readFileSync(join(root, 'calls.log'), 'utf8')).toMatch(/aws ssm get-parameter --with-decryption --name \/embedctl\/main\/gateway-keys[^\n]*\ndocker run [^\n]*\ndocker-run-env[^\n]*\ndocker compose ps --status running --quiet gateway\ndocker compose exec -T gateway nginx -t -q -p \/var\/cache\/nginx\/ -c \/etc\/nginx\/nginx\.conf\ndocker compose exec -T gateway nginx -s reload -p \/var\/cache\/nginx\/ -c \/etc\/nginx\/nginx\.conf\n$/);
    expect(execFileSync('bash', [keysScript, '--reload'], { env, encoding: 'utf8' })).toContain('the gateway is not running (it reads them when it starts)');
    // The nginx.conf includes all three, and the runtimes believe the caller the gateway names.
    for (const inc of ['keys/gateway-keys.conf', 'keys/gateway-callers.conf', 'keys/gateway-limits.conf']) expect(arrived).toContain(`include ${inc};`);
    const files = renderDeploy(config);
    expect(parseYaml(readFileSync(join(deployDir, 'docker-compose.yml'), 'utf8').replaceAll('$ROOT/opt/', '/opt/').replaceAll('$ROOT/var/log/', '/var/log/'))).toEqual(parseYaml(files.find((f) => f.path === 'docker-compose.yml')!.content));
    const agent = JSON.parse(readFileSync(join(root, 'opt/aws/amazon-cloudwatch-agent/etc/embedctl.json'), 'utf8'));
    expect(agent.metrics.namespace).toBe('Embedctl');
    expect(agent.metrics.metrics_collected.nvidia_gpu.measurement).toContain('utilization_gpu');
    // The runtimes' EMF files (EMBEDCTL_EMF_LOG in compose, on the host's metrics dir) go to the deployment's log group.
    const emf = agent.logs.logs_collected.files.collect_list.find((f: { file_path: string }) => f.file_path.endsWith('*.emf.log'));
    // (Quoted heredocs keep the test's "$ROOT" prefix literally.)
    expect(emf).toMatchObject({ file_path: '$ROOT/var/log/embedctl/*.emf.log', log_group_name: '/embedctl/blue-1/metrics' });
    expect(calls).toContain(`chown 10001:10001 ${root}/var/log/embedctl`);
    const compose = parseYaml(files.find((f) => f.path === 'docker-compose.yml')!.content);
    for (const name of ['runtime-1', 'runtime-2']) {
      expect(compose.services[name].environment).toMatchObject({ EMBEDCTL_EMF_LOG: `/var/log/embedctl/${name}.emf.log`, EMBEDCTL_DEPLOYMENT: '${EMBEDCTL_DEPLOYMENT:-main}', EMBEDCTL_TRUSTED_PROXY: DEPLOY_TRUSTED_PROXY });
      expect(compose.services[name].volumes).toContain('/var/log/embedctl:/var/log/embedctl');
    }
    execFileSync('bash', [path], { env: { ...env, DEPLOYMENT_TAG: '' } });
    expect(readFileSync(join(deployDir, '.env'), 'utf8')).toMatch(/\nEMBEDCTL_DEPLOYMENT=main\n$/);
    expect(JSON.parse(readFileSync(join(root, 'opt/aws/amazon-cloudwatch-agent/etc/embedctl.json'), 'utf8')).logs.logs_collected.files.collect_list[1].log_group_name).toBe('/embedctl/main/metrics');
    expect(readFileSync(join(root, 'var/log/embedctl-user-data.log'), 'utf8')).toMatch(/gateway healthy/);

    // A missing hosted-key parameter stops the script before compose, saying what to create.
    writeFileSync(join(root, 'calls.log'), '');
    let code = 0;
    try {
      execFileSync('bash', [path], { env: { ...env, FAIL_PARAM: '/embedctl/hosted-api-key' }, stdio: 'pipe' });
    } catch (err) {
      code = (err as { status: number }).status;
    }
    expect(code).toBe(1);
    expect(readFileSync(join(root, 'calls.log'), 'utf8')).not.toContain('up -d');
    expect(readFileSync(join(root, 'var/log/embedctl-user-data.log'), 'utf8')).toMatch(/cannot read the hosted API key from SSM parameter \/embedctl\/hosted-api-key/);
    writeFileSync(join(root, 'calls.log'), '');
    expect(() => execFileSync('bash', [path], { env: { ...env, CLIENT_KEY: 'bad"key;0123456789' }, stdio: 'pipe' })).toThrow();
    expect(readFileSync(join(root, 'calls.log'), 'utf8')).not.toContain('up -d');
    expect(readFileSync(join(root, 'var/log/embedctl-user-data.log'), 'utf8')).toMatch(/the gateway keys parameter line 4: a key is 16-256 characters/);
    expect(readFileSync(join(root, 'var/log/embedctl-user-data.log'), 'utf8')).toMatch(/must hold lines "client\|operator <key> \[name=<caller>\] \[rpm=<n>\] \[burst=<n>\]"/);
    expect(readFileSync(join(root, 'var/log/embedctl-user-data.log'), 'utf8')).not.toContain('bad"key');
  });

  it('never writes the hosted API key, whatever the environment holds', async () => {
    const cwd = fresh();
    const key = 'jina_live_0123456789abcdef';
    const r = await runCli(['render', '--allow-demo-model', '--percent', '50'], { cwd, env: { EMBEDCTL_HOSTED_API_KEY: key } });
    expect(r.code).toBe(0);
    for (const f of listFiles(join(cwd, 'deploy'))) {
      expect(readFileSync(join(cwd, 'deploy', f), 'utf8'), f).not.toContain(key);
    }
    expect(r.stdout + r.stderr).not.toContain(key);
  });

  it('takes values from EMBEDCTL_* env and embedctl.yaml deploy:, flags winning, and reports each source', async () => {
    const cwd = fresh();
    writeFileSync(join(cwd, 'embedctl.yaml'), 'deploy:\n  replicas: 3\n  maxReplicas: 5\n  hostedUrl: https://api.openai.com/v1/embeddings\n  percent: 5\n');
    const r = await runCli(['render', '--json', '--dry-run', '--percent', '20'], { cwd, env: { EMBEDCTL_REPLICAS: '2' } });
    expect(r.code).toBe(0);
    const doc = r.json<{ schema: string; config: Record<string, unknown>; sources: Record<string, string>; files: Array<{ status: string }>; nginxCheck: { status: string } }>();
    expect(doc.schema).toBe('embedctl.render/v1');
    expect(doc.config).toMatchObject({ replicas: 2, percent: 20, hostedUrl: 'https://api.openai.com/v1/embeddings', maxReplicas: 5 });
    expect(doc.sources).toMatchObject({ replicas: 'EMBEDCTL_REPLICAS', percent: '--percent', hostedUrl: 'embedctl.yaml: deploy.hostedUrl', model: 'default' });
    expect(doc.files.every((f) => f.status === 'would be created')).toBe(true);
    expect(doc.nginxCheck.status).toBe(nginxBinary() ? 'passed' : 'skipped');
    expect(existsSync(join(cwd, 'deploy'))).toBe(false);
  });

  it('reports unchanged files on a second run and rewrites only what changed', async () => {
    const cwd = fresh();
    expect((await runCli(['render', '--allow-demo-model'], { cwd })).code).toBe(0);
    const again = await runCli(['render', '--allow-demo-model', '--json'], { cwd });
    expect(again.json<{ files: Array<{ status: string }> }>().files.every((f) => f.status === 'unchanged')).toBe(true);
    const changed = await runCli(['render', '--allow-demo-model', '--json', '--percent', '30'], { cwd });
    const byPath = Object.fromEntries(changed.json<{ files: Array<{ path: string; status: string }> }>().files.map((f) => [f.path, f.status]));
    expect(byPath['deploy/nginx/nginx.conf']).toBe('updated');
    expect(byPath['deploy/k8s/traffic.yaml']).toBe('updated');
    expect(byPath['deploy/k8s/service.yaml']).toBe('unchanged');
  });

  it('bad input: one line naming the flag, variable or file key, exit 2, nothing written', async () => {
    const cases: Array<[string[], Record<string, string>, string | undefined, RegExp]> = [
      [['--percent', '150'], {}, undefined, /^embedctl: error: --percent: must be <= 100$/m],
      [['--percent', '12.5'], {}, undefined, /--percent: a whole percent \(the gateway splits keys into 100 buckets of 1 %\)/],
      [['--hosted-url', 'ftp://x'], {}, undefined, /--hosted-url: expected an http or https URL/],
      [[], { EMBEDCTL_REPLICAS: 'many' }, undefined, /EMBEDCTL_REPLICAS: expected a whole number/],
      [[], {}, 'deploy:\n  splitKey: cookie\n', /embedctl\.yaml: deploy\.splitKey: /],
      [['--replicas', '5'], {}, undefined, /--max-replicas: must be >= --replicas \(5\), got 4/],
      [['--model', 'bad model!'], {}, undefined, /--model: expected a built-in model/],
    ];
    for (const [args, env, yaml, re] of cases) {
      const cwd = fresh();
      if (yaml) writeFileSync(join(cwd, 'embedctl.yaml'), yaml);
      const r = await runCli(['render', ...args], { cwd, env });
      expect(r.code, `${args.join(' ')} ${JSON.stringify(env)}`).toBe(2);
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(existsSync(join(cwd, 'deploy'))).toBe(false);
    }
  });

  it('says nginx -t was skipped when nginx is not installed', async () => {
    const r = await runCli(['render', '--dry-run'], { cwd: fresh(), env: { EMBEDCTL_NGINX_BIN: '/nonexistent/nginx' } });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/nginx -t: skipped \(nginx is not installed here; install nginx to check the config\)/);
  });
});
