// EMBEDCTL_STATE_DIR moves every state file, rollout.json included: teardown and status read
// the rollout where rollout wrote it, so a teardown never cuts off a live 50 % it could not see.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { runCli } from './helpers/cli.js';
import { manualClock, tempProject, writeReports } from './helpers/rollout-fixtures.js';
import { ec2, resetAws } from './provision-fakes.js';

let cwd: string;
let clock: ReturnType<typeof manualClock>;
beforeEach(() => {
  resetAws();
  cwd = tempProject();
  clock = manualClock();
  writeReports(cwd, clock.now());
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

/** What provision leaves in state.json: one deployment (AWS answers come from the SDK mock). */
function writeDeployment(dir: string) {
  mkdirSync(dir, { recursive: true });
  const at = '2026-03-01T00:00:00.000Z';
  writeFileSync(
    join(dir, 'state.json'),
    JSON.stringify({ version: 1, attempts: { main: 1 }, deployments: { main: { name: 'main', region: 'eu-west-1', createdAt: at, updatedAt: at, attempt: 1, instance: { id: 'i-0abc', instanceType: 'g4dn.xlarge', market: 'on-demand', state: 'running' }, alarms: [], endpoints: [] } } }),
  );
}

describe('rollout with EMBEDCTL_STATE_DIR', () => {
  for (const [name, stateDir] of [
    ['unset', undefined],
    ['set', 'shared-state'],
  ] as const) {
    it(`${name}: rollout.json is where teardown and status look, and teardown refuses at 50 % (exit 2)`, async () => {
      const dir = stateDir ? join(cwd, stateDir) : join(cwd, '.embedctl');
      const env = { EMBEDCTL_USER: 'alice@ops', ...(stateDir ? { EMBEDCTL_STATE_DIR: dir } : {}) };
      writeDeployment(dir);
      const moved = await runCli(['rollout', 'to', '50', '--force', '--reason', 'capacity test', '--driver', 'env', '--steps', '50,100'], { cwd, now: clock.now, env });
      expect(moved.code, moved.stderr).toBe(0);
      expect(JSON.parse(readFileSync(join(dir, 'rollout.json'), 'utf8')).percent).toBe(50);
      expect(readFileSync(join(dir, 'rollout.history.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);
      if (stateDir) expect(existsSync(join(cwd, '.embedctl', 'rollout.json'))).toBe(false);

      const status = await runCli(['rollout', 'status', '--json'], { cwd, now: clock.now, env });
      expect(status.json()).toMatchObject({ started: true, state: { percent: 50 } });

      const teardown = await runCli(['teardown', '--yes'], { cwd, now: clock.now, env });
      expect(teardown.code).toBe(2);
      expect(teardown.stderr).toMatch(/^embedctl: error: --force: .*rollout\.json still sends 50% of traffic to self-hosted; tearing down would cut it off$/m);
      expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);

      const back = await runCli(['rollout', 'rollback', '--reason', 'teardown', '--driver', 'env'], { cwd, now: clock.now, env });
      expect(back.code, back.stderr).toBe(0);
      expect(JSON.parse(readFileSync(join(dir, 'rollout.json'), 'utf8')).percent).toBe(0);
    });
  }
});
