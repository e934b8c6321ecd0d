/**
 * The WASM crypto kernels at their pointer-and-length interface: streaming
 * splits, batch entry points, in-place operation, the MPPE key state and RC4
 * re-keying, and that every kernel writes only where it was told to.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  MD4_CTX_SIZE, MPPE_BITS, MPPE_KEY_LEN, MPPE_SESSION_KEY, MPPE_STATE_SIZE, RC4_I, RC4_J, RC4_STATE_SIZE, SHA1_CTX_SIZE,
} from '../../assembly/crypto/sizes.js';
import { createKernelInstance, type CryptoKernels, type KernelInstance } from '../../src/crypto/kernels.js';
import { md4 as md4Ref, rc4 as rc4Ref } from '../../src/crypto/wasm-crypto.js';
import { fromHex, hex } from '../../src/util/decode.js';
import { loadVectors, prng } from './vectors.js';

const CANARY = 0xa5;

let w: KernelInstance;
let k: CryptoKernels;

/** Regions handed out from the working memory, each followed by a canary gap. */
class Arena {
  private next: number;
  constructor(private readonly inst: KernelInstance) {
    this.next = inst.base + 64;
    inst.u8.fill(CANARY, inst.base, inst.base + (1 << 20));
  }
  take(size: number, fill?: Uint8Array): number {
    const p = this.next;
    this.next += Math.ceil((size + 64) / 64) * 64;
    w.u8.fill(0, p, p + size);
    if (fill) w.u8.set(fill, p);
    return p;
  }
  bytes(p: number, n: number): Uint8Array {
    return this.inst.u8.slice(p, p + n);
  }
  /** Octets that differ from the canary outside the given [start, end) ranges. */
  stray(allowed: [number, number][]): number[] {
    const bad: number[] = [];
    for (let i = this.inst.base; i < this.inst.base + (1 << 20); i++) {
      if (this.inst.u8[i] !== CANARY && !allowed.some(([s, e]) => i >= s && i < e)) bad.push(i);
    }
    return bad;
  }
}

beforeAll(() => {
  w = createKernelInstance();
  k = w.kernels;
});

