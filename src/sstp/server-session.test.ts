/**
 * The server session through the WASM data path, without sockets or root:
 * a real SSTP client call and PPP client (PAP, so the binding uses the
 * 32-zero HLAK) talk to an SstpServerSession whose every byte after the
 * HTTP head goes through DataPlane.streamIn. The client's whole stream is
 * recorded once, then replayed split at every byte offset: the server must
 * answer with exactly the same octets and reach the same end every time.
 */
import { describe, it, expect } from 'vitest';
import * as abi from '../../assembly/abi.js';
import { DataPlane } from '../dataplane/engine.js';
import { VirtualClock } from '../util/clock.js';
import { hex } from '../util/decode.js';
import { silentLogger } from '../util/log.js';
import { LocalVerifier, UserStore } from '../aaa/index.js';
import { Ipv4Pool } from '../pool/index.js';
import { PppSession, PPP_IPV4 } from '../ppp/index.js';
import { seededRandom } from '../ppp/testing.js';
import { certificateHashes } from './binding.js';
import { SstpClientCall } from './client.js';
import { decodePacket, emptyControlLength, encodeEchoRequest } from './codec.js';
import { HashProtocol, MessageType } from './constants.js';
import { sstpHttpRequest } from './http.js';
import { SstpServerSession } from './server-session.js';
import type { SstpCallEnd } from './call.js';
import { icmpEcho, ipv4Packet } from '../../test/lib/packets.js';

const HASHES = certificateHashes(new Uint8Array(Buffer.from('DER of the test server certificate')));
const NONCE = new Uint8Array(32).map((_, i) => 0xa0 + i);
const HTTP = sstpHttpRequest({ host: 'vpn.example.test', correlationId: '{0F0F0F0F-0000-4000-8000-000000000000}' });
const SMALL_RINGS = {
  [abi.RingId.TUN_RX]: 8,
  [abi.RingId.TUN_TX]: 8,
  [abi.RingId.GRE_RX]: 0,
  [abi.RingId.GRE_TX]: 0,
  [abi.RingId.CTRL]: 32,
  [abi.RingId.INJECT]: 2,
  [abi.RingId.STREAM_IN]: 8,
  [abi.RingId.STREAM_OUT]: 8,
};

const tick = () => new Promise<void>((r) => setImmediate(r));

/** One server session over a fresh small data plane, everything deterministic. */
function serverSide() {
  const clock = new VirtualClock();
  const dp = new DataPlane({ maxSessions: 2, ringSlots: SMALL_RINGS, streamBuffers: true });
  const out: Uint8Array[] = [];
  let ended = false;
  let end: SstpCallEnd | undefined;
  let up = false;
  const pool = Ipv4Pool.create({ ranges: ['198.18.128.10-198.18.128.20'], gateway: '198.18.128.1' });
  /** Steering (multi-worker data plane) and watch (registry mirror) events, in order. */
  const events: string[] = [];
  const session = new SstpServerSession({
    steering: { bind: (a) => events.push(`bind ${a}`), unbind: (a) => events.push(`unbind ${a}`) },
    dp,
    transport: { write: (b) => out.push(b.slice()), writableLength: 0, pause: () => {}, resume: () => {}, end: () => (ended = true) },
    clock,
    log: silentLogger,
    peer: { address: '198.18.0.2', port: 40000 },
    certHashes: HASHES,
    hashProtocols: HashProtocol.Sha1 | HashProtocol.Sha256,
    httpTimeoutMs: 30_000,
    ppp: {
      methods: ['pap'],
      verifier: new LocalVerifier(UserStore.fromObject({ users: { alice: { password: 'pw-alice' } } })),
      allocator: pool,
      localAddress: '198.18.128.1',
      mru: 1400,
      maxMru: 1400,
      serverName: 'vpngw',
      echoIntervalMs: 0,
    },
    randomBytes: () => NONCE.slice(),
    pppRandom: seededRandom(7),
    events: {
      onUp: () => (up = true),
      onClosed: (_s, e) => (end = e),
    },
  });
  const m = session.managed();
  m.watch!(() => {
    const i = m.info();
    const e = `state ${i.state} ${i.user ?? '-'} ${i.innerAddress ?? '-'} ${m.dataplaneIndex!() ?? '-'}`;
    if (events.at(-1) !== e) events.push(e);
  });
  session.start();
  session.input(HTTP);
  const tunOut = () => {
    const pk: string[] = [];
    dp.ring(abi.RingId.TUN_TX).drain((p) => pk.push(hex(p)));
    return pk;
  };
  return {
    dp,
    session,
    pool,
    events,
    /** Server output after the HTTP response (the first write). */
    sstpOut: () => hex(Buffer.concat(out.slice(1))),
    httpOut: () => Buffer.from(out[0] ?? []).toString('latin1'),
    tunOut,
    state: () => ({ ended, end: end && { reason: end.reason, initiator: end.initiator }, up }),
  };
}

