import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { fromHex, hex } from '../util/decode.js';
import { silentLogger } from '../util/log.js';
import { buildCallConnected, certificateHashes } from './binding.js';
import { type SstpCallEnd } from './call.js';
import {
  controlMessageBytes,
  dataPacketBytes,
  decodePacket,
  type ControlMessage,
  type SstpPacket,
  type StatusInfo,
} from './codec.js';
import { AttribStatus, AttributeId, HashProtocol, MessageType } from './constants.js';
import { ServerState, SstpServerCall, SstpServerConnection, type SstpServerCallOptions } from './server.js';
import { createPipe, joined } from './testing.js';

const CERT = new Uint8Array(Buffer.from('DER of the test server certificate'));
const HASHES = certificateHashes(CERT);
const NONCE = new Uint8Array(32).map((_, i) => (i * 7 + 3) & 0xff);
const HLAK = fromHex('d5f0e9521e3ea9589645e86051c822268b7cdc149b993a1ba118cb153f56dccb');
const LCP = fromHex('ff03c021010100040000');
const IPV4 = fromHex('0021450000140000000040010000c6120001c6120002');

const msg = (m: ControlMessage) => controlMessageBytes(m);
const REQUEST = msg({ type: MessageType.CallConnectRequest, protocolId: 1 });
const ECHO_REQUEST = msg({ type: MessageType.EchoRequest });
const ECHO_RESPONSE = msg({ type: MessageType.EchoResponse });
const DISCONNECT = msg({ type: MessageType.CallDisconnect, statusInfo: { attribId: 0, status: 0, value: new Uint8Array(0) } });
const ABORT = msg({ type: MessageType.CallAbort, statusInfo: { attribId: 0, status: 0, value: new Uint8Array(0) } });

function callConnected(opts: { hash?: number; hlak?: Uint8Array; nonce?: Uint8Array; certHash?: Uint8Array } = {}): Uint8Array {
  const hash = opts.hash ?? HashProtocol.Sha256;
  return buildCallConnected({
    hashProtocol: hash,
    nonce: opts.nonce ?? NONCE,
    certHash: opts.certHash ?? (hash === HashProtocol.Sha1 ? HASHES.sha1 : HASHES.sha256),
    hlak: opts.hlak ?? HLAK,
  });
}

/** A server call whose peer is the test itself. */
function scripted(extra: Partial<SstpServerCallOptions> = {}) {
  const clock = new VirtualClock();
  const pipe = createPipe();
  const frames: string[] = [];
  const events: string[] = [];
  let end: SstpCallEnd | undefined;
  const server = new SstpServerCall({
    transport: pipe.a,
    clock,
    log: silentLogger,
    certHashes: HASHES,
    randomBytes: () => NONCE.slice(),
    ...extra,
    events: {
      onPppStart: () => events.push('ppp-start'),
      onPppFrame: (f) => frames.push(hex(f)),
      onConnected: (i) => events.push(`connected ${i.hashProtocol}`),
      onClosed: (e) => {
        end = e;
        events.push(`closed ${e.reason}`);
      },
    },
  });
  /** Packets the server wrote, decoded. */
  const sent = (): SstpPacket[] =>
    pipe.a.written.map((b) => {
      const d = decodePacket(b);
      if (!d.ok || d.consumed !== b.length) throw new Error(`server wrote an undecodable packet ${hex(b)}`);
      return d.value;
    });
  const sentTypes = () => sent().map((p) => (p.kind === 'data' ? 'data' : p.message.type));
  const lastControl = (): ControlMessage => {
    const p = sent().filter((x) => x.kind === 'control').at(-1);
    if (!p || p.kind !== 'control') throw new Error('no control message sent');
    return p.message;
  };
  return { clock, pipe, server, frames, events, sent, sentTypes, lastControl, end: () => end };
}

function statusOfAbort(m: ControlMessage): [number, number] | undefined {
  if (m.type !== MessageType.CallAbort || !m.statusInfo) return undefined;
  return [m.statusInfo.attribId, m.statusInfo.status];
}

