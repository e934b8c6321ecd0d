/**
 * SSTP crypto binding: MS-SSTP v20240423 sections 2.2.7, 2.2.11 and
 * 3.2.5.2.1 - 3.2.5.2.4.
 *
 * The Call Connected message binds the TLS session (through the hash of the
 * server certificate) to the PPP authentication (through the HLAK, the
 * Higher-Layer Authentication Key that PPP authentication produced):
 *
 *   CertHash    = H(DER of the server certificate)                 H = SHA-1 or SHA-256
 *   CMK         = first L octets of PRF+(HLAK, seed | LEN | 0x01)  (3.2.5.2.2)
 *                 = HMAC-H(HLAK, "SSTP inner method derived CMK" | LEN | 0x01)
 *                 L = 20 (SHA-1) or 32 (SHA-256); LEN is L as a 16-bit integer that
 *                 "MUST be encoded in little-endian format" (14 00 / 20 00); the seed
 *                 is the 29 ASCII octets, no terminating zero.
 *   CompoundMAC = HMAC-H(CMK, the 112-octet Call Connected message with the
 *                 Compound MAC field (and its padding) set to zero)  (3.2.5.2.3)
 *
 * HLAK (3.2.5.2.1 / 3.2.5.2.4): 32 octets. MS-CHAPv2: client MasterSendKey |
 * client MasterReceiveKey (= server MasterReceiveKey | server MasterSendKey);
 * PAP and CHAP-MD5, which produce no keys: 32 zero octets. PPP computes it and
 * hands it over; this module only uses it.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import {
  BINDING_FIELD_LEN,
  HashProtocol,
  MessageType,
  SSTP_NONCE_LEN,
} from './constants.js';
import { CALL_CONNECTED_MAC_OFFSET, callConnectedLength, decodeControlMessage, encodeCallConnected } from './codec.js';

/** 3.2.5.2.2: the PRF seed, 29 ASCII octets without a terminating zero. */
export const CMK_SEED = 'SSTP inner method derived CMK';
/** 3.2.5.2.1: the HLAK is 32 octets. */
export const HLAK_LEN = 32;

export interface HashSpec {
  /** node:crypto algorithm name. */
  algorithm: 'sha1' | 'sha256';
  /** Digest length L. */
  length: 20 | 32;
}

/** The hash a single Hash Protocol value names; undefined for anything but exactly SHA1 or SHA256. */
export function hashSpec(protocol: number): HashSpec | undefined {
  if (protocol === HashProtocol.Sha1) return { algorithm: 'sha1', length: 20 };
  if (protocol === HashProtocol.Sha256) return { algorithm: 'sha256', length: 32 };
  return undefined;
}

function specOrThrow(protocol: number): HashSpec {
  const s = hashSpec(protocol);
  if (!s) throw new RangeError(`hash protocol must be exactly SHA1 (1) or SHA256 (2), got ${protocol}`);
  return s;
}

/** Certificate hash (2.2.7 Cert Hash) of a DER certificate. */
export function certificateHash(der: Uint8Array, protocol: number): Uint8Array {
  return new Uint8Array(createHash(specOrThrow(protocol).algorithm).update(der).digest());
}

/** Both certificate hashes, as a server keeps them for the life of its certificate. */
export interface CertificateHashes {
  sha1: Uint8Array;
  sha256: Uint8Array;
}

export function certificateHashes(der: Uint8Array): CertificateHashes {
  return { sha1: certificateHash(der, HashProtocol.Sha1), sha256: certificateHash(der, HashProtocol.Sha256) };
}

export function certificateHashFor(hashes: CertificateHashes, protocol: number): Uint8Array | undefined {
  if (protocol === HashProtocol.Sha1) return hashes.sha1;
  if (protocol === HashProtocol.Sha256) return hashes.sha256;
  return undefined;
}

/** 3.2.5.2.2: seed | LEN (16-bit little-endian) | 0x01. */
export function cmkPrfInput(protocol: number): Uint8Array {
  const { length } = specOrThrow(protocol);
  const out = new Uint8Array(CMK_SEED.length + 3);
  for (let i = 0; i < CMK_SEED.length; i++) out[i] = CMK_SEED.charCodeAt(i);
  out[CMK_SEED.length] = length & 0xff; // "MUST be encoded in little-endian format"
  out[CMK_SEED.length + 1] = length >> 8;
  out[CMK_SEED.length + 2] = 0x01; // PRF+ iteration counter: one block is enough for L <= hash size
  return out;
}

/** 3.2.5.2.2: Compound MAC Key from the HLAK. */
export function deriveCmk(hlak: Uint8Array, protocol: number): Uint8Array {
  if (hlak.length !== HLAK_LEN) throw new RangeError(`HLAK must be ${HLAK_LEN} octets, got ${hlak.length}`);
  const { algorithm, length } = specOrThrow(protocol);
  const t1 = createHmac(algorithm, hlak).update(cmkPrfInput(protocol)).digest();
  return new Uint8Array(t1.subarray(0, length));
}

/** 3.2.5.2.3: HMAC over the Call Connected message whose Compound MAC field is zero. */
export function compoundMac(cmk: Uint8Array, callConnectedZeroedMac: Uint8Array, protocol: number): Uint8Array {
  const { algorithm } = specOrThrow(protocol);
  return new Uint8Array(createHmac(algorithm, cmk).update(callConnectedZeroedMac).digest());
}

