/**
 * MPPE key derivation from MS-CHAPv2, RFC 3079 section 3, and the key change
 * of RFC 3078 section 7.3; for the CCP/MPPE code and for SSTP's HLAK.
 *
 *   MasterKey    = SHA1(PasswordHashHash | NT-Response | Magic1)[0..15]      (3.4 GetMasterKey)
 *   StartKey     = SHA1(MasterKey | SHSpad1 | Magic2/3 | SHSpad2)[0..len-1]  (3.4 GetAsymmetricStartKey)
 *   SessionKey0  = Reduce(GetNewKeyFromSHA(StartKey, StartKey))             (3.1-3.3)
 *   next key     = Reduce(RC4(Interim, Interim)),
 *                  Interim = GetNewKeyFromSHA(StartKey, CurrentSessionKey)    (RFC 3078 7.3)
 *
 * Orientation: Magic2 names the client's send key (= the server's receive
 * key), Magic3 the client's receive key (= the server's send key). RFC 3079's
 * 3.5 samples print the Magic3 key, i.e. the server's send key.
 * Key lengths: 8 octets for 40- and 56-bit MPPE (the first 8 octets of the
 * 16-octet key, since GetAsymmetricStartKey truncates one SHA-1 digest),
 * 16 for 128-bit.
 */
import { rc4, sha1 } from '../../crypto/wasm-crypto.js';
import type { MppeMasterKeys } from './types.js';

// From the spec (RFC 3079 3.4).
const ascii = (s: string) => new TextEncoder().encode(s);
const MAGIC1 = ascii('This is the MPPE Master Key');
const MAGIC2 = ascii('On the client side, this is the send key; on the server side, it is the receive key.');
const MAGIC3 = ascii('On the client side, this is the receive key; on the server side, it is the send key.');
const SHS_PAD1 = new Uint8Array(40);
const SHS_PAD2 = new Uint8Array(40).fill(0xf2);

export type MppeBits = 40 | 56 | 128;
export type MppeRole = 'server' | 'client';

/** Session key length in octets for a strength (RFC 3079 3.1-3.3). */
export function mppeKeyLength(bits: MppeBits): 8 | 16 {
  return bits === 128 ? 16 : 8;
}

/** RFC 3079 3.4 GetMasterKey: 16 octets. */
export function getMasterKey(passwordHashHash: Uint8Array, ntResponse: Uint8Array): Uint8Array {
  return sha1(passwordHashHash, ntResponse, MAGIC1).slice(0, 16);
}

/** RFC 3079 3.4 GetAsymmetricStartKey. */
export function getAsymmetricStartKey(masterKey: Uint8Array, length: 8 | 16, isSend: boolean, isServer: boolean): Uint8Array {
  const magic = isSend === isServer ? MAGIC3 : MAGIC2;
  return sha1(masterKey, SHS_PAD1, magic, SHS_PAD2).slice(0, length);
}

/**
 * The 16-octet MasterSendKey / MasterReceiveKey of one side (RFC 3079 3.4,
 * SessionKeyLength 16); shorter strengths use their first 8 octets.
 */
export function deriveMppeMasterKeys(passwordHashHash: Uint8Array, ntResponse: Uint8Array, role: MppeRole): MppeMasterKeys {
  const master = getMasterKey(passwordHashHash, ntResponse);
  const isServer = role === 'server';
  const keys = {
    masterSendKey: getAsymmetricStartKey(master, 16, true, isServer),
    masterReceiveKey: getAsymmetricStartKey(master, 16, false, isServer),
  };
  master.fill(0);
  return keys;
}

/** RFC 3079 3.3 (and RFC 3078 7.3) GetNewKeyFromSHA: SHA1(StartKey | SHSpad1 | SessionKey | SHSpad2)[0..len-1]. */
export function getNewKeyFromSha(startKey: Uint8Array, sessionKey: Uint8Array, length: 8 | 16): Uint8Array {
  return sha1(startKey.subarray(0, length), SHS_PAD1, sessionKey.subarray(0, length), SHS_PAD2).slice(0, length);
}