function connected(extra: Partial<SstpServerCallOptions> = {}) {
  const s = scripted(extra);
  s.server.start();
  s.server.input(REQUEST);
  s.server.authenticated(HLAK);
  s.server.input(callConnected());
  expect(s.server.state).toBe(ServerState.ServerCallConnected);
  return s;
}

describe('SSTP server call establishment (3.3.1.1.1, 3.3.5.2.2-3)', () => {
  it('answers Call Connect Request with the Ack the spec fixes, then connects on a valid binding', () => {
    const s = scripted();
    expect(s.server.state).toBe('Server_Call_Disconnected');
    s.server.start();
    expect(s.server.state).toBe('Server_Connect_Request_Pending');
    s.server.input(REQUEST);
    expect(s.server.state).toBe('Server_Call_Connected_Pending');
    expect(s.events).toEqual(['ppp-start']);
    // 2.2.10: 48 octets, Crypto Binding Request with both hashes and our nonce.
    expect(hex(joined(s.pipe.a.written))).toBe('100100300002000100040028000000' + '03' + hex(NONCE));

    s.server.authenticated(HLAK);
    s.server.input(callConnected());
    expect(s.server.state).toBe('Server_Call_Connected');
    expect(s.events).toEqual(['ppp-start', 'connected 2']);
    expect(s.clock.armed).toBe(1); // the Hello timer only
  });

  it('offers only what it is configured to offer, and verifies SHA-1 bindings', () => {
    const s = scripted({ hashProtocols: HashProtocol.Sha1 });
    s.server.start();
    s.server.input(REQUEST);
    expect(s.pipe.a.written[0]![15]).toBe(0x01);
    s.server.authenticated(HLAK);
    s.server.input(callConnected({ hash: HashProtocol.Sha1 }));
    expect(s.events).toEqual(['ppp-start', 'connected 1']);
  });

  it('keeps a Call Connected that arrives before PPP authentication and verifies it later', () => {
    const s = scripted();
    s.server.start();
    s.server.input(REQUEST);
    s.server.input(callConnected());
    expect(s.server.state).toBe('Server_Call_Connected_Pending');
    expect(s.events).toEqual(['ppp-start']);
    s.clock.advance(10_000);
    s.server.authenticated(HLAK);
    expect(s.server.state).toBe('Server_Call_Connected');
    expect(s.events).toEqual(['ppp-start', 'connected 2']);
  });

  it('uses 32 zero octets as HLAK when PPP authentication produced no keys (PAP, CHAP)', () => {
    const s = scripted();
    s.server.start();
    s.server.input(REQUEST);
    s.server.authenticated();
    s.server.input(callConnected({ hlak: new Uint8Array(32) }));
    expect(s.server.state).toBe('Server_Call_Connected');
  });

  const tampered: Array<[string, () => Uint8Array, string]> = [
    ['a tampered Compound MAC', () => { const b = callConnected(); b[90]! ^= 0x80; return b; }, 'Compound MAC'],
    ['the hash of another certificate', () => callConnected({ certHash: certificateHashes(new Uint8Array([1, 2, 3])).sha256 }), 'certificate hash'],
    ['another nonce', () => callConnected({ nonce: new Uint8Array(32) }), 'nonce'],
    ['a Compound MAC made with another HLAK', () => callConnected({ hlak: new Uint8Array(32).fill(9) }), 'Compound MAC'],
  ];
  for (const [name, bytes, detail] of tampered) {
    it(`aborts the call on ${name}`, () => {
      const s = scripted();
      s.server.start();
      s.server.input(REQUEST);
      s.server.authenticated(HLAK);
      s.server.input(bytes());
      expect(s.server.state).toBe('Call_Abort_Pending');
      expect(statusOfAbort(s.lastControl())).toEqual([AttributeId.CryptoBinding, AttribStatus.ValueNotSupported]);
      expect(s.events).toEqual(['ppp-start']);
      // 3.1.2.1: no answer within TIMER_VAL_ABORT_STATE_TIMER_1 (3 s): clean up.
      s.clock.advance(2_999);
      expect(s.server.isClosed).toBe(false);
      s.clock.advance(1);
      expect(s.server.state).toBe('Server_Call_Disconnected');
      expect(s.pipe.a.closed).toBe(true);
      expect(s.end()?.reason).toBe('aborted');
      expect(s.end()?.initiator).toBe('local');
      expect(s.end()?.detail).toContain(detail);
      expect(s.clock.armed).toBe(0);
    });
  }

  it('aborts a deferred Call Connected that fails once the HLAK arrives', () => {
    const s = scripted();
    s.server.start();
    s.server.input(REQUEST);
    s.server.input(callConnected({ hlak: new Uint8Array(32).fill(1) }));
    s.server.authenticated(HLAK);
    expect(s.server.state).toBe('Call_Abort_Pending');
  });

  it('rejects a SHA-1 binding when only SHA-256 was offered', () => {
    const s = scripted({ hashProtocols: HashProtocol.Sha256 });
    s.server.start();
    s.server.input(REQUEST);
    s.server.authenticated(HLAK);
    s.server.input(callConnected({ hash: HashProtocol.Sha1 }));
    expect(s.server.state).toBe('Call_Abort_Pending');
    expect(s.server.end?.detail).toContain('was not offered');
  });

  it('naks an unacceptable Call Connect Request with its Status Info, then accepts a good one', () => {
    const s = scripted();
    s.server.start();
    s.server.input(msg({ type: MessageType.CallConnectRequest, protocolId: 2 }));
    expect(s.server.state).toBe('Server_Connect_Request_Pending');
    // 2.2.12 + 2.2.8: one Status Info, AttribID 1 (Encapsulated Protocol ID), ATTRIB_STATUS_VALUE_NOT_SUPPORTED, value 0002.
    expect(hex(s.pipe.a.written[0]!)).toBe('10010016' + '00030001' + '0002000e' + '00000001' + '00000004' + '0002');
    s.server.input(REQUEST);
    expect(s.server.state).toBe('Server_Call_Connected_Pending');
    expect(s.sentTypes()).toEqual([MessageType.CallConnectNak, MessageType.CallConnectAck]);
  });

  it('naks a request carrying a Status Info with an error (3.3.5.2.2 case 1)', () => {
    const s = scripted();
    s.server.start();
    // Built by hand: the encoder would not put a Status Info in a Call Connect Request.
    s.server.input(fromHex('1001001a00010002' + '000100060001' + '0002000c000000000000000b'));
    const m = s.lastControl();
    expect(m.type === MessageType.CallConnectNak && m.statusInfos.map((x) => [x.attribId, x.status])).toEqual([
      [AttributeId.StatusInfo, AttribStatus.StatusInfoNotSupportedInMsg],
    ]);
  });

  it('gives up with a Call Abort after the Nak limit', () => {
    const s = scripted({ maxNaks: 3 });
    s.server.start();
    const bad = msg({ type: MessageType.CallConnectRequest, protocolId: 0x0021 });
    for (let i = 0; i < 3; i++) s.server.input(bad);
    expect(s.sentTypes()).toEqual([MessageType.CallConnectNak, MessageType.CallConnectNak, MessageType.CallConnectNak]);
    s.server.input(bad);
    expect(s.server.state).toBe('Call_Abort_Pending');
    expect(statusOfAbort(s.lastControl())).toEqual([0, AttribStatus.RetryCountExceeded]);
  });

  it('cleans up a client that stops after Call Connect Request (negotiation timer)', () => {
    const s = scripted();
    s.server.start();
    s.server.input(REQUEST);
    s.clock.advance(59_999);
    expect(s.server.state).toBe('Server_Call_Connected_Pending');
    s.clock.advance(1);
    expect(s.server.state).toBe('Call_Abort_Pending');
    expect(statusOfAbort(s.lastControl())).toEqual([0, AttribStatus.NegotiationTimeout]);
    s.clock.advance(3_000);
    expect(s.server.isClosed).toBe(true);
    expect(s.pipe.a.closed).toBe(true);
    expect(s.end()).toMatchObject({ reason: 'aborted', initiator: 'local' });
    expect(s.end()?.detail).toContain('PPP authentication / Call Connected');
  });

  it('cleans up a connection that never sends Call Connect Request', () => {
    const s = scripted({ timers: { connectRequestMs: 20_000 } });
    s.server.start();
    s.clock.advance(20_000);
    expect(statusOfAbort(s.lastControl())).toEqual([0, AttribStatus.NegotiationTimeout]);
    s.clock.advance(3_000);
    expect(s.server.isClosed).toBe(true);
    expect(s.end()?.detail).toContain('Call Connect Request');
  });

  it('finishes the abort early when the client answers with its own Call Abort (T2 = 1 s)', () => {
    const s = scripted();
    s.server.start();
    s.clock.advance(60_000);
    expect(s.server.state).toBe('Call_Abort_Pending');
    s.server.input(ABORT);
    expect(s.server.state).toBe('Call_Abort_Timeout_Pending');
    s.clock.advance(999);
    expect(s.server.isClosed).toBe(false);
    s.clock.advance(1);
    expect(s.server.isClosed).toBe(true);
    // Our abort status stays the recorded one.
    expect(s.end()?.status?.status).toBe(AttribStatus.NegotiationTimeout);
  });
});