/** A copy of a Call Connected message with the Compound MAC field (32 octets, padding included) zeroed. */
export function zeroCompoundMac(callConnected: Uint8Array): Uint8Array {
  const copy = callConnected.slice(0, callConnectedLength());
  copy.fill(0, CALL_CONNECTED_MAC_OFFSET, CALL_CONNECTED_MAC_OFFSET + BINDING_FIELD_LEN);
  return copy;
}

export interface CallConnectedInput {
  hashProtocol: number;
  /** The nonce from the server's Call Connect Ack. */
  nonce: Uint8Array;
  /** Hash (with `hashProtocol`) of the certificate the server presented in TLS. */
  certHash: Uint8Array;
  hlak: Uint8Array;
}

/** Client side: the complete 112-octet Call Connected message, Compound MAC filled in. */
export function buildCallConnected(input: CallConnectedInput): Uint8Array {
  const spec = specOrThrow(input.hashProtocol);
  if (input.certHash.length !== spec.length) throw new RangeError(`cert hash must be ${spec.length} octets`);
  if (input.nonce.length !== SSTP_NONCE_LEN) throw new RangeError(`nonce must be ${SSTP_NONCE_LEN} octets`);
  const msg = new Uint8Array(callConnectedLength());
  encodeCallConnected(msg, 0, {
    hashProtocol: input.hashProtocol,
    nonce: input.nonce,
    certHash: input.certHash,
    compoundMac: new Uint8Array(0),
  });
  const mac = compoundMac(deriveCmk(input.hlak, input.hashProtocol), msg, input.hashProtocol);
  msg.set(mac, CALL_CONNECTED_MAC_OFFSET);
  return msg;
}

export type BindingFailure = 'malformed' | 'hash-protocol' | 'nonce' | 'cert-hash' | 'compound-mac';

export type BindingVerdict = { ok: true; hashProtocol: HashProtocol } | { ok: false; reason: BindingFailure; message: string };

export interface BindingExpectation {
  /** The nonce this server sent in its Call Connect Ack. */
  nonce: Uint8Array;
  /** The Hash Protocol Bitmask this server offered in its Call Connect Ack. */
  offeredHashProtocols: number;
  /** Hashes of the certificate this server presented. */
  certHashes: CertificateHashes;
  hlak: Uint8Array;
}

function equalCt(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Server side (3.3.5.2.3): check a received Call Connected message (the raw
 * 112 octets) against what this server sent and the HLAK PPP produced.
 * Comparisons of secrets-derived values run in constant time. The SHA-1
 * padding octets are not compared: the MAC input covers the Cert Hash
 * padding, and the Compound MAC padding is zeroed before the MAC is computed.
 */
export function verifyCallConnected(raw: Uint8Array, expect: BindingExpectation): BindingVerdict {
  const d = decodeControlMessage(raw);
  if (!d.ok || d.value.type !== MessageType.CallConnected) {
    return { ok: false, reason: 'malformed', message: d.ok ? 'not a Call Connected message' : d.message };
  }
  const b = d.value.binding;
  // 3.3.5.2.3: "contains a hash protocol that is supported by the server ... one of the hash
  // protocols that it inserted into the Call Connect Acknowledge message"; 2.2.7 allows exactly one.
  const spec = hashSpec(b.hashProtocol);
  if (!spec || (b.hashProtocol & expect.offeredHashProtocols) === 0) {
    return { ok: false, reason: 'hash-protocol', message: `hash protocol ${b.hashProtocol} was not offered (${expect.offeredHashProtocols})` };
  }
  // "contains the same nonce that it sent in the Call Connect Acknowledge message".
  if (!equalCt(b.nonce, expect.nonce)) return { ok: false, reason: 'nonce', message: 'nonce differs from the one sent' };
  // "contains the hash of the certificate that the server used for establishing the HTTPS connection".
  const ours = certificateHashFor(expect.certHashes, b.hashProtocol)!;
  if (!equalCt(b.certHash.subarray(0, spec.length), ours)) {
    return { ok: false, reason: 'cert-hash', message: 'certificate hash does not match our certificate' };
  }
  // "contains a valid Compound MAC", computed with the server's HLAK.
  const zeroed = zeroCompoundMac(raw);
  const received = b.compoundMac.subarray(0, spec.length);
  const mac = compoundMac(deriveCmk(expect.hlak, b.hashProtocol), zeroed, b.hashProtocol);
  if (!equalCt(received, mac)) {
    // Refused all the same; the message says when the client bound with a zero HLAK although its
    // authentication derived keys (reported of Windows clients with EAP-MSCHAPv2, where 3.2.5.2.4
    // asks for the MSK): an operator then knows which side to look at.
    const zeroKey = new Uint8Array(HLAK_LEN);
    const zeroHlak =
      !equalCt(expect.hlak, zeroKey) && equalCt(received, compoundMac(deriveCmk(zeroKey, b.hashProtocol), zeroed, b.hashProtocol));
    return {
      ok: false,
      reason: 'compound-mac',
      message: zeroHlak
        ? 'Compound MAC does not verify with the HLAK of the PPP authentication; it does with a zero HLAK (the client used no keys from its authentication)'
        : 'Compound MAC does not verify',
    };
  }
  return { ok: true, hashProtocol: b.hashProtocol as HashProtocol };
}

/** 3.2.5.3.2: the client picks the stronger of the offered hashes it supports. */
export function chooseHashProtocol(offered: number, supported: number): HashProtocol | undefined {
  const both = offered & supported;
  if (both & HashProtocol.Sha256) return HashProtocol.Sha256;
  if (both & HashProtocol.Sha1) return HashProtocol.Sha1;
  return undefined;
}
