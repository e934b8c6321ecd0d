// MPPE session keys: RFC 3079 section 3 (initial keys, GetNewKeyFromSHA,
// 40/56-bit reductions) and RFC 3078 section 7.3 (key changes).
//
//   GetNewKeyFromSHA(StartKey, SessionKey, L) =
//       first L octets of SHA-1(StartKey[L] | SHAPad1 | SessionKey[L] | SHAPad2)
//   initial key  (RFC 3079 3.1-3.3):  K0 = reduce(GetNewKeyFromSHA(Start, Start, L))
//   key change   (RFC 3078 7.3):      I = GetNewKeyFromSHA(Start, K, L)
//                                     K' = reduce(RC4(key I, data I))
//   reduce: 40-bit  K[0..2] = d1 26 9e   (RFC 3079 3.1)
//           56-bit  K[0]    = d1         (RFC 3079 3.2)
//           128-bit unchanged            (RFC 3079 3.3)
//   L = 8 for 40 and 56 bits, 16 for 128 bits.
//
// After every new session key the direction's RC4 state is re-initialised
// with it (RFC 3078 7.3). State lives in caller memory (sizes.ts MPPE_*).
import {
  MPPE_KEY_LEN, MPPE_BITS, MPPE_START_KEY, MPPE_SESSION_KEY, MPPE_INTERIM, MPPE_SHA1,
} from './sizes';
import { sha1Init, sha1Update, sha1Final } from './sha1';
import { rc4Init, rc4Crypt } from './rc4';

// RFC 3079 section 3: SHAPad1 (40 x 0x00) and SHAPad2 (40 x 0xf2).
const SHA_PAD1 = memory.data(40);
const SHA_PAD2 = memory.data<u8>([
  0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2,
  0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2,
  0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2,
  0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2,
]);
const PAD_LEN: usize = 40;

/** Result codes of mppeStart / mppeSetKeys. */
export const MPPE_OK: i32 = 0;
export const MPPE_BAD_BITS: i32 = -1;

/** Key length in octets for a strength, or 0 when the strength is not 40, 56 or 128. */
// @ts-ignore: decorator
@inline function keyLenFor(bits: u32): u32 {
  return bits == 128 ? 16 : bits == 40 || bits == 56 ? 8 : 0;
}

/** GetNewKeyFromSHA(start, session) into the interim key field (a whole digest; the first L octets count). */
function newKeyFromSha(ks: usize, session: usize): void {
  const len = <usize>load<u32>(ks + MPPE_KEY_LEN);
  const ctx = ks + MPPE_SHA1;
  sha1Init(ctx);
  sha1Update(ctx, ks + MPPE_START_KEY, len);
  sha1Update(ctx, SHA_PAD1, PAD_LEN);
  sha1Update(ctx, session, len);
  sha1Update(ctx, SHA_PAD2, PAD_LEN);
  sha1Final(ctx, ks + MPPE_INTERIM);
}

/** RFC 3079 3.1 / 3.2: weaken the session key to its negotiated strength. */
function reduce(ks: usize): void {
  const key = ks + MPPE_SESSION_KEY;
  const bits = load<u32>(ks + MPPE_BITS);
  if (bits == 40) {
    store<u8>(key, 0xd1);
    store<u8>(key + 1, 0x26);
    store<u8>(key + 2, 0x9e);
  } else if (bits == 56) {
    store<u8>(key, 0xd1);
  }
}

function setStart(ks: usize, bits: u32, startKey: usize): i32 {
  const len = keyLenFor(bits);
  if (len == 0) return MPPE_BAD_BITS;
  memory.fill(ks, 0, MPPE_SHA1);
  store<u32>(ks + MPPE_KEY_LEN, len);
  store<u32>(ks + MPPE_BITS, bits);
  memory.copy(ks + MPPE_START_KEY, startKey, len);
  return MPPE_OK;
}

/**
 * Set up one direction from its start key (the first L octets of
 * MasterSendKey or MasterReceiveKey, RFC 3079 3.4): derive the initial
 * session key and key `rc4` with it.
 */
export function mppeStart(ks: usize, bits: u32, startKey: usize, rc4: usize): i32 {
  const r = setStart(ks, bits, startKey);
  if (r != MPPE_OK) return r;
  const len = <usize>load<u32>(ks + MPPE_KEY_LEN);
  newKeyFromSha(ks, ks + MPPE_START_KEY);
  memory.copy(ks + MPPE_SESSION_KEY, ks + MPPE_INTERIM, len);
  reduce(ks);
  rc4Init(rc4, ks + MPPE_SESSION_KEY, len);
  return MPPE_OK;
}

/**
 * Load a known state: start key and the (already reduced) session key in
 * use. The RC4 state is not touched.
 */
export function mppeSetKeys(ks: usize, bits: u32, startKey: usize, sessionKey: usize): i32 {
  const r = setStart(ks, bits, startKey);
  if (r != MPPE_OK) return r;
  memory.copy(ks + MPPE_SESSION_KEY, sessionKey, <usize>load<u32>(ks + MPPE_KEY_LEN));
  return MPPE_OK;
}

/**
 * RFC 3078 7.3 key change: derive the next session key from the start key
 * and the current one, then re-key `rc4` with it. `rc4` doubles as the
 * working state for RC4(I, I), so it must not be in use by anyone else.
 */
export function mppeRekey(ks: usize, rc4: usize): void {
  const len = <usize>load<u32>(ks + MPPE_KEY_LEN);
  const key = ks + MPPE_SESSION_KEY;
  const interim = ks + MPPE_INTERIM;
  newKeyFromSha(ks, key);
  rc4Init(rc4, interim, len);
  rc4Crypt(rc4, interim, key, len);
  reduce(ks);
  rc4Init(rc4, key, len);
}
