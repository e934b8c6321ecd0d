// DES single-block encryption, FIPS 46-3, as MS-CHAP uses it (RFC 2759
// section 8.5 DesEncrypt: ECB, one 8-octet block, a 7-octet key spread over
// 8 octets with parity bits as in sections 8.6 and 9.3).
//
//   input block --IP--> L0 | R0
//   16 rounds:  L(n) = R(n-1);  R(n) = L(n-1) xor f(R(n-1), K(n))
//               f(R, K) = P(S1..S8(E(R) xor K))
//   R16 | L16 --IP^-1--> output block
//   K(n) = PC-2(C(n) | D(n)), C(n), D(n) = C(n-1), D(n-1) rotated left by
//   the shift schedule, C0 | D0 = PC-1(key)
//
// Written straight from the standard's tables (bit 1 = most significant bit,
// as FIPS 46-3 numbers them) because MS-CHAP needs three blocks per
// authentication: clarity over speed. Permutations are fixed-count bit loops,
// so the only data-dependent work is the S-box table lookup (constant time is
// not a requirement for this use; there are no data-dependent branches).
// The subkeys are computed round by round, so no key schedule is stored.

// FIPS 46-3, "Enciphering": initial permutation IP.
const IP = memory.data<u8>([
  58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
  62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
  57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
  61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
]);

// FIPS 46-3: inverse initial permutation IP^-1.
const FP = memory.data<u8>([
  40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31,
  38, 6, 46, 14, 54, 22, 62, 30, 37, 5, 45, 13, 53, 21, 61, 29,
  36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27,
  34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25,
]);

// FIPS 46-3, "The Cipher Function f": E bit-selection table.
const E = memory.data<u8>([
  32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9,
  8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17,
  16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25,
  24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1,
]);

// FIPS 46-3: permutation P.
const P = memory.data<u8>([
  16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
  2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25,
]);

// FIPS 46-3: primitive functions S1..S8, each 4 rows of 16, row-major.
const S = memory.data<u8>([
  // S1
  14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7,
  0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
  4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0,
  15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13,
  // S2
  15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10,
  3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
  0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15,
  13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9,
  // S3
  10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8,
  13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
  13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7,
  1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12,
  // S4
  7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15,
  13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
  10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4,
  3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14,
  // S5
  2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9,
  14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
  4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14,
  11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3,
  // S6
  12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11,
  10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
  9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6,
  4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13,
  // S7
  4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1,
  13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
  1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2,
  6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12,
  // S8
  13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7,
  1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
  7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8,
  2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11,
]);

// FIPS 46-3, "Key Schedule Calculation": permuted choice 1 and 2, left shifts.
const PC1 = memory.data<u8>([
  57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
  10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
  63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
  14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
]);

const PC2 = memory.data<u8>([
  14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10,
  23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
  41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
  44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
]);

const SHIFTS = memory.data<u8>([1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1]);

const MASK28: u64 = 0xfffffff;

/**
 * Apply a FIPS 46-3 permutation table: output bit k (from the most
 * significant) is input bit table[k] of an inBits-wide value (1 = its most
 * significant bit).
 */
// @ts-ignore: decorator
@inline function permute(v: u64, inBits: u32, table: usize, n: usize): u64 {
  let out: u64 = 0;
  for (let k: usize = 0; k < n; k++) {
    out = (out << 1) | ((v >> <u64>(inBits - <u32>load<u8>(table + k))) & 1);
  }
  return out;
}

function encrypt(key: u64, block: u64): u64 {
  const cd = permute(key, 64, PC1, 56);
  let c = cd >> 28;
  let d = cd & MASK28;
  const lr = permute(block, 64, IP, 64);
  let l = lr >> 32;
  let r = lr & 0xffffffff;
  for (let n: usize = 0; n < 16; n++) {
    const s = <u64>load<u8>(SHIFTS + n);
    c = ((c << s) | (c >> (28 - s))) & MASK28;
    d = ((d << s) | (d >> (28 - s))) & MASK28;
    const x = permute(r, 32, E, 48) ^ permute((c << 28) | d, 56, PC2, 48);
    let out: u64 = 0;
    for (let b: usize = 0; b < 8; b++) {
      // Six bits: the outer two select the row, the inner four the column.
      const six = <usize>((x >> <u64>(42 - 6 * b)) & 63);
      const row = ((six >> 4) & 2) | (six & 1);
      const col = (six >> 1) & 15;
      out = (out << 4) | <u64>load<u8>(S + (b << 6) + (row << 4) + col);
    }
    const next = l ^ permute(out, 32, P, 32);
    l = r;
    r = next;
  }
  // Preoutput is R16 L16 (the last round does not swap).
  return permute((r << 32) | l, 64, FP, 64);
}

/**
 * RFC 2759 8.6 / 9.3: spread a 7-octet (56-bit) key over 8 octets, seven key
 * bits per octet (most significant first) and the low bit set for odd parity.
 */
// @ts-ignore: decorator
@inline function expandKey7(key7: usize): u64 {
  let k56: u64 = 0;
  for (let i: usize = 0; i < 7; i++) k56 = (k56 << 8) | <u64>load<u8>(key7 + i);
  let out: u64 = 0;
  for (let g: usize = 0; g < 8; g++) {
    const bits = <u32>((k56 >> <u64>(49 - 7 * g)) & 0x7f);
    const parity = (~popcnt<u32>(bits)) & 1;
    out = (out << 8) | <u64>((bits << 1) | parity);
  }
  return out;
}

/** DES-encrypt one block: 8-octet key (parity bits ignored), src and dst 8 octets (may be equal). */
export function desEncrypt(key8: usize, src: usize, dst: usize): void {
  store<u64>(dst, bswap<u64>(encrypt(bswap<u64>(load<u64>(key8)), bswap<u64>(load<u64>(src)))));
}

/** RFC 2759 8.5 DesEncrypt(Clear, Key) with a 7-octet key. */
export function desEncrypt7(key7: usize, src: usize, dst: usize): void {
  store<u64>(dst, bswap<u64>(encrypt(expandKey7(key7), bswap<u64>(load<u64>(src)))));
}

/** The 8-octet odd-parity form of a 7-octet key (RFC 2759 9.3), to out. */
export function desExpandKey(key7: usize, out: usize): void {
  store<u64>(out, bswap<u64>(expandKey7(key7)));
}
