import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { fromHex, hex } from '../util/decode.js';
import { silentLogger } from '../util/log.js';
import { buildCallConnected, certificateHashes } from './binding.js';
import type { SstpCallEnd } from './call.js';
import { SstpClientCall, SstpClientConnection, type SstpClientCallOptions } from './client.js';
import { controlMessageBytes, dataPacketBytes, decodePacket, type ControlMessage } from './codec.js';
import { AttribStatus, AttributeId, HashProtocol, MessageType } from './constants.js';
import { sstpHttpOkResponse } from './http.js';
import { createPipe, joined } from './testing.js';

const HASHES = certificateHashes(new Uint8Array(Buffer.from('DER of the test server certificate')));
const NONCE = new Uint8Array(32).map((_, i) => 0x55 ^ i);
const HLAK = new Uint8Array(32).map((_, i) => i * 3);
const LCP = fromHex('ff03c021010100040000');
const IPV4 = fromHex('0021450000140000000040010000c6120001c6120002');

const msg = (m: ControlMessage) => controlMessageBytes(m);
const ack = (mask: number) => msg({ type: MessageType.CallConnectAck, hashProtocols: mask, nonce: NONCE });
const NAK = msg({ type: MessageType.CallConnectNak, statusInfos: [{ attribId: 1, status: 4, value: fromHex('0001') }] });

function scripted(extra: Partial<SstpClientCallOptions> & { autoAuth?: boolean } = {}) {
  const clock = new VirtualClock();
  const pipe = createPipe();
  const events: string[] = [];
  const frames: string[] = [];
  let end: SstpCallEnd | undefined;
  const { autoAuth, ...rest } = extra;
  const client: SstpClientCall = new SstpClientCall({
    transport: pipe.b,
    clock,
    log: silentLogger,
    serverCertHashes: HASHES,
    ...rest,
    events: {
      onPppStart: () => {
        events.push('ppp-start');
        if (autoAuth) client.authenticated(HLAK);
      },
      onPppFrame: (f) => frames.push(hex(f)),
      onConnected: (i) => events.push(`connected ${i.hashProtocol}`),
      onClosed: (e) => {
        end = e;
        events.push(`closed ${e.reason}`);
      },
    },
  });
  const sent = () =>
    pipe.b.written.map((b) => {
      const d = decodePacket(b);
      if (!d.ok || d.consumed !== b.length) throw new Error(`client wrote an undecodable packet ${hex(b)}`);
      return d.value;
    });
  const lastControl = (): ControlMessage => {
    const p = sent().filter((x) => x.kind === 'control').at(-1);
    if (!p || p.kind !== 'control') throw new Error('no control message');
    return p.message;
  };
  return { clock, pipe, client, events, frames, sent, lastControl, end: () => end };
}

