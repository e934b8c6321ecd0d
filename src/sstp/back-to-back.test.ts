/**
 * Server and client wired back to back over an in-memory pipe, HTTP
 * exchange included, with a fake "PPP" that exchanges one LCP frame and
 * then reports authentication success with a given HLAK.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../util/clock.js';
import { fromHex, hex } from '../util/decode.js';
import { silentLogger } from '../util/log.js';
import { buildCallConnected, certificateHashes, type CertificateHashes } from './binding.js';
import type { SstpCallEnd } from './call.js';
import { SstpClientConnection } from './client.js';
import { decodePacket } from './codec.js';
import { AttribStatus, AttributeId, HashProtocol, MessageType } from './constants.js';
import { SstpServerConnection } from './server.js';
import { createPipe } from './testing.js';

const CERT = new Uint8Array(Buffer.from('DER of the back-to-back server certificate'));
const HASHES = certificateHashes(CERT);
const NONCE = new Uint8Array(32).map((_, i) => 0xc0 + i);
/** MS-CHAPv2 HLAK of the RFC 2759 example (sstp_crypto_binding.json, derived vectors). */
const HLAK = fromHex('d5f0e9521e3ea9589645e86051c822268b7cdc149b993a1ba118cb153f56dccb');
const LCP_REQ = fromHex('ff03c02101010008050605f5d3c4');
const LCP_ACK = fromHex('ff03c02102010008050605f5d3c4');
const IP_UP = fromHex('00214500001c0001000040010000c6120002c6120001');
const IP_DOWN = fromHex('00214500001c0001000040010000c6120001c6120002');

interface Side {
  events: string[];
  frames: string[];
  end?: SstpCallEnd;
}

function backToBack(
  opts: {
    serverOffers?: number;
    clientSupports?: number;
    clientSeesCert?: CertificateHashes;
    clientHlak?: Uint8Array;
    serverHlak?: Uint8Array;
  } = {},
) {
  const clock = new VirtualClock();
  const pipe = createPipe(); // a = server side, b = client side
  const s: Side = { events: [], frames: [] };
  const c: Side = { events: [], frames: [] };
  const record = (side: Side) => ({
    onPppStart: () => side.events.push('ppp-start'),
    onPppFrame: (f: Uint8Array) => side.frames.push(hex(f)),
    onConnected: (i: { hashProtocol: number }) => side.events.push(`connected ${i.hashProtocol === 2 ? 'sha256' : 'sha1'}`),
    onClosed: (e: SstpCallEnd) => {
      side.end = e;
      side.events.push(`closed ${e.reason} ${e.initiator}`);
    },
  });
  const server = new SstpServerConnection({
    transport: pipe.a,
    clock,
    log: silentLogger,
    certHashes: HASHES,
    ...(opts.serverOffers !== undefined ? { hashProtocols: opts.serverOffers } : {}),
    randomBytes: () => NONCE.slice(),
    events: { ...record(s), onHttpAccepted: (r) => s.events.push(`http ${r.correlationId}`) },
  });
  const client = new SstpClientConnection({
    transport: pipe.b,
    clock,
    log: silentLogger,
    serverCertHashes: opts.clientSeesCert ?? HASHES,
    ...(opts.clientSupports !== undefined ? { hashProtocols: opts.clientSupports } : {}),
    http: { host: 'vpn.example.test', correlationId: '{B2B00000-0000-4000-8000-000000000000}' },
    events: { ...record(c), onHttpAccepted: () => c.events.push('http 200') },
  });
  pipe.a.onData = (b) => server.input(b);
  pipe.a.onPeerClosed = () => server.transportClosed();
  pipe.b.onData = (b) => client.input(b);
  pipe.b.onPeerClosed = () => client.transportClosed();

  server.start();
  client.start();
  pipe.flush();

  /** The fake PPP: LCP both ways, then authentication on both sides. */
  const pppUp = (order: 'server-first' | 'client-first' = 'server-first') => {
    expect(client.sendPppFrame(LCP_REQ)).toBe(true);
    pipe.flush();
    expect(server.sendPppFrame(LCP_ACK)).toBe(true);
    pipe.flush();
    const auth = [() => server.authenticated(opts.serverHlak ?? HLAK), () => client.authenticated(opts.clientHlak ?? HLAK)];
    if (order === 'client-first') auth.reverse();
    for (const a of auth) {
      a();
      pipe.flush();
    }
  };
  return { clock, pipe, server, client, s, c, pppUp };
}

const clientPackets = (pipe: ReturnType<typeof createPipe>) =>
  pipe.b.written.slice(1).map((b) => {
    const d = decodePacket(b);
    if (!d.ok) throw new Error('undecodable');
    return d.value;
  });

