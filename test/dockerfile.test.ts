import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The GPU image cannot be built here (no Docker engine, no GPU), so its Dockerfile is read as
 * data: stages, base images after ARG substitution, the final user, health check and entry point.
 */
const text = readFileSync(join(import.meta.dirname, '..', 'runtime', 'Dockerfile'), 'utf8');

interface Instr {
  op: string;
  args: string;
}

function parse(src: string): Instr[] {
  const logical = src.replace(/\\\n/g, ' ').split('\n');
  return logical
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\S+)\s+(.*)$/.exec(l)!;
      return { op: m[1]!.toUpperCase(), args: m[2]! };
    });
}

const instrs = parse(text);
const globalArgs = new Map<string, string>();
for (const i of instrs) {
  if (i.op === 'FROM') break;
  if (i.op === 'ARG') {
    const [k, v] = i.args.split('=');
    globalArgs.set(k!, v ?? '');
  }
}
const subst = (s: string) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => globalArgs.get(a ?? b) ?? '');
const stages: Instr[][] = [];
for (const i of instrs) {
  if (i.op === 'FROM') stages.push([]);
  stages[stages.length - 1]?.push(i);
}
const final = stages[stages.length - 1]!;
const finalBase = subst(final[0]!.args.split(/\s+/)[0]!);

describe('runtime/Dockerfile', () => {
  it('runs on a CUDA 12 + cuDNN 9 runtime base', () => {
    const m = /^nvidia\/cuda:12\.(\d+)(?:\.\d+)?-cudnn(\d*)-runtime-ubuntu\d+\.\d+$/.exec(finalBase);
    expect(m, `final base ${finalBase}`).not.toBeNull();
    // "cudnn9" names cuDNN 9 outright; the bare "cudnn" tags carry cuDNN 9 from CUDA 12.4 on.
    const [, minor, cudnn] = m!;
    if (cudnn) expect(cudnn).toBe('9');
    else expect(Number(minor)).toBeGreaterThanOrEqual(4);
  });

  it('installs production dependencies with onnxruntime-node\'s CUDA 12 provider', () => {
    const all = instrs.map((i) => `${i.op} ${i.args}`).join('\n');
    expect(all).toMatch(/npm ci[^\n]*--omit=dev/);
    // Either spelling onnxruntime-node's script/install.js reads, with the CUDA 12 value.
    expect(all).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12|--onnxruntime-node-install=cuda12|ONNXRUNTIME_NODE_INSTALL_CUDA=v?12/);
    const installJs = readFileSync(join(import.meta.dirname, '..', 'node_modules', 'onnxruntime-node', 'script', 'install-utils.js'), 'utf8');
    expect(installJs).toContain('process.env.ONNXRUNTIME_NODE_INSTALL');
    expect(installJs).toMatch(/return 'cuda12'|cuda12/);
  });

  it('drops root in the final stage', () => {
    const users = final.filter((i) => i.op === 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users[users.length - 1]!.args.split(':')[0]!;
    expect(user).not.toMatch(/^(root|0)$/);
  });

  it('checks readiness, exposes 8080 and starts the runtime with CUDA then CPU', () => {
    const hc = final.find((i) => i.op === 'HEALTHCHECK');
    expect(hc?.args).toMatch(/\/ready/);
    expect(final.some((i) => i.op === 'EXPOSE' && /\b8080\b/.test(i.args))).toBe(true);
    const ep = final.find((i) => i.op === 'ENTRYPOINT')!;
    const argv = JSON.parse(ep.args) as string[];
    expect(argv.slice(0, 2)).toEqual(['node', 'dist/runtime/main.js']);
    expect(argv.join(' ')).toMatch(/--ep cuda,cpu/);
    // Listens beyond loopback inside the container.
    expect(final.some((i) => i.op === 'ENV' && /EMBEDCTL_HOST=0\.0\.0\.0/.test(i.args))).toBe(true);
  });

  it('carries no secrets', () => {
    for (const i of instrs.filter((x) => x.op === 'ENV' || x.op === 'ARG')) {
      expect(i.args).not.toMatch(/(API_KEY|TOKEN|SECRET|PASSWORD|AWS_ACCESS_KEY_ID|AWS_SECRET)\s*=/i);
    }
    expect(text).not.toMatch(/AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9]{20,}/);
    const ignore = readFileSync(join(import.meta.dirname, '..', 'runtime', 'Dockerfile.dockerignore'), 'utf8');
    expect(ignore).toMatch(/^\.env$/m);
  });
});
