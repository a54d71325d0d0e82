import { z } from 'zod';
import { parseBoolean } from '../../common/values.js';

/**
 * The boolean vocabulary (common/values.ts) as a zod type, for the settings schemas (deploy,
 * gateway). Kept out of src/config.ts so commands that only parse flags do not load zod.
 */
export const booleanSchema = z.unknown().transform((raw, c) => {
  try {
    return parseBoolean(raw);
  } catch (err) {
    c.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
