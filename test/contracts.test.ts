import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineContract, deployFile, rolloutFile, rolloutHistory, stateFile, type RolloutStateDoc, type StateFileDoc } from '../src/contracts/index.js';
import { initialState } from '../src/core/rollout/plan.js';
import type { RolloutState } from '../src/core/rollout/types.js';
import { emptyState, newDeployment, type StateFile } from '../src/core/state.js';
import { UsageError } from '../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'embedctl-contracts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The contracts describe the shapes the code has: each direction must type-check.
const sameRollout = (s: RolloutState): RolloutStateDoc => s;
const sameRolloutBack = (s: RolloutStateDoc): RolloutState => s;
const sameState = (s: StateFile): StateFileDoc => s as StateFileDoc;
void [sameRollout, sameRolloutBack, sameState];

async function refusal(p: Promise<unknown>): Promise<UsageError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UsageError);
  return err as UsageError;
}

describe('contracts', () => {
  it('rollout.json: what the rollout code starts with round-trips through the contract', async () => {
    const path = join(dir, 'rollout.json');
    const s = initialState([10, 25, 50, 75, 100], 7 * 86_400_000, 'env');
    await rolloutFile.write(path, s);
    expect(await rolloutFile.read(path)).toEqual(s);
    expect(await rolloutFile.read(join(dir, 'missing.json'))).toBeUndefined();
  });

  it('state.json: a deployment round-trips; an older file without attempts gets the default', async () => {
    const path = join(dir, 'state.json');
    const s = emptyState();
    s.deployments.main = newDeployment('main', 'us-east-1', new Date(0), 1);
    await stateFile.write(path, sameState(s));
    expect(await stateFile.read(path)).toEqual(s);
    writeFileSync(path, JSON.stringify({ version: 1, deployments: {} }));
    expect(await stateFile.read(path)).toEqual({ version: 1, deployments: {}, attempts: {} });
  });

  it('a wrong field: one line naming the file, the field and the fix; the file is untouched', async () => {
    const path = join(dir, 'bad-rollout.json');
    const text = JSON.stringify({ ...initialState([10, 100], 1000, 'env'), percent: 140 });
    writeFileSync(path, text);
    const err = await refusal(rolloutFile.read(path));
    expect(err.field).toBe(`${path}: percent`);
    expect(err.message).toMatch(/^\S+bad-rollout\.json: percent: must be <= 100; it was left untouched$/);
    expect(err.hint).toMatch(/rollout\.history\.jsonl/);
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  it('a newer version is refused, corrupt JSON is named', async () => {
    const path = join(dir, 'newer.json');
    writeFileSync(path, JSON.stringify({ version: 2, deployments: {} }));
    expect((await refusal(stateFile.read(path))).message).toMatch(/newer embedctl \(provisioning state v2; this one reads up to v1\)/);
    writeFileSync(path, '{"version": 1,');
    expect((await refusal(deployFile.read(path))).message).toMatch(/newer\.json is not valid JSON/);
  });

  it('older versions migrate step by step; a version without a migration is refused', async () => {
    const c = defineContract({
      name: 'thing',
      version: 3,
      stamp: { key: 'schema', id: 'thing' },
      schema: z.object({ schema: z.literal('embedctl.thing/v3'), total: z.number() }),
      fix: 'run `embedctl thing` again',
      migrate: {
        2: (d) => ({ ...d, schema: 'embedctl.thing/v3', total: d.sum }),
      },
    });
    expect(c.parse({ schema: 'embedctl.thing/v2', sum: 4 }, 'thing.json')).toEqual({ schema: 'embedctl.thing/v3', total: 4 });
    expect(() => c.parse({ schema: 'embedctl.thing/v1', sum: 4 }, 'thing.json')).toThrow(/thing\.json is embedctl\.thing v1, which this embedctl no longer reads/);
    expect(() => c.parse({ schema: 'embedctl.other/v3', total: 4 }, 'thing.json')).toThrow(/thing\.json has schema embedctl\.other\/v3, expected embedctl\.thing\/v3/);
    expect(() => c.parse({ total: 4 }, 'thing.json')).toThrow(/not a thing \(no embedctl\.thing version stamp\)/);
  });

  it('history lines are validated on append and on read, a bad line named by number', async () => {
    const path = join(dir, 'rollout.history.jsonl');
    const line = { time: new Date(0).toISOString(), user: 'ci', action: 'advance' as const, from: 0, to: 10, reason: null, forced: false, gates: [], driver: 'env' as const };
    await rolloutHistory.append(path, line);
    await expect(rolloutHistory.append(path, { ...line, to: 400 })).rejects.toThrow(/invalid rollout history line/);
    writeFileSync(path, `${readFileSync(path, 'utf8')}{"time":"x"}\n`);
    const err = await refusal(rolloutHistory.read(path));
    expect(err.field).toMatch(/rollout\.history\.jsonl:2: /);
  });

  it('the writer refuses to put an invalid document on disk', async () => {
    await expect(rolloutFile.write(join(dir, 'w.json'), { ...initialState([10], 0, 'env'), steps: [] })).rejects.toThrow(/invalid rollout state/);
  });
});
