import { describe, it, expect } from 'vitest';
import { AuthLink, FakeVerifier } from './testing.js';
import { createAuthClient, createAuthServer, PPP_CHAP, PPP_EAP, PPP_PAP, type AuthMethod, type AuthSuccess } from './index.js';

const methods: [AuthMethod, number][] = [
  ['pap', PPP_PAP],
  ['chap-md5', PPP_CHAP],
  ['mschapv2', PPP_CHAP],
  ['eap-mschapv2', PPP_EAP],
];

describe('createAuthServer / createAuthClient', () => {
  for (const [method, protocol] of methods) {
    it(`${method}: instances of protocol 0x${protocol.toString(16)} authenticate back to back and expose a 32-octet HLAK`, async () => {
      const l = new AuthLink();
      const verifier = new FakeVerifier({ alice: { password: 'wonderland', attributes: { maxSessions: 2 } } });
      l.server = createAuthServer(method, l.serverHost, { verifier, ctx: { tunnel: 'sstp', peer: '198.18.0.9' }, serverName: 'gw' });
      l.client = createAuthClient(method, l.clientHost, { credentials: { username: 'alice', password: 'wonderland' } });
      expect([l.server.protocol, l.client.protocol, l.server.method, l.client.method]).toEqual([protocol, protocol, method, method]);
      await l.start();
      const s = l.serverHost.result as AuthSuccess;
      const c = l.clientHost.result as AuthSuccess;
      expect(s).toMatchObject({ ok: true, method, username: 'alice', attributes: { maxSessions: 2 } });
      expect(c).toMatchObject({ ok: true, method, username: 'alice' });
      expect(s.hlak).toHaveLength(32);
      expect(s.hlak).toEqual(c.hlak);
      const keyed = method === 'mschapv2' || method === 'eap-mschapv2';
      expect(s.hlak!.some((b) => b !== 0)).toBe(keyed);
      expect(s.mppe !== undefined).toBe(keyed);
      expect(s.msk !== undefined).toBe(method === 'eap-mschapv2');
      expect(verifier.calls.map((c) => c.ctx)).toEqual([{ tunnel: 'sstp', peer: '198.18.0.9', method }]);
      expect(l.serverHost.results).toHaveLength(1);
      expect(l.clientHost.results).toHaveLength(1);
    });
  }
});
