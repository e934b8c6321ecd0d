import { describe, it, expect } from 'vitest';
import { fromHex, hex } from '../../util/decode.js';
import { AuthLink, FakeVerifier, readVectors } from './testing.js';
import { MsChapV2Client, MsChapV2Server } from './mschapv2.js';
import { ChapCode, decodeChap, encodeChap } from './chap-codec.js';
import { generateNtResponse } from './mschapv2-crypto.js';
import { parseFailureMessage } from './mschapv2-codec.js';
import type { AuthTiming } from './machine.js';
import type { AuthSuccess } from './types.js';

interface V {
  id: string;
  username_ascii: string;
  password_text: string;
  authenticator_challenge: string;
  peer_challenge: string;
  nt_response: string;
  authenticator_response_text: string;
  intermediate: { response_value_49: string };
}
const msv = readVectors<{ vectors: V[] }>('mschapv2.json').vectors;
const mppe = readVectors<{ vectors: Record<string, string>[] }>('mppe.json').vectors;
const binding = readVectors<{ vectors: Record<string, string>[] }>('sstp_crypto_binding.json').vectors;
const rfc = msv.find((v) => v.id === 'rfc2759-9.2')!;
const directional = mppe.find((v) => v.id === 'derived-directional-keys')!;
const hlakVector = binding.find((v) => v.id === 'derived-mschapv2-rfc2759-sha256')!.hlak!;

const ctx = { tunnel: 'test', peer: '198.18.0.2' } as const;
const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');

function users() {
  return new FakeVerifier({
    User: { password: 'clientPass' },
    'DOMAIN\\User': { password: 'clientPass' },
    alice: { password: 'wonderland' },
    bob: { password: 'builder', disabled: true },
    carol: { password: 'old', expired: true },
  });
}

/** Challenges handed out in order: the vector's first, then 0x01.., 0x02.. */
function challenges(first: Uint8Array) {
  let n = 0;
  return () => (n++ === 0 ? first : new Uint8Array(16).fill(n));
}

function link(
  username: string,
  password: string,
  o: { verifier?: FakeVerifier; timing?: Partial<AuthTiming>; retry?: () => { username: string; password: string } | undefined } = {},
) {
  const l = new AuthLink();
  const verifier = o.verifier ?? users();
  l.server = new MsChapV2Server(l.serverHost, {
    verifier,
    ctx,
    serverName: 'gateway',
    identifier: 7,
    challenge: challenges(fromHex(rfc.authenticator_challenge)),
    ...(o.timing ? { timing: o.timing } : {}),
  });
  l.client = new MsChapV2Client(l.clientHost, {
    credentials: { username, password },
    peerChallenge: () => fromHex(rfc.peer_challenge),
    ...(o.timing ? { timing: o.timing } : {}),
    ...(o.retry ? { retryCredentials: o.retry } : {}),
  });
  return { l, verifier };
}

function failureOf(p: Uint8Array) {
  const d = decodeChap(p);
  if (!d.ok || d.value.code !== ChapCode.Failure) throw new Error('not a Failure');
  return { identifier: d.value.identifier, raw: text(d.value.message), f: parseFailureMessage(text(d.value.message))! };
}

