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
import { PathState, PptpDataPath, PPTP_MAX_MTU, RESET_REPEAT_MS } from './datapath.js';
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

  it('stateful: one Reset-Request per loss, repeated only while packets keep being discarded, none once resynchronised', () => {
    const { clock, srv, cli } = pair(false);
    sendDown(srv, 0, 5);
    deliver(srv, cli, (i) => i !== 2); // lose the third
    expect(tunOut(cli)).toEqual([0, 1]);
    expect(cli.ppp.resetRequests).toBe(1);
    expect(cli.path.stats).toMatchObject({ resetRequestsSent: 1, resetRequestsRepeated: 0 });
    // The request is lost too; the sender keeps sending, the receiver keeps discarding: repeated after RESET_REPEAT_MS.
    sendDown(srv, 10, 3);
    deliver(srv, cli);
    expect(tunOut(cli)).toEqual([]);
    clock.advance(RESET_REPEAT_MS);
    expect(cli.path.stats).toMatchObject({ resetRequestsSent: 2, resetRequestsRepeated: 1 });
    // Nothing arrives meanwhile (an idle sender): no repeat.
    clock.advance(RESET_REPEAT_MS * 3);
    expect(cli.path.stats.resetRequestsSent).toBe(2);
    // This one reaches the server: it flushes its next packet and acknowledges.
    srv.ppp.emit('ccpResetRequest', 7);
    expect(srv.ppp.resetAcks).toEqual([7]);
    expect(srv.path.stats.resetRequestsReceived).toBe(1);
    sendDown(srv, 20, 3);
    deliver(srv, cli);
    expect(tunOut(cli)).toEqual([20, 21, 22]);
    expect(cli.dp.sessions.mppeState(cli.path.idx).receiveDiscarding).toBe(false);
    clock.advance(RESET_REPEAT_MS * 4);
    expect(cli.path.stats.resetRequestsSent).toBe(2);
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
