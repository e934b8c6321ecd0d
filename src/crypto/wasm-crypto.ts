/**
 * Control-plane crypto on the WASM kernels: the primitives OpenSSL 3 no
 * longer offers by default (MD4, DES for MS-CHAP, RFC 2759), RC4 and the
 * MPPE key schedule (RFC 3078 7.3, RFC 3079 3), and SHA-1 for key
 * derivation.
 *
 * Each thread that imports this module gets its own WASM instance over its
 * own small shared memory, created on first use (module state is per
 * isolate). Calls are synchronous and never re-enter, so one scratch area
 * per instance is enough. Inputs are copied into that area in chunks, so
 * sizes are unbounded; results are fresh Uint8Arrays the caller owns.
 *
 * Arguments of the wrong size are programming errors and throw RangeError
 * (as node:crypto does), never a VpnError.
 */
import {
  MD4_CTX_SIZE, MD4_DIGEST_SIZE, MPPE_SESSION_KEY, MPPE_STATE_SIZE, RC4_STATE_SIZE, SHA1_CTX_SIZE,
  SHA1_DIGEST_SIZE, DES_BLOCK_SIZE, DES_KEY7_SIZE, DES_KEY8_SIZE,
} from '../../assembly/crypto/sizes.js';
import { createKernelInstance, type KernelInstance } from './kernels.js';

// Scratch layout above DP_BASE (our choices). Regions are 64-octet aligned.
const OFF_SHA1 = 0;
const OFF_MD4 = OFF_SHA1 + 256;
const OFF_RC4 = OFF_MD4 + 256;
const OFF_MPPE = OFF_RC4 + 512;
const OFF_KEY = OFF_MPPE + 512; // keys copied in: up to 256 octets (RC4)
const OFF_KEY2 = OFF_KEY + 256;
const OFF_OUT = OFF_KEY2 + 256; // digests and small results
const OFF_DATA = 4096;
/** Input is streamed through the kernels in chunks of this size. */
const CHUNK = 64 * 1024;

if (SHA1_CTX_SIZE > OFF_MD4 - OFF_SHA1 || MD4_CTX_SIZE > OFF_RC4 - OFF_MD4 || RC4_STATE_SIZE > OFF_MPPE - OFF_RC4 || MPPE_STATE_SIZE > OFF_KEY - OFF_MPPE) {
  throw new Error('wasm-crypto scratch regions are smaller than the kernel states (assembly/crypto/sizes.ts grew)');
}

/** MPPE key strengths (RFC 3079 section 3) and their key lengths in octets. */
export type MppeBits = 40 | 56 | 128;
const MPPE_KEY_OCTETS: Record<MppeBits, number> = { 40: 8, 56: 8, 128: 16 };

let instance: KernelInstance | undefined;

function wasm(): KernelInstance {
  return (instance ??= createKernelInstance(OFF_DATA + CHUNK));
}

function need(name: string, v: Uint8Array, ...lengths: number[]): void {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (!lengths.includes(v.length)) {
    throw new RangeError(`${name} must be ${lengths.join(' or ')} octets, got ${v.length}`);
  }
}

function copyOut(w: KernelInstance, off: number, len: number): Uint8Array {
  return w.u8.slice(w.base + off, w.base + off + len);
}

/** MD4 (RFC 1320): 16 octets. NtPasswordHash = md4(UTF-16LE password), RFC 2759 8.3. */
export function md4(data: Uint8Array): Uint8Array {
  const w = wasm();
  const k = w.kernels;
  const ctx = w.base + OFF_MD4;
  const buf = w.base + OFF_DATA;
  k.md4Init(ctx);
  for (let o = 0; o < data.length; o += CHUNK) {
    const part = data.subarray(o, o + CHUNK);
    w.u8.set(part, buf);
    k.md4Update(ctx, buf, part.length);
  }
  k.md4Final(ctx, w.base + OFF_OUT);
  return copyOut(w, OFF_OUT, MD4_DIGEST_SIZE);
}

/** SHA-1 (FIPS 180-4) of the concatenation of `parts`: 20 octets. */
export function sha1(...parts: Uint8Array[]): Uint8Array {
  const w = wasm();
  const k = w.kernels;
  const ctx = w.base + OFF_SHA1;
  const buf = w.base + OFF_DATA;
  k.sha1Init(ctx);
  for (const p of parts) {
    for (let o = 0; o < p.length; o += CHUNK) {
      const part = p.subarray(o, o + CHUNK);
      w.u8.set(part, buf);
      k.sha1Update(ctx, buf, part.length);
    }
  }
  k.sha1Final(ctx, w.base + OFF_OUT);
  return copyOut(w, OFF_OUT, SHA1_DIGEST_SIZE);
}

/**
 * RFC 2759 8.5 DesEncrypt(Clear, Key): DES-ECB of one 8-octet block under a
 * 7-octet key (spread over 8 octets with parity bits, RFC 2759 8.6 / 9.3).
 */
