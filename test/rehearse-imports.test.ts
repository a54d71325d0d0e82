// Issue 15: rehearse calls the other commands' typed run() functions, not argv through cli.ts, so
// nothing rehearse imports (statically or lazily) leads back to the CLI entry point.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Every module reachable from `entry` through relative imports (`from '...'` and `import('...')`). */
function reachable(entry: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const visit = (file: string) => {
    if (graph.has(file)) return;
    const deps = [...readFileSync(file, 'utf8').matchAll(/(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)]
      .map((m) => resolve(dirname(file), (m[1] ?? m[2])!).replace(/\.js$/, '.ts'))
      .filter((f) => existsSync(f));
    graph.set(file, deps);
    deps.forEach(visit);
  };
  visit(entry);
  return graph;
}

describe('rehearse and the CLI entry point', () => {
  it('no path from src/commands/rehearse.ts reaches src/cli.ts', () => {
    const graph = reachable(join(root, 'src', 'commands', 'rehearse.ts'));
    const mods = [...graph.keys()].map((f) => relative(root, f));
    // It does reach the commands it runs...
    for (const m of ['src/commands/rollout.ts', 'src/commands/verify-consistency.ts', 'src/commands/rag-overlap.ts', 'src/commands/load-test.ts', 'src/commands/cost-report.ts', 'src/commands/render.ts', 'src/commands/up.ts']) expect(mods).toContain(m);
    // ...and never the program that registers them.
    expect(mods).not.toContain('src/cli.ts');
  });
});
