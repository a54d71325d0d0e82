#!/usr/bin/env node
// The AWS SDK prints a multi-line notice on Node 20 about releases after January 2027; the
// versions locked here support Node 20, and the README says so. Keep CLI output to what matters.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { main } = await import('../dist/src/cli.js');
const { processContext } = await import('../dist/src/context.js');

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
