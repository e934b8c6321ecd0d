import { describe, it, expect } from 'vitest';
import * as abi from '../../assembly/abi.js';
import { checkAbi, compileModule, createMemory, instantiate } from './wasm.js';
import { computeLayout, writeLayout } from './layout.js';
import { VpnError } from '../util/errors.js';

describe('WASM loader', () => {
  it('accepts the built module and reports its ABI version', () => {
    const mem = createMemory(32);
    const x = instantiate(mem, compileModule());
    expect(x.abiVersion()).toBe(abi.ABI_VERSION);
    expect(x.heapBase()).toBeLessThanOrEqual(abi.DP_BASE);
  });

  it('refuses a module of another ABI version with a clear error', () => {
    let err: unknown;
    try {
      checkAbi({ abiVersion: () => abi.ABI_VERSION + 1, heapBase: () => 1024 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VpnError);
    expect((err as VpnError).code).toBe('ERR_WASM_ABI');
    expect((err as VpnError).message).toMatch(new RegExp(`ABI version ${abi.ABI_VERSION + 1} does not match this build's ABI version ${abi.ABI_VERSION}: rebuild`));
    expect(() => checkAbi({ abiVersion: undefined as unknown as () => number, heapBase: () => 0 })).toThrow(/ABI version \(none\)/);
  });

  it('refuses a module whose static data overlaps the data-plane region', () => {
    expect(() => checkAbi({ abiVersion: () => abi.ABI_VERSION, heapBase: () => abi.DP_BASE + 16 })).toThrow(/above DP_BASE/);
  });

  it('init() refuses a missing, foreign or inconsistent layout header', () => {
    const layout = computeLayout({ maxSessions: 4 });
    const cases: [string, (dv: DataView) => void, number][] = [
      ['no header', (dv) => dv.setUint32(abi.DP_BASE + abi.L_MAGIC, 0, true), 1],
      ['other ABI', (dv) => dv.setUint32(abi.DP_BASE + abi.L_ABI, abi.ABI_VERSION + 7, true), 2],
      ['bad lookup size', (dv) => dv.setUint32(abi.DP_BASE + abi.L_V4_TABLE_CAP, 3, true), 3],
      ['sessions past the end', (dv) => dv.setUint32(abi.DP_BASE + abi.L_MAX_SESSIONS, 1 << 20, true), 3],
      ['larger than memory', (dv) => dv.setUint32(abi.DP_BASE + abi.L_TOTAL_BYTES, 0xfff00000, true), 4],
    ];
    for (const [, corrupt, code] of cases) {
      const mem = createMemory(layout.pages);
      writeLayout(mem, layout);
      corrupt(new DataView(mem.buffer as SharedArrayBuffer));
      expect(instantiate(mem).init()).toBe(code);
    }
  });
});