describe('MS-CHAPv2 back to back (RFC 2759)', () => {
  it('RFC 2759 9.2 on the wire: Response Value, S=, MPPE keys and HLAK on both sides', async () => {
    const { l } = link('User', 'clientPass');
    await l.start();
    const [challenge, success] = l.sentBy('server');
    const dc = decodeChap(challenge!);
    expect(dc.ok && dc.value).toMatchObject({ code: ChapCode.Challenge, identifier: 7, value: fromHex(rfc.authenticator_challenge) });
    const dr = decodeChap(l.sentBy('client')[0]!);
    expect(dr.ok && dr.value.code === ChapCode.Response && hex(dr.value.value)).toBe(rfc.intermediate.response_value_49);
    expect(dr.ok && dr.value.code === ChapCode.Response && text(dr.value.name)).toBe('User');
    const ds = decodeChap(success!);
    expect(ds.ok && ds.value.code === ChapCode.Success && text(ds.value.message)).toBe(`${rfc.authenticator_response_text} M=Access granted`);

    const s = l.serverHost.result as AuthSuccess;
    const c = l.clientHost.result as AuthSuccess;
    expect(s).toMatchObject({ ok: true, method: 'mschapv2', username: 'User' });
    expect(c).toMatchObject({ ok: true, method: 'mschapv2', username: 'User' });
    expect(hex(c.mppe!.masterSendKey)).toBe(directional.master_send_key_client);
    expect(hex(c.mppe!.masterReceiveKey)).toBe(directional.master_receive_key_client);
    expect(s.mppe!.masterSendKey).toEqual(c.mppe!.masterReceiveKey);
    expect(s.mppe!.masterReceiveKey).toEqual(c.mppe!.masterSendKey);
    expect(hex(c.hlak!)).toBe(hlakVector);
    expect(hex(s.hlak!)).toBe(hlakVector);
    expect(l.clock.armed).toBe(0);
  });

  it('a DOMAIN\\ prefixed name authenticates with the same NT-Response (RFC 2759 8.2)', async () => {
    const { l } = link('DOMAIN\\User', 'clientPass');
    await l.start();
    const r = decodeChap(l.sentBy('client')[0]!);
    expect(r.ok && r.value.code === ChapCode.Response && hex(r.value.value)).toBe(rfc.intermediate.response_value_49);
    expect(r.ok && r.value.code === ChapCode.Response && text(r.value.name)).toBe('DOMAIN\\User');
    expect(l.serverHost.result).toMatchObject({ ok: true, username: 'DOMAIN\\User' });
    expect(l.clientHost.result).toMatchObject({ ok: true });
  });

  it('wrong password: Failure "E=691 R=1 C=<new challenge> V=3 M=..."; a client without retry gives up', async () => {
    const { l } = link('alice', 'nope');
    await l.start();
    const fail = failureOf(l.sentBy('server')[1]!);
    expect(fail.raw).toMatch(/^E=691 R=1 C=[0-9A-F]{32} V=3 M=.+$/);
    expect(fail.identifier).toBe(7);
    expect(hex(fail.f.challenge!)).toBe('01'.repeat(16).replace(/01/g, '02'));
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
    expect(l.serverHost.result).toBeUndefined();
    await l.run(30_000, 5000);
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'bad-credentials', username: 'alice' });
  });

  it('retry: the client answers the Failure with identifier + 1 over the C= challenge and gets in', async () => {
    let asked = 0;
    const { l, verifier } = link('alice', 'typo', { retry: () => (asked++, { username: 'alice', password: 'wonderland' }) });
    await l.start();
    expect(asked).toBe(1);
    const fail = failureOf(l.sentBy('server')[1]!);
    const second = decodeChap(l.sentBy('client')[1]!);
    if (!second.ok || second.value.code !== ChapCode.Response) throw new Error('no second Response');
    expect(second.value.identifier).toBe(8);
    // The second NT-Response answers the new challenge.
    expect(hex(second.value.value.subarray(24, 48))).toBe(hex(generateNtResponse(fail.f.challenge!, fromHex(rfc.peer_challenge), 'alice', 'wonderland')));
    const ok = decodeChap(l.sentBy('server')[2]!);
    expect(ok.ok && [ok.value.code, ok.value.identifier]).toEqual([ChapCode.Success, 8]);
    expect(l.serverHost.result).toMatchObject({ ok: true, username: 'alice' });
    expect(l.clientHost.result).toMatchObject({ ok: true, username: 'alice' });
    expect(verifier.calls).toHaveLength(2);
  });

  it('retries are bounded: after maxAttempts the Failure says R=0 and both sides fail', async () => {
    const { l, verifier } = link('alice', 'a', { timing: { maxAttempts: 3 }, retry: () => ({ username: 'alice', password: 'still wrong' }) });
    await l.start();
    const fails = l.sentBy('server').slice(1).map(failureOf);
    expect(fails.map((f) => [f.identifier, f.f.error, f.f.retry])).toEqual([
      [7, 691, true],
      [8, 691, true],
      [9, 691, false],
    ]);
    expect(verifier.calls).toHaveLength(3);
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
  });

  it('expired password: E=648 R=0; disabled account: E=649 R=0; unknown user: E=691', async () => {
    const cases = [
      ['carol', 'old', 648, 'expired', 'expired'],
      ['bob', 'builder', 649, 'disabled', 'disabled'],
      ['nobody', 'x', 691, 'unknown-user', 'bad-credentials'],
    ] as const;
    for (const [user, pw, code, serverReason, clientReason] of cases) {
      const { l } = link(user, pw);
      await l.start();
      const f = failureOf(l.sentBy('server')[1]!);
      expect(f.f.error).toBe(code);
      expect(f.f.retry).toBe(code === 691);
      expect(l.clientHost.result).toMatchObject({ ok: false, reason: clientReason });
      await l.run(30_000, 10_000);
      expect(l.serverHost.result).toMatchObject({ ok: false, reason: serverReason });
    }
  });

  it('mutual authentication: a wrong or missing S= fails the client even though the server accepted', async () => {
    for (const rewrite of [
      (m: string) => m.replace(/S=(.)/, (_x, c: string) => `S=${c === 'A' ? 'B' : 'A'}`),
      () => 'M=Access granted',
      (m: string) => m.slice(0, 20),
    ]) {
      const { l } = link('User', 'clientPass');
      l.tamper = (dir, p) => {
        const d = decodeChap(p);
        if (dir === 'toClient' && d.ok && d.value.code === ChapCode.Success) {
          return encodeChap({ code: ChapCode.Success, identifier: d.value.identifier, message: new Uint8Array(Buffer.from(rewrite(text(d.value.message)), 'latin1')) });
        }
        return p;
      };
      await l.start();
      expect(l.serverHost.result).toMatchObject({ ok: true });
      expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
      expect((l.clientHost.result as { message: string }).message).toMatch(/did not prove/);
    }
  });

  it('the server retransmits its Challenge, bounded; the client answers a retransmission with the same Response', async () => {
    const { l } = link('User', 'clientPass', { timing: { restartMs: 3000, maxTransmits: 3 } });
    l.tamper = (dir, p, i) => (dir === 'toServer' && i === 1 ? null : p); // lose the first Response
    await l.start();
    await l.run(3000, 1000);
    expect(l.serverHost.result).toMatchObject({ ok: true });
    const responses = l.sentBy('client');
    expect(responses).toHaveLength(2);
    expect(hex(responses[0]!)).toBe(hex(responses[1]!));

    const silent = new AuthLink();
    silent.server = new MsChapV2Server(silent.serverHost, { verifier: users(), ctx, serverName: 'gw', timing: { restartMs: 3000, maxTransmits: 3 } });
    silent.server.start();
    await silent.run(20_000, 1000);
    expect(silent.sentBy('server')).toHaveLength(3);
    expect(silent.serverHost.result).toMatchObject({ ok: false, reason: 'timeout' });
  });

  it('a lost Success is repaired by the repeated Response, without a second verification', async () => {
    const { l, verifier } = link('User', 'clientPass');
    l.tamper = (dir, p, i) => (dir === 'toClient' && i === 2 ? null : p);
    await l.start();
    expect(l.clientHost.result).toBeUndefined();
    l.server!.input(l.sentBy('client')[0]!);
    await l.settle();
    expect(l.clientHost.result).toMatchObject({ ok: true });
    expect(verifier.calls).toHaveLength(1);
  });

  it('client deadline when no challenge comes', async () => {
    const l = new AuthLink();
    l.client = new MsChapV2Client(l.clientHost, { credentials: { username: 'u', password: 'p' }, timing: { authTimeoutMs: 4000 } });
    l.client.start();
    await l.run(4000, 1000);
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'timeout' });
  });

  it('a Response Value that is not 49 octets is refused (protocol-error, R=0)', async () => {
    const l = new AuthLink();
    const verifier = users();
    l.server = new MsChapV2Server(l.serverHost, { verifier, ctx, serverName: 'gw', identifier: 3 });
    l.server.start();
    l.server.input(encodeChap({ code: ChapCode.Response, identifier: 3, value: new Uint8Array(16), name: new TextEncoder().encode('User') }));
    await l.settle();
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'protocol-error' });
    expect(failureOf(l.sentBy('server')[1]!).f.retry).toBe(false);
    expect(verifier.calls).toHaveLength(0);
  });

  it('survives malformed input on both sides and still authenticates', async () => {
    const { l, verifier } = link('User', 'clientPass');
    l.server!.start();
    l.client!.start();
    const garbage = [
      new Uint8Array(0),
      Uint8Array.of(2, 7, 0),
      Uint8Array.of(2, 7, 0, 60, 49),
      Uint8Array.of(2, 7, 0, 5, 49),
      Uint8Array.of(1, 7, 0, 6, 2, 1), // 2-octet challenge: not MS-CHAPv2
      Uint8Array.of(3, 7, 0, 4),
      Uint8Array.of(4, 7, 0, 8, 0x45, 0x3d, 0x78, 0x20),
      Uint8Array.of(42, 7, 0, 4),
    ];
    for (const g of garbage) {
      expect(() => l.server!.input(g)).not.toThrow();
      expect(() => l.client!.input(g)).not.toThrow();
    }
    expect(verifier.calls).toHaveLength(0);
    await l.settle();
    expect(l.serverHost.result).toMatchObject({ ok: true });
    expect(l.clientHost.result).toMatchObject({ ok: true });
  });

  it('never logs the password or keys', async () => {
    const { l } = link('User', 'clientPass');
    await l.start();
    expect(l.logs.text).toContain('User');
    expect(l.logs.text).not.toContain('clientPass');
    expect(l.logs.text).not.toContain(hlakVector.slice(0, 16));
  });
});
