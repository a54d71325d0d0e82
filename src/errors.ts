import { EmbedctlError, ExitCode, UsageError } from '../common/errors.js';

// Shared with the runtime (common/errors.ts); re-exported so CLI code keeps one import.
export { EmbedctlError, ExitCode, ExternalError, UsageError } from '../common/errors.js';

/** A quality or SLO gate failed. Exit 3. `report` is what the command measured. */
export class GateFailed extends EmbedctlError {
  override readonly exitCode: number = ExitCode.gateFailed;
  readonly report?: unknown;
  constructor(message: string, options: { report?: unknown; hint?: string } = {}) {
    super(message, options);
    this.report = options.report;
  }
}

/** An automatic rollback happened (traffic moved back to hosted). Exit 4. */
export class RolledBack extends EmbedctlError {
  override readonly exitCode: number = ExitCode.rolledBack;
}

export class Interrupted extends EmbedctlError {
  override readonly exitCode: number = ExitCode.interrupted;
  constructor(message = 'interrupted') {
    super(message);
  }
}

export function exitCodeOf(err: unknown): number {
  return err instanceof EmbedctlError ? err.exitCode : ExitCode.external;
}

/** One line for the user; the cause chain only when verbose. */
export function formatError(err: unknown, verbose: boolean): string {
  const lines: string[] = [];
  const msg = err instanceof Error ? err.message : String(err);
  lines.push(`embedctl: error: ${msg.split('\n')[0]}`);
  if (err instanceof EmbedctlError && err.hint) lines.push(`  hint: ${err.hint}`);
  if (verbose) {
    let cause = err instanceof Error ? err.cause : undefined;
    while (cause) {
      lines.push(`  caused by: ${cause instanceof Error ? cause.message : String(cause)}`);
      cause = cause instanceof Error ? cause.cause : undefined;
    }
    if (err instanceof Error && err.stack && !(err instanceof EmbedctlError)) lines.push(err.stack);
  }
  return lines.join('\n') + '\n';
}

/** What `--json` prints on stdout when a command fails: the one-line message, split into fields. */
export interface ErrorDocument {
  schema: 'embedctl.error/v1';
  error: { message: string; hint: string | null; field: string | null; exitCode: number };
}

export function errorDocument(err: unknown): ErrorDocument {
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
  return {
    schema: 'embedctl.error/v1',
    error: {
      message,
      hint: err instanceof EmbedctlError ? (err.hint ?? null) : null,
      field: err instanceof UsageError ? (err.field ?? null) : null,
      exitCode: exitCodeOf(err),
    },
  };
}
