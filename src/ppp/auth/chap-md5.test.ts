import { describe, it, expect } from 'vitest';
import { fromHex, hex } from '../../util/decode.js';
import { AuthLink, FakeVerifier, readVectors } from './testing.js';
import { ChapMd5Client, ChapMd5Server, chapMd5Response } from './chap-md5.js';
import { ChapCode, decodeChap, encodeChap } from './chap-codec.js';
import type { AuthTiming } from './machine.js';

interface ChapVector {
  id: string;
  identifier: number;
  secret: string;
  secret_ascii: string;
  challenge: string;
  response_value: string;
  name_ascii: string;
  challenge_packet_with_name_gateway: string;
  response_packet: string;
}
const { vectors } = readVectors<{ vectors: ChapVector[] }>('chap_md5.json');
const ascii = (s: string) => new TextEncoder().encode(s);
const ctx = { tunnel: 'test', peer: '198.18.0.2' } as const;

function users() {
  return new FakeVerifier({
    alice: { password: 'wonderland' },
    bob: { password: 'builder', disabled: true },
  });
}

function link(username: string, password: string, verifier = users(), timing: Partial<AuthTiming> = {}) {
  const l = new AuthLink();
  l.server = new ChapMd5Server(l.serverHost, { verifier, ctx, serverName: 'gateway', timing });
  l.client = new ChapMd5Client(l.clientHost, { credentials: { username, password }, timing });
  return { l, verifier };
}

describe('CHAP-MD5 response (RFC 1994 4.1)', () => {
  it('matches every vector', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(3);
    for (const v of vectors) {
      expect(hex(chapMd5Response(v.identifier, fromHex(v.secret), fromHex(v.challenge)))).toBe(v.response_value);
    }
  });
});