describe('SSTP server: unexpected and invalid input (3.1.5.1, 3.3.5.2.x)', () => {
  const unexpected: Array<[string, (s: ReturnType<typeof scripted>) => void, Uint8Array]> = [
    ['Echo Request before the call is connected', (s) => s.server.start(), ECHO_REQUEST],
    ['Call Connected before Call Connect Request', (s) => s.server.start(), callConnected()],
    ['Call Connect Ack (only servers send it)', (s) => s.server.start(), msg({ type: MessageType.CallConnectAck, hashProtocols: 3, nonce: NONCE })],
    ['a second Call Connect Request', (s) => (s.server.start(), s.server.input(REQUEST)), REQUEST],
    ['a second Call Connected while the first waits for PPP', (s) => (s.server.start(), s.server.input(REQUEST), s.server.input(callConnected())), callConnected()],
    ['Call Disconnect Ack out of the blue', (s) => s.server.start(), msg({ type: MessageType.CallDisconnectAck })],
  ];
  for (const [name, prepare, bytes] of unexpected) {
    it(`aborts on ${name} (ATTRIB_STATUS_UNACCEPTED_FRAME_RECEIVED)`, () => {
      const s = scripted();
      prepare(s);
      s.server.input(bytes);
      expect(s.server.state).toBe('Call_Abort_Pending');
      expect(statusOfAbort(s.lastControl())).toEqual([0, AttribStatus.UnacceptedFrameReceived]);
    });
  }

  it('aborts on a message that breaks the syntax (ATTRIB_STATUS_INVALID_FRAME_RECEIVED)', () => {
    const s = connected();
    // Call Abort with two Status Info attributes (2.2.13: "MUST NOT have any other attributes").
    s.server.input(fromHex('1001002000050002' + '0002000c0000000000000000' + '0002000c0000000000000000'));
    // A Call Abort that breaks the rules is still an invalid message: we abort, we do not answer it as an abort.
    expect(s.server.state).toBe('Call_Abort_Pending');
    expect(statusOfAbort(s.lastControl())).toEqual([0, AttribStatus.InvalidFrameReceived]);
  });

  it('closes without sending anything when the stream cannot be delineated', () => {
    const s = connected();
    const before = s.pipe.a.written.length;
    s.server.input(fromHex('2001000800080000'));
    expect(s.server.isClosed).toBe(true);
    expect(s.pipe.a.written.length).toBe(before);
    expect(s.pipe.a.closed).toBe(true);
    expect(s.end()).toMatchObject({ reason: 'framing-error', initiator: 'peer' });
  });

  it('ignores establishment and echo messages while the abort is pending, as the spec says', () => {
    const s = scripted();
    s.server.start();
    s.server.input(ECHO_REQUEST);
    expect(s.server.state).toBe('Call_Abort_Pending');
    const n = s.pipe.a.written.length;
    for (const b of [REQUEST, ECHO_REQUEST, ECHO_RESPONSE, callConnected(), DISCONNECT, msg({ type: MessageType.CallDisconnectAck })]) {
      s.server.input(b);
    }
    expect(s.pipe.a.written.length).toBe(n);
    expect(s.server.state).toBe('Call_Abort_Pending');
    expect(s.server.stats.controlIgnored).toBe(6);
  });
});

