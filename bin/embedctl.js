#!/usr/bin/env node
import { main } from '../dist/src/cli.js';
import { processContext } from '../dist/src/context.js';

// `embedctl ... | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// First Ctrl-C asks the command to stop and print what it has; a second one kills at once.
const ac = new AbortController();
const onSignal = (sig) => {
  if (ac.signal.aborted) process.exit(130);
  process.stderr.write(`\nembedctl: ${sig} received, stopping (again to force)\n`);
  ac.abort(new Error(sig));
};
process.on('SIGINT', () => onSignal('SIGINT'));
process.on('SIGTERM', () => onSignal('SIGTERM'));

const code = await main(process.argv, processContext(ac.signal));
process.exitCode = code;
// Commands close their own servers and children; do not hang on a stray handle.
setTimeout(() => process.exit(code), 200).unref();
