import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../util/decode.js';
import { BOUNDARY_SIZES, loadVectors, prng } from '../../test/crypto/vectors.js';
import { desEncryptBlock, desEncryptBlock8, desExpandKey, md4, mppeChangeKey, mppeInitialKey, rc4, sha1, type MppeBits } from './wasm-crypto.js';

interface Md4Vector { id: string; message: string; digest: string }
interface Rc4Vector { id: string; key: string; keystream_at: { offset: number; keystream: string }[] }
interface HmacVector { id: string; algorithm: string; key: string; data: string; mac: string }
interface MschapVector {
  id: string;
  username?: string;
  username_for_challenge_hash?: string;
  password_utf16le?: string;
  authenticator_challenge?: string;
  peer_challenge?: string;
  challenge?: string;
  password_hash?: string;
  password_hash_hash?: string;
  nt_response?: string;
  authenticator_response?: string;
  raw_key_1?: string;
  parity_key_1?: string;
  raw_key_2?: string;
  parity_key_2?: string;
  key?: string;
  plaintext?: string;
  ciphertext?: string;
  intermediate?: {
    z_password_hash: string;
    des_keys_7: string[];
    des_keys_8_odd_parity: string[];
    des_outputs: string[];
    auth_response_digest1: string;
    magic1: string;
    magic2: string;
  };
}
interface MppeChange { change: number; previous_session_key: string; interim_key: string; rc4_of_interim: string; new_session_key: string }
interface MppeVector {
  id: string;
  key_bits?: MppeBits;
  send_start_key?: string;
  send_session_key?: string;
  sample_plaintext?: string;
  sample_ciphertext?: string;
  start_key?: string;
  initial_session_key?: string;
  changes?: MppeChange[];
  strengths?: { key_bits: MppeBits; client_send_start_key: string; client_recv_start_key: string; client_send_initial_session_key: string; client_recv_initial_session_key: string }[];
}

const md4Vectors = loadVectors<Md4Vector>('md4.json');
const rc4Vectors = loadVectors<Rc4Vector>('rc4.json');
const hmacVectors = loadVectors<HmacVector>('hmac.json').filter((v) => v.algorithm === 'hmac-sha1');
const mschap = loadVectors<MschapVector>('mschapv2.json');
const mppe = loadVectors<MppeVector>('mppe.json');

/** HMAC (RFC 2104) over the WASM SHA-1: proves SHA-1 through the RFC 2202 digests. */
function hmacSha1(key: Uint8Array, data: Uint8Array): Uint8Array {
  const k = new Uint8Array(64);
  k.set(key.length > 64 ? sha1(key) : key);
  const ipad = k.map((b) => b ^ 0x36);
  const opad = k.map((b) => b ^ 0x5c);
  return sha1(opad, sha1(ipad, data));
}

describe('md4 (RFC 1320)', () => {
  it.each(md4Vectors.map((v) => [v.id, v] as const))('%s', (_id, v) => {
    expect(hex(md4(fromHex(v.message)))).toBe(v.digest);
  });

  it('computes NtPasswordHash and PasswordHashHash of every MS-CHAPv2 vector (RFC 2759 8.3, 8.7)', () => {
    const cases = mschap.filter((v) => v.password_utf16le !== undefined && v.password_hash);
    expect(cases.length).toBeGreaterThanOrEqual(5);
    for (const v of cases) {
      const h = md4(fromHex(v.password_utf16le!));
      expect(hex(h), v.id).toBe(v.password_hash);
      if (v.password_hash_hash) expect(hex(md4(h)), v.id).toBe(v.password_hash_hash);
    }
  });
});

