import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { liveLine } from '../src/ui/live.js';
import { logger } from '../src/ui/output.js';
import { sleep, type Context } from '../src/context.js';

function capture(isTTY: boolean, env: Record<string, string> = {}) {
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (d) => (text += d));
  const ctx: Context = { stdout: new PassThrough(), stderr, env, cwd: '/', now: () => new Date(), sleep, isTTY, adapters: {} };
  return { ctx, out: () => text };
}
const ESC = '\u001b[';
const settle = () => new Promise((r) => setTimeout(r, 1500));

describe('progress on a terminal updates in place; piped it is plain lines', () => {
  it('piped (or CI): one plain line per update, no escape codes', () => {
    for (const [tty, env] of [[false, {}], [true, { CI: 'true' }]] as const) {
      const { ctx, out } = capture(tty, env);
      const live = liveLine(ctx);
      for (const s of ['instance i-1: pending', 'instance i-1: pending', 'instance i-1: running']) live.update(s);
      live.done();
      expect(out()).toBe('instance i-1: pending\ninstance i-1: pending\ninstance i-1: running\n');
    }
  });

  it('on a TTY: each update erases the previous one (log-update); done keeps the last on screen', async () => {
    const { ctx, out } = capture(true);
    const live = liveLine(ctx);
    live.update('poll 1');
    await settle(); // log-update is loaded on first use
    for (let i = 2; i <= 26; i++) live.update(`poll ${i}`);
    live.done();
    const text = out();
    expect(text).toContain(ESC); // cursor-up / erase-line sequences
    // 26 updates, and what stays visible is the last one: every earlier one was erased.
    const visible = text.split('\n').map((l) => l.slice(l.lastIndexOf(`${ESC}G`) + 1)).filter((l) => /poll \d+/.test(l));
    expect(visible.at(-1)).toMatch(/poll 26$/);
    // Each of the 25 later frames first erases the frame before it (erase-line + cursor-up).
    expect(text.split(`${ESC}2K`).length - 1).toBeGreaterThanOrEqual(25);
    expect(text.split(`${ESC}1A`).length - 1).toBeGreaterThanOrEqual(25);
  });

  it('a log line after a status keeps the status above it', async () => {
    const { ctx, out } = capture(true);
    const log = logger(ctx, { json: false, verbose: false, color: false });
    log.status('instance i-1: pending');
    await settle();
    log.status('instance i-1: running');
    log.info('removed instance i-1');
    expect(out()).toMatch(/instance i-1: running\n[\s\S]*removed instance i-1\n$/);
    const piped = capture(false);
    const plain = logger(piped.ctx, { json: false, verbose: false, color: false });
    plain.status('a');
    plain.info('b');
    expect(piped.out()).toBe('a\nb\n');
  });
});
