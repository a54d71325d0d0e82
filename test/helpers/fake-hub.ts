// A local server that answers like the Hugging Face hub (for `models fetch` tests): resolve URLs,
// LFS files redirected to a separate CDN host with X-Linked-Etag/X-Linked-Size, small files served
// directly with their git blob sha1 as ETag, Range/206, 401 without a token, 404.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  host: 'hub' | 'cdn';
  path: string;
  range?: string;
  auth?: string;
}

export interface FakeHub {
  url: string;
  seen: Seen[];
  /** Next CDN response for this sha is cut after this many bytes. */
  dropAfter: Map<string, number>;
  /** Lie about an LFS file's sha256 (a corrupt mirror). */
  wrongEtag: Set<string>;
  privateRepos: Set<string>;
  token: string;
  close(): Promise<void>;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

export const listen = (srv: http.Server) =>
  new Promise<string>((r) => srv.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(srv.address() as AddressInfo).port}`)));

export async function startFakeHub(repos: Record<string, Record<string, { data: Buffer; lfs: boolean }>>): Promise<FakeHub> {
  const seen: Seen[] = [];
  const blobs = new Map<string, Buffer>();
  const hub: Omit<FakeHub, 'url' | 'close'> = { seen, dropAfter: new Map(), wrongEtag: new Set(), privateRepos: new Set(), token: 'hf_test_token' };
  const cdn = http.createServer((req, res) => {
    seen.push({ host: 'cdn', path: req.url!, range: req.headers.range, auth: req.headers.authorization });
    const sha = req.url!.split('/').pop()!;
    const data = blobs.get(sha);
    if (!data) return void res.writeHead(404).end();
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) {
      start = Number(m[1]);
      if (start >= data.length) return void res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
      res.writeHead(206, { 'content-length': data.length - start, 'content-range': `bytes ${start}-${data.length - 1}/${data.length}`, etag: '"cdn-etag"' });
    } else {
      res.writeHead(200, { 'content-length': data.length, etag: '"cdn-etag"' });
    }
    const cut = hub.dropAfter.get(sha);
    if (cut !== undefined && cut > start) {
      hub.dropAfter.delete(sha);
      // FIN, not RST: the client gets every byte sent so far, then a short body.
      res.write(data.subarray(start, cut), () => res.socket?.end());
      return;
    }
    res.end(data.subarray(start));
  });
  const cdnUrl = await listen(cdn);
  const server = http.createServer((req, res) => {
    seen.push({ host: 'hub', path: req.url!, range: req.headers.range, auth: req.headers.authorization });
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url!);
    if (!m) return void res.writeHead(404).end('Entry not found');
    const [, repo, rev, file] = m as unknown as [string, string, string, string];
    if (hub.privateRepos.has(repo!) && req.headers.authorization !== `Bearer ${hub.token}`) {
      return void res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end('Access to model is restricted');
    }
    const entry = repos[repo!]?.[decodeURIComponent(file!)];
    if (!entry || rev !== 'main') return void res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
    const commit = 'a'.repeat(40);
    if (entry.lfs) {
      const sha = sha256(entry.data);
      blobs.set(sha, entry.data);
      res.writeHead(302, {
        location: `${cdnUrl}/lfs/${sha}`,
        'x-linked-etag': `"${hub.wrongEtag.has(repo!) ? 'b'.repeat(64) : sha}"`,
        'x-linked-size': String(entry.data.length),
        'x-repo-commit': commit,
        etag: `W/"${gitSha1(Buffer.from('pointer'))}"`,
      });
      return void res.end();
    }
    res.writeHead(200, { 'content-length': entry.data.length, etag: `"${gitSha1(entry.data)}"`, 'x-repo-commit': commit });
    res.end(entry.data);
  });
  const url = await listen(server);
  return {
    ...hub,
    url,
    close: async () => {
      server.closeAllConnections();
      cdn.closeAllConnections();
      await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => cdn.close(r))]);
    },
  };
}

