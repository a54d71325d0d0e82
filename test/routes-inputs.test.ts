import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../runtime/app.js';
import { loadModel, type Model } from '../runtime/inference/model.js';
import { MAX_INPUTS, parseInputs } from '../runtime/routes/request.js';

/**
 * OpenAI's `input` shapes and the 2,048-input cap (runtime/routes/request.ts): a flat array of
 * token ids is ONE input, however many ids it holds (its length is a token count, governed by
 * the model's max tokens and `truncate`); only arrays of inputs are capped at MAX_INPUTS.
 */

let server: RunningServer;
let direct: Model;

const post = async (body: unknown) => {
  const res = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as any };
};

beforeAll(async () => {
  direct = await loadModel('tiny-bert');
  server = await startServer({ model: loadModel('tiny-bert'), port: 0, host: '127.0.0.1' });
  await server.ready;
});
afterAll(async () => {
  await server?.close();
  await server?.models.release();
  await direct?.close();
});

describe('input count vs token-id arrays', () => {
  it('parses a flat array of 3,000 ids as one input, and refuses 2,049 strings or id arrays', () => {
    const ids = Array.from({ length: 3000 }, (_, i) => 10 + (i % 400));
    expect(parseInputs(ids)).toEqual([ids]);
    expect(() => parseInputs(Array.from({ length: MAX_INPUTS + 1 }, () => 'x'))).toThrow(/'input' has 2049 items; send at most 2048/);
    expect(() => parseInputs(Array.from({ length: MAX_INPUTS + 1 }, () => [10, 11]))).toThrow(/'input' has 2049 items/);
  });

  it('embeds 3,000 flat token ids as one input cut to max tokens (200), and refuses it untruncated or 2,049 strings (400)', async () => {
    const { maxTokens } = direct.manifest;
    const ids = Array.from({ length: 3000 }, (_, i) => 10 + (i % 400));
    const r = await post({ input: ids });
    expect(r.status).toBe(200);
    expect(r.json.data).toHaveLength(1);
    // Usage counts every id sent (plus the template's specials), as for text before truncation.
    expect(r.json.usage.prompt_tokens).toBe(direct.encodeIds(ids).fullLength);
    // Cut like text: the model saw the first maxTokens - specials ids.
    const cut = direct.encodeIds(ids);
    expect(cut.ids).toHaveLength(maxTokens);
    const [want] = await direct.embed([cut]);
    const got = r.json.data[0].embedding as number[];
    got.forEach((x, k) => expect(x).toBeCloseTo(want![k]!, 5));

    const strict = await post({ input: ids, truncate: false });
    expect(strict.status).toBe(400);
    expect(strict.json.error).toMatchObject({ type: 'invalid_request_error', param: 'input', code: 'input_too_long' });
    expect(strict.json.error.message).toMatch(new RegExp(`over the model's limit of ${maxTokens}`));

    const tooMany = await post({ input: Array.from({ length: MAX_INPUTS + 1 }, (_, i) => `text ${i}`) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.error).toMatchObject({ type: 'invalid_request_error', param: 'input', code: 'too_many_inputs' });

    // Out-of-vocabulary ids in a long flat array are still checked.
    const bad = await post({ input: [...ids, 999_999] });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/outside this model's vocabulary/);
  });
});
