/**
 * The error classes both the CLI (src/) and the runtime (runtime/) throw. They live here so a
 * model-load failure in the runtime is the same class (and so the same exit code) when `embedctl
 * serve` catches it; src/errors.ts re-exports them with the CLI-only classes and formatting.
 */
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
