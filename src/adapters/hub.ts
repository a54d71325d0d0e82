// Hugging Face hub downloads: `<endpoint>/<repo>/resolve/<revision>/<file>`, the way
// huggingface_hub does them: redirects followed by hand (the hub's own response carries the LFS
// sha256 in X-Linked-Etag; the token is not sent on to another host), partial downloads kept in
// `<file>.part` and resumed with Range, the result checked and renamed into place.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, promises as fsp, writeSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { dirname } from 'node:path';
import { ExternalError, Interrupted, UsageError } from '../errors.js';

export const HUB = 'huggingface hub';
export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface HubFile {
  repoId: string;
  revision: string;
  /** Path inside the repo, e.g. onnx/model.onnx. */
  file: string;
}

export interface DownloadOptions extends HubFile {
  endpoint: string;
  token?: string;
  dest: string;
  /** Checked in addition to the hub's own hash. */
  sha256?: string;
  /** A missing file (404) is not an error: resolves to undefined (tokenizer_config.json). */
  optional?: boolean;
  signal?: AbortSignal;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Called once the size is known, then as bytes arrive. */
  onStart?: (info: { total?: number; resumedFrom: number }) => void;
  onBytes?: (n: number) => void;
  /** A line for the log (resumes, retries). */
  onNote?: (line: string) => void;
  maxAttempts?: number;
  idleTimeoutMs?: number;
}

export interface Downloaded {
  path: string;
  bytes: number;
  sha256: string;
  /** What the hub said the content hash is, and whether it was checked. */
  hubHash?: { kind: 'sha256' | 'git-sha1'; value: string };
  commit?: string;
  resumedFrom: number;
}

export function resolveUrl(endpoint: string, f: HubFile): string {
  const path = f.file.split('/').map(encodeURIComponent).join('/');
  return `${endpoint.replace(/\/+$/, '')}/${f.repoId}/resolve/${encodeURIComponent(f.revision)}/${path}`;
}

const describe = (f: HubFile) => `${f.file} in ${f.repoId} at revision ${f.revision}`;

interface Meta {
  linkedEtag?: string;
  linkedSize?: number;
  etag?: string;
  commit?: string;
}

/** An ETag as a content hash, when it is one: LFS files carry sha256, small git files their blob sha1. */
function hashFromEtag(raw: string | undefined): Downloaded['hubHash'] {
  if (!raw) return undefined;
  const v = raw.replace(/^W\//, '').replace(/"/g, '').trim().toLowerCase();
  if (/^[0-9a-f]{64}$/.test(v)) return { kind: 'sha256', value: v };
  if (/^[0-9a-f]{40}$/.test(v)) return { kind: 'git-sha1', value: v };
  return undefined;
}

function header(res: http.IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

class HttpStatus extends Error {
  constructor(
    readonly status: number,
    readonly url: string,
  ) {
    super(`HTTP ${status}`);
  }
}

/** GET following redirects; Authorization only goes to the endpoint's own host. */
async function get(url: string, o: DownloadOptions, range: number, meta: Meta): Promise<http.IncomingMessage> {
  const authHost = new URL(o.endpoint).host;
  let current = new URL(url);
  for (let hop = 0; hop < 10; hop++) {
    const headers: Record<string, string> = { 'user-agent': 'embedctl (models fetch)', 'accept-encoding': 'identity' };
    if (o.token && current.host === authHost) headers.authorization = `Bearer ${o.token}`;
    if (range > 0) headers.range = `bytes=${range}-`;
    const lib = current.protocol === 'https:' ? https : http;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = lib.get(current, { headers, signal: o.signal }, resolve);
      req.on('error', reject);
      // A stalled connection counts as dropped: it is resumed like one.
      req.setTimeout(o.idleTimeoutMs ?? 30_000, () => req.destroy(new Error(`no data for ${Math.round((o.idleTimeoutMs ?? 30_000) / 1000)} s`)));
    });
    // The hub's answer (first hop) names the LFS object; a CDN's ETag may be anything.
    if (hop === 0 || current.host === authHost) {
      meta.linkedEtag ??= header(res, 'x-linked-etag');
      const size = Number(header(res, 'x-linked-size'));
      if (Number.isFinite(size) && size > 0) meta.linkedSize ??= size;
      meta.commit ??= header(res, 'x-repo-commit');
    }
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status)) {
      const loc = header(res, 'location');
      res.resume();
      if (!loc) throw new ExternalError(HUB, `redirect without a Location header for ${describe(o)}`);
      current = new URL(loc, current);
      continue;
    }
    meta.etag = header(res, 'etag');
    return res;
  }
  throw new ExternalError(HUB, `too many redirects for ${describe(o)}`);
}

