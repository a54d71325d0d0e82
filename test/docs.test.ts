import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { referenceMarkdown } from '../scripts/gen-reference.js';
import { packageRoot } from '../src/util/paths.js';

describe('docs/reference.md', () => {
  it('matches the CLI help (run `npm run docs` after changing a command)', async () => {
    const committed = readFileSync(join(packageRoot(), 'docs', 'reference.md'), 'utf8');
    expect(committed).toBe(await referenceMarkdown());
  });
});
