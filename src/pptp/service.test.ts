/**
 * The PPTP service and client back to back without root: the real TCP
 * control connection on loopback, two WASM data planes (the gateway's and
 * the client's), and GRE moved between their rings by the test instead of
 * raw sockets (with an IPv4 header in front, as a raw socket delivers it),
 * so the test can lose or inspect packets on the way.
 *
 * Covers the wiring: call ids, PPP over injected GRE, MPPE installed at PPP
 * up (stateful and stateless, bytes checked on the wire; 40 and 56 bits:
 * the reduced keys in both engines), IP both ways,
 * stateful resynchronisation after a loss (Reset-Request, flushed packet),
 * teardown from either side (leases released, entries freed), wrong
 * password, MPPE policy, two clients from one address (NAT), and the bounds
 * (half-open per source, sessions per user).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as abi from '../../assembly/abi.js';
import { parseConfig } from '../config/load.js';
import { Gateway } from '../admin/gateway.js';
import { GatewayMetrics } from '../metrics/registry.js';
import { DataPlane } from '../dataplane/engine.js';
import { systemClock } from '../util/clock.js';
import { silentLogger } from '../util/log.js';
import { connectPptp, type PptpClient, type PptpClientOptions } from '../client/pptp.js';
import { CallIdAllocator } from './callid.js';
import { decodeGre } from './gre.js';
import { PptpService, pptpAuthMethods, pptpMppePolicy, pptpMru, pptpPolicyVerifier, type PptpServiceOptions } from './service.js';
import { ControlMessageType, encodeControlMessage, FRAMING_ANY, BEARER_ANY, ControlDeframer } from './codec.js';
import { PPTP_MAX_MRU, PPTP_MAX_MTU } from './datapath.js';
import type { Verifier } from '../ppp/auth/types.js';
import type { PppUpInfo } from '../ppp/index.js';
import { MPPE_BITS, MPPE_KEY_LEN, MPPE_SESSION_KEY } from '../../assembly/crypto/sizes.js';
import { icmpEcho, ipv4Packet } from '../../test/lib/packets.js';
import { freePort, rejectsWith, waitUntil } from '../../test/lib/wait.js';

const LOOPBACK = '127.0.0.1';
const GATEWAY = '198.18.128.1';
const slotAddr = (a: string) => new DataView(new Uint8Array(a.split('.').map(Number)).buffer).getUint32(0, true);

/** One GRE packet seen on the "wire" between the engines. */
interface WirePacket {
  from: 'server' | 'client';
  gre: Uint8Array;
}

/**
 * Moves GRE between the gateway's engine and each client engine (every
 * endpoint is 127.0.0.1, as the control connection's peer address is).
 * Server packets go to the client engine whose call id is in the key.
 */
class GreWire {
  readonly seen: WirePacket[] = [];
  /** Return false to lose the packet. */
  filter: (p: WirePacket) => boolean = () => true;
  private readonly clients = new Map<number, DataPlane>();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(private readonly server: DataPlane) {
    this.timer = setInterval(() => this.move(), 1);
  }

  /** Route GRE keyed with `callId` to `dp` (call before the call id is used: give the client a CallIdAllocator). */
  client(dp: DataPlane, callIds: number[]): void {
    for (const id of callIds) this.clients.set(id, dp);
  }

  private move(): void {
    const engines = new Set(this.clients.values());
    this.server.ring(abi.RingId.GRE_TX).drain((p) => {
      const w: WirePacket = { from: 'server', gre: p.slice() };
      this.seen.push(w);
      const to = this.clients.get((p[6]! << 8) | p[7]!);
      if (to && this.filter(w)) to.ring(abi.RingId.GRE_RX).push(ipv4Packet(LOOPBACK, LOOPBACK, 47, w.gre), { addr: slotAddr(LOOPBACK) });
    });
    for (const dp of engines) {
      dp.ring(abi.RingId.GRE_TX).drain((p) => {
        const w: WirePacket = { from: 'client', gre: p.slice() };
        this.seen.push(w);
        if (this.filter(w)) this.server.ring(abi.RingId.GRE_RX).push(ipv4Packet(LOOPBACK, LOOPBACK, 47, w.gre), { addr: slotAddr(LOOPBACK) });
      });
      dp.schedule();
    }
    this.server.schedule();
  }

