/**
 * MS-CHAPv2 computations, RFC 2759 section 8 (pseudocode 8.1-8.8), named
 * after the RFC's functions. MD4, DES and SHA-1 run on the WASM kernels
 * (src/crypto/wasm-crypto.ts): OpenSSL 3 offers no MD4/DES by default.
 *
 * User names are hashed as the octets the peer sent (UTF-8 here); RFC 2759
 * 8.2 hashes the name without a "DOMAIN\" prefix.
 */
import { timingSafeEqual } from 'node:crypto';
import { desEncryptBlock, md4, sha1 } from '../../crypto/wasm-crypto.js';
import type { MppeMasterKeys } from './types.js';
import { deriveMppeMasterKeys } from './mppe-keys.js';

// From the spec (RFC 2759 8.7).
export const AUTH_MAGIC1 = new TextEncoder().encode('Magic server to client signing constant');
export const AUTH_MAGIC2 = new TextEncoder().encode('Pad to make it do more than one iteration');
const MAGIC1 = AUTH_MAGIC1;
const MAGIC2 = AUTH_MAGIC2;

// From the spec (RFC 2759 sections 3-4).
export const AUTHENTICATOR_CHALLENGE_SIZE = 16;
export const PEER_CHALLENGE_SIZE = 16;
export const NT_RESPONSE_SIZE = 24;
/** Peer-Challenge(16) | Reserved(8) | NT-Response(24) | Flags(1). */
export const RESPONSE_VALUE_SIZE = 49;
/** RFC 2759 8.7: "S=" followed by 40 hexadecimal digits. */
export const AUTHENTICATOR_RESPONSE_TEXT_SIZE = 42;

const utf8 = new TextEncoder();

/** RFC 2759 8.2: the user name without any "DOMAIN\" prefix (everything after the last backslash). */
export function stripDomain(username: string): string {
  const i = username.lastIndexOf('\\');
  return i >= 0 ? username.slice(i + 1) : username;
}

/** RFC 2759 8.2 ChallengeHash: SHA1(PeerChallenge | AuthenticatorChallenge | UserName)[0..7]. */
export function challengeHash(peerChallenge: Uint8Array, authenticatorChallenge: Uint8Array, username: string | Uint8Array): Uint8Array {
  const name = typeof username === 'string' ? utf8.encode(stripDomain(username)) : username;
  return sha1(peerChallenge, authenticatorChallenge, name).subarray(0, 8);
}

/** RFC 2759 8.3 NtPasswordHash: MD4 of the UTF-16LE (Unicode) password. */
export function ntPasswordHash(password: string): Uint8Array {
  const unicode = new Uint8Array(Buffer.from(password, 'utf16le'));
  const hash = md4(unicode);
  unicode.fill(0);
  return hash;
}

/** RFC 2759 8.4 HashNtPasswordHash: MD4 of the 16-octet password hash. */
export function hashNtPasswordHash(passwordHash: Uint8Array): Uint8Array {
  return md4(passwordHash);
}

/**
 * RFC 2759 8.5 ChallengeResponse: the 16-octet hash zero-padded to 21 octets,
 * cut into three 7-octet DES keys, each encrypting the 8-octet challenge.
 */
export function challengeResponse(challenge: Uint8Array, passwordHash: Uint8Array): Uint8Array {
  const z = new Uint8Array(21);
  z.set(passwordHash.subarray(0, 16));
  const out = new Uint8Array(NT_RESPONSE_SIZE);
  for (let i = 0; i < 3; i++) out.set(desEncryptBlock(z.subarray(7 * i, 7 * i + 7), challenge), 8 * i);
  z.fill(0);
  return out;
}

/** RFC 2759 8.1 GenerateNTResponse, from the password hash (what a server stores). */
export function generateNtResponseFromHash(
  authenticatorChallenge: Uint8Array,
  peerChallenge: Uint8Array,
  username: string | Uint8Array,
  passwordHash: Uint8Array,
): Uint8Array {
  return challengeResponse(challengeHash(peerChallenge, authenticatorChallenge, username), passwordHash);
}

