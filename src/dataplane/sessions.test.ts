/**
 * SessionTable.mppeState: the MPPE flags as the data plane holds them, read
 * by the control plane (a stateful receiver that lost sync keeps asking for
 * a flush while it discards, RFC 3078 8.2).
 */
import { describe, it, expect } from 'vitest';
import * as abi from '../../assembly/abi.js';
import { DataPlane } from './engine.js';
import { encodeGre } from '../pptp/gre.js';
import { ipv4Packet } from '../../test/lib/packets.js';

const PEER = '198.18.1.2';
const MY_CALL = 0x1234;
const slotAddr = (a: string) => new DataView(new Uint8Array(a.split('.').map(Number)).buffer).getUint32(0, true);

function pptpSession(stateless: boolean) {
  const dp = new DataPlane({ maxSessions: 2 });
  const idx = dp.sessions.allocate()!;
  dp.sessions.attach(idx, { tunnel: abi.Tunnel.PPTP, gre: { peer: PEER, myCallId: MY_CALL, peerCallId: 0x4321 } });
  const key = new Uint8Array(16).fill(7);
  dp.sessions.mppe(idx, { bits: 128, stateless, sendStartKey: key, recvStartKey: key });
  dp.sessions.activate(idx, { ipv4: '198.18.128.10', mtu: 1400 });
  dp.onControl(() => undefined);
  return { dp, idx };
}

/** A GRE data packet carrying an MPPE frame (ff 03 00 fd, flags/count, garbage) with this coherency count. */
function mppeFrame(count: number, flushed: boolean, seq: number): Uint8Array {
  const frame = new Uint8Array([0xff, 0x03, 0x00, 0xfd, (flushed ? 0x80 : 0) | 0x10 | (count >> 8), count & 0xff, 1, 2, 3, 4]);
  return ipv4Packet(PEER, '198.18.1.1', 47, encodeGre({ callId: MY_CALL, sequence: seq }, frame));
}

describe('SessionTable.mppe', () => {
  it('takes start keys of the strength\'s length: 8 octets at 40 and 56 bits, 16 at 128 (RFC 3079 3.1-3.3); shorter is a usage error', () => {
    const dp = new DataPlane({ maxSessions: 4 });
    const start = () => {
      const idx = dp.sessions.allocate()!;
      dp.sessions.attach(idx, { tunnel: abi.Tunnel.PPTP, gre: { peer: PEER, myCallId: MY_CALL + idx, peerCallId: 0x4321 } });
      return idx;
    };
    const k8 = new Uint8Array(8).fill(3);
    const k16 = new Uint8Array(16).fill(3);
    for (const bits of [40, 56] as const) {
      const idx = start();
      dp.sessions.mppe(idx, { bits, stateless: false, sendStartKey: k8, recvStartKey: k8 });
      expect(dp.sessions.mppeState(idx).on).toBe(true);
    }
    expect(() => dp.sessions.mppe(start(), { bits: 128, stateless: false, sendStartKey: k8, recvStartKey: k16 })).toThrow(/at 128 bits are 16 octets/);
    expect(() => dp.sessions.mppe(start(), { bits: 40, stateless: false, sendStartKey: k16, recvStartKey: new Uint8Array(7) })).toThrow(/at 40 bits are 8 octets/);
    dp.close();
  });
});

describe('SessionTable.mppeState', () => {
  it('reports the mode, a pending send flush, and the stateful receive discard state', () => {
    const { dp, idx } = pptpSession(false);
    expect(dp.sessions.mppeState(idx)).toEqual({ on: true, stateless: false, sendFlushPending: false, receiveDiscarding: false });
    dp.sessions.mppeReset(idx);
    expect(dp.sessions.mppeState(idx).sendFlushPending).toBe(true);
    // Coherency count 5 where 0 is expected: loss, so the receiver discards until a flushed packet.
    dp.ring(abi.RingId.GRE_RX).push(mppeFrame(5, false, 1), { addr: slotAddr(PEER) });
    dp.pump();
    expect(dp.sessions.mppeState(idx).receiveDiscarding).toBe(true);
    expect(dp.drops().mppe_coherency).toBe(1n);
    // A flushed packet that does not decrypt to IPv4 under any candidate key does not end it
    // (src/pptp/datapath.test.ts resynchronises with real packets).
    dp.ring(abi.RingId.GRE_RX).push(mppeFrame(6, true, 2), { addr: slotAddr(PEER) });
    dp.pump();
    expect(dp.sessions.mppeState(idx).receiveDiscarding).toBe(true);
    expect(dp.drops().mppe_discard).toBe(1n);
    dp.close();
  });

  it('stateless sessions and sessions without MPPE', () => {
    const { dp, idx } = pptpSession(true);
    expect(dp.sessions.mppeState(idx)).toEqual({ on: true, stateless: true, sendFlushPending: false, receiveDiscarding: false });
    const plain = dp.sessions.allocate()!;
    dp.sessions.attach(plain, { tunnel: abi.Tunnel.PPTP, gre: { peer: PEER, myCallId: 9, peerCallId: 10 } });
    expect(dp.sessions.mppeState(plain)).toEqual({ on: false, stateless: false, sendFlushPending: false, receiveDiscarding: false });
    dp.sessions.release(plain);
    expect(() => dp.sessions.mppeState(plain)).toThrow(/not allocated/);
    dp.close();
  });

  it('setGrePeerCall: the key of the packets sent changes; only on PPTP sessions', () => {
    const { dp, idx } = pptpSession(false);
    dp.sessions.setGrePeerCall(idx, 0x7777);
    dp.sessions.mppeReset(idx);
    dp.ring(abi.RingId.INJECT).push(new Uint8Array([0xff, 0x03, 0xc0, 0x21, 0x09, 0x01, 0x00, 0x08, 1, 2, 3, 4]), { session: idx });
    dp.pump();
    const keys: number[] = [];
    dp.ring(abi.RingId.GRE_TX).drain((p) => keys.push((p[6]! << 8) | p[7]!));
    expect(keys).toEqual([0x7777]);
    const sstp = dp.sessions.allocate()!;
    dp.sessions.attach(sstp, { tunnel: abi.Tunnel.SSTP });
    expect(() => dp.sessions.setGrePeerCall(sstp, 1)).toThrow(/not a PPTP session/);
    dp.close();
  });
});