/** Reference run: a real client; records what it sent after the HTTP head, chunk by chunk. */
async function reference() {
  const s = serverSide();
  const clock = new VirtualClock();
  const toServer: Uint8Array[] = [];
  let ppp: PppSession | undefined;
  const call = new SstpClientCall({
    transport: { write: (b) => toServer.push(b.slice()), close: () => {} },
    clock,
    log: silentLogger,
    serverCertHashes: HASHES,
    events: {
      onPppStart: () => ppp!.open(),
      onPppFrame: (f) => ppp!.input(f),
    },
  });
  ppp = new PppSession({
    role: 'client',
    send: (f) => {
      call.sendPppFrame(f);
    },
    clock,
    tunnel: 'test',
    peer: 'server',
    auth: { methods: ['pap'], credentials: { username: 'alice', password: 'pw-alice' } },
    ipcp: { requestDns: false },
    mppe: { policy: 'deny' },
    echo: { intervalMs: 0 },
    random: seededRandom(8),
  });
  let upInfo: { ipv4?: { localAddress: string } } | undefined;
  ppp.on('authenticated', (r) => call.authenticated(r.hlak));
  ppp.on('up', (i) => (upInfo = i as typeof upInfo));
  const recorded: Uint8Array[] = [];
  /** Octets of the server's SSTP output already given to the client. */
  let consumedBytes = 0;
  const settle = async () => {
    for (let round = 0; round < 100; round++) {
      let moved = false;
      const written = Buffer.from(s.sstpOut(), 'hex');
      if (written.length > consumedBytes) {
        call.input(written.subarray(consumedBytes));
        consumedBytes = written.length;
        moved = true;
      }
      while (toServer.length) {
        const c = toServer.shift()!;
        recorded.push(c);
        s.session.input(c);
        moved = true;
      }
      s.dp.pump();
      await tick();
      if (!moved && round > 2) return;
    }
  };
  expect(s.httpOut()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  call.start();
  await settle();
  expect(upInfo?.ipv4?.localAddress).toBe('198.18.128.10');
  expect(s.state().up).toBe(true);
  // Data: one ICMP echo from the client's address (to the TUN), one SSTP Echo Request, then disconnect.
  const icmp = ipv4Packet('198.18.128.10', '198.18.128.1', 1, icmpEcho(8, 1, 1, new Uint8Array(64).fill(0x5a)));
  expect(ppp.sendData(PPP_IPV4, icmp)).toBe(true);
  const echo = new Uint8Array(emptyControlLength());
  encodeEchoRequest(echo, 0);
  toServer.push(echo);
  await settle();
  const tun = s.tunOut();
  call.disconnect('test over');
  await settle();
  // The client closes its end on the Disconnect Ack; the server learns it from the transport.
  s.session.transportClosed();
  return { recorded, sstpOut: s.sstpOut(), tun, state: s.state(), pool: s.pool.used, events: s.events };
}

describe('SstpServerSession through the data-plane stream path', () => {
  it('a whole session: HTTP, call, PAP, IPCP, binding, IP to the TUN, echo, disconnect', async () => {
    const ref = await reference();
    const types = (hexOut: string) => {
      const out: string[] = [];
      let b = Buffer.from(hexOut, 'hex');
      while (b.length >= 4) {
        const len = ((b[2]! & 0x0f) << 8) | b[3]!;
        const d = decodePacket(new Uint8Array(b.subarray(0, len)));
        if (d.ok) out.push(d.value.kind === 'control' ? `ctl:${d.value.message.type}` : `data:${hex(d.value.payload.subarray(0, 4))}`);
        b = b.subarray(len);
      }
      return out;
    };
    const t = types(ref.sstpOut);
    expect(t[0]).toBe(`ctl:${MessageType.CallConnectAck}`);
    expect(t).toContain(`ctl:${MessageType.EchoResponse}`);
    expect(t.at(-1)).toBe(`ctl:${MessageType.CallDisconnectAck}`);
    expect(t.filter((x) => x.startsWith('data:ff03c021')).length).toBeGreaterThan(0); // LCP
    expect(t.filter((x) => x.startsWith('data:ff03c023')).length).toBe(1); // PAP Authenticate-Ack
    expect(t.filter((x) => x.startsWith('data:ff038021')).length).toBeGreaterThan(0); // IPCP
    expect(ref.tun).toHaveLength(1);
    expect(ref.state).toEqual({ ended: true, end: { reason: 'disconnected', initiator: 'peer' }, up: true });
    expect(ref.pool).toBe(0);
    // The inner address is steered to this worker from activation to the end; watchers hear each listed change.
    const steer = ref.events.filter((e) => !e.startsWith('state'));
    expect(steer).toEqual(['bind 198.18.128.10', 'unbind 198.18.128.10']);
    const states = ref.events.filter((e) => e.startsWith('state'));
    expect(states).toContain('state authenticating - - 0');
    expect(states).toContain('state network alice - 0');
    expect(states).toContain('state up alice 198.18.128.10 0');
    expect(states.at(-1)).toMatch(/^state closing alice /);
    expect(ref.events.indexOf('bind 198.18.128.10')).toBeLessThan(ref.events.indexOf('state up alice 198.18.128.10 0'));
    // The client sent a Call Connected with the zero-HLAK binding (PAP).
    expect(ref.recorded.some((c) => c.length === 112 && c[5] === MessageType.CallConnected)).toBe(true);
  });

  it('the client stream split at every byte offset gives the same server output, TUN packets and end', async () => {
    const ref = await reference();
    const stream = Buffer.concat(ref.recorded);
    // Chunk boundaries where the reference client waited for the server (kept: they order the exchange).
    const bounds: number[] = [];
    let at = 0;
    for (const c of ref.recorded) bounds.push((at += c.length));
    expect(stream.length).toBeGreaterThan(300);
    for (let cut = 1; cut < stream.length; cut++) {
      const s = serverSide();
      let start = 0;
      for (const end of [...new Set([...bounds, cut])].sort((x, y) => x - y)) {
        if (end <= start) continue;
        s.session.input(new Uint8Array(stream.subarray(start, end)));
        s.dp.pump();
        await tick();
        s.dp.pump();
        start = end;
      }
      s.session.transportClosed();
      expect(s.sstpOut(), `cut at ${cut}`).toBe(ref.sstpOut);
      expect(s.tunOut(), `cut at ${cut}`).toEqual(ref.tun);
      expect(s.state(), `cut at ${cut}`).toEqual(ref.state);
      s.dp.close();
    }
  }, 120_000);
});