function statusError(status: number, o: DownloadOptions): Error {
  if (status === 401 || status === 403) {
    return new ExternalError(HUB, `access denied (HTTP ${status}) to ${describe(o)}`, {
      hint: o.token
        ? `HF_TOKEN was sent but refused: check it can read ${o.repoId} and that you accepted the model's terms on the hub`
        : `set HF_TOKEN to a Hugging Face access token (the repo may be gated or private, or the id misspelt)`,
    });
  }
  if (status === 404) {
    return new ExternalError(HUB, `not found (HTTP 404): ${describe(o)}`, {
      hint: 'check the repo id, --revision and --file (ONNX exports usually live at onnx/model.onnx)',
    });
  }
  return new ExternalError(HUB, `HTTP ${status} for ${describe(o)}`);
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await fsp.stat(path)).size;
  } catch {
    return 0;
  }
}

async function hashFile(path: string): Promise<{ sha256: string; gitSha1: string; bytes: number }> {
  const size = await fileSize(path);
  const sha256 = createHash('sha256');
  const git = createHash('sha1').update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path)) {
    sha256.update(chunk as Buffer);
    git.update(chunk as Buffer);
  }
  return { sha256: sha256.digest('hex'), gitSha1: git.digest('hex'), bytes: size };
}

const transient = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * Downloads one file to `dest` via `dest.part`. A dropped connection resumes from what arrived
 * (Range), as does a `.part` left by an earlier run. The result is checked against the hub's hash
 * (sha256 for LFS files, the git blob sha1 for small files) and `sha256` when given; a failed check
 * after resuming an earlier run's `.part` downloads the file once more from the start.
 */
