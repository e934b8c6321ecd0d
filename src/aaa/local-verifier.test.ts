import { describe, it, expect } from 'vitest';
import { fromHex } from '../util/decode.js';
import { chapMd5Response } from '../ppp/auth/chap-md5.js';
import { generateNtResponse } from '../ppp/auth/mschapv2-crypto.js';
import { AuthLink, readVectors } from '../ppp/auth/testing.js';
import { createAuthClient, createAuthServer, type AuthMethod, type VerifyContext } from '../ppp/auth/index.js';
import { UserStore } from './user-store.js';
import { LocalVerifier, secretsEqual } from './local-verifier.js';
import { FailureLimiter } from './rate-limit.js';
import { throttleVerifier } from './throttle.js';

const rfc = readVectors<{ vectors: Record<string, string>[] }>('mschapv2.json').vectors.find((v) => v.id === 'rfc2759-9.2')!;
const chapVector = readVectors<{ vectors: Record<string, string | number>[] }>('chap_md5.json').vectors[1]!;

const NOW = Date.UTC(2026, 5, 1);
const ctx: VerifyContext = { tunnel: 'sstp', peer: '198.18.0.2' };
const ascii = (s: string) => new TextEncoder().encode(s);

function store() {
  return UserStore.fromObject({
    users: {
      alice: { password: 'wonderland', staticIpv4: '198.18.128.10', mppe: 'require', maxSessions: 2 },
      User: { password: 'clientPass' },
      hashy: { ntHash: '44ebba8d5312b8d611474411f56989ae' }, // NtPasswordHash("clientPass")
      bob: { password: 'builder', enabled: false },
      carol: { password: 'old', expires: '2026-01-01' },
      dave: { password: 'x', tunnels: ['pptp'] },
      eve: { password: 'x', methods: ['eap-mschapv2'] },
    },
  });
}

function verifier() {
  return new LocalVerifier(store(), { now: () => NOW });
}

const msArgs = (username: string, password: string, hashedName = username) =>
  [
    username,
    fromHex(rfc.authenticator_challenge!),
    fromHex(rfc.peer_challenge!),
    generateNtResponse(fromHex(rfc.authenticator_challenge!), fromHex(rfc.peer_challenge!), hashedName, password),
  ] as const;

