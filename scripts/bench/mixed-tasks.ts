/**
 * Issue 16: mixed-task traffic on a jina-v3-shaped LoRA bundle (the batcher groups by task, so a
 * batch never mixes adapters). 64 clients, half retrieval.query and half retrieval.passage, vs.
 * all 64 on retrieval.passage, same bundle, same run. Target: mixed >= 0.8x single-task.
 *   node dist/scripts/bench/mixed-tasks.js [--clients 64] [--duration-ms 5000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
// @ts-expect-error plain JS script, no type declarations
import { makeTestModel, writeBundle } from '../../../scripts/make-test-model.js'; // runs from dist/scripts/bench
import { closedLoop, post, r2, startRuntime, writeResult } from './runtime-lib.js';

const { values: f } = parseArgs({ options: { clients: { type: 'string', default: '64' }, 'duration-ms': { type: 'string', default: '5000' } } });
const TASKS = ['retrieval.query', 'retrieval.passage', 'separation', 'classification', 'text-matching'];
const dir = mkdtempSync(join(tmpdir(), 'embedctl-mixed-'));
const built = makeTestModel({ loraTasks: TASKS, layers: 4, hidden: 128, heads: 4, intermediate: 512, maxPositions: 128 });
writeBundle(join(dir, 'lora'), { ...built, manifest: built.manifestFor('bench-lora', 'mean') });
const rt = await startRuntime(['--model', join(dir, 'lora')]);
const rate = async (task: (c: number) => string) => {
  let ok = 0;
  const t0 = performance.now();
  await closedLoop(Number(f.clients), Number(f['duration-ms']), async (c) => {
    const r = await post(rt.url, '/v1/embeddings', { input: [`client ${c} reads about the river city market ${ok % 31}`], task: task(c) });
    if (r.status === 200) ok++;
  });
  return r2(ok / ((performance.now() - t0) / 1000));
};
try {
  await rate(() => 'retrieval.passage'); // warm
  const single = await rate(() => 'retrieval.passage');
  const mixed = await rate((c) => (c % 2 ? 'retrieval.passage' : 'retrieval.query'));
  const ratio = r2(mixed / single);
  process.stdout.write(`single-task ${single} req/s, mixed ${mixed} req/s: ${ratio}x (target >= 0.8)\n`);
  const out = writeResult('mixed-tasks', { settings: { clients: Number(f.clients), durationMs: Number(f['duration-ms']), bundle: 'make-test-model --lora-tasks (4 layers, hidden 128)' }, singleTaskPerSec: single, mixedPerSec: mixed, ratio, meets: ratio >= 0.8 });
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await rt.stop();
  rmSync(dir, { recursive: true, force: true });
}