describe('CHAP-MD5 back to back', () => {
  it('puts the vector packets on the wire byte for byte and authenticates', async () => {
    for (const v of vectors) {
      const l = new AuthLink();
      const verifier = new FakeVerifier({ [v.name_ascii]: { password: v.secret_ascii } });
      l.server = new ChapMd5Server(l.serverHost, {
        verifier,
        ctx,
        serverName: 'gateway',
        identifier: v.identifier,
        challenge: () => fromHex(v.challenge),
      });
      l.client = new ChapMd5Client(l.clientHost, { credentials: { username: v.name_ascii, password: v.secret_ascii } });
      await l.start();
      expect(hex(l.sentBy('server')[0]!)).toBe(v.challenge_packet_with_name_gateway);
      expect(hex(l.sentBy('client')[0]!)).toBe(v.response_packet);
      const success = decodeChap(l.sentBy('server')[1]!);
      expect(success.ok && [success.value.code, success.value.identifier]).toEqual([ChapCode.Success, v.identifier]);
      expect(l.serverHost.result).toMatchObject({ ok: true, method: 'chap-md5', username: v.name_ascii });
      expect(l.clientHost.result).toMatchObject({ ok: true, method: 'chap-md5', username: v.name_ascii });
      const r = l.serverHost.result!;
      expect(r.ok && r.hlak).toEqual(new Uint8Array(32));
      expect(l.clock.armed).toBe(0);
    }
  });

  it('uses a fresh random 16-octet challenge each time', async () => {
    const a = link('alice', 'wonderland');
    const b = link('alice', 'wonderland');
    await a.l.start();
    await b.l.start();
    const ca = decodeChap(a.l.sentBy('server')[0]!);
    const cb = decodeChap(b.l.sentBy('server')[0]!);
    expect(ca.ok && ca.value.code === ChapCode.Challenge && ca.value.value.length).toBe(16);
    expect(ca.ok && cb.ok && ca.value.code === ChapCode.Challenge && cb.value.code === ChapCode.Challenge && hex(ca.value.value) !== hex(cb.value.value)).toBe(true);
  });

  it('refuses a wrong secret with Failure; both sides fail, no second chance', async () => {
    const { l, verifier } = link('alice', 'nope');
    await l.start();
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'bad-credentials', username: 'alice' });
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
    const f = decodeChap(l.sentBy('server')[1]!);
    expect(f.ok && f.value.code).toBe(ChapCode.Failure);
    // A repeated Response gets the same Failure, unverified.
    l.server!.input(l.sentBy('client')[0]!);
    expect(hex(l.sentBy('server')[2]!)).toBe(hex(l.sentBy('server')[1]!));
    expect(verifier.calls).toHaveLength(1);
  });

  it('refuses unknown and disabled users with the verifier reason', async () => {
    const u = link('mallory', 'x');
    await u.l.start();
    expect(u.l.serverHost.result).toMatchObject({ ok: false, reason: 'unknown-user' });
    const d = link('bob', 'builder');
    await d.l.start();
    expect(d.l.serverHost.result).toMatchObject({ ok: false, reason: 'disabled' });
    expect(d.l.clientHost.result).toMatchObject({ ok: false });
  });

  it('retransmits the same challenge on timeout, bounded, then times out', async () => {
    const l = new AuthLink();
    l.server = new ChapMd5Server(l.serverHost, { verifier: users(), ctx, serverName: 'gw', timing: { restartMs: 3000, maxTransmits: 3 } });
    l.server.start();
    await l.run(8999, 1000);
    expect(l.sentBy('server')).toHaveLength(3);
    expect(new Set(l.sentBy('server').map(hex)).size).toBe(1);
    expect(l.serverHost.result).toBeUndefined();
    await l.run(1);
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'timeout' });
    await l.run(30_000, 5000);
    expect(l.sentBy('server')).toHaveLength(3);
  });

  it('a lost Response is repaired by the challenge retransmission; the client answers it again', async () => {
    const { l } = link('alice', 'wonderland');
    l.tamper = (dir, p, i) => (dir === 'toServer' && i === 1 ? null : p);
    await l.start();
    expect(l.serverHost.result).toBeUndefined();
    await l.run(3000, 1000);
    expect(l.serverHost.result).toMatchObject({ ok: true });
    expect(l.clientHost.result).toMatchObject({ ok: true });
    expect(hex(l.sentBy('client')[0]!)).toBe(hex(l.sentBy('client')[1]!));
  });

  it('a lost Success is repaired: the repeated Response gets Success again', async () => {
    const { l, verifier } = link('alice', 'wonderland');
    l.tamper = (dir, p, i) => (dir === 'toClient' && i === 2 ? null : p);
    await l.start();
    expect(l.serverHost.result).toMatchObject({ ok: true });
    expect(l.clientHost.result).toBeUndefined();
    l.server!.input(l.sentBy('client')[0]!);
    await l.settle();
    expect(l.clientHost.result).toMatchObject({ ok: true });
    expect(verifier.calls).toHaveLength(1);
  });

  it('a verifier that never answers is bounded by the deadline', async () => {
    const l = new AuthLink();
    const hung = users();
    hung.chapMd5 = () => new Promise(() => undefined);
    const server = new ChapMd5Server(l.serverHost, { verifier: hung, ctx, serverName: 'gw', timing: { authTimeoutMs: 20_000 } });
    l.server = server;
    l.client = new ChapMd5Client(l.clientHost, { credentials: { username: 'alice', password: 'wonderland' } });
    await l.start();
    expect(server.current).toBe('Verifying');
    await l.run(20_000, 5000);
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'timeout' });
  });

  it('discards a Response with the wrong identifier (RFC 1994 4.1)', async () => {
    const l = new AuthLink();
    const verifier = users();
    l.server = new ChapMd5Server(l.serverHost, { verifier, ctx, serverName: 'gw', identifier: 10, challenge: () => new Uint8Array(16) });
    l.server.start();
    l.server.input(encodeChap({ code: ChapCode.Response, identifier: 11, value: new Uint8Array(16), name: ascii('alice') }));
    await l.settle();
    expect(verifier.calls).toHaveLength(0);
  });

  it('client times out when no challenge comes, and ignores Success/Failure before it responded', async () => {
    const l = new AuthLink();
    l.client = new ChapMd5Client(l.clientHost, { credentials: { username: 'alice', password: 'x' }, timing: { authTimeoutMs: 5000 } });
    l.client.start();
    l.client.input(encodeChap({ code: ChapCode.Success, identifier: 1, message: ascii('') }));
    l.client.input(encodeChap({ code: ChapCode.Failure, identifier: 1, message: ascii('') }));
    expect(l.clientHost.result).toBeUndefined();
    await l.run(5000, 1000);
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'timeout' });
  });

  it('client ignores a Success for another identifier', async () => {
    const l = new AuthLink();
    l.client = new ChapMd5Client(l.clientHost, { credentials: { username: 'alice', password: 'x' } });
    l.client.start();
    l.client.input(encodeChap({ code: ChapCode.Challenge, identifier: 4, value: new Uint8Array(16), name: ascii('gw') }));
    l.client.input(encodeChap({ code: ChapCode.Success, identifier: 5, message: ascii('') }));
    expect(l.clientHost.result).toBeUndefined();
    l.client.input(encodeChap({ code: ChapCode.Success, identifier: 4, message: ascii('') }));
    expect(l.clientHost.result).toMatchObject({ ok: true });
  });

  it('survives malformed input on both sides', async () => {
    const { l, verifier } = link('alice', 'wonderland');
    l.server!.start();
    l.client!.start();
    const garbage = [
      new Uint8Array(0),
      Uint8Array.of(2, 0, 0),
      Uint8Array.of(2, 0, 0, 3),
      Uint8Array.of(2, 0, 0xff, 0xff, 16),
      Uint8Array.of(2, 0, 0, 6, 200, 1),
      Uint8Array.of(1, 0, 0, 5, 0),
      Uint8Array.of(99, 0, 0, 4),
    ];
    for (const g of garbage) {
      expect(() => l.server!.input(g)).not.toThrow();
      expect(() => l.client!.input(g)).not.toThrow();
    }
    expect(verifier.calls).toHaveLength(0);
    await l.settle();
    expect(l.serverHost.result).toMatchObject({ ok: true });
  });

  it('never logs the secret', async () => {
    const { l } = link('alice', 'wonderland');
    await l.start();
    expect(l.logs.text).toContain('chap-md5-server');
    expect(l.logs.text).not.toContain('wonderland');
  });
});