describe('SSTP server: PPP frames (3.3.7)', () => {
  it('passes control frames while the call is pending and data frames only once connected', () => {
    const s = scripted();
    s.server.start();
    expect(s.server.sendPppFrame(LCP)).toBe(false);
    s.server.input(dataPacketBytes(LCP));
    expect(s.frames).toEqual([]);
    s.server.input(REQUEST);
    s.server.input(dataPacketBytes(LCP));
    s.server.input(dataPacketBytes(IPV4));
    expect(s.frames).toEqual([hex(LCP)]);
    expect(s.server.sendPppFrame(LCP)).toBe(true);
    expect(s.server.sendPppFrame(IPV4)).toBe(false);
    expect(s.server.stats.pppDropped.state).toBe(4);

    s.server.authenticated(HLAK);
    s.server.input(callConnected());
    s.server.input(dataPacketBytes(IPV4));
    expect(s.server.sendPppFrame(IPV4)).toBe(true);
    expect(s.frames).toEqual([hex(LCP), hex(IPV4)]);
    const data = s.sent().filter((p) => p.kind === 'data').map((p) => (p.kind === 'data' ? hex(p.payload) : ''));
    expect(data).toEqual([hex(LCP), hex(IPV4)]);
  });

  it('hands up a copy of each frame and drops empty and oversize ones', () => {
    const s = connected();
    const packet = dataPacketBytes(IPV4);
    s.server.input(packet);
    packet.fill(0);
    expect(s.frames).toEqual([hex(IPV4)]);
    s.server.input(fromHex('10000004'));
    expect(s.server.stats.pppDropped.empty).toBe(1);
    expect(s.server.sendPppFrame(new Uint8Array(4092).fill(0x21))).toBe(false);
    expect(s.server.stats.pppDropped.tooLong).toBe(1);
  });
});