describe('LocalVerifier', () => {
  it('PAP: right password, attributes from the store', async () => {
    expect(await verifier().pap(ctx, 'alice', ascii('wonderland'))).toEqual({
      ok: true,
      username: 'alice',
      attributes: { staticIpv4: '198.18.128.10', mppe: 'require', maxSessions: 2 },
    });
  });

  it('PAP refusals: wrong password, unknown user, disabled, expired, tunnel, NT-hash-only, method list', async () => {
    const v = verifier();
    expect(await v.pap(ctx, 'alice', ascii('wonderlan'))).toMatchObject({ ok: false, reason: 'bad-credentials' });
    expect(await v.pap(ctx, 'alice', ascii(''))).toMatchObject({ ok: false, reason: 'bad-credentials' });
    expect(await v.pap(ctx, 'mallory', ascii('x'))).toMatchObject({ ok: false, reason: 'unknown-user' });
    expect(await v.pap(ctx, 'bob', ascii('builder'))).toMatchObject({ ok: false, reason: 'disabled' });
    expect(await v.pap(ctx, 'carol', ascii('old'))).toMatchObject({ ok: false, reason: 'expired' });
    expect(await v.pap(ctx, 'dave', ascii('x'))).toMatchObject({ ok: false, reason: 'protocol-not-allowed' });
    expect(await v.pap({ ...ctx, tunnel: 'pptp' }, 'dave', ascii('x'))).toMatchObject({ ok: true });
    const hashOnly = await v.pap(ctx, 'hashy', ascii('clientPass'));
    expect(hashOnly).toMatchObject({ ok: false, reason: 'method-not-allowed' });
    expect(hashOnly.ok === false && hashOnly.message).toMatch(/only an NT hash.*needs the cleartext password/);
    expect(await v.pap(ctx, 'eve', ascii('x'))).toMatchObject({ ok: false, reason: 'method-not-allowed' });
  });

  it('reveals account status only to a peer that knows the password', async () => {
    const v = verifier();
    expect(await v.pap(ctx, 'bob', ascii('wrong'))).toMatchObject({ reason: 'bad-credentials' });
    expect(await v.pap(ctx, 'carol', ascii('wrong'))).toMatchObject({ reason: 'bad-credentials' });
    expect(await v.pap(ctx, 'dave', ascii('wrong'))).toMatchObject({ reason: 'bad-credentials' });
  });

  it('CHAP-MD5 against the vector, and its refusals', async () => {
    const v = new LocalVerifier(
      UserStore.fromObject({ users: { [String(chapVector.name_ascii)]: { password: String(chapVector.secret_ascii) }, hashy: { ntHash: '00'.repeat(16) } } }),
    );
    const id = Number(chapVector.identifier);
    const challenge = fromHex(String(chapVector.challenge));
    const good = fromHex(String(chapVector.response_value));
    expect(await v.chapMd5(ctx, String(chapVector.name_ascii), id, challenge, good)).toMatchObject({ ok: true });
    expect(await v.chapMd5(ctx, String(chapVector.name_ascii), id + 1, challenge, good)).toMatchObject({ reason: 'bad-credentials' });
    expect(await v.chapMd5(ctx, String(chapVector.name_ascii), id, challenge, good.subarray(0, 15))).toMatchObject({ reason: 'bad-credentials' });
    expect(await v.chapMd5(ctx, 'nobody', id, challenge, good)).toMatchObject({ reason: 'unknown-user' });
    expect(await v.chapMd5(ctx, 'hashy', 1, challenge, chapMd5Response(1, ascii('clientPass'), challenge))).toMatchObject({ reason: 'method-not-allowed' });
  });

  it('MS-CHAPv2 against RFC 2759 9.2: S= and server MPPE keys, from a password or a stored NT hash', async () => {
    const v = verifier();
    const r = await v.msChapV2({ ...ctx, method: 'mschapv2' }, ...msArgs('User', 'clientPass'));
    expect(r).toMatchObject({ ok: true, username: 'User', authenticatorResponse: rfc.authenticator_response_text });
    const h = await v.msChapV2(ctx, ...msArgs('hashy', 'clientPass'));
    expect(h.ok).toBe(true);
    expect(await v.msChapV2(ctx, ...msArgs('User', 'clientpass'))).toMatchObject({ ok: false, reason: 'bad-credentials' });
    expect(await v.msChapV2(ctx, ...msArgs('nobody', 'x'))).toMatchObject({ ok: false, reason: 'unknown-user' });
    expect(await v.msChapV2(ctx, ...msArgs('bob', 'builder'))).toMatchObject({ ok: false, reason: 'disabled' });
    expect(await v.msChapV2(ctx, ...msArgs('carol', 'old'))).toMatchObject({ ok: false, reason: 'expired' });
  });

  it('MS-CHAPv2 with a DOMAIN\\ name finds the bare user and hashes the name as sent', async () => {
    const r = await verifier().msChapV2(ctx, ...msArgs('CORP\\User', 'clientPass', 'User'));
    expect(r).toMatchObject({ ok: true, username: 'User', authenticatorResponse: rfc.authenticator_response_text });
  });

  it('tells MS-CHAPv2 from EAP-MSCHAPv2 by ctx.method for per-user method lists', async () => {
    const v = verifier();
    expect(await v.msChapV2({ ...ctx, method: 'mschapv2' }, ...msArgs('eve', 'x'))).toMatchObject({ reason: 'method-not-allowed' });
    expect(await v.msChapV2({ ...ctx, method: 'eap-mschapv2' }, ...msArgs('eve', 'x'))).toMatchObject({ ok: true });
  });

  it('follows a store reload without being rebuilt', async () => {
    const s = UserStore.fromObject({ users: { a: { password: 'one' } } });
    const v = new LocalVerifier(s);
    expect((await v.pap(ctx, 'a', ascii('one'))).ok).toBe(true);
    await s.passwd('a', 'two');
    expect((await v.pap(ctx, 'a', ascii('one'))).ok).toBe(false);
    expect((await v.pap(ctx, 'a', ascii('two'))).ok).toBe(true);
  });

  it('secretsEqual compares any lengths', () => {
    expect(secretsEqual('abc', 'abc')).toBe(true);
    expect(secretsEqual('abc', 'abcd')).toBe(false);
    expect(secretsEqual(new Uint8Array(0), '')).toBe(true);
  });
});

describe('protocols + LocalVerifier + throttle, back to back', () => {
  const methods: AuthMethod[] = ['pap', 'chap-md5', 'mschapv2', 'eap-mschapv2'];

  for (const method of methods) {
    it(`${method}: a stored user gets in with the store's attributes`, async () => {
      const l = new AuthLink();
      const limiter = new FailureLimiter({ clock: l.clock, failuresPerMinute: 5 });
      const v = throttleVerifier(verifier(), { limiter, clock: l.clock, failureDelayMs: 1000 });
      l.server = createAuthServer(method, l.serverHost, { verifier: v, ctx, serverName: 'gw' });
      l.client = createAuthClient(method, l.clientHost, { credentials: { username: 'alice', password: 'wonderland' } });
      await l.start();
      expect(l.serverHost.result).toMatchObject({ ok: true, username: 'alice', attributes: { staticIpv4: '198.18.128.10' } });
      expect(l.clientHost.result).toMatchObject({ ok: true });
    });
  }

  it('failures are answered only after the delay, and a guessing source gets rate-limited', async () => {
    // The limiter keeps its own clock, which never moves here: no token grows back during the test.
    const limiter = new FailureLimiter({ clock: new AuthLink().clock, failuresPerMinute: 3 });
    const results: unknown[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      const l = new AuthLink();
      const v = throttleVerifier(verifier(), { limiter, clock: l.clock, failureDelayMs: 1000 });
      l.server = createAuthServer('mschapv2', l.serverHost, { verifier: v, ctx, serverName: 'gw' });
      l.client = createAuthClient('mschapv2', l.clientHost, { credentials: { username: 'alice', password: `guess${attempt}` } });
      await l.start();
      expect(l.serverHost.result).toBeUndefined();
      expect(l.clientHost.result).toBeUndefined();
      await l.run(1000, 500);
      expect(l.clientHost.result).toMatchObject({ ok: false });
      await l.run(30_000, 10_000);
      results.push(l.serverHost.result);
    }
    expect(results.map((r) => (r as { reason: string }).reason)).toEqual(['bad-credentials', 'bad-credentials', 'bad-credentials', 'rate-limited']);
  });
});
