// MD4, RFC 1320 section 3. MS-CHAP's NtPasswordHash is MD4 of the UTF-16LE
// password (RFC 2759 section 8.3); OpenSSL 3 no longer offers MD4 by
// default, so the control plane computes it here.
//
//   message | 0x80 | 0x00 ... | 64-bit little-endian bit length   (3.1, 3.2)
//
//   per 16-word block X (little-endian words, 3.4):
//     round 1  [abcd k s]  a = (a + F(b,c,d) + X[k]) <<< s                 F = XY v not(X)Z
//     round 2  [abcd k s]  a = (a + G(b,c,d) + X[k] + 5A827999) <<< s      G = XY v XZ v YZ
//     round 3  [abcd k s]  a = (a + H(b,c,d) + X[k] + 6ED9EBA1) <<< s      H = X xor Y xor Z
//
// State lives in caller memory (sizes.ts MD4_*).
import { MD4_H, MD4_BUFLEN, MD4_TOTAL, MD4_BUF } from './sizes';

const BLOCK: usize = 64;
// RFC 1320 3.4, rounds 2 and 3.
const R2: u32 = 0x5a827999;
const R3: u32 = 0x6ed9eba1;

// @ts-ignore: decorator
@inline function x(block: usize, k: usize): u32 {
  return load<u32>(block + (k << 2));
}

function compress(ctx: usize, block: usize): void {
  const a0 = load<u32>(ctx + MD4_H);
  const b0 = load<u32>(ctx + MD4_H + 4);
  const c0 = load<u32>(ctx + MD4_H + 8);
  const d0 = load<u32>(ctx + MD4_H + 12);
  let a = a0, b = b0, c = c0, d = d0;
  // Round 1: [ABCD k 3] [DABC k+1 7] [CDAB k+2 11] [BCDA k+3 19], k = 0, 4, 8, 12.
  for (let k: usize = 0; k < 16; k += 4) {
    a = rotl<u32>(a + (d ^ (b & (c ^ d))) + x(block, k), 3);
    d = rotl<u32>(d + (c ^ (a & (b ^ c))) + x(block, k + 1), 7);
    c = rotl<u32>(c + (b ^ (d & (a ^ b))) + x(block, k + 2), 11);
    b = rotl<u32>(b + (a ^ (c & (d ^ a))) + x(block, k + 3), 19);
  }
  // Round 2: [ABCD k 3] [DABC k+4 5] [CDAB k+8 9] [BCDA k+12 13], k = 0..3.
  for (let k: usize = 0; k < 4; k++) {
    a = rotl<u32>(a + ((b & c) | (d & (b | c))) + x(block, k) + R2, 3);
    d = rotl<u32>(d + ((a & b) | (c & (a | b))) + x(block, k + 4) + R2, 5);
    c = rotl<u32>(c + ((d & a) | (b & (d | a))) + x(block, k + 8) + R2, 9);
    b = rotl<u32>(b + ((c & d) | (a & (c | d))) + x(block, k + 12) + R2, 13);
  }
  // Round 3: [ABCD k 3] [DABC k+8 9] [CDAB k+4 11] [BCDA k+12 15], k = 0, 2, 1, 3.
  for (let n: usize = 0; n < 4; n++) {
    const k = ((n & 1) << 1) | (n >> 1);
    a = rotl<u32>(a + (b ^ c ^ d) + x(block, k) + R3, 3);
    d = rotl<u32>(d + (a ^ b ^ c) + x(block, k + 8) + R3, 9);
    c = rotl<u32>(c + (d ^ a ^ b) + x(block, k + 4) + R3, 11);
    b = rotl<u32>(b + (c ^ d ^ a) + x(block, k + 12) + R3, 15);
  }
  store<u32>(ctx + MD4_H, a0 + a);
  store<u32>(ctx + MD4_H + 4, b0 + b);
  store<u32>(ctx + MD4_H + 8, c0 + c);
  store<u32>(ctx + MD4_H + 12, d0 + d);
}

/** RFC 1320 3.3: initialise the MD buffer. */
export function md4Init(ctx: usize): void {
  store<u32>(ctx + MD4_H, 0x67452301);
  store<u32>(ctx + MD4_H + 4, 0xefcdab89);
  store<u32>(ctx + MD4_H + 8, 0x98badcfe);
  store<u32>(ctx + MD4_H + 12, 0x10325476);
  store<u32>(ctx + MD4_BUFLEN, 0);
  store<u64>(ctx + MD4_TOTAL, 0);
}

export function md4Update(ctx: usize, p: usize, len: usize): void {
  store<u64>(ctx + MD4_TOTAL, load<u64>(ctx + MD4_TOTAL) + <u64>len);
  const buf = ctx + MD4_BUF;
  let have = <usize>load<u32>(ctx + MD4_BUFLEN);
  if (have > 0) {
    const take = min<usize>(BLOCK - have, len);
    memory.copy(buf + have, p, take);
    have += take;
    p += take;
    len -= take;
    if (have < BLOCK) {
      store<u32>(ctx + MD4_BUFLEN, <u32>have);
      return;
    }
    compress(ctx, buf);
  }
  while (len >= BLOCK) {
    compress(ctx, p);
    p += BLOCK;
    len -= BLOCK;
  }
  if (len > 0) memory.copy(buf, p, len);
  store<u32>(ctx + MD4_BUFLEN, <u32>len);
}

/** RFC 1320 3.1-3.2 padding and length, then the digest (A, B, C, D little-endian, 3.5) to out. */
export function md4Final(ctx: usize, out: usize): void {
  const buf = ctx + MD4_BUF;
  let have = <usize>load<u32>(ctx + MD4_BUFLEN);
  const bits = load<u64>(ctx + MD4_TOTAL) << 3;
  store<u8>(buf + have, 0x80);
  have++;
  if (have > 56) {
    memory.fill(buf + have, 0, BLOCK - have);
    compress(ctx, buf);
    have = 0;
  }
  memory.fill(buf + have, 0, 56 - have);
  store<u64>(buf + 56, bits);
  compress(ctx, buf);
  memory.copy(out, ctx + MD4_H, 16);
  store<u32>(ctx + MD4_BUFLEN, 0);
}

/** One-shot MD4 of p[0..len) into out (16 octets), using ctx as working state. */
export function md4(ctx: usize, p: usize, len: usize, out: usize): void {
  md4Init(ctx);
  md4Update(ctx, p, len);
  md4Final(ctx, out);
}
