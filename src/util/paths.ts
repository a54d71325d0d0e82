import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../common/paths.js';

export { packageRoot };

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

export const templatesDir = () => join(packageRoot(), 'templates');
export const dataDir = () => join(packageRoot(), 'data');
