import { createHash } from 'node:crypto';
import { configIdOf, renderNginxConf } from '../../core/render.js';

const SPLIT_BLOCK = /^([ \t]*split_clients [^\n]*\$embedctl_backend \{\n)([\s\S]*?)(^[ \t]*\}$)/m;
const PLACEHOLDER = '000000000000';

/**
 * A gateway config with its split moved to `percent`, everything else byte for byte: for a
 * gateway whose render options live elsewhere (the instance's nginx.conf, rendered at provision).
 * The new bucket lines come from renderNginxConf itself (the local nginx driver's code), and the
 * config id is re-derived the way the renderer derives it (sha256 of the text with the id
 * blanked), so resplit(render(o, 10), 25) === render(o, 25): a test holds it to that.
 */
export function resplit(conf: string, percent: number): string {
  const m = SPLIT_BLOCK.exec(conf);
  if (!m) throw new Error('no `split_clients ... $embedctl_backend` block: not a config rendered by embedctl');
  const probe = renderNginxConf({ listen: { host: '127.0.0.1', port: 1 }, selfHosted: ['127.0.0.1:1'], hostedUrl: 'http://127.0.0.1:1/v1/embeddings', selfHostedPercent: percent });
  const buckets = SPLIT_BLOCK.exec(probe)![2]!;
  const shown = /^# self-hosted share: ([\d.]+)%/m.exec(probe)![1]!;
  const oldId = configIdOf(conf) ?? /"config":"([0-9a-f]{12})"/.exec(conf)?.[1];
  let text = conf.slice(0, m.index) + m[1] + buckets + m[3] + conf.slice(m.index + m[0].length);
  text = text.replace(/^(# self-hosted share: )[\d.]+%/m, `$1${shown}%`).replace(/("selfHostedPercent":)[\d.]+/, `$1${shown}`);
  if (!oldId) return text;
  const blank = text.split(oldId).join(PLACEHOLDER);
  const id = createHash('sha256').update(blank).digest('hex').slice(0, 12);
  return blank.split(PLACEHOLDER).join(id);
}

/** The self-hosted share a gateway config applies (what /health reports), or undefined. */
export function splitOf(conf: string): number | undefined {
  const m = /"selfHostedPercent":([\d.]+)/.exec(conf) ?? /^# self-hosted share: ([\d.]+)%/m.exec(conf);
  return m ? Number(m[1]) : undefined;
}
