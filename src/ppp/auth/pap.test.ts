import { describe, it, expect } from 'vitest';
import { AuthLink, FakeVerifier } from './testing.js';
import { PapClient, PapServer } from './pap.js';
import { decodePap, encodePap, PapCode } from './pap-codec.js';
import type { AuthTiming } from './machine.js';

const ascii = (s: string) => new TextEncoder().encode(s);
const ctx = { tunnel: 'test', peer: '198.18.0.2' } as const;

function users() {
  return new FakeVerifier({
    alice: { password: 'wonderland', attributes: { staticIpv4: '198.18.5.5' } },
    bob: { password: 'builder', disabled: true },
  });
}

function link(username: string, password: string, verifier = users(), timing: Partial<AuthTiming> = {}) {
  const l = new AuthLink();
  l.server = new PapServer(l.serverHost, { verifier, ctx, timing });
  l.client = new PapClient(l.clientHost, { credentials: { username, password }, timing });
  return { l, verifier };
}

function request(id: number, user: string, pw: string) {
  return encodePap({ code: PapCode.AuthenticateRequest, identifier: id, peerId: ascii(user), password: ascii(pw) });
}

describe('PAP back to back', () => {
  it('authenticates a good user: Request, then Ack with the same identifier', async () => {
    const { l } = link('alice', 'wonderland');
    await l.start();
    expect(l.serverHost.result).toMatchObject({ ok: true, method: 'pap', username: 'alice', attributes: { staticIpv4: '198.18.5.5' } });
    expect(l.clientHost.result).toMatchObject({ ok: true, method: 'pap', username: 'alice' });
    const r = l.serverHost.result!;
    expect(r.ok && r.hlak).toEqual(new Uint8Array(32));
    const [req] = l.sentBy('client');
    const [ack] = l.sentBy('server');
    const dq = decodePap(req!);
    const da = decodePap(ack!);
    expect(dq.ok && dq.value).toMatchObject({ code: PapCode.AuthenticateRequest, peerId: ascii('alice'), password: ascii('wonderland') });
    expect(da.ok && da.value.code).toBe(PapCode.AuthenticateAck);
    expect(da.ok && dq.ok && da.value.identifier).toBe(dq.ok && dq.value.identifier);
    expect(l.clock.armed).toBe(0);
  });

  it('refuses a wrong password: Nak, client fails at once, server reports the refusal when its deadline passes', async () => {
    const { l } = link('alice', 'wrong');
    await l.start();
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
    expect(l.clientHost.result!.ok === false && l.clientHost.result!.message).toContain('Authentication failed');
    expect(l.serverHost.result).toBeUndefined();
    await l.run(30_000, 1000);
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'bad-credentials', username: 'alice' });
  });

  it('gives a peer maxAttempts tries, then refuses for good', async () => {
    const l = new AuthLink();
    const verifier = users();
    l.server = new PapServer(l.serverHost, { verifier, ctx, timing: { maxAttempts: 3 } });
    l.server.start();
    for (const [id, pw] of [[1, 'x'], [2, 'y']] as const) {
      l.inject('toServer', request(id, 'alice', pw));
      await l.settle();
      expect(l.serverHost.result).toBeUndefined();
    }
    l.inject('toServer', request(3, 'alice', 'z'));
    await l.settle();
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
    const replies = l.sentBy('server').map((p) => decodePap(p));
    expect(replies.map((d) => d.ok && [d.value.code, d.value.identifier])).toEqual([
      [PapCode.AuthenticateNak, 1],
      [PapCode.AuthenticateNak, 2],
      [PapCode.AuthenticateNak, 3],
    ]);
    // Further requests get the Nak again and are not verified.
    l.inject('toServer', request(4, 'alice', 'wonderland'));
    await l.settle();
    expect(verifier.calls).toHaveLength(3);
    expect(l.sentBy('server')).toHaveLength(4);
  });

  it('accepts a correct password on a later attempt', async () => {
    const l = new AuthLink();
    l.server = new PapServer(l.serverHost, { verifier: users(), ctx });
    l.server.start();
    l.inject('toServer', request(1, 'alice', 'typo'));
    await l.settle();
    l.inject('toServer', request(2, 'alice', 'wonderland'));
    await l.settle();
    expect(l.serverHost.result).toMatchObject({ ok: true, username: 'alice' });
  });

  it('refuses unknown and disabled users with the verifier reason; disabled is final', async () => {
    const unknown = link('mallory', 'x');
    await unknown.l.start();
    expect(unknown.l.clientHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
    await unknown.l.run(30_000, 5000);
    expect(unknown.l.serverHost.result).toMatchObject({ ok: false, reason: 'unknown-user' });

    const disabled = link('bob', 'builder');
    await disabled.l.start();
    expect(disabled.l.serverHost.result).toMatchObject({ ok: false, reason: 'disabled', username: 'bob' });
    const nak = decodePap(disabled.l.sentBy('server')[0]!);
    expect(nak.ok && nak.value.code === PapCode.AuthenticateNak && Buffer.from(nak.value.message).toString()).toBe('Account disabled');
  });

  it('server times out when the peer never sends', async () => {
    const l = new AuthLink();
    l.server = new PapServer(l.serverHost, { verifier: users(), ctx, timing: { authTimeoutMs: 10_000 } });
    l.server.start();
    await l.run(9_999, 1000);
    expect(l.serverHost.result).toBeUndefined();
    await l.run(1);
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'timeout' });
    expect(l.sentBy('server')).toHaveLength(0);
  });

  it('client retransmits its request every restartMs, maxTransmits times, then times out', async () => {
    const l = new AuthLink();
    l.client = new PapClient(l.clientHost, { credentials: { username: 'alice', password: 'pw' }, timing: { restartMs: 3000, maxTransmits: 4 } });
    l.client.start();
    await l.settle();
    expect(l.sentBy('client')).toHaveLength(1);
    await l.run(9000, 1000);
    expect(l.sentBy('client')).toHaveLength(4);
    expect(new Set(l.sentBy('client').map((p) => Buffer.from(p).toString('hex'))).size).toBe(1);
    expect(l.clientHost.result).toBeUndefined();
    await l.run(3000, 1000);
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'timeout' });
    expect(l.sentBy('client')).toHaveLength(4);
  });

  it('a lost Ack is repaired: the retransmitted request gets the Ack again without a second verification', async () => {
    const { l, verifier } = link('alice', 'wonderland');
    l.tamper = (dir, p, i) => (dir === 'toClient' && i === 1 ? null : p); // drop the first Ack
    await l.start();
    expect(l.serverHost.result).toMatchObject({ ok: true });
    expect(l.clientHost.result).toBeUndefined();
    await l.run(3000, 1000);
    expect(l.clientHost.result).toMatchObject({ ok: true });
    expect(verifier.calls).toHaveLength(1);
  });

  it('drops retransmissions that arrive while the first copy is being verified', async () => {
    const l = new AuthLink();
    const verifier = users();
    l.server = new PapServer(l.serverHost, { verifier, ctx });
    l.server.start();
    l.server.input(request(1, 'alice', 'wonderland'));
    l.server.input(request(1, 'alice', 'wonderland'));
    await l.settle();
    expect(verifier.calls).toHaveLength(1);
    expect(l.sentBy('server')).toHaveLength(1);
  });

  it('survives malformed input: truncated, lying lengths, unknown codes, wrong direction', async () => {
    const l = new AuthLink();
    const verifier = users();
    l.server = new PapServer(l.serverHost, { verifier, ctx });
    l.server.start();
    const good = request(5, 'alice', 'wonderland');
    const garbage = [
      new Uint8Array(0),
      Uint8Array.of(1),
      good.subarray(0, 6),
      Uint8Array.of(1, 5, 0xff, 0xff, 5, 0x61),
      Uint8Array.of(1, 5, 0, 2),
      Uint8Array.of(1, 5, 0, 7, 200, 0x61, 0x62),
      Uint8Array.of(7, 5, 0, 4),
      encodePap({ code: PapCode.AuthenticateAck, identifier: 5, message: ascii('hi') }),
    ];
    for (const g of garbage) expect(() => l.server!.input(g)).not.toThrow();
    await l.settle();
    expect(verifier.calls).toHaveLength(0);
    expect(l.sentBy('server')).toHaveLength(0);
    l.server.input(good);
    await l.settle();
    expect(l.serverHost.result).toMatchObject({ ok: true });
  });

  it('client ignores replies with another identifier and malformed replies', async () => {
    const l = new AuthLink();
    l.client = new PapClient(l.clientHost, { credentials: { username: 'alice', password: 'pw' } });
    l.client.start();
    const d = decodePap(l.sentBy('client')[0]!);
    const id = d.ok ? d.value.identifier : -1;
    l.client.input(encodePap({ code: PapCode.AuthenticateAck, identifier: (id + 1) & 255, message: ascii('') }));
    l.client.input(Uint8Array.of(2, id, 0, 9));
    expect(l.clientHost.result).toBeUndefined();
    l.client.input(encodePap({ code: PapCode.AuthenticateAck, identifier: id, message: ascii('') }));
    expect(l.clientHost.result).toMatchObject({ ok: true });
  });

  it('a failing backend refuses with backend-error (final)', async () => {
    const verifier = users();
    verifier.broken = true;
    const { l } = link('alice', 'wonderland', verifier);
    await l.start();
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'backend-error' });
    expect(l.clientHost.result).toMatchObject({ ok: false });
  });

  it('stop() silences the instance: no more packets, no done()', async () => {
    const { l } = link('alice', 'wonderland');
    l.client!.start();
    l.client!.stop();
    l.server!.start();
    await l.settle();
    await l.run(60_000, 5000);
    expect(l.sentBy('client')).toHaveLength(1);
    expect(l.clientHost.results).toHaveLength(0);
    expect(l.clock.armed).toBe(0);
  });

  it('never logs the password', async () => {
    const { l } = link('alice', 'wonderland');
    await l.start();
    const wrong = link('alice', 'hunter2-secret');
    await wrong.l.start();
    await wrong.l.run(30_000, 5000);
    expect(l.logs.text).toContain('alice');
    expect(l.logs.text).not.toContain('wonderland');
    expect(wrong.l.logs.text).not.toContain('hunter2');
  });
});