describe('SSTP server: echo and Hello timer (3.1.2.3)', () => {
  it('answers Echo Request, and sends one after a quiet Hello interval', () => {
    const s = connected();
    s.server.input(ECHO_REQUEST);
    expect(s.lastControl().type).toBe(MessageType.EchoResponse);
    s.clock.advance(59_999);
    expect(s.server.stats.echoRequestsSent).toBe(0);
    s.clock.advance(1);
    expect(s.lastControl().type).toBe(MessageType.EchoRequest);
    s.server.input(ECHO_RESPONSE);
    s.clock.advance(60_000);
    expect(s.server.stats.echoRequestsSent).toBe(2);
    expect(s.server.isClosed).toBe(false);
  });

  it('stays quiet while packets keep arriving', () => {
    const s = connected();
    for (let t = 0; t < 10; t++) {
      s.clock.advance(30_000);
      s.server.input(dataPacketBytes(IPV4));
    }
    expect(s.server.stats.echoRequestsSent).toBe(0);
    expect(s.server.isClosed).toBe(false);
  });

  it('drops the connection without a Call Abort when nothing answers the Echo Request', () => {
    const s = connected();
    s.clock.advance(60_000);
    expect(s.lastControl().type).toBe(MessageType.EchoRequest);
    const n = s.pipe.a.written.length;
    s.clock.advance(59_999);
    expect(s.server.isClosed).toBe(false);
    s.clock.advance(1);
    expect(s.server.isClosed).toBe(true);
    expect(s.pipe.a.written.length).toBe(n);
    expect(s.pipe.a.closed).toBe(true);
    expect(s.end()).toMatchObject({ reason: 'hello-timeout', initiator: 'local' });
  });

  it('counts any packet as the answer', () => {
    const s = connected();
    s.clock.advance(60_000);
    s.clock.advance(30_000);
    s.server.input(dataPacketBytes(IPV4));
    s.clock.advance(30_000);
    expect(s.server.isClosed).toBe(false);
    s.clock.advance(30_000);
    expect(s.server.stats.echoRequestsSent).toBe(2);
  });
});

