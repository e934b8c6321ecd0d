/**
 * PptpDataPath between two WASM engines back to back (a gateway and a
 * client, GRE moved by the test): PPP frames through INJECT and CTRL,
 * MPPE installed from the PPP up info, and stateful resynchronisation
 * (RFC 3078 8.2): one Reset-Request per loss, repeated only while packets
 * keep being discarded, the peer's request answered with a flush and a
 * Reset-Ack; a local drop (TUN ring full) does not desynchronise.
 */
import { describe, it, expect } from 'vitest';
import { EventEmitter } from 'node:events';
import * as abi from '../../assembly/abi.js';
import { DataPlane } from '../dataplane/engine.js';
import { VirtualClock } from '../util/clock.js';
import { silentLogger } from '../util/log.js';
import type { PppSession, PppUpInfo } from '../ppp/index.js';
import { EARLY_FRAMES, PathState, PptpDataPath, PPTP_MAX_MTU, RESET_POLL_MS, RESET_REPEAT_MAX_MS, RESET_REPEAT_MS, RESET_SECOND_COPY_MS } from './datapath.js';
import { ipv4Packet, udp } from '../../test/lib/packets.js';

const SERVER = '198.18.1.1';
const CLIENT = '198.18.1.2';
const INNER = '198.18.128.10';
const slotAddr = (a: string) => new DataView(new Uint8Array(a.split('.').map(Number)).buffer).getUint32(0, true);
const KEY_A = new Uint8Array(16).map((_, i) => i + 1);
const KEY_B = new Uint8Array(16).map((_, i) => 0xf0 - i);

/** What the data path needs of a PppSession, observable. */
class FakePpp extends EventEmitter {
  readonly frames: Uint8Array[] = [];
  resetRequests = 0;
  readonly resetAcks: number[] = [];
  input(f: Uint8Array): void {
    this.frames.push(f);
  }
  sendResetRequest(): boolean {
    this.resetRequests++;
    return true;
  }
  sendResetAck(id: number): boolean {
    this.resetAcks.push(id);
    return true;
  }
}

function upInfo(mppe: { stateless: boolean; send: Uint8Array; recv: Uint8Array } | undefined, mtu = 1500): PppUpInfo {
  return {
    mtu,
    pfc: false,
    acfc: false,
    mppe: mppe && { bits: 128, stateless: mppe.stateless, sendKey: new Uint8Array(16), recvKey: new Uint8Array(16), sendStartKey: mppe.send, recvStartKey: mppe.recv },
  } as unknown as PppUpInfo;
}

function side(role: 'server' | 'client', clock: VirtualClock, tunTxSlots = 1024) {
  const dp = new DataPlane({ maxSessions: 4, streamBuffers: false, ringSlots: { [abi.RingId.TUN_TX]: tunTxSlots } });
  const sanity: number[] = [];
  const path = PptpDataPath.open(dp, { clock, log: silentLogger, client: role === 'client', onSanity: () => sanity.push(1) })!;
  const ppp = new FakePpp();
  path.attach({ peer: role === 'server' ? CLIENT : SERVER, myCallId: role === 'server' ? 0x100 : 0x200, peerCallId: role === 'server' ? 0x200 : 0x100 });
  path.bind(ppp as unknown as PppSession);
  return { dp, path, ppp, sanity, addr: role === 'server' ? SERVER : CLIENT };
}
type Side = ReturnType<typeof side>;

/** Move what `from` sent to `to` (as its raw socket would deliver it), optionally losing some. */
function deliver(from: Side, to: Side, keep: (i: number) => boolean = () => true): number {
  let i = 0;
  from.dp.ring(abi.RingId.GRE_TX).drain((p) => {
    if (keep(i++)) to.dp.ring(abi.RingId.GRE_RX).push(ipv4Packet(from.addr, to.addr, 47, p), { addr: slotAddr(from.addr) });
  });
  to.dp.pump();
  return i;
}

const down = (i: number) => ipv4Packet('198.18.0.1', INNER, 17, udp(53, 1000 + i, new Uint8Array(200).fill(i & 0xff)));

function sendDown(s: Side, from: number, n: number): void {
  for (let i = 0; i < n; i++) s.dp.ring(abi.RingId.TUN_RX).push(down(from + i));
  s.dp.pump();
}

function tunOut(s: Side): number[] {
  const out: number[] = [];
  s.dp.ring(abi.RingId.TUN_TX).drain((p) => out.push(p[p.length - 1]!));
  return out;
}

function pair(stateless: boolean, clientTunTx = 1024) {
  const clock = new VirtualClock();
  const srv = side('server', clock);
  const cli = side('client', clock, clientTunTx);
  srv.path.up(upInfo({ stateless, send: KEY_A, recv: KEY_B }), INNER);
  cli.path.up(upInfo({ stateless, send: KEY_B, recv: KEY_A }), INNER);
  cli.dp.wasm.setDefaultSession(cli.path.idx);
  return { clock, srv, cli };
}