export function desEncryptBlock(key7: Uint8Array, block8: Uint8Array): Uint8Array {
  need('key7', key7, DES_KEY7_SIZE);
  need('block8', block8, DES_BLOCK_SIZE);
  const w = wasm();
  w.u8.set(key7, w.base + OFF_KEY);
  w.u8.set(block8, w.base + OFF_DATA);
  w.kernels.desEncrypt7(w.base + OFF_KEY, w.base + OFF_DATA, w.base + OFF_OUT);
  return copyOut(w, OFF_OUT, DES_BLOCK_SIZE);
}

/** DES-ECB of one block under an 8-octet key (FIPS 46-3; parity bits ignored). */
export function desEncryptBlock8(key8: Uint8Array, block8: Uint8Array): Uint8Array {
  need('key8', key8, DES_KEY8_SIZE);
  need('block8', block8, DES_BLOCK_SIZE);
  const w = wasm();
  w.u8.set(key8, w.base + OFF_KEY);
  w.u8.set(block8, w.base + OFF_DATA);
  w.kernels.desEncrypt(w.base + OFF_KEY, w.base + OFF_DATA, w.base + OFF_OUT);
  return copyOut(w, OFF_OUT, DES_BLOCK_SIZE);
}

/** The 8-octet odd-parity form of a 7-octet DES key (RFC 2759 9.3). */
export function desExpandKey(key7: Uint8Array): Uint8Array {
  need('key7', key7, DES_KEY7_SIZE);
  const w = wasm();
  w.u8.set(key7, w.base + OFF_KEY);
  w.kernels.desExpandKey(w.base + OFF_KEY, w.base + OFF_OUT);
  return copyOut(w, OFF_OUT, DES_KEY8_SIZE);
}

/** RC4 of `data` under `key` (1..256 octets), from the start of the keystream. */
export function rc4(key: Uint8Array, data: Uint8Array): Uint8Array {
  if (!(key instanceof Uint8Array)) throw new TypeError('key must be a Uint8Array');
  if (key.length < 1 || key.length > 256) throw new RangeError(`RC4 key must be 1..256 octets, got ${key.length}`);
  const w = wasm();
  const k = w.kernels;
  const state = w.base + OFF_RC4;
  const buf = w.base + OFF_DATA;
  w.u8.set(key, w.base + OFF_KEY);
  k.rc4Init(state, w.base + OFF_KEY, key.length);
  const out = new Uint8Array(data.length);
  for (let o = 0; o < data.length; o += CHUNK) {
    const part = data.subarray(o, o + CHUNK);
    w.u8.set(part, buf);
    k.rc4Crypt(state, buf, buf, part.length);
    out.set(w.u8.subarray(buf, buf + part.length), o);
  }
  return out;
}

function mppeKeyLen(bits: number): number {
  const len = MPPE_KEY_OCTETS[bits as MppeBits];
  if (len === undefined) throw new RangeError(`MPPE key strength must be 40, 56 or 128 bits, got ${bits}`);
  return len;
}

/**
 * RFC 3078 7.3 key change: the session key that follows `currentKey` (the
 * reduced key in use), given the direction's start key. Keys are 8 octets
 * for 40 and 56 bits, 16 for 128 bits; a 16-octet master key is also
 * accepted as start key for 40/56 bits (its first 8 octets are used, RFC
 * 3079 3.1, 3.2).
 */
export function mppeChangeKey(startKey: Uint8Array, currentKey: Uint8Array, bits: MppeBits): Uint8Array {
  const len = mppeKeyLen(bits);
  need('startKey', startKey, len, 16);
  need('currentKey', currentKey, len);
  const w = wasm();
  const ks = w.base + OFF_MPPE;
  w.u8.set(startKey.subarray(0, len), w.base + OFF_KEY);
  w.u8.set(currentKey, w.base + OFF_KEY2);
  w.kernels.mppeSetKeys(ks, bits, w.base + OFF_KEY, w.base + OFF_KEY2);
  w.kernels.mppeRekey(ks, w.base + OFF_RC4);
  return copyOut(w, OFF_MPPE + MPPE_SESSION_KEY, len);
}

/**
 * RFC 3079 3.1-3.3: the initial session key of a direction, from its start
 * key (the first `len` octets of MasterSendKey / MasterReceiveKey; a
 * 16-octet master key is accepted for 40/56 bits).
 */
export function mppeInitialKey(startKey: Uint8Array, bits: MppeBits): Uint8Array {
  const len = mppeKeyLen(bits);
  need('startKey', startKey, len, 16);
  const w = wasm();
  const ks = w.base + OFF_MPPE;
  w.u8.set(startKey.subarray(0, len), w.base + OFF_KEY);
  w.kernels.mppeStart(ks, bits, w.base + OFF_KEY, w.base + OFF_RC4);
  return copyOut(w, OFF_MPPE + MPPE_SESSION_KEY, len);
}