describe('sha1 (FIPS 180-4)', () => {
  it.each(hmacVectors.map((v) => [v.id, v] as const))('HMAC-SHA1 on it reproduces %s', (_id, v) => {
    expect(hex(hmacSha1(fromHex(v.key), fromHex(v.data)))).toBe(v.mac);
  });

  it('equals node:crypto on sizes straddling the block boundary, in one part and split in three', () => {
    const rnd = prng(0x5a1);
    for (const n of [...BOUNDARY_SIZES, 65537, 140_000]) {
      const m = rnd(n);
      const want = createHash('sha1').update(m).digest('hex');
      expect(hex(sha1(m)), `len ${n}`).toBe(want);
      const a = Math.floor(n / 3);
      const b = Math.floor((2 * n) / 3);
      expect(hex(sha1(m.subarray(0, a), m.subarray(a, b), m.subarray(b))), `len ${n} split`).toBe(want);
    }
  });

  it('of nothing is the FIPS empty-message digest', () => {
    expect(hex(sha1())).toBe('da39a3ee5e6b4b0d3255bfef95601890afd80709');
  });

  it('computes ChallengeHash and the authenticator response digests of the MS-CHAPv2 vectors (RFC 2759 8.2, 8.7)', () => {
    for (const v of mschap.filter((x) => x.intermediate)) {
      const name = new TextEncoder().encode(v.username_for_challenge_hash!);
      const ch = sha1(fromHex(v.peer_challenge!), fromHex(v.authenticator_challenge!), name).subarray(0, 8);
      expect(hex(ch), v.id).toBe(v.challenge);
      const im = v.intermediate!;
      const d1 = sha1(fromHex(v.password_hash_hash!), fromHex(v.nt_response!), fromHex(im.magic1));
      expect(hex(d1), v.id).toBe(im.auth_response_digest1);
      expect(hex(sha1(d1, ch, fromHex(im.magic2))), v.id).toBe(v.authenticator_response);
    }
  });
});

describe('DES (FIPS 46-3) as MS-CHAP uses it (RFC 2759 8.5, 8.6)', () => {
  it('expands 7-octet keys to the odd-parity forms of RFC 2759 9.3', () => {
    const v = mschap.find((x) => x.id === 'rfc2759-9.3')!;
    expect(hex(desExpandKey(fromHex(v.raw_key_1!)))).toBe(v.parity_key_1);
    expect(hex(desExpandKey(fromHex(v.raw_key_2!)))).toBe(v.parity_key_2);
  });

  it('reproduces the FIPS 81 DES-ECB example with the 8-octet key', () => {
    const v = mschap.find((x) => x.id === 'fips81-des-ecb')!;
    const pt = fromHex(v.plaintext!);
    const out: string[] = [];
    for (let o = 0; o < pt.length; o += 8) out.push(hex(desEncryptBlock8(fromHex(v.key!), pt.subarray(o, o + 8))));
    expect(out.join('')).toBe(v.ciphertext);
  });

  it('computes every intermediate and the NT-Response of the MS-CHAPv2 vectors (ChallengeResponse, RFC 2759 8.5)', () => {
    const cases = mschap.filter((x) => x.intermediate);
    expect(cases.length).toBe(5);
    for (const v of cases) {
      const im = v.intermediate!;
      const z = fromHex(im.z_password_hash);
      let resp = '';
      for (let i = 0; i < 3; i++) {
        const key7 = z.subarray(7 * i, 7 * i + 7);
        expect(hex(key7), v.id).toBe(im.des_keys_7[i]);
        expect(hex(desExpandKey(key7)), v.id).toBe(im.des_keys_8_odd_parity[i]);
        const c = desEncryptBlock(key7, fromHex(v.challenge!));
        expect(hex(c), v.id).toBe(im.des_outputs[i]);
        // The parity form under the 8-octet key gives the same block.
        expect(hex(desEncryptBlock8(fromHex(im.des_keys_8_odd_parity[i]!), fromHex(v.challenge!))), v.id).toBe(im.des_outputs[i]);
        resp += hex(c);
      }
      expect(resp, v.id).toBe(v.nt_response);
    }
  });

  it('ignores parity bits of an 8-octet key', () => {
    const k = fromHex('4575ef51d5984a70');
    const cleared = k.map((b) => b & 0xfe);
    const block = fromHex('d02e4386bce91226');
    expect(hex(desEncryptBlock8(cleared, block))).toBe(hex(desEncryptBlock8(k, block)));
  });

  it('rejects keys and blocks of the wrong size', () => {
    expect(() => desEncryptBlock(new Uint8Array(8), new Uint8Array(8))).toThrow(RangeError);
    expect(() => desEncryptBlock(new Uint8Array(7), new Uint8Array(7))).toThrow(RangeError);
    expect(() => desEncryptBlock8(new Uint8Array(7), new Uint8Array(8))).toThrow(RangeError);
    expect(() => desExpandKey(new Uint8Array(6))).toThrow(RangeError);
  });
});

