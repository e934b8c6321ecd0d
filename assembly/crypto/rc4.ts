// RC4 (the "ARCFOUR" stream cipher; keystream test vectors in RFC 6229),
// MPPE's cipher (RFC 3078 section 7).
//
//   key scheduling:   S = 0..255; j = 0
//                     for i in 0..255: j += S[i] + K[i mod L]; swap S[i], S[j]
//   keystream:        i += 1; j += S[i]; swap S[i], S[j]; out S[S[i] + S[j]]
//                     (all arithmetic mod 256)
//
// State lives in caller memory (sizes.ts RC4_*): 256 octets of S, then i and
// j as u32. The kernels allocate nothing and only touch the state, the key,
// and the source and destination ranges.
import { RC4_I, RC4_J } from './sizes';

/**
 * Key scheduling: fill `state` from `key` (keyLen octets). Key octets past
 * 256 do not influence RC4 and are ignored. Returns false (state untouched)
 * for an empty key, which RC4 does not define.
 */
export function rc4Init(state: usize, key: usize, keyLen: usize): bool {
  if (keyLen == 0) return false;
  // S = identity, 16 octets per store.
  let row = i8x16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const step = i8x16.splat(16);
  for (let o: usize = 0; o < 256; o += 16) {
    v128.store(state + o, row);
    row = i8x16.add(row, step);
  }
  let j: u32 = 0;
  let k: usize = 0;
  for (let i: usize = 0; i < 256; i++) {
    const si = <u32>load<u8>(state + i);
    j = (j + si + <u32>load<u8>(key + k)) & 255;
    store<u8>(state + i, load<u8>(state + j));
    store<u8>(state + j, <u8>si);
    k = select<usize>(0, k + 1, k + 1 == keyLen);
  }
  store<u32>(state + RC4_I, 0);
  store<u32>(state + RC4_J, 0);
  return true;
}

/**
 * XOR `len` octets of keystream into src, writing dst (src may equal dst;
 * other overlaps are not supported). The keystream continues across calls.
 */
export function rc4Crypt(state: usize, src: usize, dst: usize, len: usize): void {
  let i = load<u32>(state + RC4_I);
  let j = load<u32>(state + RC4_J);
  let n: usize = 0;
  // Four keystream octets per iteration, combined into one word: one load
  // and one store of data per four bytes. The PRGA steps stay sequential
  // (each depends on the previous swap).
  while (n + 4 <= len) {
    i = (i + 1) & 255;
    let si = <u32>load<u8>(state + i);
    j = (j + si) & 255;
    let sj = <u32>load<u8>(state + j);
    store<u8>(state + i, <u8>sj);
    store<u8>(state + j, <u8>si);
    let ks = <u32>load<u8>(state + ((si + sj) & 255));

    i = (i + 1) & 255;
    si = <u32>load<u8>(state + i);
    j = (j + si) & 255;
    sj = <u32>load<u8>(state + j);
    store<u8>(state + i, <u8>sj);
    store<u8>(state + j, <u8>si);
    ks |= <u32>load<u8>(state + ((si + sj) & 255)) << 8;

    i = (i + 1) & 255;
    si = <u32>load<u8>(state + i);
    j = (j + si) & 255;
    sj = <u32>load<u8>(state + j);
    store<u8>(state + i, <u8>sj);
    store<u8>(state + j, <u8>si);
    ks |= <u32>load<u8>(state + ((si + sj) & 255)) << 16;

    i = (i + 1) & 255;
    si = <u32>load<u8>(state + i);
    j = (j + si) & 255;
    sj = <u32>load<u8>(state + j);
    store<u8>(state + i, <u8>sj);
    store<u8>(state + j, <u8>si);
    ks |= <u32>load<u8>(state + ((si + sj) & 255)) << 24;

    // Little-endian word: octet n gets the first keystream octet.
    store<u32>(dst + n, load<u32>(src + n) ^ ks);
    n += 4;
  }
  while (n < len) {
    i = (i + 1) & 255;
    const si = <u32>load<u8>(state + i);
    j = (j + si) & 255;
    const sj = <u32>load<u8>(state + j);
    store<u8>(state + i, <u8>sj);
    store<u8>(state + j, <u8>si);
    store<u8>(dst + n, load<u8>(src + n) ^ load<u8>(state + ((si + sj) & 255)));
    n++;
  }
  store<u32>(state + RC4_I, i);
  store<u32>(state + RC4_J, j);
}

/**
 * Batch: `count` packets of `len` octets at base, base + stride, ...,
 * encrypted in place with one continuing keystream (stateful MPPE, one call
 * per batch).
 */
export function rc4CryptBatch(state: usize, base: usize, stride: usize, len: usize, count: u32): void {
  let p = base;
  for (let k: u32 = 0; k < count; k++) {
    rc4Crypt(state, p, p, len);
    p += stride;
  }
}

/**
 * Batch with a fresh key per packet: packet k (at base + k * stride, `len`
 * octets) is encrypted in place under the key at keys + k * keyLen. This is
 * the cost shape of stateless MPPE (a new RC4 key every packet).
 */
export function rc4RekeyBatch(state: usize, keys: usize, keyLen: usize, base: usize, stride: usize, len: usize, count: u32): void {
  let p = base;
  let key = keys;
  for (let k: u32 = 0; k < count; k++) {
    rc4Init(state, key, keyLen);
    rc4Crypt(state, p, p, len);
    p += stride;
    key += keyLen;
  }
}
