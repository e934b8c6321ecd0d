import { describe, it, expect } from 'vitest';
import { fromHex, hex } from '../../util/decode.js';
import { AuthLink, FakeVerifier, readVectors } from './testing.js';
import { EapClient, EapServer } from './eap.js';
import { decodeEap, decodeEapMsChapV2, EapCode, EapType, encodeEap, encodeEapMsChapV2, MsChapV2OpCode, type EapMsChapV2 } from './eap-codec.js';
import { parseFailureMessage } from './mschapv2-codec.js';
import type { AuthTiming } from './machine.js';
import type { AuthSuccess } from './types.js';

interface V {
  id: string;
  authenticator_challenge: string;
  peer_challenge: string;
  authenticator_response_text: string;
  intermediate: { response_value_49: string };
}
const rfc = readVectors<{ vectors: V[] }>('mschapv2.json').vectors.find((v) => v.id === 'rfc2759-9.2')!;
const directional = readVectors<{ vectors: Record<string, string>[] }>('mppe.json').vectors.find((v) => v.id === 'derived-directional-keys')!;
const hlakVector = readVectors<{ vectors: Record<string, string>[] }>('sstp_crypto_binding.json').vectors.find(
  (v) => v.id === 'derived-mschapv2-rfc2759-sha256',
)!.hlak!;

const ctx = { tunnel: 'sstp', peer: '198.18.0.2' } as const;
const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const ascii = (s: string) => new TextEncoder().encode(s);

function users() {
  return new FakeVerifier({
    User: { password: 'clientPass' },
    bob: { password: 'builder', disabled: true },
    carol: { password: 'old', expired: true },
  });
}

function link(username: string, password: string, o: { verifier?: FakeVerifier; timing?: Partial<AuthTiming> } = {}) {
  const l = new AuthLink();
  const verifier = o.verifier ?? users();
  l.server = new EapServer(l.serverHost, {
    verifier,
    ctx,
    serverName: 'gateway',
    identifier: 0,
    challenge: () => fromHex(rfc.authenticator_challenge),
    ...(o.timing ? { timing: o.timing } : {}),
  });
  l.client = new EapClient(l.clientHost, {
    credentials: { username, password },
    peerChallenge: () => fromHex(rfc.peer_challenge),
    ...(o.timing ? { timing: o.timing } : {}),
  });
  return { l, verifier };
}

type Decoded = { code: number; identifier: number; type?: number; ms?: EapMsChapV2; data?: Uint8Array };
function dec(p: Uint8Array): Decoded {
  const d = decodeEap(p);
  if (!d.ok) throw new Error(d.message);
  const v = d.value;
  if (v.code === EapCode.Request || v.code === EapCode.Response) {
    const m = v.type === EapType.MsChapV2 ? decodeEapMsChapV2(v.data) : undefined;
    return { code: v.code, identifier: v.identifier, type: v.type, data: v.data, ...(m?.ok ? { ms: m.value } : {}) };
  }
  return { code: v.code, identifier: v.identifier };
}

