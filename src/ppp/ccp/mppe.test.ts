import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex, hex } from '../../util/decode.js';
import { MPPE_C, MPPE_D, MPPE_H, MPPE_L, MPPE_M, MPPE_S, deriveMppeSession, describeMppeBits, singleStrength, strongest, type MppeBits } from './mppe.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const vectors = JSON.parse(readFileSync(path.resolve(here, '../../../../shared/vectors/mppe.json'), 'utf8')) as {
  vectors: { id: string; master_send_key_client?: string; master_receive_key_client?: string; strengths?: Record<string, string | number>[] }[];
};

describe('MPPE Supported Bits (RFC 3078 section 2)', () => {
  it('have the RFC values', () => {
    expect([MPPE_C, MPPE_D, MPPE_L, MPPE_S, MPPE_M, MPPE_H]).toEqual([0x01, 0x10, 0x20, 0x40, 0x80, 0x01000000]);
  });

  it('strength helpers', () => {
    expect(strongest(MPPE_L | MPPE_M | MPPE_S)).toBe(128);
    expect(strongest(MPPE_L | MPPE_M)).toBe(56);
    expect(strongest(MPPE_H)).toBeUndefined();
    expect(singleStrength(MPPE_H | MPPE_L)).toBe(40);
    expect(singleStrength(MPPE_S | MPPE_L)).toBeUndefined();
    expect(describeMppeBits(MPPE_H | MPPE_S | MPPE_C)).toBe('0x01000041 H(stateless) S(128) C(MPPC)');
  });
});

describe('MPPE session keys from the authentication master keys (RFC 3079 3, vectors in mppe.json)', () => {
  const v = vectors.vectors.find((x) => x.id === 'derived-directional-keys')!;
  const client = { masterSendKey: fromHex(v.master_send_key_client!), masterReceiveKey: fromHex(v.master_receive_key_client!) };
  // The server's send key is the client's receive key and vice versa.
  const server = { masterSendKey: client.masterReceiveKey, masterReceiveKey: client.masterSendKey };

  for (const s of v.strengths!) {
    const bits = s['key_bits'] as MppeBits;
    it(`${bits}-bit: client and server initial session keys`, () => {
      const c = deriveMppeSession(client, bits, false);
      expect(c.bits).toBe(bits);
      expect(hex(c.sendKey)).toBe(s['client_send_initial_session_key']);
      expect(hex(c.recvKey)).toBe(s['client_recv_initial_session_key']);
      expect(hex(c.sendStartKey)).toBe(s['client_send_start_key']);
      const sv = deriveMppeSession(server, bits, true);
      expect(hex(sv.sendKey)).toBe(s['client_recv_initial_session_key']);
      expect(hex(sv.recvKey)).toBe(s['client_send_initial_session_key']);
      expect(sv.stateless).toBe(true);
    });
  }
});
