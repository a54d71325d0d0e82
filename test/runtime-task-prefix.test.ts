import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../runtime/inference/model.js';
import { ModelService } from '../runtime/inference/service.js';

/**
 * ModelService's task prefixes are the manifest's own keys only: a task named like an Object
 * prototype member ("constructor", "toString", "__proto__") is no prefix, whatever route let it
 * through, instead of the member's source text being glued in front of the input.
 */

let model: Model;
let service: ModelService;

beforeAll(async () => {
  model = await loadModel('tiny-bert');
  service = await ModelService.start(model, { maxBatchTokens: 8192, maxBatchSize: 16, maxQueue: 64, maxWaitMs: 1 });
});
afterAll(async () => {
  await service?.close();
  await model?.close();
});

describe('task prefixes', () => {
  it('apply own keys only: prototype names embed as no prefix, a real task with its prefix', async () => {
    const text = 'green tea at the market';
    const plain = (await service.embed({ texts: [text], truncate: true })).vectors[0]!;
    for (const task of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const r = await service.embed({ texts: [text], task, truncate: true });
      expect(Array.from(r.vectors[0]!)).toEqual(Array.from(plain));
      expect(r.tokens).toBe(model.encode(text).fullLength);
      expect(service.prefixFor(task)).toBe('');
    }
    expect(service.prefixFor('retrieval.query')).toBe('query: ');
    const query = (await service.embed({ texts: [text], task: 'retrieval.query', truncate: true })).vectors[0]!;
    const prefixed = (await service.embed({ texts: [`query: ${text}`], truncate: true })).vectors[0]!;
    expect(Array.from(query)).toEqual(Array.from(prefixed));
    expect(Array.from(query)).not.toEqual(Array.from(plain));
  });
});
