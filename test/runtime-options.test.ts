import { describe, expect, it } from 'vitest';
import { resolveEmfOptions, resolveRuntimeOptions } from '../common/runtime-options.js';

// One resolver serves both option lists: flag > env > default, errors name the source.
describe('runtime options', () => {
  it('--device-id picks the GPU: default 0, env, flag wins, bad values named', () => {
    expect(resolveRuntimeOptions(() => undefined, {}).deviceId).toBe(0);
    expect(resolveRuntimeOptions(() => undefined, { EMBEDCTL_DEVICE_ID: '3' }).deviceId).toBe(3);
    expect(resolveRuntimeOptions((s) => (s.key === 'deviceId' ? '1' : undefined), { EMBEDCTL_DEVICE_ID: '3' }).deviceId).toBe(1);
    expect(() => resolveRuntimeOptions(() => undefined, { EMBEDCTL_DEVICE_ID: '-1' })).toThrow(/^EMBEDCTL_DEVICE_ID: /);
    expect(() => resolveRuntimeOptions((s) => (s.key === 'deviceId' ? 'gpu0' : undefined), {})).toThrow(/^--device-id: /);
  });

  it('EMF options resolve the same way', () => {
    expect(resolveEmfOptions(() => undefined, {})).toEqual({ emfLog: undefined, emfIntervalMs: 60_000, deployment: 'main' });
    expect(resolveEmfOptions((s) => (s.key === 'emfIntervalMs' ? '5' : undefined), { EMBEDCTL_EMF_INTERVAL: '30' }).emfIntervalMs).toBe(5000);
    expect(() => resolveEmfOptions(() => undefined, { EMBEDCTL_DEPLOYMENT: 'no spaces please' })).toThrow(/^EMBEDCTL_DEPLOYMENT: /);
  });
});