  close(): void {
    clearInterval(this.timer);
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const USERS = { alice: 'pw-alice', bob: 'pw-bob' };

async function start(extra = '', serviceOptions: Omit<PptpServiceOptions, 'greSocket'> = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-pptp-svc-'));
  writeFileSync(path.join(dir, 'users.yaml'), `users:\n${Object.entries(USERS).map(([u, p]) => `  ${u}: {password: ${p}}`).join('\n')}\n`);
  const port = await freePort();
  const config = parseConfig(
    `stateDir: state
dataplane: {workers: 1, maxSessionsPerWorker: 8}
users: {file: users.yaml, demoUser: false}
sstp: {enabled: false}
pptp: {enabled: true, listen: ${LOOPBACK}, port: ${port}}
dns: {primary: 198.18.128.53}
admin: {enabled: false}
${extra}
`,
    { baseDir: dir },
  );
  const metrics = new GatewayMetrics(undefined, { defaultMetrics: false });
  const dp = new DataPlane({ maxSessions: 8, streamBuffers: false });
  const gateway = new Gateway({ config, log: silentLogger, clock: systemClock, metrics, dataplanes: () => [dp] });
  const service = new PptpService({ greSocket: false, ...serviceOptions });
  await gateway.start([service]);
  const wire = new GreWire(dp);
  let nextCallIdBase = 0x1000;
  const clients: PptpClient[] = [];
  cleanups.push(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await gateway.shutdown('test over', 2_000);
    wire.close();
    dp.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const tunTx = (e: DataPlane) => {
    const out: Uint8Array[] = [];
    e.ring(abi.RingId.TUN_TX).drain((p) => out.push(p.slice()));
    return out;
  };
  return {
    gateway,
    service,
    metrics,
    dp,
    wire,
    port,
    pool: () => gateway.ctx.pool('default') as unknown as { used: number },
    tunTx,
    /** A client with its own engine, wired to the gateway's engine through the test's GRE wire. */
    async connect(o: Partial<PptpClientOptions> = {}) {
      const cdp = new DataPlane({ maxSessions: 1, streamBuffers: false });
      const base = nextCallIdBase;
      nextCallIdBase += 0x100;
      const callIds = new CallIdAllocator({ min: base, max: base + 0xff, start: base });
      wire.client(cdp, Array.from({ length: 256 }, (_, i) => base + i));
      let c: PptpClient;
      try {
        c = await connectPptp({ host: LOOPBACK, port, username: 'alice', password: USERS.alice, tun: false, dataplane: cdp, callIds, ...o });
      } catch (e) {
        cdp.close();
        throw e;
      }
      clients.push(c);
      cdp.wasm.setDefaultSession(c.sessionIndex);
      void c.ended.then(() => cdp.close());
      return c;
    },
    forget(c: PptpClient) {
      clients.splice(clients.indexOf(c), 1);
    },
  };
}

/** The GRE payload (PPP frame) of a wire packet, or undefined for an ack-only one. */
function pppOf(w: WirePacket): Uint8Array | undefined {
  const d = decodeGre(w.gre);
  if (!d.ok) throw new Error(`bad GRE on the wire: ${d.message}`);
  return d.value.payload.length ? d.value.payload : undefined;
}

const ping = (from: string, seq: number, size = 100) => ipv4Packet(from, GATEWAY, 1, icmpEcho(8, 7, seq, new Uint8Array(size).fill(seq & 0xff)), 64, seq);

describe('PPTP service and client back to back (loopback control connection, GRE through the test)', () => {
  it('stateful MPPE: session up, IP both ways encrypted on the wire, listed, clean client teardown', async () => {
    const S = await start();
    const c = await S.connect();
    expect(c.ipv4).toMatch(/^198\.18\.128\.\d+$/);
    expect(c.gateway).toBe(GATEWAY);
    expect(c.dns).toEqual(['198.18.128.53']);
    expect(c.mppe).toEqual({ bits: 128, stateless: false });
    expect(c.mtu).toBeLessThanOrEqual(PPTP_MAX_MTU);
    const [srv] = S.service.liveSessions;
    expect(srv!.isUp).toBe(true);
    expect(srv!.mppe).toEqual({ bits: 128, stateless: false });
    expect(srv!.callIds).toEqual({ local: c.callIds.peer, peer: c.callIds.local });
    expect(S.gateway.sessions.list()).toMatchObject([{ protocol: 'pptp', user: 'alice', innerAddress: c.ipv4, state: 'up', peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) }]);
    expect(S.pool().used).toBe(1);

    // Uplink: the client's "TUN" -> WASM MPPE -> GRE -> the gateway's TUN, decrypted, byte for byte.
    const up = Array.from({ length: 20 }, (_, i) => ping(c.ipv4, i + 1, 50 + i * 60));
    S.wire.seen.length = 0;
    for (const p of up) c.dataplane.submit(abi.RingId.TUN_RX, p, {});
    const got: Uint8Array[] = [];
    await waitUntil(() => (got.push(...S.tunTx(S.dp)), got.length >= up.length), 5_000, 'the uplink packets at the gateway');
    expect(got.map((p) => Buffer.from(p).toString('hex'))).toEqual(up.map((p) => Buffer.from(p).toString('hex')));
    // On the wire every data frame is MPPE (ff 03 00 fd, D bit), never the cleartext IP packet.
    const frames = S.wire.seen.filter((w) => w.from === 'client').map(pppOf).filter((f): f is Uint8Array => f !== undefined && f[2] === 0x00 && f[3] === 0xfd);
    expect(frames).toHaveLength(up.length);
    for (const f of frames) expect(f[4]! & 0x10).toBe(0x10);
    for (const w of S.wire.seen) expect(Buffer.from(w.gre).includes(Buffer.from(up[5]!.subarray(20)))).toBe(false);

    // Downlink: the gateway's TUN -> the client.
    const down = Array.from({ length: 10 }, (_, i) => ipv4Packet(GATEWAY, c.ipv4, 1, icmpEcho(0, 7, i, new Uint8Array(300).fill(i))));
    for (const p of down) S.dp.ring(abi.RingId.TUN_RX).push(p);
    S.dp.schedule();
    const back: Uint8Array[] = [];
    await waitUntil(() => (back.push(...S.tunTx(c.dataplane)), back.length >= down.length), 5_000, 'the downlink packets at the client');
    expect(back.map((p) => Buffer.from(p).toString('hex'))).toEqual(down.map((p) => Buffer.from(p).toString('hex')));
    expect(S.gateway.sessions.list()[0]!.bytesIn).toBe(up.reduce((n, p) => n + p.length, 0));
    expect(S.gateway.sessions.list()[0]!.bytesOut).toBe(down.reduce((n, p) => n + p.length, 0));
    expect(await S.metrics.text()).toMatch(/^vpngw_session_setup_duration_seconds_count\{protocol="pptp"\} 1$/m);

    const end = await c.close();
    S.forget(c);
    expect(end.initiator).toBe('local');
    expect(end.ppp?.reason).toBe('admin');
    expect(end.call).toBe('local');
    // Both ends stop the control connection when its last call is gone; the server's request crosses ours.
    expect(end.control).toBe('peer-stop');
    await waitUntil(() => S.gateway.sessions.size === 0 && S.service.liveSessions.length === 0, 5_000, 'the server session to go');
    expect(S.pool().used).toBe(0);
    expect(S.dp.sessions.used).toBe(0);
  }, 30_000);

  it('stateless MPPE when the client asks: every packet flushed (A bit), a lost packet costs only itself', async () => {
    const S = await start();
    const c = await S.connect({ mppe: { stateless: true } });
    expect(c.mppe).toEqual({ bits: 128, stateless: true });
    let n = 0;
    S.wire.filter = (w) => !(w.from === 'server' && pppOf(w)?.[3] === 0xfd && ++n === 3);
    S.wire.seen.length = 0;
    const down = Array.from({ length: 8 }, (_, i) => ipv4Packet(GATEWAY, c.ipv4, 1, icmpEcho(0, 1, i, new Uint8Array(64).fill(i))));
    for (const p of down) S.dp.ring(abi.RingId.TUN_RX).push(p);
    S.dp.schedule();
    const back: Uint8Array[] = [];
    await waitUntil(() => (back.push(...S.tunTx(c.dataplane)), back.length >= 7), 5_000, 'seven of eight packets');
    expect(back.map((p) => p[27])).toEqual([0, 1, 3, 4, 5, 6, 7]); // ICMP sequence (low octet)
    const mppe = S.wire.seen.filter((w) => w.from === 'server').map(pppOf).filter((f) => f?.[3] === 0xfd);
    for (const f of mppe) expect(f![4]! & 0x80).toBe(0x80);
    expect(c.stats().resetRequestsSent).toBe(0);
  }, 30_000);

  it('stateful MPPE after a lost packet: one CCP Reset-Request, the server flushes, traffic resumes', async () => {
    const S = await start();
    const c = await S.connect();
    let n = 0;
    S.wire.filter = (w) => !(w.from === 'server' && pppOf(w)?.[3] === 0xfd && ++n === 2);
    const send = (from: number, count: number) => {
      for (let i = 0; i < count; i++) S.dp.ring(abi.RingId.TUN_RX).push(ipv4Packet(GATEWAY, c.ipv4, 1, icmpEcho(0, 1, from + i, new Uint8Array(64))));
      S.dp.schedule();
    };
    send(0, 5);
    await waitUntil(() => c.stats().resetRequestsSent >= 1, 5_000, 'a Reset-Request from the client');
    await waitUntil(() => S.service.liveSessions[0]!.pathStats!.resetRequestsReceived >= 1, 5_000, 'the server to see it');
    S.tunTx(c.dataplane);
    send(100, 5);
    const back: Uint8Array[] = [];
    await waitUntil(() => (back.push(...S.tunTx(c.dataplane)), back.length >= 5), 5_000, 'traffic after the flush');
    expect(back.map((p) => p[27])).toEqual([100, 101, 102, 103, 104]);
    // One loss, one Reset-Request (and its second copy, sent while the client still discarded), each acknowledged.
    const st = c.stats();
    expect(st.resetRequestsSent - st.resetRequestsRepeated).toBe(1);
    expect(st.resetRequestsSent).toBeLessThanOrEqual(2);
    // Each Reset-Request the server received is acknowledged (the repeat's Ack may still be on its way).
    const received = () => S.service.liveSessions[0]!.pathStats!.resetRequestsReceived;
    await waitUntil(() => received() === c.stats().resetRequestsSent && c.stats().resetAcksReceived === received(), 5_000, 'an Ack for each Reset-Request');
    expect(c.dataplane.sessions.mppeState(c.sessionIndex).receiveDiscarding).toBe(false);
  }, 30_000);

  it('the server tears a session down: LCP Terminate, Call-Disconnect-Notify, Stop-Control-Connection; the client sees the peer', async () => {
    const S = await start();
    const c = await S.connect();
    const id = S.gateway.sessions.list()[0]!.id;
    expect(await S.gateway.sessions.kill(id, 'operator')).toBe(true);
    const end = await c.ended;
    S.forget(c);
    expect(end.initiator).toBe('peer');
    expect(end.ppp?.reason).toBe('peer-terminated');
    expect(end.call).toBe('peer-disconnect');
    expect(S.gateway.sessions.size).toBe(0);
    expect(S.pool().used).toBe(0);
    await waitUntil(() => S.service.liveSessions.length === 0, 5_000, 'the connection to close');
  }, 30_000);

  it('wrong password and unknown user: ERR_AUTH_REJECTED, nothing left on the server', async () => {
    const S = await start();
    await rejectsWith(S.connect({ password: 'nope' }), 'ERR_AUTH_REJECTED');
    await rejectsWith(S.connect({ username: 'mallory' }), 'ERR_AUTH_REJECTED');
    await waitUntil(() => S.service.liveSessions.length === 0, 10_000, 'the refused sessions to go');
    expect(S.gateway.sessions.size).toBe(0);
    expect(S.pool().used).toBe(0);
    expect(S.dp.sessions.used).toBe(0);
    const m = await S.metrics.text();
    expect(m).toMatch(/^vpngw_auth_results_total\{method="mschapv2",outcome="bad-credentials"\} 1$/m);
    expect(m).toMatch(/^vpngw_auth_results_total\{method="mschapv2",outcome="unknown-user"\} 1$/m);
  }, 30_000);

  it('MPPE policy: a client that offers only 40-bit is refused (ERR_POLICY); one that does not require MPPE still gets it', async () => {
    const S = await start();
    await rejectsWith(S.connect({ mppe: { strengths: [40] } }), 'ERR_POLICY');
    const c = await S.connect({ mppe: { required: false } });
    expect(c.mppe).toEqual({ bits: 128, stateless: false });
  }, 30_000);

  /** One direction's MPPE key state in a session entry of an engine: strength, key length and the current session key. */
  const mppeKeys = (dp: DataPlane, idx: number, dir: 'send' | 'recv') => {
    const at = dp.sessionOffset(idx) + (dir === 'send' ? abi.SE_MPPE_SEND_KEYS : abi.SE_MPPE_RECV_KEYS);
    const len = dp.dv.getUint32(at + MPPE_KEY_LEN, true);
    return { bits: dp.dv.getUint32(at + MPPE_BITS, true), len, key: Buffer.from(dp.u8.slice(at + MPPE_SESSION_KEY, at + MPPE_SESSION_KEY + len)).toString('hex') };
  };

  for (const [bits, serverStrengths, salt] of [
    [40, [40], 'd1269e'],
    [56, [56], 'd1'],
    [56, [128, 56, 40], 'd1'],
  ] as const) {
    it(`${bits}-bit MPPE (server mppe.strengths [${serverStrengths.join(', ')}], client asking ${bits}): negotiated on both sides, reduced keys in both engines (RFC 3079 3.1, 3.2), data both ways`, async () => {
      const S = await start(`mppe: {strengths: [${serverStrengths.join(', ')}]}`);
      const c = await S.connect({ mppe: { strengths: [bits] } });
      expect(c.mppe).toEqual({ bits, stateless: false });
      const srv = S.service.liveSessions[0]!;
      expect(srv.mppe).toEqual({ bits, stateless: false });
      // The engines run the strength: 8-octet keys whose first octets are the RFC 3079 salt, and each
      // direction's key is the same at both ends (client send = server receive and back).
      const cs = mppeKeys(c.dataplane, c.sessionIndex, 'send');
      const cr = mppeKeys(c.dataplane, c.sessionIndex, 'recv');
      const ss = mppeKeys(S.dp, srv.dataplaneIndex!, 'send');
      const sr = mppeKeys(S.dp, srv.dataplaneIndex!, 'recv');
      for (const k of [cs, cr, ss, sr]) {
        expect(k).toMatchObject({ bits, len: 8 });
        expect(k.key.startsWith(salt), k.key).toBe(true);
      }
      expect(cs.key).toBe(sr.key);
      expect(cr.key).toBe(ss.key);
      expect(cs.key).not.toBe(cr.key);
      // And they are the initial session keys the control plane derived from the MS-CHAPv2 master keys.
      const derived = (srv as unknown as { pppUp: PppUpInfo }).pppUp.mppe!;
      expect([ss.key, sr.key]).toEqual([Buffer.from(derived.sendKey).toString('hex'), Buffer.from(derived.recvKey).toString('hex')]);

      const up = Array.from({ length: 20 }, (_, i) => ping(c.ipv4, i + 1, 40 + i * 70));
      S.wire.seen.length = 0;
      for (const p of up) c.dataplane.submit(abi.RingId.TUN_RX, p, {});
      const got: Uint8Array[] = [];
      await waitUntil(() => (got.push(...S.tunTx(S.dp)), got.length >= up.length), 5_000, 'the uplink packets at the gateway');
      expect(got.map((p) => Buffer.from(p).toString('hex'))).toEqual(up.map((p) => Buffer.from(p).toString('hex')));
      const down = Array.from({ length: 20 }, (_, i) => ipv4Packet(GATEWAY, c.ipv4, 1, icmpEcho(0, 7, i, new Uint8Array(60 + i * 50).fill(i))));
      for (const p of down) S.dp.ring(abi.RingId.TUN_RX).push(p);
      S.dp.schedule();
      const back: Uint8Array[] = [];
      await waitUntil(() => (back.push(...S.tunTx(c.dataplane)), back.length >= down.length), 5_000, 'the downlink packets at the client');
      expect(back.map((p) => Buffer.from(p).toString('hex'))).toEqual(down.map((p) => Buffer.from(p).toString('hex')));
      // Encrypted on the wire both ways: MPPE frames only (D bit), no cleartext payload.
      const data = S.wire.seen.map((w) => ({ from: w.from, f: pppOf(w) })).filter((x) => x.f?.[2] === 0x00 && x.f[3] === 0xfd);
      expect(data.filter((x) => x.from === 'client')).toHaveLength(up.length);
      expect(data.filter((x) => x.from === 'server')).toHaveLength(down.length);
      for (const x of data) expect(x.f![4]! & 0x10).toBe(0x10);
      for (const w of S.wire.seen) {
        expect(Buffer.from(w.gre).includes(Buffer.from(up[7]!.subarray(20)))).toBe(false);
        expect(Buffer.from(w.gre).includes(Buffer.from(down[7]!.subarray(20)))).toBe(false);
      }
    }, 30_000);
  }

  it('two clients from the same address (as behind NAT) get their own call ids and sessions', async () => {
    const S = await start();
    const [a, b] = await Promise.all([S.connect(), S.connect({ username: 'bob', password: USERS.bob })]);
    expect(a!.ipv4).not.toBe(b!.ipv4);
    expect(a!.callIds.peer).not.toBe(b!.callIds.peer);
    const list = S.gateway.sessions.list();
    expect(list.map((s) => s.user).sort()).toEqual(['alice', 'bob']);
    expect(new Set(list.map((s) => s.peer.split(':')[0]))).toEqual(new Set([LOOPBACK]));
    for (const c of [a!, b!]) c.dataplane.submit(abi.RingId.TUN_RX, ping(c.ipv4, 9), {});
    const got: Uint8Array[] = [];
    await waitUntil(() => (got.push(...S.tunTx(S.dp)), got.length >= 2), 5_000, 'both uplink packets');
    expect(got.map((p) => `${p[12]}.${p[13]}.${p[14]}.${p[15]}`).sort()).toEqual([a!.ipv4, b!.ipv4].sort());
  }, 30_000);

  it('bounds: connections per source without a session, sessions per user', async () => {
    const S = await start('limits: {maxHalfOpenPerSource: 1, maxSessionsPerUser: 1}');
    // A connection that never speaks holds the one half-open slot of 127.0.0.1.
    const idle = net.connect(S.port, LOOPBACK);
    cleanups.push(() => void idle.destroy());
    await waitUntil(() => S.service.liveSessions.length === 1, 5_000, 'the idle connection');
    await rejectsWith(S.connect(), 'ERR_PEER_CLOSED');
    expect(S.service.counters.refusedHalfOpen).toBe(1);
    idle.destroy();
    await waitUntil(() => S.service.liveSessions.length === 0, 5_000, 'the idle connection to go');
    const c = await S.connect();
    expect(c.ipv4).toBeDefined();
    // MS-CHAPv2 tells the client only E=691; the server counts why.
    await rejectsWith(S.connect(), 'ERR_AUTH_REJECTED');
    expect(await S.metrics.text()).toMatch(/^vpngw_auth_results_total\{method="mschapv2",outcome="rate-limited"\} 1$/m);
  }, 30_000);
});

describe('PPTP service set-up bound', () => {
  it('a client that opens the control connection but never a call is stopped when the set-up time runs out', async () => {
    const S = await start('', { setupTimeoutMs: 400 });
    const sock = net.connect(S.port, LOOPBACK);
    cleanups.push(() => void sock.destroy());
    const deframer = new ControlDeframer();
    const seen: ControlMessageType[] = [];
    sock.on('data', (d: Buffer) => seen.push(...deframer.push(d).messages.map((m) => m.type)));
    const closed = new Promise<number>((r) => sock.once('close', () => r(performance.now())));
    await new Promise<void>((r) => sock.once('connect', r));
    const t0 = performance.now();
    sock.write(
      encodeControlMessage({
        type: ControlMessageType.StartControlConnectionRequest,
        protocolVersion: 0x0100,
        framingCapabilities: FRAMING_ANY,
        bearerCapabilities: BEARER_ANY,
        maximumChannels: 0,
        firmwareRevision: 1,
        hostName: 'test',
        vendorName: 'test',
      }),
    );
    await waitUntil(() => seen.includes(ControlMessageType.StopControlConnectionRequest), 5_000, 'Stop-Control-Connection-Request');
    expect(seen[0]).toBe(ControlMessageType.StartControlConnectionReply);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(350);
    // We do not answer: the server drops the connection after its stop wait at the latest.
    sock.resume();
    const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 8_000))]);
    expect(at).toBeGreaterThan(0);
    await waitUntil(() => S.service.liveSessions.length === 0, 2_000, 'the session to go');
  }, 20_000);
});

