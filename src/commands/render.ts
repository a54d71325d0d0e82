import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { checkDeployNginx } from '../adapters/nginx-check.js';
import type { Context } from '../context.js';
import { FIELDS, guardDeployModel, resolveDeployConfig, type DeployConfig, type DeployKey } from '../core/deploy-config.js';
import { GATEWAY_FLAGS, tlsPlan } from '../core/gateway-config.js';
import { SERVING_FLAGS } from '../core/render-serving.js';
import { MODEL_FLAGS } from '../core/render-model.js';
import { renderDeploy, userDataBytes, USER_DATA_LIMIT, type RenderedFile } from '../core/render.js';
import { ExternalError, UsageError } from '../errors.js';
import { printJson, table, type Logger } from '../ui/output.js';
import { writeFileAtomic } from '../util/fs.js';
import { action, examples, type ExitHolder } from './shared.js';

export { checkDeployNginx, type NginxCheck } from '../adapters/nginx-check.js';

/** Flags `render` exposes, in help order. */
export const RENDER_FLAGS: readonly DeployKey[] = [
  'replicas',
  'hostedUrl',
  'percent',
  'model',
  'splitKey',
  'gatewayPort',
  'image',
  'memoryLimit',
  'gpusPerReplica',
  'prometheus',
  'hfTokenParameter',
  'hostedKeyParameter',
  'namespace',
  'maxReplicas',
  'allowDemoModel',
  ...GATEWAY_FLAGS,
  ...SERVING_FLAGS,
  ...MODEL_FLAGS,
];

export function addDeployOptions(cmd: Command, keys: readonly DeployKey[]): Command {
  for (const key of keys) {
    const f = FIELDS[key];
    const placeholder = typeof f.default === 'boolean' ? '[bool]' : `<${key === 'hostedUrl' ? 'url' : typeof f.default === 'number' ? 'n' : 'value'}>`;
    cmd.option(`${f.flag} ${placeholder}`, `${f.help} (env ${f.env}; default ${JSON.stringify(f.default)})`);
  }
  return cmd;
}

function checkYaml(files: RenderedFile[]): void {
  for (const f of files) {
    if (!/\.ya?ml$/.test(f.path)) continue;
    const docs = parseAllDocuments(f.content);
    const bad = (Array.isArray(docs) ? docs : [docs]).flatMap((d) => d.errors);
    if (bad.length > 0) throw new ExternalError('embedctl', `rendered ${f.path} is not valid YAML: ${bad[0]!.message.split('\n')[0]}`, { hint: 'this is a template bug; please report it' });
  }
}

type FileStatus = 'created' | 'updated' | 'unchanged';

function statusOf(path: string, content: string): FileStatus {
  try {
    return readFileSync(path, 'utf8') === content ? 'unchanged' : 'updated';
  } catch {
    return 'created';
  }
}

export function renderFiles(config: DeployConfig): RenderedFile[] {
  try {
    return renderDeploy(config);
  } catch (err) {
    throw new ExternalError('embedctl', `cannot render the deploy files: ${(err as Error).message}`, { cause: err, hint: 'a template error is a bug; please report it' });
  }
}

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('render')
    .description('Write the deploy files: docker-compose.yml, nginx.conf (traffic split + fallback), k8s/, user-data.sh')
    .option('--out <dir>', 'output directory', 'deploy')
    .option('--dry-run', 'print what would be written; write nothing');
  addDeployOptions(cmd, RENDER_FLAGS);
  examples(cmd, [
    'embedctl render',
    'embedctl render --replicas 2 --percent 10 --out deploy/',
    'embedctl render --hosted-url https://api.openai.com/v1/embeddings --model BAAI/bge-small-en-v1.5',
    'embedctl render --dry-run --json',
    'embedctl render --same-model --tls-cert /etc/embedctl/tls/fullchain.pem --tls-key /etc/embedctl/tls/privkey.pem --domain embed.example.com',
  ]);
  cmd.action(action<RenderOptions>(ctx, holder, async ({ opts, globals, log }) => run(opts, ctx, log, globals.json)));
}