describe('EAP-MSCHAPv2 back to back', () => {
  it('the whole exchange: Identity, Challenge, Response, Success, ack, EAP-Success; keys, MSK and HLAK', async () => {
    const { l } = link('User', 'clientPass');
    await l.start();
    const s = l.sentBy('server').map(dec);
    const c = l.sentBy('client').map(dec);
    expect(s.map((p) => [p.code, p.identifier, p.type])).toEqual([
      [EapCode.Request, 1, EapType.Identity],
      [EapCode.Request, 2, EapType.MsChapV2],
      [EapCode.Request, 3, EapType.MsChapV2],
      // RFC 3748 4.2: the Identifier of the Response it answers (the Success ack's).
      [EapCode.Success, 3, undefined],
    ]);
    expect(c.map((p) => [p.code, p.identifier, p.type])).toEqual([
      [EapCode.Response, 1, EapType.Identity],
      [EapCode.Response, 2, EapType.MsChapV2],
      [EapCode.Response, 3, EapType.MsChapV2],
    ]);
    expect(text(c[0]!.data!)).toBe('User');
    expect(s[1]!.ms).toEqual({ op: MsChapV2OpCode.Challenge, msId: 2, value: fromHex(rfc.authenticator_challenge), name: ascii('gateway') });
    const response = c[1]!.ms!;
    expect(response.op === MsChapV2OpCode.Response && [response.msId, hex(response.value), text(response.name)]).toEqual([2, rfc.intermediate.response_value_49, 'User']);
    const success = s[2]!.ms!;
    expect(success.op === MsChapV2OpCode.Success && text(success.message)).toBe(`${rfc.authenticator_response_text} M=Access granted`);
    expect(c[2]!.ms).toEqual({ op: 'success-ack' });

    const sr = l.serverHost.result as AuthSuccess;
    const cr = l.clientHost.result as AuthSuccess;
    expect(sr).toMatchObject({ ok: true, method: 'eap-mschapv2', username: 'User' });
    expect(cr).toMatchObject({ ok: true, method: 'eap-mschapv2', username: 'User' });
    expect(hex(cr.mppe!.masterSendKey)).toBe(directional.master_send_key_client);
    expect(hex(cr.mppe!.masterReceiveKey)).toBe(directional.master_receive_key_client);
    expect(sr.mppe!.masterSendKey).toEqual(cr.mppe!.masterReceiveKey);
    expect(sr.msk).toHaveLength(64);
    expect(sr.msk).toEqual(cr.msk);
    expect(hex(sr.msk!)).toBe(directional.master_send_key_client! + directional.master_receive_key_client! + '00'.repeat(32));
    expect(hex(sr.hlak!)).toBe(hlakVector);
    expect(hex(cr.hlak!)).toBe(hlakVector);
    expect(l.clock.armed).toBe(0);
  });

  it('wrong password: Failure Request E=691 R=0, ack, EAP-Failure; both sides fail', async () => {
    const { l } = link('User', 'wrong');
    await l.start();
    const s = l.sentBy('server').map(dec);
    const failure = s[2]!.ms!;
    if (failure.op !== MsChapV2OpCode.Failure) throw new Error('expected a Failure Request');
    expect(text(failure.message)).toMatch(/^E=691 R=0 C=[0-9A-F]{32} V=3 M=/);
    expect(l.sentBy('client').map(dec)[2]!.ms).toEqual({ op: 'failure-ack' });
    expect(s[3]).toMatchObject({ code: EapCode.Failure });
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'bad-credentials', username: 'User' });
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
  });

  it('unknown, disabled and expired users: E=691 / 649 / 648 and the verifier reason', async () => {
    for (const [user, code, serverReason, clientReason] of [
      ['nobody', 691, 'unknown-user', 'bad-credentials'],
      ['bob', 649, 'disabled', 'disabled'],
      ['carol', 648, 'expired', 'expired'],
    ] as const) {
      const { l } = link(user, user === 'bob' ? 'builder' : 'old');
      await l.start();
      const failure = l.sentBy('server').map(dec)[2]!.ms!;
      expect(failure.op === MsChapV2OpCode.Failure && parseFailureMessage(text(failure.message))?.error).toBe(code);
      expect(l.serverHost.result).toMatchObject({ ok: false, reason: serverReason });
      expect(l.clientHost.result).toMatchObject({ ok: false, reason: clientReason });
    }
  });

  it('mutual authentication: a forged S= makes the client fail and send no ack', async () => {
    const { l } = link('User', 'clientPass');
    l.tamper = (dir, p) => {
      const d = dec(p);
      if (dir === 'toClient' && d.ms?.op === MsChapV2OpCode.Success) {
        const forged = text(d.ms.message).replace('S=4', 'S=5');
        return encodeEap({ code: EapCode.Request, identifier: d.identifier, type: 26, data: encodeEapMsChapV2({ op: MsChapV2OpCode.Success, msId: d.ms.msId, message: ascii(forged) }) });
      }
      return p;
    };
    await l.start();
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'bad-credentials' });
    expect(l.sentBy('client')).toHaveLength(2);
    expect(l.serverHost.result).toBeUndefined();
    await l.run(30_000, 3000);
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'timeout' });
    expect(dec(l.sentBy('server').at(-1)!).code).toBe(EapCode.Failure);
  });

  it('EAP-Success and EAP-Failure carry the Identifier of the Response they answer (RFC 3748 4.2), as pppd saw it', async () => {
    // The exchange Debian 12's pppd (EAP-MSCHAPv2 peer, behind sstpc) had with the gateway, byte for byte
    // where it matters; the gateway used to answer its Success ack (id 0x91) with EAP-Success id 0x92:
    //   rcvd [EAP Request id=0x8f Identity]             sent [EAP Response id=0x8f Identity <Name "ms-user">]
    //   rcvd [EAP Request id=0x90 MSCHAPv2 Challenge]   sent [EAP Response id=0x90 MSCHAPv2 Response]
    //   rcvd [EAP Request id=0x91 MSCHAPv2 Success]     sent [EAP Response id=0x91 MSCHAPv2 Success]
    //   rcvd [EAP Success id=0x92]   <- RFC 3748 4.2 requires 0x91
    const l = new AuthLink();
    l.server = new EapServer(l.serverHost, {
      verifier: users(),
      ctx,
      serverName: 'vpngw',
      identifier: 0x8e,
      challenge: () => fromHex(rfc.authenticator_challenge),
    });
    l.server.start();
    expect(hex(l.sentBy('server')[0]!)).toBe('018f000501');
    l.server.input(fromHex('028f000901' + hex(ascii('User'))));
    const challenge = dec(l.sentBy('server')[1]!);
    expect([challenge.identifier, challenge.ms?.op === MsChapV2OpCode.Challenge && challenge.ms.msId]).toEqual([0x90, 0x90]);
    // Response (Length 63): Type 26, OpCode 2, MS-CHAPv2-ID 0x90, MS-Length 58 (4+1+49+4), Value-Size 49,
    // the RFC 2759 9.2 Response value, Name "User".
    l.server.input(fromHex('0290003f' + '1a' + '0290003a' + '31' + rfc.intermediate.response_value_49 + hex(ascii('User'))));
    await l.settle();
    const success = dec(l.sentBy('server')[2]!);
    expect([success.code, success.identifier, success.ms?.op]).toEqual([EapCode.Request, 0x91, MsChapV2OpCode.Success]);
    // The peer's Success ack: Type 26, OpCode 3 alone.
    l.server.input(fromHex('029100061a03'));
    expect(hex(l.sentBy('server')[3]!)).toBe('03910004');
    expect(l.serverHost.result).toMatchObject({ ok: true, username: 'User' });
  });

  it('EAP-Failure carries the Identifier of the Failure ack, of a Nak, or of the last Request after a timeout', async () => {
    // Refused: Failure Request id 3, the peer's ack id 3, EAP-Failure id 3.
    const { l } = link('User', 'wrong');
    await l.start();
    const s = l.sentBy('server').map(dec);
    expect(s.map((p) => [p.code, p.identifier])).toEqual([
      [EapCode.Request, 1],
      [EapCode.Request, 2],
      [EapCode.Request, 3],
      [EapCode.Failure, 3],
    ]);
    // A Nak (Response id 2) to the Challenge: EAP-Failure id 2.
    const n = new AuthLink();
    n.server = new EapServer(n.serverHost, { verifier: users(), ctx, serverName: 'gw', identifier: 0 });
    n.server.start();
    n.server.input(encodeEap({ code: EapCode.Response, identifier: 1, type: EapType.Identity, data: ascii('User') }));
    n.server.input(encodeEap({ code: EapCode.Response, identifier: 2, type: EapType.Nak, data: Uint8Array.of(4) }));
    expect(hex(n.sentBy('server').at(-1)!)).toBe('04020004');
    // No answer at all: the Identity Request (id 1) times out; EAP-Failure id 1.
    const t = new AuthLink();
    t.server = new EapServer(t.serverHost, { verifier: users(), ctx, serverName: 'gw', identifier: 0, timing: { restartMs: 3000, maxTransmits: 2 } });
    t.server.start();
    await t.run(6001, 1000);
    expect(t.serverHost.result).toMatchObject({ ok: false, reason: 'timeout' });
    expect(hex(t.sentBy('server').at(-1)!)).toBe('04010004');
  });

  it('the client refuses a premature EAP-Success', async () => {
    const l = new AuthLink();
    l.client = new EapClient(l.clientHost, { credentials: { username: 'User', password: 'clientPass' } });
    l.client.start();
    l.client.input(encodeEap({ code: EapCode.Request, identifier: 1, type: EapType.Identity, data: new Uint8Array(0) }));
    l.client.input(encodeEap({ code: EapCode.Success, identifier: 2 }));
    expect(l.clientHost.result).toMatchObject({ ok: false, reason: 'protocol-error' });
  });

  it('a peer that Naks EAP-MSCHAPv2 is refused with method-not-allowed', async () => {
    const l = new AuthLink();
    l.server = new EapServer(l.serverHost, { verifier: users(), ctx, serverName: 'gw', identifier: 0 });
    l.server.start();
    l.server.input(encodeEap({ code: EapCode.Response, identifier: 1, type: EapType.Identity, data: ascii('User') }));
    l.server.input(encodeEap({ code: EapCode.Response, identifier: 2, type: EapType.Nak, data: Uint8Array.of(13) }));
    await l.settle();
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'method-not-allowed' });
    expect(dec(l.sentBy('server').at(-1)!).code).toBe(EapCode.Failure);
  });

  it('the client Naks methods it does not know, and answers Notifications', async () => {
    const l = new AuthLink();
    l.client = new EapClient(l.clientHost, { credentials: { username: 'User', password: 'x' } });
    l.client.start();
    l.client.input(encodeEap({ code: EapCode.Request, identifier: 5, type: 13, data: Uint8Array.of(0x20) }));
    l.client.input(encodeEap({ code: EapCode.Request, identifier: 6, type: EapType.Notification, data: ascii('hello') }));
    const out = l.sentBy('client').map(dec);
    expect(out[0]).toMatchObject({ code: EapCode.Response, identifier: 5, type: EapType.Nak, data: Uint8Array.of(26) });
    expect(out[1]).toMatchObject({ code: EapCode.Response, identifier: 6, type: EapType.Notification });
  });

  it('the server retransmits its Request, bounded, then sends EAP-Failure (timeout)', async () => {
    const l = new AuthLink();
    l.server = new EapServer(l.serverHost, { verifier: users(), ctx, serverName: 'gw', timing: { restartMs: 3000, maxTransmits: 3 } });
    l.server.start();
    await l.run(8999, 1000);
    expect(l.sentBy('server')).toHaveLength(3);
    expect(new Set(l.sentBy('server').map(hex)).size).toBe(1);
    await l.run(1);
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'timeout' });
    expect(dec(l.sentBy('server').at(-1)!).code).toBe(EapCode.Failure);
  });

  it('lost packets are repaired: the client answers a retransmitted Request with the same Response', async () => {
    const { l, verifier } = link('User', 'clientPass');
    // Lose the client's MSCHAPv2 Response once, and its Success ack once.
    let lostResponse = false;
    let lostAck = false;
    l.tamper = (dir, p) => {
      if (dir !== 'toServer') return p;
      const d = dec(p);
      if (d.ms?.op === MsChapV2OpCode.Response && !lostResponse) return (lostResponse = true), null;
      if (d.ms?.op === 'success-ack' && !lostAck) return (lostAck = true), null;
      return p;
    };
    await l.start();
    await l.run(10_000, 1000);
    expect(l.serverHost.result).toMatchObject({ ok: true });
    expect(l.clientHost.result).toMatchObject({ ok: true });
    expect(verifier.calls).toHaveLength(1);
    const responses = l.sentBy('client').map(dec).filter((d) => d.ms?.op === MsChapV2OpCode.Response);
    expect(responses).toHaveLength(2);
  });

  it('discards Responses with the wrong Identifier or MS-CHAPv2-ID mismatch refuses', async () => {
    const l = new AuthLink();
    const verifier = users();
    l.server = new EapServer(l.serverHost, { verifier, ctx, serverName: 'gw', identifier: 0, challenge: () => new Uint8Array(16) });
    l.server.start();
    l.server.input(encodeEap({ code: EapCode.Response, identifier: 9, type: EapType.Identity, data: ascii('User') }));
    expect(l.sentBy('server')).toHaveLength(1);
    l.server.input(encodeEap({ code: EapCode.Response, identifier: 1, type: EapType.Identity, data: ascii('User') }));
    expect(l.sentBy('server')).toHaveLength(2);
    const value = new Uint8Array(49);
    l.server.input(
      encodeEap({ code: EapCode.Response, identifier: 2, type: 26, data: encodeEapMsChapV2({ op: MsChapV2OpCode.Response, msId: 77, value, name: ascii('User') }) }),
    );
    await l.settle();
    expect(verifier.calls).toHaveLength(0);
    const f = dec(l.sentBy('server')[2]!).ms!;
    expect(f.op).toBe(MsChapV2OpCode.Failure);
    l.server.input(encodeEap({ code: EapCode.Response, identifier: 3, type: 26, data: Uint8Array.of(4) }));
    expect(l.serverHost.result).toMatchObject({ ok: false, reason: 'protocol-error' });
  });

  it('survives malformed input on both sides and still authenticates', async () => {
    const { l, verifier } = link('User', 'clientPass');
    l.server!.start();
    l.client!.start();
    const garbage = [
      new Uint8Array(0),
      Uint8Array.of(2, 1, 0),
      Uint8Array.of(2, 1, 0, 4),
      Uint8Array.of(2, 1, 0, 99, 1),
      Uint8Array.of(1, 1, 0, 6, 26, 1),
      Uint8Array.of(1, 1, 0, 9, 26, 1, 1, 0, 200),
      Uint8Array.of(2, 2, 0, 9, 26, 2, 2, 0, 4),
      Uint8Array.of(1, 2, 0, 10, 26, 9, 2, 0, 5, 0),
      Uint8Array.of(77, 1, 0, 4),
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
    expect(l.logs.text).toContain('eap-server');
    expect(l.logs.text).not.toContain('clientPass');
    expect(l.logs.text).not.toContain(hlakVector.slice(0, 16));
  });
});
