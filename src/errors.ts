/** Exit codes, documented in docs/reference.md and used by CI runbooks. */
export const ExitCode = {
  ok: 0,
  external: 1,
  usage: 2,
  gateFailed: 3,
  rolledBack: 4,
  interrupted: 130,
} as const;

export class EmbedctlError extends Error {
  readonly exitCode: number = ExitCode.external;
  /** A short hint on what to do next, printed after the message. */
  readonly hint?: string;
  constructor(message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
  }
}

/** Bad flag, bad value, bad file: the user can fix it. Exit 2. */
export class UsageError extends EmbedctlError {
  override readonly exitCode: number = ExitCode.usage;
  /** The flag, field or file the problem is in, e.g. "--min-cosine" or "embedctl.yaml: rollout.steps". */
  readonly field?: string;
  constructor(message: string, options: { field?: string; cause?: unknown; hint?: string } = {}) {
    super(options.field ? `${options.field}: ${message}` : message, options);
    this.field = options.field;
  }
}

/** An outside system failed (AWS, Docker, nginx, an HTTP endpoint). Exit 1. */
export class ExternalError extends EmbedctlError {
  override readonly exitCode: number = ExitCode.external;
  readonly system: string;
  constructor(system: string, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(`${system}: ${message}`, options);
    this.system = system;
  }
}

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
