/**
 * The gateway's key files, from the one keys text (a local file, or the SSM parameter on the
 * instance): the role map (gateway-keys.conf), the named callers (gateway-callers.conf, http
 * block) and their request limits (gateway-limits.conf, every proxying location). The instance's
 * user data runs `main` inside the runtime image (node is there, and this very code), so what
 * `provision --gateway-keys` accepts is what the instance turns into nginx config: before, user
 * data parsed the parameter with awk and knew only "role key", so a file with name=/rpm= that
 * provision had stored stopped the instance's boot.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { renderGatewayCallers } from './gateway-callers.js';
import { parseGatewayKeys, renderGatewayKeysMap } from './gateway-keys.js';
import { writeFileAtomic } from '../util/fs.js';

/** File names inside the keys directory (mounted at /etc/nginx/keys on the instance). */
export const GATEWAY_KEY_FILES = { keys: 'gateway-keys.conf', callers: 'gateway-callers.conf', limits: 'gateway-limits.conf' } as const;

export interface GatewayKeyFiles {
  files: Record<(typeof GATEWAY_KEY_FILES)[keyof typeof GATEWAY_KEY_FILES], string>;
  /** Counts only: never a key. */
  summary: { keys: number; operators: number; callers: number; limited: number };
}

/** Throws an Error naming the line (never the key) on bad input. */
export function gatewayKeyFiles(text: string, source = 'gateway keys'): GatewayKeyFiles {
  const keys = parseGatewayKeys(text, source);
  const callers = renderGatewayCallers(keys);
  return {
    files: {
      [GATEWAY_KEY_FILES.keys]: renderGatewayKeysMap(keys),
      [GATEWAY_KEY_FILES.callers]: callers.http,
      [GATEWAY_KEY_FILES.limits]: callers.location,
    } as GatewayKeyFiles['files'],
    summary: {
      keys: keys.length,
      operators: keys.filter((k) => k.role === 'operator').length,
      callers: new Set(keys.filter((k) => k.name).map((k) => k.name)).size,
      limited: Object.keys(callers.limits).length,
    },
  };
}

/** Writes the three files into `dir` (mode 0600 each, every file renamed into place). */
export async function writeGatewayKeyFiles(dir: string, out: GatewayKeyFiles): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const [name, text] of Object.entries(out.files)) await writeFileAtomic(join(dir, name), text, { mode: 0o600 });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The instance's entry point: keys text on stdin -> files in `dir`. One line on stderr either
 * way; exit status 0, or 2 for input that is not a keys file (nothing written then).
 */
export async function main(dir: string, source = 'the gateway keys parameter'): Promise<number> {
  let out: GatewayKeyFiles;
  try {
    out = gatewayKeyFiles(await readStdin(), source);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  await writeGatewayKeyFiles(dir, out);
  const s = out.summary;
  process.stderr.write(`gateway keys: ${s.keys} keys (${s.operators} operator), ${s.callers} named callers, ${s.limited} with a request limit\n`);
  return 0;
}
