import type { Command } from 'commander';
import type { Context } from '../context.js';
import { ExternalError } from '../errors.js';
import { action, examples, type ExitHolder } from './shared.js';

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program.command('serve').description('(not implemented yet)');
  examples(cmd, ['embedctl serve --help']);
  cmd.action(
    action(ctx, holder, async () => {
      throw new ExternalError('embedctl', 'serve is not implemented yet');
    }),
  );
}