/** Render's flags: `out` and `dryRun`, plus the deploy settings by their camelCase names (FIELDS). */
export type RenderOptions = { out?: string; dryRun?: boolean } & Partial<Record<DeployKey, unknown>>;

/** `embedctl render` as a function (what rehearse calls); `json` prints the --json document. */
export async function run(opts: RenderOptions, ctx: Context, log: Logger, json = true): Promise<void> {
  const { config, origins } = resolveDeployConfig(ctx, opts, RENDER_FLAGS);
  if (config.maxReplicas < config.replicas) {
    throw new UsageError(`must be >= --replicas (${config.replicas}), got ${config.maxReplicas}`, { field: origins.maxReplicas.origin === 'default' ? '--max-replicas' : origins.maxReplicas.origin });
  }
  // What render writes is what goes to the instance or cluster: no demo model there unless
  // asked for. A dry run only shows the files, so it warns instead.
  guardDeployModel({ config, origins }, opts.dryRun, (m) => log.warn(m), 'render');
  const outDir = resolve(ctx.cwd, opts.out ?? 'deploy');
  // Certificate paths are referenced as given, made absolute: nginx reads them where they lie.
  for (const k of ['tlsCert', 'tlsKey'] as const) if (config[k]) config[k] = resolve(ctx.cwd, config[k]);
  tlsPlan(config);
  const files = renderFiles(config);
  checkYaml(files);
  const nginx = await checkDeployNginx(files, ctx.env);
  if (nginx.status === 'failed') {
    throw new ExternalError('nginx', `the rendered nginx.conf does not pass nginx -t: ${nginx.message.replace(/^nginx: /, '')}`, { hint: 'nothing was written' });
  }
  const userData = files.find((f) => f.path === 'user-data.sh')!.content;
  const userDataSize = userDataBytes(userData).length;
  const rows = files.map((f) => {
    const path = join(outDir, f.path);
    return {
      path: relative(ctx.cwd, path) || path,
      abs: path,
      bytes: Buffer.byteLength(f.content),
      sha256: createHash('sha256').update(f.content).digest('hex'),
      status: statusOf(path, f.content),
      mode: f.mode,
      content: f.content,
    };
  });
  if (!opts.dryRun) {
    for (const r of rows) {
      if (r.status === 'unchanged') continue;
      await writeFileAtomic(r.abs, r.content, { mode: r.mode });
    }
  }
  const nginxLine =
    nginx.status === 'passed' ? 'nginx -t: passed' : `nginx -t: skipped (${nginx.reason}; install nginx to check the config)`;
  if (json) {
    printJson(ctx, 'render', {
      outDir,
      dryRun: Boolean(opts.dryRun),
      config,
      sources: Object.fromEntries(Object.entries(origins).map(([k, r]) => [k, r.origin])),
      files: rows.map(({ path, bytes, sha256, status }) => ({ path, bytes, sha256, status: opts.dryRun ? `would be ${status}` : status })),
      nginxCheck: nginx,
      userData: { bytes: Buffer.byteLength(userData), sentBytes: userDataSize, gzipped: Buffer.byteLength(userData) > USER_DATA_LIMIT },
    });
    if (nginx.status === 'skipped') log.warn(nginxLine);
    return;
  }
  log.info(nginxLine);
  ctx.stdout.write(
    table(
      ['file', 'bytes', opts.dryRun ? 'would be' : 'status'],
      rows.map((r) => [r.path, r.bytes, r.status]),
    ),
  );
  const changed = rows.filter((r) => r.status !== 'unchanged').length;
  ctx.stdout.write(
    opts.dryRun
      ? `dry run: ${changed} of ${rows.length} files would change under ${relative(ctx.cwd, outDir) || outDir}/\n`
      : `${changed} of ${rows.length} files written to ${relative(ctx.cwd, outDir) || outDir}/ (self-hosted share ${config.percent}%, ${config.replicas} replica${config.replicas === 1 ? '' : 's'})\n`,
  );
}
