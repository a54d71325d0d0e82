import { promises as fsp } from 'node:fs';
import { writeFileAtomic } from '../../util/fs.js';
import { PERCENT_KEY, type ApplyResult, type TrafficDriver } from './types.js';

/**
 * Writes SELF_HOSTED_TRAFFIC_PERCENT=N into an env file (atomically, keeping its other lines) for
 * applications that route in code with the hybrid client (`percentFrom: { envFile }`).
 */
export function envDriver(file: string): TrafficDriver {
  return {
    name: 'env',
    target: `env file ${file}`,
    describe: (percent) => `write ${PERCENT_KEY}=${percent} to ${file}`,
    async apply(percent): Promise<ApplyResult> {
      let text = '';
      try {
        text = await fsp.readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      await writeFileAtomic(file, setEnvLine(text, PERCENT_KEY, String(percent)));
      const back = readEnvValue(await fsp.readFile(file, 'utf8'), PERCENT_KEY);
      const observed = back === undefined ? null : Number(back);
      return { confirmed: observed === percent, observedPercent: observed, detail: `${file}: ${PERCENT_KEY}=${back}` };
    },
  };
}

export function setEnvLine(text: string, key: string, value: string): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const re = new RegExp(`^\\s*(export\\s+)?${key}\\s*=`);
  let found = false;
  const out = lines.map((l) => {
    if (!re.test(l)) return l;
    found = true;
    return `${key}=${value}`;
  });
  if (!found) out.push(`${key}=${value}`);
  return `${out.join('\n')}\n`;
}

export function readEnvValue(text: string, key: string): string | undefined {
  let val: string | undefined;
  for (const l of text.split('\n')) {
    const m = new RegExp(`^\\s*(?:export\\s+)?${key}\\s*=\\s*(.*)$`).exec(l);
    if (m) val = m[1]!.trim().replace(/^["']|["']$/g, '');
  }
  return val;
}