describe('SSTP server and client back to back', () => {
  it('SHA-256: HTTP, Call Connect Request / Ack, PPP, Call Connected verified, data both ways', () => {
    const t = backToBack();
    expect(t.s.events).toEqual(['http {B2B00000-0000-4000-8000-000000000000}', 'ppp-start']);
    expect(t.c.events).toEqual(['http 200', 'ppp-start']);
    expect(t.server.state).toBe('Server_Call_Connected_Pending');
    expect(t.client.state).toBe('Client_Connect_Ack_Received');

    // Before crypto binding only PPP control frames pass.
    expect(t.client.sendPppFrame(IP_UP)).toBe(false);
    t.pppUp();
    expect(t.s.frames).toEqual([hex(LCP_REQ)]);
    expect(t.c.frames).toEqual([hex(LCP_ACK)]);
    expect(t.server.state).toBe('Server_Call_Connected');
    expect(t.client.state).toBe('Client_Call_Connected');
    expect(t.s.events.at(-1)).toBe('connected sha256');
    expect(t.c.events.at(-1)).toBe('connected sha256');

    // The Call Connected on the wire is the one the spec's formula gives.
    const cc = t.pipe.b.written.find((b) => b.length === 112 && b[5] === MessageType.CallConnected)!;
    expect(hex(cc)).toBe(hex(buildCallConnected({ hashProtocol: 2, nonce: NONCE, certHash: HASHES.sha256, hlak: HLAK })));

    expect(t.client.sendPppFrame(IP_UP)).toBe(true);
    expect(t.server.sendPppFrame(IP_DOWN)).toBe(true);
    t.pipe.flush();
    expect(t.s.frames.at(-1)).toBe(hex(IP_UP));
    expect(t.c.frames.at(-1)).toBe(hex(IP_DOWN));
  });

  it('SHA-1 when the server offers only SHA-1', () => {
    const t = backToBack({ serverOffers: HashProtocol.Sha1 });
    t.pppUp();
    expect(t.s.events.at(-1)).toBe('connected sha1');
    expect(t.c.events.at(-1)).toBe('connected sha1');
  });

  it('SHA-1 when the client supports only SHA-1', () => {
    const t = backToBack({ clientSupports: HashProtocol.Sha1 });
    t.pppUp();
    expect(t.s.events.at(-1)).toBe('connected sha1');
  });

  it('Call Connected before the server has finished PPP authentication', () => {
    const t = backToBack();
    t.pppUp('client-first');
    expect(t.c.events.at(-1)).toBe('connected sha256');
    expect(t.s.events.at(-1)).toBe('connected sha256');
    expect(t.server.state).toBe('Server_Call_Connected');
  });

  it('tampered Compound MAC: the server aborts, both sides clean up', () => {
    const t = backToBack();
    t.pipe.b.tamper = (b) => {
      if (b.length === 112 && b[5] === MessageType.CallConnected) b[100]! ^= 0x01;
      return b;
    };
    t.pppUp();
    expect(t.server.state).toBe('Call_Abort_Timeout_Pending'); // it got the client's answering Call Abort
    expect(t.client.state).toBe('Call_Abort_Timeout_Pending');
    t.clock.advance(1_000);
    t.pipe.flush();
    expect(t.s.end).toMatchObject({ reason: 'aborted', initiator: 'local', status: { attribId: AttributeId.CryptoBinding, status: AttribStatus.ValueNotSupported } });
    expect(t.s.end?.detail).toContain('Compound MAC');
    expect(t.c.end).toMatchObject({ reason: 'aborted', initiator: 'peer', status: { attribId: AttributeId.CryptoBinding, status: AttribStatus.ValueNotSupported } });
    expect(t.pipe.a.closed && t.pipe.b.closed).toBe(true);
    expect(t.s.events.filter((e) => e.startsWith('connected'))).toEqual([]);
  });

  it('a man in the middle (client sees another certificate): the server aborts', () => {
    const t = backToBack({ clientSeesCert: certificateHashes(new Uint8Array(Buffer.from('the attacker certificate'))) });
    t.pppUp();
    expect(t.server.call?.end?.detail).toContain('certificate hash');
    t.clock.advance(1_000);
    t.pipe.flush();
    expect(t.server.call?.isClosed).toBe(true);
    expect(t.client.call?.isClosed).toBe(true);
  });

  it('different HLAKs on the two sides: the server aborts', () => {
    const t = backToBack({ clientHlak: new Uint8Array(32) });
    t.pppUp();
    expect(t.server.call?.end?.detail).toContain('Compound MAC');
  });

  it('echo: both Hello timers fire, both answer, nobody hangs up', () => {
    const t = backToBack();
    t.pppUp();
    t.clock.advance(60_000);
    t.pipe.flush();
    t.clock.advance(60_000);
    t.pipe.flush();
    expect(t.server.call!.stats.echoRequestsSent).toBeGreaterThanOrEqual(1);
    expect(t.client.call!.stats.echoRequestsSent).toBeGreaterThanOrEqual(1);
    expect(t.server.call!.isClosed || t.client.call!.isClosed).toBe(false);
    const echoReplies = clientPackets(t.pipe).filter((p) => p.kind === 'control' && p.message.type === MessageType.EchoResponse);
    expect(echoReplies.length).toBeGreaterThanOrEqual(1);
  });

  it('hello timeout: a client gone silent is dropped after two Hello intervals, without a Call Abort', () => {
    const t = backToBack();
    t.pppUp();
    t.pipe.b.deliver = false;
    const sent = t.pipe.a.written.length;
    t.clock.advance(60_000);
    t.pipe.flush();
    t.clock.advance(60_000);
    t.pipe.flush();
    expect(t.s.end).toMatchObject({ reason: 'hello-timeout', initiator: 'local' });
    const after = t.pipe.a.written.slice(sent).map((b) => b[5]);
    expect(after).toEqual([MessageType.EchoRequest]);
    // The client learns from the transport.
    expect(t.c.end?.reason).toBe('transport-closed');
  });

  it('disconnect from the server side', () => {
    const t = backToBack();
    t.pppUp();
    t.server.disconnect('admin kill');
    t.pipe.flush();
    expect(t.s.end).toMatchObject({ reason: 'disconnected', initiator: 'local', detail: 'admin kill' });
    expect(t.c.end).toMatchObject({ reason: 'disconnected', initiator: 'peer' });
    expect(t.pipe.a.closed && t.pipe.b.closed).toBe(true);
    expect(t.clock.armed).toBe(0);
  });

  it('disconnect from the client side: the server acks and closes after T2', () => {
    const t = backToBack();
    t.pppUp();
    t.client.disconnect('user');
    t.pipe.flush();
    // The client closed on the Ack; the server closed its side when the client's transport went.
    expect(t.c.end).toMatchObject({ reason: 'disconnected', initiator: 'local', detail: 'user' });
    expect(t.s.end).toMatchObject({ reason: 'disconnected', initiator: 'peer' });
    expect(t.s.events.at(-1)).toBe('closed disconnected peer');
  });

  it('disconnect while the call is still being set up', () => {
    const t = backToBack();
    t.client.disconnect();
    t.pipe.flush();
    expect(t.c.end?.reason).toBe('disconnected');
    expect(t.s.end?.reason).toBe('disconnected');
  });

  it('Nak path: a server whose Nak the client cannot satisfy ends in a Call Abort', () => {
    // The client always asks for PPP; make the server refuse it by tampering the request.
    const t = backToBack();
    t.client.close();
    t.pipe.flush();
    const u = (() => {
      const clock = new VirtualClock();
      const pipe = createPipe();
      const ends: string[] = [];
      const server = new SstpServerConnection({
        transport: pipe.a,
        clock,
        log: silentLogger,
        certHashes: HASHES,
        maxNaks: 2,
        events: { onClosed: (e) => ends.push(`server ${e.reason} ${e.initiator}`) },
      });
      const client = new SstpClientConnection({
        transport: pipe.b,
        clock,
        log: silentLogger,
        serverCertHashes: HASHES,
        maxConnectRetries: 5,
        http: { host: 'h' },
        events: { onClosed: (e) => ends.push(`client ${e.reason} ${e.initiator}`) },
      });
      pipe.a.onData = (b) => server.input(b);
      pipe.b.onData = (b) => client.input(b);
      pipe.a.onPeerClosed = () => server.transportClosed();
      pipe.b.onPeerClosed = () => client.transportClosed();
      pipe.b.tamper = (b) => {
        if (b.length === 14 && b[5] === MessageType.CallConnectRequest) b[13] = 0x02;
        return b;
      };
      server.start();
      client.start();
      pipe.flush();
      return { clock, pipe, ends };
    })();
    const types = u.pipe.a.written.slice(1).map((b) => b[5]);
    expect(types).toEqual([MessageType.CallConnectNak, MessageType.CallConnectNak, MessageType.CallAbort]);
    u.clock.advance(1_000);
    u.pipe.flush();
    expect(u.ends).toContain('server aborted local');
    expect(u.ends).toContain('client aborted peer');
  });
});
