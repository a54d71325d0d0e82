import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { packageVersion } from '../src/util/paths.js';

describe('cli skeleton', () => {
  it('prints the version', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(packageVersion());
  });

  it('unknown command: one line on stderr, exit 2', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(r.stdout).toBe('');
  });

  it('bad flag on a command: one line, exit 2', async () => {
    const r = await runCli(['cost-report', '--no-such-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--no-such-flag'/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('every command has --help with examples', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    const names = [...top.stdout.matchAll(/^  ([a-z][a-z-]+)\b/gm)].map((m) => m[1]!).filter((n) => n !== 'help');
    expect(names.length).toBeGreaterThanOrEqual(12);
    for (const name of names) {
      const r = await runCli([name, '--help']);
      expect(r.code, name).toBe(0);
      expect(r.stdout, name).toMatch(/Examples:\n  \$ embedctl /);
    }
  });
});

describe('--json failures', () => {
  it('a bad value prints the error document on stdout, exit code unchanged (2)', async () => {
    const r = await runCli(['--json', 'cost-report', '--tokens-per-month', 'lots']);
    expect(r.code).toBe(2);
    const doc = r.json<{ schema: string; error: { message: string; hint: string | null; field: string | null; exitCode: number } }>();
    expect(doc.schema).toBe('embedctl.error/v1');
    expect(doc.error.exitCode).toBe(2);
    expect(doc.error.field).toBe('--tokens-per-month');
    expect(doc.error.message).toMatch(/^--tokens-per-month: /);
    expect(Object.keys(doc.error).sort()).toEqual(['exitCode', 'field', 'hint', 'message']);
    // stderr keeps the one human line
    expect(r.stderr.trim().split('\n')[0]).toMatch(/^embedctl: error: --tokens-per-month/);
  });

  it('an unknown flag (commander) and an outside-system failure are documents too', async () => {
    const bad = await runCli(['cost-report', '--json', '--no-such-flag']);
    expect(bad.code).toBe(2);
    expect(bad.json()).toMatchObject({ schema: 'embedctl.error/v1', error: { exitCode: 2, message: "unknown option '--no-such-flag'" } });
    const down = await runCli(['--json', 'status', '--timeout', '1s'], { cwd: '/nonexistent-embedctl-dir' });
    expect(down.json<{ schema: string }>().schema).toMatch(/^embedctl\.(status|error)\/v1$/);
  });

  it('without --json nothing is printed on stdout for a failure', async () => {
    const r = await runCli(['cost-report', '--tokens-per-month', 'lots']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });

  it('--version and a command --help load only what they need', async () => {
    const { invokedCommand } = await import('../src/cli.js');
    expect(invokedCommand(['--version'])).toBeUndefined();
    expect(invokedCommand(['--json', 'rollout', '--help'])).toBe('rollout');
    expect(invokedCommand(['help', 'status'])).toBe('status');
  });
});
