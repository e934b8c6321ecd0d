import { describe, it, expect } from 'vitest';
import { fromHex, hex } from '../../util/decode.js';
import { rc4 } from '../../crypto/wasm-crypto.js';
import { readVectors } from './testing.js';
import {
  deriveMppeMasterKeys,
  eapMsChapV2Msk,
  getAsymmetricStartKey,
  getMasterKey,
  getNewKeyFromSha,
  hlakFromMsk,
  initialSessionKey,
  msChapV2Hlak,
  mppeSessionKeys,
  nextSessionKey,
  reduceSessionKey,
  startKeyFor,
  type MppeBits,
} from './mppe-keys.js';

interface MppeVector {
  id: string;
  key_bits?: MppeBits;
  password_hash_hash?: string;
  nt_response?: string;
  master_key?: string;
  send_start_key?: string;
  send_session_key?: string;
  send_session_key_unreduced?: string;
  sample_plaintext?: string;
  sample_ciphertext?: string;
  master_send_key_client?: string;
  master_receive_key_client?: string;
  strengths?: {
    key_bits: MppeBits;
    client_send_start_key: string;
    client_recv_start_key: string;
    client_send_initial_session_key: string;
    client_recv_initial_session_key: string;
  }[];
  start_key?: string;
  initial_session_key?: string;
  changes?: { previous_session_key: string; interim_key: string; rc4_of_interim: string; new_session_key: string }[];
}
const mppe = readVectors<{ vectors: MppeVector[] }>('mppe.json').vectors;
const binding = readVectors<{ vectors: Record<string, string | number>[] }>('sstp_crypto_binding.json').vectors;

describe('MPPE keys (RFC 3079) against mppe.json', () => {
  for (const v of mppe.filter((x) => x.id.startsWith('rfc3079-'))) {
    it(`${v.id}: master, start and session keys, sample encryption (server send direction)`, () => {
      const bits = v.key_bits!;
      const master = getMasterKey(fromHex(v.password_hash_hash!), fromHex(v.nt_response!));
      expect(hex(master)).toBe(v.master_key);
      const len = bits === 128 ? 16 : 8;
      // The RFC's sample is the server's send key: Magic3.
      const start = getAsymmetricStartKey(master, len, true, true);
      expect(hex(start)).toBe(v.send_start_key);
      expect(hex(getNewKeyFromSha(start, start, len))).toBe(v.send_session_key_unreduced);
      const session = initialSessionKey(start, bits);
      expect(hex(session)).toBe(v.send_session_key);
      expect(hex(reduceSessionKey(fromHex(v.send_session_key_unreduced!), bits))).toBe(v.send_session_key);
      expect(hex(rc4(session, fromHex(v.sample_plaintext!)))).toBe(v.sample_ciphertext);
      // The same key seen from the client is its receive key.
      expect(hex(getAsymmetricStartKey(master, len, false, false))).toBe(v.send_start_key);
      const serverKeys = deriveMppeMasterKeys(fromHex(v.password_hash_hash!), fromHex(v.nt_response!), 'server');
      expect(hex(startKeyFor(serverKeys.masterSendKey, bits))).toBe(v.send_start_key);
    });
  }

  it('derived-directional-keys: both roles, every strength, both directions', () => {
    const v = mppe.find((x) => x.id === 'derived-directional-keys')!;
    const client = deriveMppeMasterKeys(fromHex(v.password_hash_hash!), fromHex(v.nt_response!), 'client');
    const server = deriveMppeMasterKeys(fromHex(v.password_hash_hash!), fromHex(v.nt_response!), 'server');
    expect(hex(client.masterSendKey)).toBe(v.master_send_key_client);
    expect(hex(client.masterReceiveKey)).toBe(v.master_receive_key_client);
    expect(server.masterSendKey).toEqual(client.masterReceiveKey);
    expect(server.masterReceiveKey).toEqual(client.masterSendKey);
    expect(v.strengths).toHaveLength(3);
    for (const s of v.strengths!) {
      const c = mppeSessionKeys(client, s.key_bits);
      expect(hex(c.send.startKey)).toBe(s.client_send_start_key);
      expect(hex(c.receive.startKey)).toBe(s.client_recv_start_key);
      expect(hex(c.send.sessionKey)).toBe(s.client_send_initial_session_key);
      expect(hex(c.receive.sessionKey)).toBe(s.client_recv_initial_session_key);
      const srv = mppeSessionKeys(server, s.key_bits);
      expect(srv.send).toEqual(c.receive);
      expect(srv.receive).toEqual(c.send);
    }
  });

  for (const v of mppe.filter((x) => x.id.startsWith('derived-key-change-'))) {
    it(`${v.id}: RFC 3078 7.3 key change chain`, () => {
      const bits = v.key_bits!;
      const start = fromHex(v.start_key!);
      expect(hex(initialSessionKey(start, bits))).toBe(v.initial_session_key);
      let current = fromHex(v.initial_session_key!);
      for (const c of v.changes!) {
        expect(hex(current)).toBe(c.previous_session_key);
        const len = bits === 128 ? 16 : 8;
        const interim = getNewKeyFromSha(start, current, len);
        expect(hex(interim)).toBe(c.interim_key);
        expect(hex(rc4(interim, interim))).toBe(c.rc4_of_interim);
        current = nextSessionKey(start, current, bits);
        expect(hex(current)).toBe(c.new_session_key);
      }
    });
  }
});