export async function downloadFile(o: DownloadOptions): Promise<Downloaded | undefined> {
  const part = `${o.dest}.part`;
  await fsp.mkdir(dirname(o.dest), { recursive: true });
  const url = resolveUrl(o.endpoint, o);
  const maxAttempts = o.maxAttempts ?? 5;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const meta: Meta = {};
  let firstResume: number | undefined;
  let lastProblem = '';
  let started = false;

  // A `.part` left by an earlier run may hold bytes of another revision (the repo moved on, or
  // --revision changed): resuming splices them onto the new file. When the result then fails the
  // hub's check, the old bytes are to blame, not the hub: start once more from nothing.
  for (let pass = 1; ; pass++) {
    for (let attempt = 1; ; attempt++) {
      if (o.signal?.aborted) throw new Interrupted('download interrupted; run the same command again to resume');
      if (attempt > maxAttempts) {
        throw new ExternalError(HUB, `download of ${describe(o)} failed after ${maxAttempts} attempts: ${lastProblem}`, {
          hint: `run the same command again: it resumes from ${part}`,
        });
      }
      const have = await fileSize(part);
      firstResume ??= have;
      let res: http.IncomingMessage;
      try {
        res = await get(url, o, have, meta);
      } catch (err) {
        if (o.signal?.aborted) throw new Interrupted('download interrupted; run the same command again to resume');
        if (err instanceof ExternalError) throw err;
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        lastProblem = `cannot reach ${new URL(url).host}: ${code}`;
        if (attempt === 1 && (code === 'ENOTFOUND' || code === 'ECONNREFUSED' || code === 'EAI_AGAIN')) {
          throw new ExternalError(HUB, lastProblem, { cause: err, hint: 'check network access, or set HF_ENDPOINT to a reachable mirror' });
        }
        o.onNote?.(`${o.file}: ${lastProblem}; retrying`);
        await sleep(250 * attempt, o.signal);
        continue;
      }
      const status = res.statusCode ?? 0;
      if (status === 416 && have > 0) {
        // Nothing left to send: the .part may already be whole; the hash check below decides.
        res.resume();
        if (meta.linkedSize === undefined || meta.linkedSize === have) break;
        await fsp.rm(part, { force: true });
        continue;
      }
      if (status === 404 && o.optional) {
        res.resume();
        return undefined;
      }
      if (transient(status)) {
        res.resume();
        lastProblem = `HTTP ${status}`;
        const retryAfter = Number(header(res, 'retry-after'));
        o.onNote?.(`${o.file}: HTTP ${status} from the hub; retrying`);
        await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter, 30) * 1000 : 250 * attempt, o.signal);
        continue;
      }
      if (status !== 200 && status !== 206) {
        res.resume();
        throw statusError(status, o);
      }
      let offset = 0;
      if (status === 206) {
        const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header(res, 'content-range') ?? '');
        if (!m || Number(m[1]) !== have) {
          // A range we did not ask for: start over rather than splice wrong bytes together.
          res.resume();
          await fsp.rm(part, { force: true });
          lastProblem = 'server sent an unexpected range';
          continue;
        }
        offset = have;
      } else if (have > 0) {
        o.onNote?.(`${o.file}: server ignored the resume request; downloading from the start`);
      }
      const length = Number(header(res, 'content-length'));
      const total = Number.isFinite(length) ? offset + length : meta.linkedSize;
      if (!started) {
        o.onStart?.({ total, resumedFrom: offset });
        if (offset > 0) o.onBytes?.(offset);
        started = true;
      }
      let got = 0;
      // Each chunk is written synchronously as it arrives: a chunk still queued in a stream buffer
      // is lost when the connection drops, and the next Range must start exactly at what is on disk.
      const fd = openSync(part, offset > 0 ? 'a' : 'w');
      try {
        await new Promise<void>((resolve, reject) => {
          res.on('data', (chunk: Buffer) => {
            try {
              writeSync(fd, chunk);
            } catch (err) {
              res.destroy(err as Error);
              return;
            }
            got += chunk.length;
            o.onBytes?.(chunk.length);
          });
          res.on('end', resolve);
          res.on('error', reject);
          res.on('close', () => reject(new Error('connection closed')));
        });
        if (Number.isFinite(length) && got < length) throw new Error(`connection closed after ${offset + got} of ${offset + length} bytes`);
        break;
      } catch (err) {
        if (o.signal?.aborted) throw new Interrupted(`download interrupted; ${offset + got} bytes kept in ${part}, run the same command again to resume`);
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new ExternalError('filesystem', `no space left writing ${part}`, { cause: err });
        lastProblem = (err as Error).message;
        o.onNote?.(`${o.file}: connection dropped at ${offset + got} bytes; resuming`);
        await sleep(100 * attempt, o.signal);
      } finally {
        closeSync(fd);
      }
    }

    const sums = await hashFile(part);
    const hubHash = hashFromEtag(meta.linkedEtag) ?? hashFromEtag(meta.etag);
    const problem =
      meta.linkedSize !== undefined && meta.linkedSize !== sums.bytes
        ? `size ${sums.bytes} bytes, the hub says ${meta.linkedSize}`
        : hubHash?.kind === 'sha256' && hubHash.value !== sums.sha256
          ? `sha256 ${sums.sha256} does not match the hub's ${hubHash.value}`
          : hubHash?.kind === 'git-sha1' && hubHash.value !== sums.gitSha1
            ? `git hash ${sums.gitSha1} does not match the hub's ${hubHash.value}`
            : o.sha256 && o.sha256.toLowerCase() !== sums.sha256
              ? 'flag'
              : undefined;
    if (problem && pass === 1 && (firstResume ?? 0) > 0) {
      await fsp.rm(part, { force: true });
      o.onNote?.(`${o.file}: the ${firstResume} bytes kept from an earlier run belong to another version (${problem === 'flag' ? 'sha256 differs from --sha256' : problem}); downloading it again from the start`);
      firstResume = undefined;
      started = false;
      continue;
    }
    if (problem === 'flag') {
      await fsp.rm(part, { force: true });
      throw new UsageError(`${describe(o)} has sha256 ${sums.sha256}, not the expected ${o.sha256}; the download was deleted`, { field: '--sha256' });
    }
    if (problem) {
      await fsp.rm(part, { force: true });
      throw new ExternalError(HUB, `${describe(o)}: ${problem}; the partial file was deleted`, { hint: 'run the command again; if it repeats, the mirror (HF_ENDPOINT) may serve a different file' });
    }
    await fsp.rename(part, o.dest);
    return { path: o.dest, bytes: sums.bytes, sha256: sums.sha256, hubHash, commit: meta.commit, resumedFrom: firstResume ?? 0 };
  }
}
