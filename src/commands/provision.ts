import type { Command } from 'commander';
import type { Context } from '../context.js';
import { ExternalError } from '../errors.js';
import { action, examples, type ExitHolder } from './shared.js';

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program.command('provision').description('(not implemented yet)');
  examples(cmd, ['embedctl provision --help']);
  cmd.action(
    action(ctx, holder, async () => {
      throw new ExternalError('embedctl', 'provision is not implemented yet');
    }),
  );
}