describe('rc4', () => {
  it.each(rc4Vectors.map((v) => [v.id, v] as const))('RFC 6229 %s: keystream at every published offset', (_id, v) => {
    const last = Math.max(...v.keystream_at.map((k) => k.offset)) + 16;
    const ks = rc4(fromHex(v.key), new Uint8Array(last));
    expect(v.keystream_at.length).toBe(18);
    for (const { offset, keystream } of v.keystream_at) {
      expect(hex(ks.subarray(offset, offset + 16)), `offset ${offset}`).toBe(keystream);
    }
  });

  it('encrypts the RFC 3079 sample message under each session key', () => {
    for (const v of mppe.filter((x) => x.sample_ciphertext)) {
      expect(hex(rc4(fromHex(v.send_session_key!), fromHex(v.sample_plaintext!))), v.id).toBe(v.sample_ciphertext);
    }
  });

  it('is its own inverse and continues the keystream across chunks of a large input', () => {
    const data = prng(3)(150_001);
    const key = prng(4)(16);
    const c = rc4(key, data);
    expect(hex(rc4(key, c))).toBe(hex(data));
    // The keystream at 140000.. equals the keystream of a long zero run there.
    const ks = rc4(key, new Uint8Array(150_001));
    for (const i of [0, 65535, 65536, 65537, 131072, 150_000]) expect(c[i]! ^ data[i]!, `octet ${i}`).toBe(ks[i]);
  });

  it('rejects an empty or oversized key', () => {
    expect(() => rc4(new Uint8Array(0), new Uint8Array(4))).toThrow(RangeError);
    expect(() => rc4(new Uint8Array(257), new Uint8Array(4))).toThrow(RangeError);
    expect(rc4(new Uint8Array(256), new Uint8Array(0))).toHaveLength(0);
  });
});

describe('MPPE keys (RFC 3079 section 3, RFC 3078 section 7.3)', () => {
  it('derives the published initial session keys of RFC 3079 3.5.1-3.5.3', () => {
    const cases = mppe.filter((v) => v.id.startsWith('rfc3079-'));
    expect(cases).toHaveLength(3);
    for (const v of cases) {
      expect(hex(mppeInitialKey(fromHex(v.send_start_key!), v.key_bits!)), v.id).toBe(v.send_session_key);
    }
  });

  it('derives both directions at every strength', () => {
    const v = mppe.find((x) => x.strengths)!;
    for (const s of v.strengths!) {
      expect(hex(mppeInitialKey(fromHex(s.client_send_start_key), s.key_bits)), `${s.key_bits} send`).toBe(s.client_send_initial_session_key);
      expect(hex(mppeInitialKey(fromHex(s.client_recv_start_key), s.key_bits)), `${s.key_bits} recv`).toBe(s.client_recv_initial_session_key);
    }
  });

  it.each(mppe.filter((v) => v.changes).map((v) => [v.id, v] as const))('follows the key-change chain %s', (_id, v) => {
    let key = fromHex(v.initial_session_key!);
    for (const c of v.changes!) {
      expect(hex(key)).toBe(c.previous_session_key);
      key = mppeChangeKey(fromHex(v.start_key!), key, v.key_bits!);
      expect(hex(key), `change ${c.change}`).toBe(c.new_session_key);
    }
  });

  it('accepts the 16-octet master key as the start key for 40/56 bits (first 8 octets count)', () => {
    const v = mppe.find((x) => x.id === 'derived-key-change-40')!;
    const master = fromHex('8b7cdc149b993a1ba118cb153f56dccb');
    expect(hex(mppeChangeKey(master, fromHex(v.initial_session_key!), 40))).toBe(v.changes![0]!.new_session_key);
    expect(hex(mppeInitialKey(master, 40))).toBe(v.initial_session_key);
  });

  it('rejects unknown strengths and keys of the wrong length', () => {
    expect(() => mppeChangeKey(new Uint8Array(8), new Uint8Array(8), 64 as MppeBits)).toThrow(RangeError);
    expect(() => mppeChangeKey(new Uint8Array(8), new Uint8Array(16), 40)).toThrow(RangeError);
    expect(() => mppeChangeKey(new Uint8Array(8), new Uint8Array(16), 128)).toThrow(RangeError);
    expect(() => mppeInitialKey(new Uint8Array(12), 56)).toThrow(RangeError);
  });
});
