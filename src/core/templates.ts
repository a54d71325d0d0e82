import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { templatesDir } from '../util/paths.js';

/**
 * Reads one of the package's own templates. The only file access in core: the templates ship
 * with embedctl and never change while it runs, so this stays deterministic.
 */
export function loadTemplate(relPath: string): string {
  return readFileSync(join(templatesDir(), relPath), 'utf8');
}
