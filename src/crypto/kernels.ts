/**
 * Typed access to the crypto kernels of the WASM module
 * (assembly/crypto/exports.ts). The kernels take byte offsets into linear
 * memory and keep their state in caller memory laid out as
 * assembly/crypto/sizes.ts says.
 *
 * {@link createKernelInstance} instantiates the data-plane module over a
 * fresh private shared memory without writing a data-plane layout (init() is
 * never called): only the crypto exports are used, with working memory from
 * DP_BASE up.
 */
import * as abi from '../../assembly/abi.js';
import { VpnError } from '../util/errors.js';
import { compileModule, createMemory, instantiate, type DataPlaneExports } from '../dataplane/wasm.js';

export interface CryptoKernels {
  /** Returns 0 for an empty key (state untouched), 1 otherwise. */
  rc4Init(state: number, key: number, keyLen: number): number;
  rc4Crypt(state: number, src: number, dst: number, len: number): void;
  rc4CryptBatch(state: number, base: number, stride: number, len: number, count: number): void;
  rc4RekeyBatch(state: number, keys: number, keyLen: number, base: number, stride: number, len: number, count: number): void;
  sha1Init(ctx: number): void;
  sha1Update(ctx: number, p: number, len: number): void;
  sha1Final(ctx: number, out: number): void;
  sha1(ctx: number, p: number, len: number, out: number): void;
  sha1Batch(ctx: number, base: number, stride: number, len: number, count: number, out: number): void;
  md4Init(ctx: number): void;
  md4Update(ctx: number, p: number, len: number): void;
  md4Final(ctx: number, out: number): void;
  md4(ctx: number, p: number, len: number, out: number): void;
  desEncrypt(key8: number, src: number, dst: number): void;
  desEncrypt7(key7: number, src: number, dst: number): void;
  desExpandKey(key7: number, out: number): void;
  /** 0 = ok, -1 = strength not 40/56/128. */
  mppeStart(ks: number, bits: number, startKey: number, rc4: number): number;
  mppeSetKeys(ks: number, bits: number, startKey: number, sessionKey: number): number;
  mppeRekey(ks: number, rc4: number): void;
}

export const CRYPTO_KERNEL_NAMES = [
  'rc4Init', 'rc4Crypt', 'rc4CryptBatch', 'rc4RekeyBatch',
  'sha1Init', 'sha1Update', 'sha1Final', 'sha1', 'sha1Batch',
  'md4Init', 'md4Update', 'md4Final', 'md4',
  'desEncrypt', 'desEncrypt7', 'desExpandKey',
  'mppeStart', 'mppeSetKeys', 'mppeRekey',
] as const satisfies readonly (keyof CryptoKernels)[];

export interface KernelInstance {
  readonly kernels: CryptoKernels;
  readonly memory: WebAssembly.Memory;
  /** View over the whole memory; the memory never grows, so it stays valid. */
  readonly u8: Uint8Array;
  /** First byte callers may use as working memory (DP_BASE). */
  readonly base: number;
  /** Bytes available from `base`. */
  readonly size: number;
}

/** The module's declared minimum memory (asconfig.json initialMemory). */
const MODULE_MIN_PAGES = 32;

/**
 * Instantiate the module over a new private memory with at least
 * `workBytes` of working memory above DP_BASE.
 */
export function createKernelInstance(workBytes = 1 << 20, module: WebAssembly.Module = compileModule()): KernelInstance {
  const pages = Math.max(MODULE_MIN_PAGES, Math.ceil((abi.DP_BASE + workBytes) / abi.WASM_PAGE));
  const memory = createMemory(pages);
  const x: DataPlaneExports = instantiate(memory, module);
  for (const name of CRYPTO_KERNEL_NAMES) {
    if (typeof x[name] !== 'function') throw new VpnError('ERR_WASM_ABI', `the WASM module lacks the crypto export ${name}: rebuild with "npm run build:wasm"`);
  }
  const u8 = new Uint8Array(memory.buffer as SharedArrayBuffer);
  return { kernels: x as unknown as CryptoKernels, memory, u8, base: abi.DP_BASE, size: u8.length - abi.DP_BASE };
}
