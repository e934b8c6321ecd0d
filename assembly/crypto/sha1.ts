// SHA-1, FIPS 180-4 sections 4.1.1 (functions), 4.2.1 (constants),
// 5.1.1 (padding), 5.3.1 (initial hash value) and 6.1.2 (computation).
//
//   message | 0x80 | 0x00 ... | 64-bit big-endian bit length   (multiple of 512 bits)
//
//   per 512-bit block M:
//     W[t] = M[t] (big-endian words)                     0 <= t <= 15
//     W[t] = ROTL1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16])  16 <= t <= 79
//     T = ROTL5(a) + f_t(b,c,d) + e + K_t + W[t]; e=d; d=c; c=ROTL30(b); b=a; a=T
//
// Used for MPPE key changes (RFC 3079 section 3, GetNewKeyFromSHA) and key
// derivation. State lives in caller memory (sizes.ts SHA1_*); the block
// function is in sha1-compress.ts (generated, unrolled).
import { SHA1_H, SHA1_BUFLEN, SHA1_TOTAL, SHA1_BUF, SHA1_BLOCK_SIZE } from './sizes';
import { sha1Compress } from './sha1-compress';

const BLOCK = <usize>SHA1_BLOCK_SIZE;

/** FIPS 180-4 5.3.1: the initial hash value. */
export function sha1Init(ctx: usize): void {
  store<u32>(ctx + SHA1_H, 0x67452301);
  store<u32>(ctx + SHA1_H + 4, 0xefcdab89);
  store<u32>(ctx + SHA1_H + 8, 0x98badcfe);
  store<u32>(ctx + SHA1_H + 12, 0x10325476);
  store<u32>(ctx + SHA1_H + 16, 0xc3d2e1f0);
  store<u32>(ctx + SHA1_BUFLEN, 0);
  store<u64>(ctx + SHA1_TOTAL, 0);
}

export function sha1Update(ctx: usize, p: usize, len: usize): void {
  store<u64>(ctx + SHA1_TOTAL, load<u64>(ctx + SHA1_TOTAL) + <u64>len);
  const buf = ctx + SHA1_BUF;
  let have = <usize>load<u32>(ctx + SHA1_BUFLEN);
  if (have > 0) {
    const take = min<usize>(BLOCK - have, len);
    memory.copy(buf + have, p, take);
    have += take;
    p += take;
    len -= take;
    if (have < BLOCK) {
      store<u32>(ctx + SHA1_BUFLEN, <u32>have);
      return;
    }
    sha1Compress(ctx, buf);
    have = 0;
  }
  while (len >= BLOCK) {
    sha1Compress(ctx, p);
    p += BLOCK;
    len -= BLOCK;
  }
  if (len > 0) memory.copy(buf, p, len);
  store<u32>(ctx + SHA1_BUFLEN, <u32>len);
}

/** FIPS 180-4 5.1.1 padding, then the digest (20 octets, big-endian words) to out. */
export function sha1Final(ctx: usize, out: usize): void {
  const buf = ctx + SHA1_BUF;
  let have = <usize>load<u32>(ctx + SHA1_BUFLEN);
  const bits = load<u64>(ctx + SHA1_TOTAL) << 3;
  store<u8>(buf + have, 0x80);
  have++;
  if (have > 56) {
    memory.fill(buf + have, 0, BLOCK - have);
    sha1Compress(ctx, buf);
    have = 0;
  }
  memory.fill(buf + have, 0, 56 - have);
  store<u64>(buf + 56, bswap<u64>(bits));
  sha1Compress(ctx, buf);
  for (let k: usize = 0; k < 5; k++) store<u32>(out + (k << 2), bswap<u32>(load<u32>(ctx + SHA1_H + (k << 2))));
  store<u32>(ctx + SHA1_BUFLEN, 0);
}

/** One-shot SHA-1 of p[0..len) into out (20 octets), using ctx as working state. */
export function sha1(ctx: usize, p: usize, len: usize, out: usize): void {
  sha1Init(ctx);
  sha1Update(ctx, p, len);
  sha1Final(ctx, out);
}

/** Batch: digest `count` messages of `len` octets at base + k * stride into out + 20 * k. */
export function sha1Batch(ctx: usize, base: usize, stride: usize, len: usize, count: u32, out: usize): void {
  let p = base;
  let o = out;
  for (let k: u32 = 0; k < count; k++) {
    sha1(ctx, p, len, o);
    p += stride;
    o += 20;
  }
}
