// Runs after `npm install` in a clone: builds dist/ if missing and the embedded default models.
// Never fails the install: anything left undone is done on first use.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit' }).status === 0;
if (existsSync(join(root, 'scripts/build-models.js'))) {
  if (!run(process.execPath, [join(root, 'scripts/build-models.js')])) {
    console.warn('embedctl: model build failed; it will be retried on first use');
  }
}