/**
 * RFC 3079 3.1 / 3.2: a 40-bit key has its first three octets set to
 * 0xd1 0x26 0x9e, a 56-bit key its first octet to 0xd1; 128-bit keys are
 * unchanged. Returns a copy.
 */
export function reduceSessionKey(key: Uint8Array, bits: MppeBits): Uint8Array {
  const out = key.slice(0, mppeKeyLength(bits));
  if (bits === 40) out.set([0xd1, 0x26, 0x9e], 0);
  else if (bits === 56) out[0] = 0xd1;
  return out;
}

/** The start key of a direction: the first 8 or 16 octets of its master key. */
export function startKeyFor(masterKey: Uint8Array, bits: MppeBits): Uint8Array {
  return masterKey.slice(0, mppeKeyLength(bits));
}

/** RFC 3079 3.1-3.3: the first session key of a direction. */
export function initialSessionKey(startKey: Uint8Array, bits: MppeBits): Uint8Array {
  const len = mppeKeyLength(bits);
  return reduceSessionKey(getNewKeyFromSha(startKey, startKey, len), bits);
}

/** RFC 3078 7.3: the session key that follows `currentSessionKey` (the reduced key in use). */
export function nextSessionKey(startKey: Uint8Array, currentSessionKey: Uint8Array, bits: MppeBits): Uint8Array {
  const len = mppeKeyLength(bits);
  const interim = getNewKeyFromSha(startKey, currentSessionKey, len);
  const next = rc4(interim, interim);
  interim.fill(0);
  return reduceSessionKey(next, bits);
}

export interface MppeDirection {
  startKey: Uint8Array;
  sessionKey: Uint8Array;
}

/** Start and initial session keys of both directions for a negotiated strength, from one side's master keys. */
export function mppeSessionKeys(keys: MppeMasterKeys, bits: MppeBits): { send: MppeDirection; receive: MppeDirection } {
  const send = startKeyFor(keys.masterSendKey, bits);
  const receive = startKeyFor(keys.masterReceiveKey, bits);
  return {
    send: { startKey: send, sessionKey: initialSessionKey(send, bits) },
    receive: { startKey: receive, sessionKey: initialSessionKey(receive, bits) },
  };
}

/**
 * MS-SSTP 3.2.5.2.2 HLAK for MS-CHAPv2: client MasterSendKey |
 * MasterReceiveKey, server MasterReceiveKey | MasterSendKey. Both orders name
 * the same 32 octets: the Magic2 key then the Magic3 key.
 */
export function msChapV2Hlak(keys: MppeMasterKeys, role: MppeRole): Uint8Array {
  const out = new Uint8Array(32);
  const [first, second] = role === 'client' ? [keys.masterSendKey, keys.masterReceiveKey] : [keys.masterReceiveKey, keys.masterSendKey];
  out.set(first.subarray(0, 16), 0);
  out.set(second.subarray(0, 16), 16);
  return out;
}

/**
 * [MS-CHAP] (EAP-MSCHAPv2 key derivation): MSK = MasterReceiveKey |
 * MasterSendKey | 32 zero octets, the key names being the authenticator's
 * (RFC 3079 3.3 with IsServer). The peer computes the same 64 octets from its
 * own keys in the other order.
 */
export function eapMsChapV2Msk(keys: MppeMasterKeys, role: MppeRole): Uint8Array {
  const msk = new Uint8Array(64);
  const [magic2Key, magic3Key] = role === 'server' ? [keys.masterReceiveKey, keys.masterSendKey] : [keys.masterSendKey, keys.masterReceiveKey];
  msk.set(magic2Key.subarray(0, 16), 0);
  msk.set(magic3Key.subarray(0, 16), 16);
  return msk;
}

/** MS-SSTP 3.2.5.2.2: for EAP methods other than EAP-TLS the HLAK is the first 32 octets of the MSK. */
export function hlakFromMsk(msk: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  out.set(msk.subarray(0, 32));
  return out;
}