/** RFC 2759 8.1 GenerateNTResponse. */
export function generateNtResponse(authenticatorChallenge: Uint8Array, peerChallenge: Uint8Array, username: string | Uint8Array, password: string): Uint8Array {
  const hash = ntPasswordHash(password);
  const r = generateNtResponseFromHash(authenticatorChallenge, peerChallenge, username, hash);
  hash.fill(0);
  return r;
}

/**
 * RFC 2759 8.7 GenerateAuthenticatorResponse, from the password hash: the
 * 20-octet digest (the wire text is {@link authenticatorResponseText}).
 */
export function authenticatorResponseDigest(
  passwordHash: Uint8Array,
  ntResponse: Uint8Array,
  peerChallenge: Uint8Array,
  authenticatorChallenge: Uint8Array,
  username: string | Uint8Array,
): Uint8Array {
  const hashHash = hashNtPasswordHash(passwordHash);
  const digest = sha1(hashHash, ntResponse, MAGIC1);
  hashHash.fill(0);
  const challenge = challengeHash(peerChallenge, authenticatorChallenge, username);
  return sha1(digest, challenge, MAGIC2);
}

/** "S=" and 40 uppercase hexadecimal digits (RFC 2759 8.7). */
export function authenticatorResponseText(digest: Uint8Array): string {
  return `S=${Buffer.from(digest).toString('hex').toUpperCase()}`;
}

/** RFC 2759 8.7 GenerateAuthenticatorResponse, returning the 42-character text. */
export function generateAuthenticatorResponse(
  password: string,
  ntResponse: Uint8Array,
  peerChallenge: Uint8Array,
  authenticatorChallenge: Uint8Array,
  username: string | Uint8Array,
): string {
  const hash = ntPasswordHash(password);
  const text = authenticatorResponseText(authenticatorResponseDigest(hash, ntResponse, peerChallenge, authenticatorChallenge, username));
  hash.fill(0);
  return text;
}

/**
 * RFC 2759 8.8 CheckAuthenticatorResponse (client side): does the "S=" text
 * the server sent prove it knows the password? Compared in constant time;
 * hex digits of either case are accepted.
 */
export function checkAuthenticatorResponse(
  passwordHash: Uint8Array,
  ntResponse: Uint8Array,
  peerChallenge: Uint8Array,
  authenticatorChallenge: Uint8Array,
  username: string | Uint8Array,
  received: string,
): boolean {
  if (received.length !== AUTHENTICATOR_RESPONSE_TEXT_SIZE || !/^S=[0-9A-Fa-f]{40}$/.test(received)) return false;
  const want = authenticatorResponseDigest(passwordHash, ntResponse, peerChallenge, authenticatorChallenge, username);
  return timingSafeEqual(Buffer.from(received.slice(2), 'hex'), want);
}

export interface MsChapV2Check {
  username: string;
  /** The user's NT hash (MD4 of the UTF-16LE password). */
  ntHash: Uint8Array;
  authenticatorChallenge: Uint8Array;
  peerChallenge: Uint8Array;
  ntResponse: Uint8Array;
}

/**
 * Server side verification: recompute the NT-Response, compare in constant
 * time, and on a match return the authenticator response and the server's
 * MPPE master keys (RFC 3079 3.4). Used by every {@link Verifier} that knows
 * the NT hash.
 */
export function verifyMsChapV2Response(c: MsChapV2Check): { authenticatorResponse: string; mppe: MppeMasterKeys } | undefined {
  if (c.ntResponse.length !== NT_RESPONSE_SIZE || c.ntHash.length !== 16) return undefined;
  if (c.authenticatorChallenge.length !== AUTHENTICATOR_CHALLENGE_SIZE || c.peerChallenge.length !== PEER_CHALLENGE_SIZE) return undefined;
  const want = generateNtResponseFromHash(c.authenticatorChallenge, c.peerChallenge, c.username, c.ntHash);
  if (!timingSafeEqual(want, c.ntResponse)) return undefined;
  const digest = authenticatorResponseDigest(c.ntHash, c.ntResponse, c.peerChallenge, c.authenticatorChallenge, c.username);
  const hashHash = hashNtPasswordHash(c.ntHash);
  const mppe = deriveMppeMasterKeys(hashHash, c.ntResponse, 'server');
  hashHash.fill(0);
  return { authenticatorResponse: authenticatorResponseText(digest), mppe };
}
