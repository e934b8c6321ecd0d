/**
 * Loading the WASM data plane. The module is compiled once per process and
 * instantiated per worker memory. The loader refuses a module whose ABI
 * version differs from assembly/abi.ts, and one whose static data would
 * overlap the data-plane region.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as abi from '../../assembly/abi.js';
import { VpnError } from '../util/errors.js';

export interface DataPlaneExports {
  abiVersion(): number;
  heapBase(): number;
  init(): number;
  process(budget: number): number;
  sessionAttach(idx: number): number;
  sessionActivate(idx: number): number;
  setDefaultSession(idx: number): void;
  mppeInit(idx: number, bits: number, stateless: number): number;
  mppeResetSend(idx: number): void;
  sessionDeactivate(idx: number): number;
  v4Lookup(addr: number): number;
  _initialize(): void;
  [name: string]: unknown;
}

export const INIT_ERRORS: Record<number, string> = {
  1: 'layout header magic is wrong (layout not written?)',
  2: 'layout header ABI version differs from the module',
  3: 'layout geometry is inconsistent',
  4: 'memory is smaller than the layout',
};

const here = path.dirname(fileURLToPath(import.meta.url));
const buildDirs = [path.resolve(here, '../../build'), path.resolve(here, '../../../build')];

export function wasmPath(debug = false): string {
  const file = debug ? 'vpngw.debug.wasm' : 'vpngw.wasm';
  const found = buildDirs.find((d) => existsSync(path.join(d, file)));
  return path.join(found ?? buildDirs[0]!, file);
}

const modules = new Map<string, WebAssembly.Module>();

export function compileModule(file = wasmPath(process.env.VPNGW_WASM_DEBUG === '1')): WebAssembly.Module {
  let m = modules.get(file);
  if (m) return m;
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new VpnError('ERR_WASM_LOAD', `data-plane module ${file} is missing: run "npm ci" or "npm run build:wasm"`, { cause: e });
  }
  try {
    m = new WebAssembly.Module(bytes);
  } catch (e) {
    throw new VpnError('ERR_WASM_LOAD', `data-plane module ${file} does not compile: ${(e as Error).message}`, { cause: e });
  }
  modules.set(file, m);
  return m;
}

/** A shared memory of exactly `pages` pages (initial == maximum, so it never moves). */
export function createMemory(pages: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

/**
 * Instantiate the module over `memory` and check its ABI. Does not call
 * init(): the caller writes the layout first.
 */
export function instantiate(memory: WebAssembly.Memory, module: WebAssembly.Module = compileModule()): DataPlaneExports {
  let inst: WebAssembly.Instance;
  try {
    inst = new WebAssembly.Instance(module, { env: { memory } });
  } catch (e) {
    throw new VpnError('ERR_WASM_LOAD', `cannot instantiate the data plane: ${(e as Error).message}`, { cause: e });
  }
  const x = inst.exports as unknown as DataPlaneExports;
  checkAbi(x);
  x._initialize();
  return x;
}

export function checkAbi(x: Pick<DataPlaneExports, 'abiVersion' | 'heapBase'>): void {
  const v = typeof x.abiVersion === 'function' ? x.abiVersion() : undefined;
  if (v !== abi.ABI_VERSION) {
    throw new VpnError(
      'ERR_WASM_ABI',
      `data-plane module ABI version ${v ?? '(none)'} does not match this build's ABI version ${abi.ABI_VERSION}: rebuild with "npm run build:wasm"`,
    );
  }
  const hb = x.heapBase();
  if (hb > abi.DP_BASE) {
    throw new VpnError('ERR_WASM_ABI', `module static data ends at ${hb}, above DP_BASE ${abi.DP_BASE}`);
  }
}