describe('SSTP client call establishment (3.2.1.1.1, 3.2.5.3.x)', () => {
  it('sends the Call Connect Request of MS-SSTP 4.7, then Call Connected with the binding', () => {
    const s = scripted();
    s.client.start();
    expect(s.client.state).toBe('Client_Connect_Request_Sent');
    expect(hex(s.pipe.b.written[0]!)).toBe('1001000e000100010001000600' + '01');
    s.client.input(ack(3));
    expect(s.client.state).toBe('Client_Connect_Ack_Received');
    expect(s.client.hashProtocol).toBe(HashProtocol.Sha256);
    expect(s.events).toEqual(['ppp-start']);
    s.client.authenticated(HLAK);
    expect(s.client.state).toBe('Client_Call_Connected');
    expect(hex(s.pipe.b.written.at(-1)!)).toBe(
      hex(buildCallConnected({ hashProtocol: 2, nonce: NONCE, certHash: HASHES.sha256, hlak: HLAK })),
    );
    expect(s.events).toEqual(['ppp-start', 'connected 2']);
  });

  it('uses SHA-1 when that is all the server offers, or all it supports', () => {
    const a = scripted();
    a.client.start();
    a.client.input(ack(HashProtocol.Sha1));
    a.client.authenticated(HLAK);
    const m = a.lastControl();
    expect(m.type === MessageType.CallConnected && m.binding.hashProtocol).toBe(1);
    expect(hex(a.pipe.b.written.at(-1)!)).toBe(hex(buildCallConnected({ hashProtocol: 1, nonce: NONCE, certHash: HASHES.sha1, hlak: HLAK })));

    const b = scripted({ hashProtocols: HashProtocol.Sha1 });
    b.client.start();
    b.client.input(ack(3));
    expect(b.client.hashProtocol).toBe(HashProtocol.Sha1);
  });

  it('aborts when the server offers no hash it supports', () => {
    const s = scripted({ hashProtocols: HashProtocol.Sha1 });
    s.client.start();
    s.client.input(ack(HashProtocol.Sha256));
    expect(s.client.state).toBe('Call_Abort_Pending');
    const m = s.lastControl();
    expect(m.type === MessageType.CallAbort && [m.statusInfo?.attribId, m.statusInfo?.status]).toEqual([
      AttributeId.CryptoBindingRequest,
      AttribStatus.ValueNotSupported,
    ]);
  });

  it('resends the request after a Nak, up to its retry limit, then aborts', () => {
    const s = scripted({ maxConnectRetries: 2 });
    s.client.start();
    s.client.input(NAK);
    s.client.input(NAK);
    const types = () => s.sent().map((p) => (p.kind === 'control' ? p.message.type : 'data'));
    expect(types()).toEqual([1, 1, 1]);
    s.client.input(NAK);
    expect(types()).toEqual([1, 1, 1, MessageType.CallAbort]);
    const m = s.lastControl();
    expect(m.type === MessageType.CallAbort && m.statusInfo?.status).toBe(AttribStatus.RetryCountExceeded);
  });

  it('gives up when the server does not answer (negotiation timer)', () => {
    const s = scripted();
    s.client.start();
    s.clock.advance(60_000);
    expect(s.client.state).toBe('Call_Abort_Pending');
    s.clock.advance(3_000);
    expect(s.end()).toMatchObject({ reason: 'aborted', initiator: 'local' });
    expect(s.end()?.detail).toContain('Call Connect Ack');
  });

  it('gives up when PPP does not authenticate in time', () => {
    const s = scripted();
    s.client.start();
    s.client.input(ack(3));
    s.clock.advance(60_000);
    expect(s.client.state).toBe('Call_Abort_Pending');
    expect(s.client.end?.detail).toContain('PPP authentication');
  });

  it('aborts on messages only a client sends, and on an Ack when connected', () => {
    for (const bytes of [msg({ type: MessageType.CallConnectRequest, protocolId: 1 }), ack(3)]) {
      const s = scripted({ autoAuth: true });
      s.client.start();
      s.client.input(ack(3));
      s.client.input(bytes);
      expect(s.client.state).toBe('Call_Abort_Pending');
    }
  });

  it('gates PPP frames: control frames after the Ack, data frames once connected', () => {
    const s = scripted();
    s.client.start();
    expect(s.client.sendPppFrame(LCP)).toBe(false);
    s.client.input(ack(3));
    s.client.input(dataPacketBytes(LCP));
    s.client.input(dataPacketBytes(IPV4));
    expect(s.frames).toEqual([hex(LCP)]);
    expect(s.client.sendPppFrame(IPV4)).toBe(false);
    expect(s.client.sendPppFrame(LCP)).toBe(true);
    s.client.authenticated(HLAK);
    s.client.input(dataPacketBytes(IPV4));
    expect(s.client.sendPppFrame(IPV4)).toBe(true);
    expect(s.frames).toEqual([hex(LCP), hex(IPV4)]);
  });

  it('ignores authenticated() outside Client_Connect_Ack_Received', () => {
    const s = scripted();
    s.client.start();
    s.client.authenticated(HLAK);
    expect(s.client.state).toBe('Client_Connect_Request_Sent');
    expect(s.pipe.b.written).toHaveLength(1);
  });

  it('behaves the same with the server stream split at every byte', () => {
    const stream = new Uint8Array([
      ...ack(3),
      ...dataPacketBytes(LCP),
      ...msg({ type: MessageType.EchoRequest }),
      ...dataPacketBytes(IPV4),
      ...msg({ type: MessageType.EchoResponse }),
      ...msg({ type: MessageType.CallDisconnect, statusInfo: { attribId: 0, status: 0, value: new Uint8Array(0) } }),
    ]);
    const run = (chunks: Uint8Array[]) => {
      const s = scripted({ autoAuth: true });
      s.client.start();
      for (const c of chunks) s.client.input(c);
      return { out: hex(joined(s.pipe.b.written)), frames: s.frames, events: s.events, state: s.client.state };
    };
    const whole = run([stream]);
    expect(whole.state).toBe('Call_Disconnect_Timeout_Pending');
    expect(whole.events).toEqual(['ppp-start', 'connected 2']);
    expect(whole.frames).toEqual([hex(LCP), hex(IPV4)]);
    for (let i = 0; i <= stream.length; i++) expect(run([stream.subarray(0, i), stream.subarray(i)])).toEqual(whole);
  });
});

describe('SstpClientConnection: the HTTP exchange', () => {
  function conn() {
    const clock = new VirtualClock();
    const pipe = createPipe();
    const events: string[] = [];
    const c = new SstpClientConnection({
      transport: pipe.b,
      clock,
      log: silentLogger,
      serverCertHashes: HASHES,
      http: { host: 'vpn.example.test', correlationId: '{C0FFEE00-0000-4000-8000-000000000001}' },
      events: {
        onHttpAccepted: () => events.push('http ok'),
        onHttpFailed: (f, _m, st) => events.push(`http ${f} ${st ?? ''}`.trim()),
        onPppStart: () => events.push('ppp-start'),
      },
    });
    c.start();
    return { clock, pipe, c, events };
  }

  it('sends the request, takes 200, then sends Call Connect Request', () => {
    const t = conn();
    expect(Buffer.from(t.pipe.b.written[0]!).toString('latin1')).toBe(
      'SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n' +
        'Host: vpn.example.test\r\n' +
        'Content-Length: 18446744073709551615\r\n' +
        'SSTPCORRELATIONID: {C0FFEE00-0000-4000-8000-000000000001}\r\n\r\n',
    );
    t.c.input(new Uint8Array([...sstpHttpOkResponse(), ...ack(3)]));
    expect(t.events).toEqual(['http ok', 'ppp-start']);
    expect(t.c.state).toBe('Client_Connect_Ack_Received');
    expect(hex(t.pipe.b.written[1]!)).toBe('1001000e00010001000100060001');
  });

  it('fails with the status when the server refuses', () => {
    const t = conn();
    t.c.input(new Uint8Array(Buffer.from('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n')));
    expect(t.events).toEqual(['http status 503']);
    expect(t.pipe.b.closed).toBe(true);
    expect(t.c.call).toBeUndefined();
  });

  it('fails after 60 s without a response', () => {
    const t = conn();
    t.clock.advance(60_000);
    expect(t.events).toEqual(['http timeout']);
    expect(t.pipe.b.closed).toBe(true);
  });
});
