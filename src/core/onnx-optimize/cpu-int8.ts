/**
 * Which int8 GEMM kernel ONNX Runtime's MLAS will pick on a CPU, read from its feature flags.
 *
 * The speed-up of `optimize --int8` is decided by this, not by the graph: every quantised MatMul
 * becomes one MLAS u8 x s8 GEMM, and the rest of the graph (LayerNorm, Softmax, Gelu, attention's
 * activation products) runs in fp32 as before. So the end-to-end gain can never exceed the
 * per-GEMM gain of the kernel below:
 *   - AMX (amx_int8), AVX-512 VNNI, AVX-VNNI: one instruction multiplies and accumulates u8 x s8
 *     into int32 (vpdpbusd); 8-bit weights are safe (`--full-range`).
 *   - AVX-512BW / AVX2 without VNNI: vpmaddubsw + vpmaddwd, two multiplier uops per 32 products
 *     with a saturating 16-bit add between them (hence the 7-bit default). Measured here (Zen 3,
 *     avx2, no VNNI, bench:optimize): 1.3-1.5x per GEMM over fp32.
 *   - Arm: sdot/udot (asimddp) or smmla (i8mm).
 * The report names the kernel so an operator does not read a laptop's int8 figure as the serving
 * host's, or the other way round: measure where the bundle serves. Pure: adapters/cpu-info.ts
 * reads this machine's /proc/cpuinfo.
 */
export type Int8Kernel = 'amx' | 'avx512-vnni' | 'avx-vnni' | 'avx512bw' | 'avx2' | 'sse4.1' | 'arm-i8mm' | 'arm-dotprod' | 'arm-neon' | 'unknown';

export interface Int8Cpu {
  model: string;
  arch: string;
  /** The flags that decide the kernel, as /proc/cpuinfo spells them. */
  flags: string[];
  kernel: Int8Kernel;
  /** One instruction per u8 x s8 multiply-accumulate (VNNI, AMX, Arm dot products). */
  dotProduct: boolean;
  note: string;
}

const DECIDING = /^(avx2|avx512bw|avx512_vnni|avx_vnni|amx_int8|amx_tile|sse4_1|asimd|asimddp|i8mm)$/;

const NOTES: Record<Int8Kernel, string> = {
  amx: 'AMX tiles: the fastest int8 path ONNX Runtime has on CPU; --full-range is safe',
  'avx512-vnni': 'AVX-512 VNNI (vpdpbusd): one instruction per u8 x s8 multiply-add; --full-range is safe',
  'avx-vnni': 'AVX-VNNI (vpdpbusd on 256 bits); --full-range is safe',
  avx512bw: 'no VNNI: vpmaddubsw + vpmaddwd on 512 bits; keep the 7-bit default',
  avx2: 'no VNNI: vpmaddubsw + vpmaddwd, about 1.3-1.5x per GEMM over fp32 on such CPUs; keep the 7-bit default',
  'sse4.1': 'no AVX2: int8 gains little here',
  'arm-i8mm': 'Arm i8mm (smmla)',
  'arm-dotprod': 'Arm dot product (sdot/udot)',
  'arm-neon': 'Arm NEON without dot product: int8 gains little here',
  unknown: 'CPU features unknown (no /proc/cpuinfo): measure the speed-up where the bundle serves',
};

/** From the text of /proc/cpuinfo (the first processor's entry is enough: all cores match). */
export function int8CpuFrom(cpuinfo: string | undefined, arch: string, model = 'unknown'): Int8Cpu {
  const line = cpuinfo?.split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
  const all = new Set((line?.split(':')[1] ?? '').trim().split(/\s+/).filter(Boolean));
  const name = cpuinfo?.split('\n').find((l) => /^model name\s*:/.test(l))?.split(':')[1]?.trim() ?? model;
  let kernel: Int8Kernel = 'unknown';
  if (line) {
    if (arch === 'arm64') kernel = all.has('i8mm') ? 'arm-i8mm' : all.has('asimddp') ? 'arm-dotprod' : 'arm-neon';
    else if (all.has('amx_int8') && all.has('amx_tile')) kernel = 'amx';
    else if (all.has('avx512_vnni')) kernel = 'avx512-vnni';
    else if (all.has('avx_vnni')) kernel = 'avx-vnni';
    else if (all.has('avx512bw')) kernel = 'avx512bw';
    else if (all.has('avx2')) kernel = 'avx2';
    else if (all.has('sse4_1')) kernel = 'sse4.1';
  }
  return {
    model: name,
    arch,
    flags: [...all].filter((f) => DECIDING.test(f)).sort(),
    kernel,
    dotProduct: ['amx', 'avx512-vnni', 'avx-vnni', 'arm-i8mm', 'arm-dotprod'].includes(kernel),
    note: NOTES[kernel],
  };
}
