// Which int8 kernel `models optimize --int8` reports, from /proc/cpuinfo texts of real machines:
// this dev box (Zen 3, no VNNI), g4dn's Cascade Lake host, Sapphire Rapids, Alder Lake, Skylake-SP
// and Graviton 2/3. The speed of an int8 bundle is decided by this kernel, so the report must not
// call a VNNI host a plain AVX2 one or the other way round.
import { describe, expect, it } from 'vitest';
import { int8Cpu } from '../src/adapters/cpu-info.js';
import { int8CpuFrom } from '../src/core/onnx-optimize/cpu-int8.js';

const x86 = (model: string, flags: string) => `processor\t: 0\nvendor_id\t: x\nmodel name\t: ${model}\nflags\t\t: ${flags}\n\nprocessor\t: 1\n`;
const BASE = 'fpu vme de pse tsc msr pae mce cx8 apic sep sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt avx f16c';
const arm = (features: string) => `processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: ${features}\nCPU implementer\t: 0x41\n`;

describe('int8 kernel from CPU flags', () => {
  it.each([
    ['AMD EPYC 7R13 (Zen 3)', `${BASE} avx2 bmi2 vaes vpclmulqdq`, 'avx2', false],
    ['Intel Xeon Platinum 8259CL (g4dn, Cascade Lake)', `${BASE} avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni`, 'avx512-vnni', true],
    ['Intel Xeon Platinum 8488C (Sapphire Rapids)', `${BASE} avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8`, 'amx', true],
    ['12th Gen Intel Core i7-1265U (Alder Lake)', `${BASE} avx2 avx_vnni`, 'avx-vnni', true],
    ['Intel Xeon Platinum 8175M (Skylake-SP)', `${BASE} avx2 avx512f avx512bw avx512vl`, 'avx512bw', false],
    ['old box', `${BASE}`, 'sse4.1', false],
  ])('%s -> %s', (model, flags, kernel, dot) => {
    const c = int8CpuFrom(x86(model, flags), 'x64');
    expect(c.kernel).toBe(kernel);
    expect(c.dotProduct).toBe(dot);
    expect(c.model).toBe(model);
    expect(c.flags).not.toContain('fpu');
    expect(c.note.length).toBeGreaterThan(10);
  });

  it('amx_int8 without the tile state is not AMX', () => {
    expect(int8CpuFrom(x86('x', `${BASE} avx2 avx512bw avx512_vnni amx_int8`), 'x64').kernel).toBe('avx512-vnni');
  });

  it('Arm: i8mm (Graviton 3), dot product (Graviton 2), plain NEON', () => {
    expect(int8CpuFrom(arm('fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp i8mm bf16'), 'arm64', 'Neoverse-V1').kernel).toBe('arm-i8mm');
    const g2 = int8CpuFrom(arm('fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs'), 'arm64', 'Neoverse-N1');
    expect([g2.kernel, g2.dotProduct, g2.model]).toEqual(['arm-dotprod', true, 'Neoverse-N1']);
    expect(int8CpuFrom(arm('fp asimd evtstrm crc32 cpuid'), 'arm64').kernel).toBe('arm-neon');
  });

  it('no cpuinfo (macOS, Windows): unknown, and says to measure where it serves', () => {
    const c = int8CpuFrom(undefined, 'x64', 'Apple M2');
    expect([c.kernel, c.dotProduct, c.model]).toEqual(['unknown', false, 'Apple M2']);
    expect(c.note).toMatch(/measure/);
  });

  it("this machine's entry is one of the known kernels, matching its own flags", () => {
    const c = int8Cpu();
    expect(c.kernel).not.toBe('');
    if (process.platform === 'linux' && process.arch === 'x64') {
      expect(c.kernel).not.toBe('unknown');
      expect(c.dotProduct).toBe(c.flags.some((f) => f === 'avx512_vnni' || f === 'avx_vnni' || f === 'amx_int8'));
    }
  });
});