describe('PPTP policy helpers', () => {
  const cfg = (pptp: { allowPap: boolean; requireMppe: boolean }, methods: ('pap' | 'chap-md5' | 'mschapv2' | 'eap-mschapv2')[]) =>
    ({ auth: { pptp: methods }, pptp, mppe: { policy: 'allow', strengths: [128, 40], stateless: false } }) as unknown as Parameters<typeof pptpAuthMethods>[0] &
      Parameters<typeof pptpMppePolicy>[0];

  it('offers PAP only when allowed, and only key-deriving methods when MPPE is required', () => {
    const all = ['mschapv2', 'pap', 'chap-md5', 'eap-mschapv2'] as const;
    expect(pptpAuthMethods(cfg({ allowPap: false, requireMppe: true }, [...all]))).toEqual(['mschapv2', 'eap-mschapv2']);
    expect(pptpAuthMethods(cfg({ allowPap: false, requireMppe: false }, [...all]))).toEqual(['mschapv2', 'chap-md5', 'eap-mschapv2']);
    expect(pptpAuthMethods(cfg({ allowPap: true, requireMppe: false }, [...all]))).toEqual([...all]);
    expect(pptpMppePolicy(cfg({ allowPap: false, requireMppe: true }, []))).toEqual({ policy: 'require', strengths: [128, 40], statelessAllowed: false, statelessPreferred: false, modeChoice: 'peer' });
    expect(pptpMppePolicy(cfg({ allowPap: false, requireMppe: false }, [])).policy).toBe('allow');
  });

  it('asks for stateless MPPE itself when it allows it (pppd refuses a stateful request); the LCP MRU covers MPPE\'s expansion', () => {
    const stateless = { ...cfg({ allowPap: false, requireMppe: true }, []), mppe: { policy: 'allow', strengths: [128], stateless: true } } as Parameters<typeof pptpMppePolicy>[0];
    const required = pptpMppePolicy(stateless);
    expect(required).toEqual({ policy: 'require', strengths: [128], statelessAllowed: true, statelessPreferred: true, modeChoice: 'peer' });
    // pppd's interface MTU is our MRU less 4 (MPPE_PAD): a 1400-octet TUN takes 1400-octet packets from it.
    expect(pptpMru(1400, required)).toBe(1404);
    expect(pptpMru(1400, pptpMppePolicy(cfg({ allowPap: false, requireMppe: false }, [])))).toBe(1400);
    expect(pptpMru(1500, required)).toBe(PPTP_MAX_MRU);
    expect(PPTP_MAX_MRU).toBe(1460);
    expect(PPTP_MAX_MTU).toBe(1456);
  });

  it('raises a weaker per-user MPPE policy to require, and counts sessions per user', async () => {
    const inner: Verifier = {
      pap: async (_c, u) => ({ ok: true, username: u, attributes: { mppe: 'deny' } }),
      chapMd5: async (_c, u) => ({ ok: true, username: u, attributes: { mppe: 'allow', maxSessions: 2 } }),
      msChapV2: async () => ({ ok: false, reason: 'bad-credentials', message: 'no' }),
    };
    const outcomes: string[] = [];
    let sessions = 0;
    const v = pptpPolicyVerifier(inner, { sessionsOf: () => sessions, maxPerUser: () => 1, requireMppe: () => true, outcome: (m, o) => void outcomes.push(`${m}:${o}`) });
    const ctx = { tunnel: 'pptp' as const, peer: '198.18.0.9:1' };
    expect(await v.pap(ctx, 'u', new Uint8Array())).toMatchObject({ ok: true, attributes: { mppe: 'require' } });
    sessions = 1;
    expect(await v.pap(ctx, 'u', new Uint8Array())).toMatchObject({ ok: false, reason: 'rate-limited' });
    expect(await v.chapMd5(ctx, 'u', 1, new Uint8Array(), new Uint8Array())).toMatchObject({ ok: true, attributes: { mppe: 'require', maxSessions: 2 } });
    expect(await v.msChapV2(ctx, 'u', new Uint8Array(), new Uint8Array(), new Uint8Array())).toMatchObject({ ok: false });
    expect(outcomes).toEqual(['pap:success', 'pap:rate-limited', 'chap-md5:success', 'mschapv2:bad-credentials']);
  });
});
