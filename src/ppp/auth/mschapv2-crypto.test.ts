import { describe, it, expect } from 'vitest';
import { fromHex, hex } from '../../util/decode.js';
import { readVectors } from './testing.js';
import {
  authenticatorResponseDigest,
  authenticatorResponseText,
  challengeHash,
  challengeResponse,
  checkAuthenticatorResponse,
  generateAuthenticatorResponse,
  generateNtResponse,
  hashNtPasswordHash,
  ntPasswordHash,
  stripDomain,
  verifyMsChapV2Response,
} from './mschapv2-crypto.js';
import { deriveMppeMasterKeys } from './mppe-keys.js';
import { desExpandKey, sha1 } from '../../crypto/wasm-crypto.js';
import { AUTH_MAGIC1, AUTH_MAGIC2 } from './mschapv2-crypto.js';

interface MsChapVector {
  id: string;
  username_ascii?: string;
  username?: string;
  username_for_challenge_hash?: string;
  password_text?: string;
  password_utf16le?: string;
  authenticator_challenge?: string;
  peer_challenge?: string;
  challenge?: string;
  password_hash?: string;
  password_hash_hash?: string;
  nt_response?: string;
  authenticator_response?: string;
  authenticator_response_text?: string;
  intermediate?: {
    des_outputs: string[];
    response_value_49: string;
    z_password_hash: string;
    des_keys_7: string[];
    des_keys_8_odd_parity: string[];
    auth_response_digest1: string;
    magic1: string;
    magic2: string;
  };
  raw_key_1?: string;
  parity_key_1?: string;
  raw_key_2?: string;
  parity_key_2?: string;
}
const all = readVectors<{ vectors: MsChapVector[] }>('mschapv2.json').vectors;
const exchanges = all.filter((v) => v.nt_response !== undefined) as Required<MsChapVector>[];

