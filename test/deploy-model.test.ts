// Issue 13.5: what goes to a remote target (`render`'s files, `up --docker-host`) must be a
// production model (a hub preset) unless --allow-demo-model says otherwise; `up --local` keeps
// the built-in models (rehearsals run offline).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_PRESETS } from '../src/core/model-presets.js';
import { runCli } from './helpers/cli.js';
import { freshDirs, tempDir } from './helpers/gateway.js';

const tmp = tempDir('embedctl-deploy-model-');
afterAll(() => tmp.cleanup());
const fresh = freshDirs(tmp.dir);
const presets = MODEL_PRESETS.map((p) => p.repoId);
// A docker host nothing listens on: a refusal must come before any connection attempt.
const NO_ENGINE = 'unix:///nonexistent/docker.sock';

function expectRefusal(r: { code: number; stderr: string }, field: string, model = 'default') {
  expect(r.code, r.stderr).toBe(2);
  // The error is one line; the hint under it names the preset for each hosted model.
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(2);
  expect(lines[1]).toMatch(/^\s+hint: e\.g\. --model BAAI\/bge-base-en-v1\.5 .*docs\/runbook\.md$/);
  expect(lines[0]).toMatch(new RegExp(`^embedctl: error: ${field}: "${model}" is a built-in demo model`));
  for (const p of presets) expect(lines[0]).toContain(p);
  expect(lines[0]).toContain('--allow-demo-model');
}

describe('render refuses the demo model', () => {
  it('by default (the built-in word vectors): exit 2, one line naming --model and the presets, nothing written', async () => {
    const cwd = fresh();
    const r = await runCli(['render', '--out', 'deploy'], { cwd });
    expectRefusal(r, '--model');
    expect(existsSync(join(cwd, 'deploy'))).toBe(false);
  });

  it('names the source when the demo model came from the environment or embedctl.yaml', async () => {
    expectRefusal(await runCli(['render'], { cwd: fresh(), env: { EMBEDCTL_MODEL: 'tiny-bert' } }), 'EMBEDCTL_MODEL', 'tiny-bert');
    const cwd = fresh();
    writeFileSync(join(cwd, 'embedctl.yaml'), 'deploy:\n  model: default-q\n');
    expectRefusal(await runCli(['render'], { cwd }), 'embedctl.yaml: deploy.model', 'default-q');
  });

  it('a hub id that is no preset is refused even with --allow-demo-model', async () => {
    const r = await runCli(['render', '--model', 'someone/some-model', '--allow-demo-model'], { cwd: fresh() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^embedctl: error: --model: someone\/some-model is not a hub preset/);
  });

  it('renders a preset, and the demo model with --allow-demo-model; a dry run only warns', async () => {
    const cwd = fresh();
    const preset = await runCli(['render', '--model', 'BAAI/bge-base-en-v1.5', '--json'], { cwd });
    expect(preset.code, preset.stderr).toBe(0);
    expect(preset.json<{ config: { model: string } }>().config.model).toBe('BAAI/bge-base-en-v1.5');
    expect(existsSync(join(cwd, 'deploy', 'docker-compose.yml'))).toBe(true);
    const demo = await runCli(['render', '--allow-demo-model', '--out', 'demo'], { cwd });
    expect(demo.code, demo.stderr).toBe(0);
    expect(existsSync(join(cwd, 'demo', 'docker-compose.yml'))).toBe(true);
    const dry = await runCli(['render', '--dry-run', '--out', 'dry'], { cwd });
    expect(dry.code).toBe(0);
    expect(dry.stderr).toMatch(/render without --dry-run refuses this: "default" is a built-in demo model/);
    expect(existsSync(join(cwd, 'dry'))).toBe(false);
  });
});

describe('up to a remote engine refuses the demo model; up --local does not', () => {
  it('up --docker-host with the default model: exit 2 before any connection', async () => {
    const r = await runCli(['up', '--docker-host', NO_ENGINE], { cwd: fresh() });
    expectRefusal(r, '--model');
    expectRefusal(await runCli(['up', '--docker-host', NO_ENGINE, '--model', 'tiny-bert'], { cwd: fresh() }), '--model', 'tiny-bert');
  });

  it('accepts a preset or --allow-demo-model (shown by --dry-run); a dry run with the demo model warns', async () => {
    const preset = await runCli(['up', '--docker-host', NO_ENGINE, '--model', 'BAAI/bge-small-en-v1.5', '--dry-run', '--json'], { cwd: fresh() });
    expect(preset.code, preset.stderr).toBe(0);
    expect(preset.json<{ plan: { model: string } }>().plan.model).toBe('BAAI/bge-small-en-v1.5');
    expect(preset.stderr).toBe('');
    const dry = await runCli(['up', '--docker-host', NO_ENGINE, '--dry-run'], { cwd: fresh() });
    expect(dry.code).toBe(0);
    expect(dry.stderr).toMatch(/up without --dry-run refuses this: "default" is a built-in demo model/);
    // Past the model check, the run reaches the engine (and fails there: nothing listens).
    const allowed = await runCli(['up', '--docker-host', NO_ENGINE, '--allow-demo-model'], { cwd: fresh() });
    expect(allowed.code).toBe(1);
    expect(allowed.stderr).not.toMatch(/demo model/);
  });

  it('up --local keeps the built-in model (a dry run shows it, no warning)', async () => {
    const r = await runCli(['up', '--local', '--dry-run'], { cwd: fresh() });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/would start 1 runtime \(default\)/);
    expect(r.stderr).not.toMatch(/demo model/);
  });
});
