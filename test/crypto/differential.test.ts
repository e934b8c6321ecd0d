/**
 * Differential tests of the WASM kernels against OpenSSL, on seeded random
 * inputs whose sizes straddle block and word boundaries.
 *
 * Reference: node:crypto run as `node --openssl-legacy-provider` in one child
 * process per test (Node 20's OpenSSL 3 offers RC4, MD4 and DES only from
 * the legacy provider, which cannot be loaded after start-up). That is
 * OpenSSL's own implementation, the same code `openssl enc -provider legacy`
 * uses, batched into one process instead of one CLI spawn per case. SHA-1
 * needs no legacy provider and is compared in-process.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hex } from '../../src/util/decode.js';
import { desEncryptBlock, desEncryptBlock8, md4, rc4, sha1 } from '../../src/crypto/wasm-crypto.js';
import { BOUNDARY_SIZES, prng } from './vectors.js';

type Case = { alg: 'md4'; data: string } | { alg: 'rc4'; key: string; data: string } | { alg: 'des'; key: string; block: string };

const REFERENCE = `
const c = require('node:crypto');
const cases = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const out = cases.map((k) => {
  const d = Buffer.from(k.data ?? k.block, 'hex');
  if (k.alg === 'md4') return c.createHash('md4').update(d).digest('hex');
  const x = c.createCipheriv(k.alg === 'rc4' ? 'rc4' : 'des-ecb', Buffer.from(k.key, 'hex'), null);
  x.setAutoPadding(false);
  return Buffer.concat([x.update(d), x.final()]).toString('hex');
});
process.stdout.write(JSON.stringify(out));
`;

/** Results of the OpenSSL reference for `cases`, in order. */
function reference(cases: Case[]): string[] {
  const r = spawnSync(process.execPath, ['--openssl-legacy-provider', '-e', REFERENCE], {
    input: JSON.stringify(cases),
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`reference process failed (${r.status}): ${r.stderr}`);
  const out = JSON.parse(r.stdout) as string[];
  expect(out).toHaveLength(cases.length);
  return out;
}

/** RFC 2759 8.6 parity expansion, written independently of the kernel (bit string manipulation). */
function parityKey(key7: Uint8Array): Uint8Array {
  const bits = [...key7].map((b) => b.toString(2).padStart(8, '0')).join('');
  const out = new Uint8Array(8);
  for (let g = 0; g < 8; g++) {
    const seven = bits.slice(7 * g, 7 * g + 7);
    const ones = [...seven].filter((b) => b === '1').length;
    out[g] = parseInt(seven + (ones % 2 === 0 ? '1' : '0'), 2);
  }
  return out;
}

describe('differential against OpenSSL (legacy provider) and node:crypto', () => {
  it('MD4 on random messages of boundary and random sizes', () => {
    const rnd = prng(0x3d4);
    const sizes = [...BOUNDARY_SIZES, 65535, 65536, 65537, 140_001];
    for (let i = 0; i < 60; i++) sizes.push(rnd(2)[0]! + (rnd(1)[0]! & 1) * 256);
    const msgs = sizes.map((n) => rnd(n));
    const want = reference(msgs.map((m) => ({ alg: 'md4', data: hex(m) })));
    msgs.forEach((m, i) => expect(hex(md4(m)), `len ${m.length}`).toBe(want[i]));
  });

  it('RC4 for key lengths 1..256 and data sizes straddling the word loop', () => {
    const rnd = prng(0x4c4);
    const cases: { key: Uint8Array; data: Uint8Array }[] = [];
    for (const kl of [1, 2, 5, 7, 8, 13, 16, 17, 32, 64, 100, 255, 256]) {
      for (const n of BOUNDARY_SIZES) cases.push({ key: rnd(kl), data: rnd(n) });
    }
    for (const n of [65536, 65537, 100_003]) cases.push({ key: rnd(16), data: rnd(n) });
    const want = reference(cases.map((c) => ({ alg: 'rc4', key: hex(c.key), data: hex(c.data) })));
    cases.forEach((c, i) => expect(hex(rc4(c.key, c.data)), `key ${c.key.length} len ${c.data.length}`).toBe(want[i]));
  });

  it('DES on random 8-octet keys and blocks, and on 7-octet keys with parity expansion', () => {
    const rnd = prng(0xde5);
    const keys8 = Array.from({ length: 1500 }, () => rnd(8));
    const keys7 = Array.from({ length: 500 }, () => rnd(7));
    const blocks = Array.from({ length: 2000 }, () => rnd(8));
    const cases: Case[] = [
      ...keys8.map((k, i) => ({ alg: 'des' as const, key: hex(k), block: hex(blocks[i]!) })),
      ...keys7.map((k, i) => ({ alg: 'des' as const, key: hex(parityKey(k)), block: hex(blocks[1500 + i]!) })),
    ];
    const want = reference(cases);
    keys8.forEach((k, i) => expect(hex(desEncryptBlock8(k, blocks[i]!)), `key8 ${hex(k)}`).toBe(want[i]));
    keys7.forEach((k, i) => expect(hex(desEncryptBlock(k, blocks[1500 + i]!)), `key7 ${hex(k)}`).toBe(want[1500 + i]));
  });

  it('SHA-1 on random messages of every size 0..300 and large ones, against node:crypto', () => {
    const rnd = prng(0x5a1);
    const sizes = [...Array.from({ length: 301 }, (_, i) => i), 4097, 65537, 200_000];
    for (const n of sizes) {
      const m = rnd(n);
      expect(hex(sha1(m)), `len ${n}`).toBe(createHash('sha1').update(m).digest('hex'));
    }
  });
});
