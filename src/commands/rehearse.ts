import type { Command } from 'commander';
import type { Context } from '../context.js';
import { ExternalError } from '../errors.js';
import { action, examples, type ExitHolder } from './shared.js';

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program.command('rehearse').description('(not implemented yet)');
  examples(cmd, ['embedctl rehearse --help']);
  cmd.action(
    action(ctx, holder, async () => {
      throw new ExternalError('embedctl', 'rehearse is not implemented yet');
    }),
  );
}