describe('MS-CHAPv2 computations (RFC 2759 section 8) against mschapv2.json', () => {
  it('has the RFC 2759 9.2 example and the derived cases', () => {
    expect(exchanges.map((v) => v.id)).toEqual(expect.arrayContaining(['rfc2759-9.2', 'derived-domain-user', 'derived-alice', 'derived-unicode-password', 'derived-empty-password']));
  });

  for (const v of exchanges) {
    it(`${v.id}: every intermediate and output`, () => {
      const auth = fromHex(v.authenticator_challenge);
      const peer = fromHex(v.peer_challenge);
      expect(Buffer.from(v.password_text, 'utf16le').toString('hex')).toBe(v.password_utf16le);
      expect(hex(ntPasswordHash(v.password_text))).toBe(v.password_hash);
      expect(hex(hashNtPasswordHash(fromHex(v.password_hash)))).toBe(v.password_hash_hash);
      // 8.2: the name is hashed without its domain, as UTF-8 octets.
      expect(stripDomain(v.username_ascii)).toBe(v.username_for_challenge_hash);
      expect(hex(challengeHash(peer, auth, v.username_ascii))).toBe(v.challenge);
      expect(hex(challengeHash(peer, auth, new TextEncoder().encode(v.username_for_challenge_hash)))).toBe(v.challenge);
      const nt = challengeResponse(fromHex(v.challenge), fromHex(v.password_hash));
      expect(hex(nt)).toBe(v.nt_response);
      expect([hex(nt.subarray(0, 8)), hex(nt.subarray(8, 16)), hex(nt.subarray(16))]).toEqual(v.intermediate.des_outputs);
      expect(hex(generateNtResponse(auth, peer, v.username_ascii, v.password_text))).toBe(v.nt_response);
      expect(hex(authenticatorResponseDigest(fromHex(v.password_hash), nt, peer, auth, v.username_ascii))).toBe(v.authenticator_response);
      expect(generateAuthenticatorResponse(v.password_text, nt, peer, auth, v.username_ascii)).toBe(v.authenticator_response_text);
      expect(authenticatorResponseText(fromHex(v.authenticator_response))).toBe(v.authenticator_response_text);
      // 8.5 intermediates: the zero-padded hash, its three 7-octet keys and their parity forms.
      const z = v.intermediate.z_password_hash;
      expect(z).toBe(v.password_hash + '00'.repeat(5));
      expect([0, 1, 2].map((i) => z.slice(14 * i, 14 * i + 14))).toEqual(v.intermediate.des_keys_7);
      expect(v.intermediate.des_keys_7.map((k) => hex(desExpandKey(fromHex(k))))).toEqual(v.intermediate.des_keys_8_odd_parity);
      // 8.7 intermediates: the magic constants and the first digest.
      expect(hex(AUTH_MAGIC1)).toBe(v.intermediate.magic1);
      expect(hex(AUTH_MAGIC2)).toBe(v.intermediate.magic2);
      expect(hex(sha1(fromHex(v.password_hash_hash), fromHex(v.nt_response), AUTH_MAGIC1))).toBe(v.intermediate.auth_response_digest1);
    });
  }

  it('rfc2759-9.3: the password hash of the DES key example and its parity keys', () => {
    const v = all.find((x) => x.id === 'rfc2759-9.3')!;
    expect(hex(ntPasswordHash(v.password_text!))).toBe(v.password_hash);
    expect(hex(desExpandKey(fromHex(v.raw_key_1!)))).toBe(v.parity_key_1);
    expect(hex(desExpandKey(fromHex(v.raw_key_2!)))).toBe(v.parity_key_2);
    expect(v.password_hash!.slice(0, 14)).toBe(v.raw_key_1);
    expect(v.password_hash!.slice(14, 28)).toBe(v.raw_key_2);
  });

  it('CheckAuthenticatorResponse accepts the right S= (either case) and refuses anything else', () => {
    const v = exchanges.find((x) => x.id === 'rfc2759-9.2')!;
    const args = [fromHex(v.password_hash), fromHex(v.nt_response), fromHex(v.peer_challenge), fromHex(v.authenticator_challenge), v.username_ascii] as const;
    expect(checkAuthenticatorResponse(...args, v.authenticator_response_text)).toBe(true);
    expect(checkAuthenticatorResponse(...args, v.authenticator_response_text.toLowerCase().replace('s=', 'S='))).toBe(true);
    const flipped = v.authenticator_response_text.slice(0, -1) + (v.authenticator_response_text.endsWith('0') ? '1' : '0');
    expect(checkAuthenticatorResponse(...args, flipped)).toBe(false);
    expect(checkAuthenticatorResponse(...args, v.authenticator_response_text.slice(0, 41))).toBe(false);
    expect(checkAuthenticatorResponse(...args, 's' + v.authenticator_response_text.slice(1))).toBe(false);
    expect(checkAuthenticatorResponse(...args, 'S=' + 'zz'.repeat(20))).toBe(false);
    expect(checkAuthenticatorResponse(...args, '')).toBe(false);
  });

  it('verifyMsChapV2Response: the server side check, with the server MPPE keys', () => {
    const v = exchanges.find((x) => x.id === 'rfc2759-9.2')!;
    const c = {
      username: v.username_ascii,
      ntHash: fromHex(v.password_hash),
      authenticatorChallenge: fromHex(v.authenticator_challenge),
      peerChallenge: fromHex(v.peer_challenge),
      ntResponse: fromHex(v.nt_response),
    };
    const ok = verifyMsChapV2Response(c);
    expect(ok?.authenticatorResponse).toBe(v.authenticator_response_text);
    expect(ok?.mppe).toEqual(deriveMppeMasterKeys(fromHex(v.password_hash_hash), fromHex(v.nt_response), 'server'));
    const bad = fromHex(v.nt_response);
    bad[23]! ^= 1;
    expect(verifyMsChapV2Response({ ...c, ntResponse: bad })).toBeUndefined();
    expect(verifyMsChapV2Response({ ...c, ntResponse: bad.subarray(0, 23) })).toBeUndefined();
    expect(verifyMsChapV2Response({ ...c, peerChallenge: new Uint8Array(15) })).toBeUndefined();
    expect(verifyMsChapV2Response({ ...c, username: 'other' })).toBeUndefined();
    expect(verifyMsChapV2Response({ ...c, username: 'SOMEDOMAIN\\User' })?.authenticatorResponse).toBe(v.authenticator_response_text);
  });
});