describe('SSTP HLAK (MS-SSTP 3.2.5.2.2) against sstp_crypto_binding.json', () => {
  it('MS-CHAPv2: client send|recv equals server recv|send equals the vector hlak', () => {
    const v = binding.find((x) => x.id === 'derived-mschapv2-rfc2759-sha256')!;
    const m = mppe.find((x) => x.id === 'derived-directional-keys')!;
    const client = deriveMppeMasterKeys(fromHex(m.password_hash_hash!), fromHex(m.nt_response!), 'client');
    const server = deriveMppeMasterKeys(fromHex(m.password_hash_hash!), fromHex(m.nt_response!), 'server');
    expect(hex(msChapV2Hlak(client, 'client'))).toBe(v.hlak);
    expect(hex(msChapV2Hlak(server, 'server'))).toBe(v.hlak_server);
    expect(v.hlak_client).toBe(v.hlak_server);
  });

  it('MS-CHAPv2: reproduces the third-party (sstp-client) HLAKs from their MPPE keys', () => {
    for (const v of binding.filter((x) => String(x.id).startsWith('thirdparty-sstp-client-mschapv2'))) {
      const keys = { masterSendKey: fromHex(String(v.client_mppe_send_key)), masterReceiveKey: fromHex(String(v.client_mppe_recv_key)) };
      expect(hex(msChapV2Hlak(keys, 'client'))).toBe(v.hlak);
      // The server holds the same keys the other way round and builds the same HLAK.
      expect(hex(msChapV2Hlak({ masterSendKey: keys.masterReceiveKey, masterReceiveKey: keys.masterSendKey }, 'server'))).toBe(v.hlak);
    }
  });

  it('EAP-MSCHAPv2: MSK = recv|send|0^32 (authenticator names), the same on both sides; HLAK = MSK[0..31]', () => {
    const m = mppe.find((x) => x.id === 'derived-directional-keys')!;
    const client = deriveMppeMasterKeys(fromHex(m.password_hash_hash!), fromHex(m.nt_response!), 'client');
    const server = deriveMppeMasterKeys(fromHex(m.password_hash_hash!), fromHex(m.nt_response!), 'server');
    const msk = eapMsChapV2Msk(server, 'server');
    expect(msk).toHaveLength(64);
    expect(eapMsChapV2Msk(client, 'client')).toEqual(msk);
    expect(hex(msk.subarray(32))).toBe('00'.repeat(32));
    const v = binding.find((x) => x.id === 'derived-mschapv2-rfc2759-sha256')!;
    expect(hex(hlakFromMsk(msk))).toBe(v.hlak);
  });

  it('PAP/CHAP: the zero-HLAK vector is 32 zero octets', () => {
    const v = binding.find((x) => x.id === 'derived-zero-hlak-sha256')!;
    expect(v.hlak).toBe('00'.repeat(32));
  });
});
