export { main, buildProgram } from './cli.js';
export type { Context } from './context.js';
export { EmbedctlError, UsageError, ExternalError, GateFailed, RolledBack, ExitCode } from './errors.js';