describe('SSTP server: disconnect and abort (3.1.1.1, 3.3.5.2.4-6)', () => {
  it('disconnect(): sends Call Disconnect with a Status Info and cleans up on the Ack', () => {
    const s = connected();
    s.server.disconnect('admin');
    expect(s.server.state).toBe('Call_Disconnect_Ack_Pending');
    expect(hex(s.pipe.a.written.at(-1)!)).toBe('10010014000600010002000c0000000000000000');
    // PPP frames no longer pass.
    expect(s.server.sendPppFrame(IPV4)).toBe(false);
    s.server.input(msg({ type: MessageType.CallDisconnectAck }));
    expect(s.server.state).toBe('Server_Call_Disconnected');
    expect(s.pipe.a.closed).toBe(true);
    expect(s.end()).toMatchObject({ reason: 'disconnected', initiator: 'local', detail: 'admin' });
    expect(s.clock.armed).toBe(0);
  });

  it('disconnect(): cleans up after TIMER_VAL_DISCONNECT_STATE_TIMER_1 (5 s) without an Ack', () => {
    const s = connected();
    s.server.disconnect();
    s.clock.advance(4_999);
    expect(s.server.isClosed).toBe(false);
    s.clock.advance(1);
    expect(s.server.isClosed).toBe(true);
    expect(s.end()?.detail).toContain('no Call Disconnect Ack');
  });

  it('acknowledges a Call Disconnect and cleans up after TIMER_VAL_DISCONNECT_STATE_TIMER_2 (1 s)', () => {
    const s = connected();
    s.server.input(DISCONNECT);
    expect(s.server.state).toBe('Call_Disconnect_Timeout_Pending');
    expect(s.lastControl().type).toBe(MessageType.CallDisconnectAck);
    s.clock.advance(1_000);
    expect(s.server.isClosed).toBe(true);
    expect(s.end()).toMatchObject({ reason: 'disconnected', initiator: 'peer', status: { attribId: 0, status: 0 } });
  });

  it('acknowledges a Call Disconnect in any state, even before the call is set up', () => {
    const s = scripted();
    s.server.start();
    s.server.input(DISCONNECT);
    expect(s.lastControl().type).toBe(MessageType.CallDisconnectAck);
    // A disconnect collision: ours pending, theirs arrives.
    const t = connected();
    t.server.disconnect();
    t.server.input(DISCONNECT);
    expect(t.lastControl().type).toBe(MessageType.CallDisconnectAck);
    expect(t.server.state).toBe('Call_Disconnect_Timeout_Pending');
  });

  it('answers a Call Abort with a Call Abort and cleans up after T2', () => {
    const s = connected();
    const peerStatus: StatusInfo = { attribId: 0, status: AttribStatus.NegotiationTimeout, value: new Uint8Array(0) };
    s.server.input(msg({ type: MessageType.CallAbort, statusInfo: peerStatus }));
    expect(s.server.state).toBe('Call_Abort_Timeout_Pending');
    expect(statusOfAbort(s.lastControl())).toEqual([0, 0]);
    s.clock.advance(1_000);
    expect(s.server.isClosed).toBe(true);
    expect(s.end()).toMatchObject({ reason: 'aborted', initiator: 'peer', status: { status: AttribStatus.NegotiationTimeout } });
  });

  it('reports the transport closing under it, once', () => {
    const s = connected();
    s.server.transportClosed();
    s.server.transportClosed();
    expect(s.events.filter((e) => e.startsWith('closed'))).toEqual(['closed transport-closed']);
    s.server.input(ECHO_REQUEST);
    expect(s.server.stats.rxPackets).toBe(2);
  });
});