describe('PptpDataPath', () => {
  it('carries PPP frames both ways in the clear (INJECT -> GRE -> CTRL -> PppSession.input) and caps the MTU', () => {
    const clock = new VirtualClock();
    const srv = side('server', clock);
    const cli = side('client', clock);
    expect(srv.path.state).toBe(PathState.Attached);
    const lcp = new Uint8Array([0xff, 0x03, 0xc0, 0x21, 0x09, 0x01, 0x00, 0x08, 1, 2, 3, 4]);
    expect(srv.path.sendPpp(lcp)).toBe(true);
    srv.dp.pump();
    deliver(srv, cli);
    expect(cli.ppp.frames.map((f) => Array.from(f))).toEqual([Array.from(lcp)]);
    expect(cli.path.stats).toMatchObject({ pppFramesIn: 1 });
    expect(srv.path.stats).toMatchObject({ pppFramesOut: 1 });
    srv.path.up(upInfo(undefined, 1500), INNER);
    expect(srv.path.state).toBe(PathState.Up);
    // The peer's MRU of 1500 is capped to what fits in one outer packet.
    expect(srv.dp.dv.getUint32(srv.dp.sessionOffset(srv.path.idx) + abi.SE_MTU, true)).toBe(PPTP_MAX_MTU);
    srv.path.close();
    expect(srv.path.sendPpp(lcp)).toBe(false);
    expect(srv.dp.sessions.used).toBe(0);
  });

  it('a client attached before it knows the server call id keeps the frames that come before its PPP session', () => {
    const clock = new VirtualClock();
    const srv = side('server', clock);
    const dp = new DataPlane({ maxSessions: 2, streamBuffers: false });
    const path = PptpDataPath.open(dp, { clock, log: silentLogger, client: true, onSanity: () => undefined })!;
    path.attach({ peer: SERVER, myCallId: 0x200, peerCallId: 0 });
    const cli = { dp, path, ppp: new FakePpp(), sanity: [], addr: CLIENT };
    const lcp = (id: number) => new Uint8Array([0xff, 0x03, 0xc0, 0x21, 0x01, id, 0x00, 0x04]);
    for (let i = 1; i <= EARLY_FRAMES + 2; i++) srv.path.sendPpp(lcp(i));
    srv.dp.pump();
    deliver(srv, cli);
    expect(cli.ppp.frames).toHaveLength(0);
    // Nothing goes out keyed with an unknown call id (no acknowledgment-only packet with key 0).
    expect(dp.ring(abi.RingId.GRE_TX).occupancy).toBe(0);
    path.setPeerCallId(0x100);
    path.bind(cli.ppp as unknown as PppSession);
    // The first EARLY_FRAMES, in order; the rest were dropped (LCP retransmits).
    expect(cli.ppp.frames.map((f) => f[5])).toEqual(Array.from({ length: EARLY_FRAMES }, (_, i) => i + 1));
    path.sendPpp(lcp(99));
    dp.pump();
    const sent: Uint8Array[] = [];
    dp.ring(abi.RingId.GRE_TX).drain((p) => sent.push(p.slice()));
    // Our first packet, keyed with the server's call id, carries the pending acknowledgment (A bit, last sequence seen).
    expect(sent).toHaveLength(1);
    expect((sent[0]![6]! << 8) | sent[0]![7]!).toBe(0x100);
    expect(sent[0]![1]! & 0x80).toBe(0x80);
    expect(new DataView(sent[0]!.buffer).getUint32(12)).toBe(EARLY_FRAMES + 1); // the server's sequence numbers start at 0
  });

  it('stateful: a Reset-Request per loss, sent twice, then repeated only while packets keep being discarded', () => {
    const { clock, srv, cli } = pair(false);
    sendDown(srv, 0, 5);
    deliver(srv, cli, (i) => i !== 2); // lose the third
    expect(tunOut(cli)).toEqual([0, 1]);
    expect(cli.ppp.resetRequests).toBe(1);
    expect(cli.path.stats).toMatchObject({ resetRequestsSent: 1, resetRequestsRepeated: 0 });
    clock.advance(RESET_SECOND_COPY_MS);
    expect(cli.path.stats).toMatchObject({ resetRequestsSent: 2, resetRequestsRepeated: 1 });
    // Both lost; the sender keeps sending, the receiver keeps discarding: repeated after RESET_REPEAT_MS.
    sendDown(srv, 10, 3);
    deliver(srv, cli);
    expect(tunOut(cli)).toEqual([]);
    clock.advance(RESET_REPEAT_MS + RESET_POLL_MS);
    expect(cli.path.stats).toMatchObject({ resetRequestsSent: 3, resetRequestsRepeated: 2 });
    // Nothing arrives meanwhile (an idle sender): no repeat.
    clock.advance(RESET_REPEAT_MAX_MS * 3);
    expect(cli.path.stats.resetRequestsSent).toBe(3);
    // This one reaches the server: it flushes its next packet and acknowledges.
    srv.ppp.emit('ccpResetRequest', 7);
    expect(srv.ppp.resetAcks).toEqual([7]);
    expect(srv.path.stats.resetRequestsReceived).toBe(1);
    sendDown(srv, 20, 3);
    deliver(srv, cli);
    expect(tunOut(cli)).toEqual([20, 21, 22]);
    expect(cli.dp.sessions.mppeState(cli.path.idx).receiveDiscarding).toBe(false);
    clock.advance(RESET_REPEAT_MAX_MS * 4);
    expect(cli.path.stats.resetRequestsSent).toBe(3);
  });

  it('stateful: repeats back off (doubling, capped) while the peer keeps sending and never flushes', () => {
    const { clock, srv, cli } = pair(false);
    sendDown(srv, 0, 3);
    deliver(srv, cli, (i) => i !== 0);
    expect(cli.path.stats.resetRequestsSent).toBe(1);
    const times: number[] = [];
    for (let ms = 0; ms < 10_000; ms += 5) {
      // The peer keeps sending (never flushing): every packet is discarded. Its flag packets
      // (count & 0xff == 0xff, flushed: they would resynchronise) are lost too.
      const count = (3 + ms / 5) % 4096;
      sendDown(srv, 50, 1);
      deliver(srv, cli, () => (count & 0xff) !== 0xff);
      const before = cli.path.stats.resetRequestsSent;
      clock.advance(5);
      if (cli.path.stats.resetRequestsSent > before) times.push(clock.now());
    }
    expect(times[0]).toBe(RESET_SECOND_COPY_MS);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    const want = [100, 200, 400, 800, 1600, 1600, 1600, 1600, 1600];
    expect(gaps).toHaveLength(want.length);
    // Within one poll period of the back-off.
    gaps.forEach((g, i) => expect(g - want[i]!).toBeGreaterThanOrEqual(0));
    gaps.forEach((g, i) => expect(g - want[i]!).toBeLessThanOrEqual(RESET_POLL_MS));
    expect(RESET_REPEAT_MAX_MS).toBe(1600);
    expect(cli.path.stats.resetRequestsRepeated).toBe(times.length);
  });

  it('stateful: after a pause, the first discarded packet brings the repeat within RESET_POLL_MS', () => {
    const { clock, srv, cli } = pair(false);
    sendDown(srv, 0, 3);
    deliver(srv, cli, (i) => i !== 0);
    clock.advance(5_000); // the peer is quiet (a TCP sender in retransmission back-off)
    expect(cli.path.stats.resetRequestsSent).toBe(2); // the request and its second copy
    sendDown(srv, 7, 1);
    deliver(srv, cli);
    clock.advance(RESET_POLL_MS);
    expect(cli.path.stats).toMatchObject({ resetRequestsSent: 3, resetRequestsRepeated: 2 });
  });

  it('stateful: the flushed answer to a Reset-Request is lost, a second one comes: the receiver finds the key (two changes)', () => {
    const { clock, srv, cli } = pair(false);
    sendDown(srv, 0, 4);
    deliver(srv, cli, (i) => i !== 1);
    expect(tunOut(cli)).toEqual([0]);
    srv.ppp.emit('ccpResetRequest', 1);
    sendDown(srv, 10, 3);
    deliver(srv, cli, (i) => i !== 0); // the flushed packet (the sender changed its key) is lost
    expect(tunOut(cli)).toEqual([]);
    clock.advance(RESET_SECOND_COPY_MS);
    expect(cli.path.stats.resetRequestsRepeated).toBe(1);
    srv.ppp.emit('ccpResetRequest', 2); // the sender changes its key again on its next packet
    sendDown(srv, 20, 3);
    deliver(srv, cli);
    expect(tunOut(cli)).toEqual([20, 21, 22]);
    const d = cli.dp.drops();
    expect([d.ppp_protocol, d.bad_ip_header, d.spoofed_source]).toEqual([0n, 0n, 0n]);
    expect(cli.dp.sessions.mppeState(cli.path.idx).receiveDiscarding).toBe(false);
    // And it stays in step: the next flag packet (count 255) changes the key on both sides.
    sendDown(srv, 0, 260);
    deliver(srv, cli);
    expect(tunOut(cli)).toHaveLength(260);
    expect(cli.dp.drops().mppe_coherency).toBe(1n);
  });

  it('stateful: a full TUN ring on the receiver drops packets without desynchronising MPPE', () => {
    const { srv, cli } = pair(false, 4);
    sendDown(srv, 0, 10);
    deliver(srv, cli);
    expect(tunOut(cli)).toEqual([0, 1, 2, 3]);
    expect(cli.dp.drops().ring_full).toBe(6n);
    sendDown(srv, 30, 3);
    deliver(srv, cli);
    expect(tunOut(cli)).toEqual([30, 31, 32]);
    expect(cli.dp.drops().mppe_coherency).toBe(0n);
    expect(cli.ppp.resetRequests).toBe(0);
  });

  it('stateless: loss costs only the lost packets; no Reset-Request', () => {
    const { srv, cli } = pair(true);
    sendDown(srv, 0, 6);
    deliver(srv, cli, (i) => i % 2 === 0);
    expect(tunOut(cli)).toEqual([0, 2, 4]);
    expect(cli.ppp.resetRequests).toBe(0);
  });
});