describe('SHA-1 and MD4 streaming', () => {
  it('assembly/crypto/sha1-compress.ts is what its generator writes', () => {
    const gen = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../assembly/crypto/gen/sha1-compress.mjs');
    const r = spawnSync(process.execPath, [gen, '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('SHA-1: update split at every position of 200 octets equals the one-shot digest', () => {
    const a = new Arena(w);
    const msg = prng(1)(200);
    const m = a.take(200, msg);
    const ctx = a.take(SHA1_CTX_SIZE);
    const out = a.take(20);
    const want = createHash('sha1').update(msg).digest('hex');
    for (let p = 0; p <= 200; p++) {
      k.sha1Init(ctx);
      k.sha1Update(ctx, m, p);
      k.sha1Update(ctx, m + p, 200 - p);
      k.sha1Final(ctx, out);
      expect(hex(a.bytes(out, 20)), `split at ${p}`).toBe(want);
    }
  });

  it('SHA-1: many small updates (1..7 octets) equal one update', () => {
    const a = new Arena(w);
    const msg = prng(2)(1000);
    const m = a.take(1000, msg);
    const ctx = a.take(SHA1_CTX_SIZE);
    const out = a.take(20);
    k.sha1Init(ctx);
    for (let o = 0, step = 1; o < 1000; o += step, step = (step % 7) + 1) k.sha1Update(ctx, m + o, Math.min(step, 1000 - o));
    k.sha1Final(ctx, out);
    expect(hex(a.bytes(out, 20))).toBe(createHash('sha1').update(msg).digest('hex'));
  });

  it('MD4: update split at every position of 200 octets equals the one-shot digest', () => {
    const a = new Arena(w);
    const msg = prng(3)(200);
    const m = a.take(200, msg);
    const ctx = a.take(MD4_CTX_SIZE);
    const out = a.take(16);
    k.md4(ctx, m, 200, out);
    const want = hex(a.bytes(out, 16));
    expect(want).toBe(hex(md4Ref(msg)));
    for (let p = 0; p <= 200; p++) {
      k.md4Init(ctx);
      k.md4Update(ctx, m, p);
      k.md4Update(ctx, m + p, 200 - p);
      k.md4Final(ctx, out);
      expect(hex(a.bytes(out, 16)), `split at ${p}`).toBe(want);
    }
  });

  it('sha1Batch digests each message of a batch', () => {
    const a = new Arena(w);
    const stride = 1536;
    const msgs = Array.from({ length: 9 }, (_, i) => prng(10 + i)(1400));
    const base = a.take(stride * 9);
    msgs.forEach((m, i) => w.u8.set(m, base + i * stride));
    const ctx = a.take(SHA1_CTX_SIZE);
    const out = a.take(20 * 9);
    k.sha1Batch(ctx, base, stride, 1400, 9, out);
    msgs.forEach((m, i) => expect(hex(a.bytes(out + 20 * i, 20)), `message ${i}`).toBe(createHash('sha1').update(m).digest('hex')));
  });

  it('write nothing outside their context and output', () => {
    const a = new Arena(w);
    const m = a.take(300, prng(4)(300));
    const sctx = a.take(SHA1_CTX_SIZE);
    const sout = a.take(20);
    const mctx = a.take(MD4_CTX_SIZE);
    const mout = a.take(16);
    // take() zeroed the regions; mark them as canary again so any write shows.
    for (const [p, n] of [[sctx, SHA1_CTX_SIZE], [sout, 20], [mctx, MD4_CTX_SIZE], [mout, 16]] as const) w.u8.fill(CANARY, p, p + n);
    k.sha1(sctx, m, 300, sout);
    k.md4(mctx, m, 300, mout);
    expect(a.stray([[m, m + 300], [sctx, sctx + SHA1_CTX_SIZE], [sout, sout + 20], [mctx, mctx + MD4_CTX_SIZE], [mout, mout + 16]])).toEqual([]);
  });
});

describe('RC4 kernel', () => {
  it('keystream continues across calls split at every position, in place and out of place', () => {
    const a = new Arena(w);
    const key = prng(5)(16);
    const data = prng(6)(70);
    const want = hex(rc4Ref(key, data));
    const kp = a.take(16, key);
    const st = a.take(RC4_STATE_SIZE);
    const src = a.take(70);
    const dst = a.take(70);
    for (let p = 0; p <= 70; p++) {
      w.u8.set(data, src);
      expect(k.rc4Init(st, kp, 16)).toBe(1);
      k.rc4Crypt(st, src, dst, p);
      k.rc4Crypt(st, src + p, dst + p, 70 - p);
      expect(hex(a.bytes(dst, 70)), `out of place, split at ${p}`).toBe(want);
      k.rc4Init(st, kp, 16);
      k.rc4Crypt(st, src, src, p);
      k.rc4Crypt(st, src + p, src + p, 70 - p);
      expect(hex(a.bytes(src, 70)), `in place, split at ${p}`).toBe(want);
    }
  });

  it('keeps i and j in the state (RC4_I, RC4_J)', () => {
    const a = new Arena(w);
    const kp = a.take(5, fromHex('0102030405'));
    const st = a.take(RC4_STATE_SIZE);
    const buf = a.take(300);
    k.rc4Init(st, kp, 5);
    const dv = new DataView(w.memory.buffer as SharedArrayBuffer);
    expect([dv.getUint32(st + RC4_I, true), dv.getUint32(st + RC4_J, true)]).toEqual([0, 0]);
    k.rc4Crypt(st, buf, buf, 300);
    expect(dv.getUint32(st + RC4_I, true)).toBe(300 & 255);
    expect(dv.getUint32(st + RC4_J, true)).toBeLessThan(256);
  });

  it('refuses an empty key and leaves the state untouched', () => {
    const a = new Arena(w);
    const kp = a.take(1, new Uint8Array([7]));
    const st = a.take(RC4_STATE_SIZE);
    w.u8.fill(0x33, st, st + RC4_STATE_SIZE);
    expect(k.rc4Init(st, kp, 0)).toBe(0);
    expect(a.bytes(st, RC4_STATE_SIZE).every((b) => b === 0x33)).toBe(true);
  });

  it('rc4CryptBatch continues one keystream over the packets of a batch', () => {
    const a = new Arena(w);
    const key = prng(7)(16);
    const stride = 1536;
    const n = 5;
    const len = 513;
    const pk = Array.from({ length: n }, (_, i) => prng(20 + i)(len));
    const kp = a.take(16, key);
    const st = a.take(RC4_STATE_SIZE);
    const base = a.take(stride * n);
    pk.forEach((p, i) => w.u8.set(p, base + i * stride));
    k.rc4Init(st, kp, 16);
    k.rc4CryptBatch(st, base, stride, len, n);
    const all = rc4Ref(key, Uint8Array.from(pk.flatMap((p) => [...p])));
    pk.forEach((_, i) => expect(hex(a.bytes(base + i * stride, len)), `packet ${i}`).toBe(hex(all.subarray(i * len, (i + 1) * len))));
  });

  it('rc4RekeyBatch encrypts each packet under its own key', () => {
    const a = new Arena(w);
    const stride = 128;
    const n = 6;
    const len = 64;
    const keys = prng(8)(16 * n);
    const pk = Array.from({ length: n }, (_, i) => prng(30 + i)(len));
    const kp = a.take(16 * n, keys);
    const st = a.take(RC4_STATE_SIZE);
    const base = a.take(stride * n);
    w.u8.fill(CANARY, base, base + stride * n);
    pk.forEach((p, i) => w.u8.set(p, base + i * stride));
    k.rc4RekeyBatch(st, kp, 16, base, stride, len, n);
    pk.forEach((p, i) => expect(hex(a.bytes(base + i * stride, len)), `packet ${i}`).toBe(hex(rc4Ref(keys.subarray(16 * i, 16 * i + 16), p))));
    // Nothing between the packets was written.
    expect(a.stray([[kp, kp + 16 * n], [st, st + RC4_STATE_SIZE], ...pk.map((_, i): [number, number] => [base + i * stride, base + i * stride + len])])).toEqual([]);
  });

  it('writes nothing outside its state and destination', () => {
    const a = new Arena(w);
    const kp = a.take(16, prng(9)(16));
    const st = a.take(RC4_STATE_SIZE);
    const src = a.take(1401, prng(10)(1401));
    const dst = a.take(1401);
    w.u8.fill(CANARY, st, st + RC4_STATE_SIZE);
    w.u8.fill(CANARY, dst, dst + 1401);
    k.rc4Init(st, kp, 16);
    k.rc4Crypt(st, src, dst, 1401);
    expect(a.stray([[kp, kp + 16], [st, st + RC4_STATE_SIZE], [src, src + 1401], [dst, dst + 1401]])).toEqual([]);
  });
});

interface MppeChainVector { id: string; key_bits: number; start_key: string; initial_session_key: string; changes: { new_session_key: string }[] }

describe('MPPE key state', () => {
  const chains = loadVectors<MppeChainVector & { changes?: unknown }>('mppe.json').filter((v) => Array.isArray(v.changes));

  it.each(chains.map((v) => [v.id, v] as const))('mppeStart then mppeRekey follow %s, re-keying RC4 each time', (_id, v) => {
    const a = new Arena(w);
    const len = v.key_bits === 128 ? 16 : 8;
    const sk = a.take(len, fromHex(v.start_key));
    const ks = a.take(MPPE_STATE_SIZE);
    const st = a.take(RC4_STATE_SIZE);
    const buf = a.take(32);
    expect(k.mppeStart(ks, v.key_bits, sk, st)).toBe(0);
    const dv = new DataView(w.memory.buffer as SharedArrayBuffer);
    expect(dv.getUint32(ks + MPPE_KEY_LEN, true)).toBe(len);
    expect(dv.getUint32(ks + MPPE_BITS, true)).toBe(v.key_bits);
    const keys = [v.initial_session_key, ...v.changes.map((c) => c.new_session_key)];
    for (let i = 0; i < keys.length; i++) {
      if (i > 0) k.mppeRekey(ks, st);
      expect(hex(a.bytes(ks + MPPE_SESSION_KEY, len)), `key ${i}`).toBe(keys[i]);
      // The RC4 state is freshly keyed with the session key: its keystream starts over.
      w.u8.fill(0, buf, buf + 32);
      const snapshot = a.bytes(st, RC4_STATE_SIZE);
      k.rc4Crypt(st, buf, buf, 32);
      expect(hex(a.bytes(buf, 32)), `keystream ${i}`).toBe(hex(rc4Ref(fromHex(keys[i]!), new Uint8Array(32))));
      w.u8.set(snapshot, st);
    }
  });

  it('mppeStart and mppeSetKeys refuse strengths other than 40, 56, 128', () => {
    const a = new Arena(w);
    const sk = a.take(16);
    const ks = a.take(MPPE_STATE_SIZE);
    const st = a.take(RC4_STATE_SIZE);
    for (const bits of [0, 39, 64, 127, 256]) {
      expect(k.mppeStart(ks, bits, sk, st), `${bits}`).toBe(-1);
      expect(k.mppeSetKeys(ks, bits, sk, sk), `${bits}`).toBe(-1);
    }
  });

  it('mppeRekey writes only the key state and the RC4 state', () => {
    const a = new Arena(w);
    const sk = a.take(16, prng(11)(16));
    const ks = a.take(MPPE_STATE_SIZE);
    const st = a.take(RC4_STATE_SIZE);
    w.u8.fill(CANARY, ks, ks + MPPE_STATE_SIZE);
    w.u8.fill(CANARY, st, st + RC4_STATE_SIZE);
    expect(k.mppeStart(ks, 128, sk, st)).toBe(0);
    for (let i = 0; i < 5; i++) k.mppeRekey(ks, st);
    expect(a.stray([[sk, sk + 16], [ks, ks + MPPE_STATE_SIZE], [st, st + RC4_STATE_SIZE]])).toEqual([]);
  });
});
