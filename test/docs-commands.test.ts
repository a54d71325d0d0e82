// Every `embedctl <command> --flag ...` written in the README, the docs and the CI examples must
// name a real command and real flags: a renamed flag breaks a runbook silently otherwise.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli.js';
import { sleep } from '../src/context.js';
import { packageRoot } from '../src/util/paths.js';

const root = packageRoot();
const files = [
  'README.md',
  ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md') && f !== 'reference.md').map((f) => `docs/${f}`),
  ...readdirSync(join(root, 'examples', 'ci')).map((f) => `examples/ci/${f}`),
];

const program = await buildProgram(
  { stdout: new PassThrough(), stderr: new PassThrough(), env: {}, cwd: root, now: () => new Date(0), sleep, isTTY: false, adapters: {} },
  { code: 0 },
);

function flagsOf(cmd: Command): Set<string> {
  const names = new Set<string>(['--help', '-h']);
  for (const c of [cmd, program]) {
    for (const o of c.options) {
      if (o.long) names.add(o.long);
      if (o.short) names.add(o.short);
      // commander lists --no-x for negatable booleans; both spellings are valid.
      if (o.long?.startsWith('--no-')) names.add(`--${o.long.slice(5)}`);
    }
  }
  return names;
}

/** `embedctl cmd [sub] ...` invocations, one per match, with the file and line they came from. */
function invocations(): Array<{ where: string; words: string[] }> {
  const out: Array<{ where: string; words: string[] }> = [];
  for (const f of files) {
    readFileSync(join(root, f), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        for (const m of line.matchAll(/(?:^|[\s`(|&;$])embedctl\s+([a-z][a-z-]*(?:\s+[^`|&;)#\n]*)?)/g)) {
          out.push({ where: `${f}:${i + 1}`, words: m[1]!.trim().split(/\s+/) });
        }
      });
  }
  return out;
}

describe('commands written in the docs and CI examples', () => {
  const all = invocations();

  it('finds the documented commands', () => {
    expect(all.length).toBeGreaterThan(30);
  });

  it('name real commands and real flags', () => {
    const problems: string[] = [];
    for (const { where, words } of all) {
      const [name, ...rest] = words;
      let cmd = program.commands.find((c) => c.name() === name);
      if (!cmd) {
        // prose such as "embedctl is ..." or "embedctl creates ..." is not an invocation
        if (rest.some((w) => w.startsWith('--'))) problems.push(`${where}: unknown command "${name}"`);
        continue;
      }
      const sub = cmd.commands.find((c) => c.name() === rest[0]);
      if (sub) cmd = sub;
      const known = flagsOf(cmd);
      for (const w of rest) {
        const flag = w.replace(/^["']/, '').split('=')[0]!;
        if (/^--?[a-z]/.test(flag) && !known.has(flag)) problems.push(`${where}: embedctl ${cmd.name()} has no ${flag}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