describe('SSTP server: every message parsed with the stream split at every byte', () => {
  const stream = new Uint8Array([
    ...REQUEST,
    ...dataPacketBytes(LCP),
    ...callConnected(),
    ...ECHO_REQUEST,
    ...dataPacketBytes(IPV4),
    ...ECHO_RESPONSE,
    ...DISCONNECT,
  ]);

  function run(chunks: Uint8Array[]) {
    const s = scripted();
    s.server.start();
    s.server.authenticated(HLAK);
    for (const c of chunks) s.server.input(c);
    return { out: hex(joined(s.pipe.a.written)), frames: s.frames, events: s.events, state: s.server.state };
  }

  it('behaves the same for every split', () => {
    const whole = run([stream]);
    expect(whole.state).toBe('Call_Disconnect_Timeout_Pending');
    expect(whole.frames).toEqual([hex(LCP), hex(IPV4)]);
    expect(whole.events).toEqual(['ppp-start', 'connected 2']);
    for (let i = 0; i <= stream.length; i++) {
      expect(run([stream.subarray(0, i), stream.subarray(i)])).toEqual(whole);
    }
    expect(run(Array.from(stream, (b) => new Uint8Array([b])))).toEqual(whole);
  });
});

describe('SstpServerConnection: HTTP, then SSTP on the same transport', () => {
  const HTTP =
    'SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\nHost: vpn\r\nContent-Length: 18446744073709551615\r\nSSTPCORRELATIONID: {1}\r\n\r\n';

  function conn() {
    const clock = new VirtualClock();
    const pipe = createPipe();
    const events: string[] = [];
    const c = new SstpServerConnection({
      transport: pipe.a,
      clock,
      log: silentLogger,
      certHashes: HASHES,
      randomBytes: () => NONCE.slice(),
      http: { now: () => new Date(0) },
      events: {
        onHttpAccepted: (r) => events.push(`http ${r.correlationId}`),
        onHttpRejected: (st) => events.push(`http ${st}`),
        onPppStart: () => events.push('ppp-start'),
        onConnected: () => events.push('connected'),
        onClosed: (e) => events.push(`closed ${e.reason}`),
      },
    });
    c.start();
    return { clock, pipe, c, events };
  }

  it('runs a whole call when the request and the first SSTP packets share one read', () => {
    const t = conn();
    t.c.input(new Uint8Array([...Buffer.from(HTTP), ...REQUEST]));
    expect(t.events).toEqual(['http {1}', 'ppp-start']);
    expect(t.c.state).toBe('Server_Call_Connected_Pending');
    expect(Buffer.from(t.pipe.a.written[0]!).toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(t.pipe.a.written[1]!.length).toBe(48);
    t.c.authenticated(HLAK);
    t.c.input(callConnected());
    expect(t.c.state).toBe('Server_Call_Connected');
    t.c.disconnect();
    t.c.input(msg({ type: MessageType.CallDisconnectAck }));
    expect(t.events.at(-1)).toBe('closed disconnected');
  });

  it('gives the same outcome with the HTTP head and the SSTP packets split at every byte', () => {
    const stream = new Uint8Array([...Buffer.from(HTTP), ...REQUEST, ...dataPacketBytes(LCP), ...callConnected(), ...ECHO_REQUEST]);
    const run = (chunks: Uint8Array[]) => {
      const t = conn();
      t.c.authenticated(HLAK);
      for (const ch of chunks) t.c.input(ch);
      return { out: hex(joined(t.pipe.a.written)), events: t.events, state: t.c.state };
    };
    const whole = run([stream]);
    expect(whole.state).toBe('Server_Call_Connected');
    expect(whole.events).toEqual(['http {1}', 'ppp-start', 'connected']);
    for (let i = 0; i <= stream.length; i++) expect(run([stream.subarray(0, i), stream.subarray(i)])).toEqual(whole);
  });

  it('refuses other HTTP requests and never starts a call', () => {
    const t = conn();
    t.c.input(new Uint8Array(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')));
    expect(t.events).toEqual(['http 404']);
    expect(t.c.call).toBeUndefined();
    expect(t.pipe.a.closed).toBe(true);
    t.c.input(REQUEST);
    expect(t.pipe.a.written).toHaveLength(1);
  });

  it('answers 408 when the request does not come', () => {
    const t = conn();
    t.clock.advance(30_000);
    expect(t.events).toEqual(['http 408']);
    expect(t.pipe.a.closed).toBe(true);
  });
});
