/** This machine's CPU, as the int8 kernel choice sees it (core/onnx-optimize/cpu-int8.ts decides). */
import { readFileSync } from 'node:fs';
import { arch, cpus } from 'node:os';
import { int8CpuFrom, type Int8Cpu } from '../core/onnx-optimize/cpu-int8.js';

export function int8Cpu(): Int8Cpu {
  let text: string | undefined;
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    text = undefined; // macOS, Windows: the kernel is reported as unknown
  }
  return int8CpuFrom(text, arch(), cpus()[0]?.model);
}
