import { describe, it, expect } from 'vitest';
import * as abi from '../../assembly/abi.js';
import { DataPlane } from './engine.js';
import { native } from './native.js';
import { icmpEcho, inetChecksum, ipv4Packet } from '../../test/lib/packets.js';

function responder() {
  return new DataPlane({ mode: abi.Mode.RESPONDER, maxSessions: 16 });
}

describe('data plane engine (in memory, no native threads)', () => {
  it('answers an ICMP echo request placed in TUN_RX with a valid reply in TUN_TX', () => {
    const dp = responder();
    const data = new Uint8Array(56).map((_, i) => i);
    const req = ipv4Packet('198.18.1.2', '198.18.1.1', 1, icmpEcho(8, 0x1234, 7, data));
    expect(dp.ring(abi.RingId.TUN_RX).push(req)).toBe(true);
    dp.pump();
    const out: Uint8Array[] = [];
    dp.ring(abi.RingId.TUN_TX).drain((p) => out.push(p.slice()));
    expect(out).toHaveLength(1);
    const r = out[0]!;
    expect(r.length).toBe(req.length);
    expect(Array.from(r.subarray(12, 16))).toEqual([198, 18, 1, 1]);
    expect(Array.from(r.subarray(16, 20))).toEqual([198, 18, 1, 2]);
    expect(inetChecksum(r, 0, 20)).toBe(0);
    expect(r[20]).toBe(0); // echo reply
    expect(inetChecksum(r, 20)).toBe(0);
    expect(Array.from(r.subarray(24, 28))).toEqual([0x12, 0x34, 0, 7]);
    expect(Array.from(r.subarray(28))).toEqual(Array.from(data));
    expect(dp.stat(abi.Stat.RESPONDER_REPLIES)).toBe(1n);
  });

  it('checksums odd-length and long payloads correctly', () => {
    const dp = responder();
    for (const n of [0, 1, 7, 8, 9, 63, 1371, 1472]) {
      const data = new Uint8Array(n).map((_, i) => (i * 37 + n) & 255);
      dp.ring(abi.RingId.TUN_RX).push(ipv4Packet('198.18.1.2', '198.18.1.1', 1, icmpEcho(8, 1, n, data)));
    }
    dp.pump();
    const outs: Uint8Array[] = [];
    dp.ring(abi.RingId.TUN_TX).drain((p) => outs.push(p.slice()));
    expect(outs).toHaveLength(8);
    for (const r of outs) {
      expect(inetChecksum(r, 0, 20)).toBe(0);
      expect(inetChecksum(r, 20)).toBe(0);
    }
  });

  it('drops and counts by reason: not ICMP echo, bad IP version, bad header, truncated', () => {
    const dp = responder();
    const rx = dp.ring(abi.RingId.TUN_RX);
    rx.push(ipv4Packet('198.18.1.2', '198.18.1.1', 17, new Uint8Array(12))); // UDP
    rx.push(ipv4Packet('198.18.1.2', '198.18.1.1', 1, icmpEcho(0, 1, 1, new Uint8Array(4)))); // echo reply
    rx.push(new Uint8Array([0x60, 0, 0, 0])); // IPv6: valid, not answered
    rx.push(new Uint8Array([0x50, 0, 0, 0])); // version 5
    const bad = ipv4Packet('198.18.1.2', '198.18.1.1', 1, icmpEcho(8, 1, 1, new Uint8Array(4)));
    bad[0] = 0x4f; // IHL 60 > length
    rx.push(bad);
    const lying = ipv4Packet('198.18.1.2', '198.18.1.1', 1, icmpEcho(8, 1, 1, new Uint8Array(4)));
    new DataView(lying.buffer).setUint16(2, 9000); // total length beyond the packet
    rx.push(lying);
    rx.push(new Uint8Array(0));
    dp.pump();
    const d = dp.drops();
    expect(d.not_icmp_echo).toBe(3n);
    expect(d.bad_ip_version).toBe(1n);
    expect(d.bad_ip_header).toBe(2n);
    expect(d.truncated).toBe(1n);
    expect(dp.ring(abi.RingId.TUN_TX).occupancy).toBe(0);
  });

  it('counts a full TX ring as a drop instead of overwriting', () => {
    const dp = new DataPlane({ mode: abi.Mode.RESPONDER, maxSessions: 16, ringSlots: { [abi.RingId.TUN_TX]: 4 } });
    const rx = dp.ring(abi.RingId.TUN_RX);
    for (let i = 0; i < 10; i++) rx.push(ipv4Packet('198.18.1.2', '198.18.1.1', 1, icmpEcho(8, 1, i, new Uint8Array(8))));
    dp.pump();
    expect(dp.ring(abi.RingId.TUN_TX).occupancy).toBe(4);
    expect(dp.drops().ring_full).toBe(6n);
    const seqs: number[] = [];
    dp.ring(abi.RingId.TUN_TX).drain((p) => seqs.push((p[26]! << 8) | p[27]!));
    expect(seqs).toEqual([0, 1, 2, 3]);
  });
});

describe('ring counters', () => {
  it('carry into the high word of the u64', () => {
    const dp = new DataPlane({ mode: abi.Mode.RESPONDER, maxSessions: 16 });
    const r = dp.ring(abi.RingId.INJECT);
    const at = r.offset + abi.R_PRODUCED_BYTES;
    dp.dv.setBigUint64(at, 0xffff_fff0n, true);
    r.push(new Uint8Array(0x20));
    expect(dp.dv.getBigUint64(at, true)).toBe(0x1_0000_0010n);
  });
});

describe('session handlers', () => {
  it('dispatch diverted control frames and stream bytes to the session that owns them', () => {
    const dp = new DataPlane({ maxSessions: 4 });
    const got: string[] = [];
    const a = dp.openSession({ control: (k, p) => got.push(`a:${k}:${p.length}`), streamOut: (b) => got.push(`a:out:${b.length}`) })!;
    const b = dp.openSession({ control: (k, p) => got.push(`b:${k}:${p.length}`) })!;
    for (const idx of [a, b]) dp.sessions.attach(idx, { tunnel: abi.Tunnel.SSTP });
    // An SSTP control packet (echo request) for each, via the stream.
    const echo = new Uint8Array([0x10, 0x01, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00]);
    dp.streamIn(b, echo);
    dp.streamIn(a, echo);
    dp.pump();
    expect(got).toEqual([`b:${abi.CtrlKind.SSTP_CONTROL}:8`, `a:${abi.CtrlKind.SSTP_CONTROL}:8`]);
    dp.closeSession(b);
    dp.closeSession(b); // idempotent
    expect(dp.sessions.used).toBe(1);
    const c = dp.openSession({ control: () => got.push('c') });
    expect(c).toBe(b); // the entry is reused
  });

  it('streamOutEnd() once per pump, after all of the stream bytes of that pump, only for sessions that got some', () => {
    const dp = new DataPlane({ maxSessions: 4, streamBuffers: true, ringSlots: { [abi.RingId.STREAM_OUT]: 32 } });
    const got: string[] = [];
    const mk = (name: string) => dp.openSession({ control: () => got.push(`${name}:ctrl`), streamOut: (b) => got.push(`${name}:out`), streamOutEnd: () => got.push(`${name}:end`) })!;
    const a = mk('a');
    const b = mk('b');
    const addr = (i: number) => `198.18.128.${10 + i}`;
    for (const [i, idx] of [a, b].entries()) {
      dp.sessions.attach(idx, { tunnel: abi.Tunnel.SSTP });
      dp.sessions.activate(idx, { ipv4: addr(i), mtu: 1400 });
    }
    // 300 packets of 1300 bytes for a: two rounds of process() (256 each), 12 packets per 16 KiB slot.
    const pk = new Uint8Array(1300);
    pk.set([0x45, 0, 1300 >> 8, 1300 & 255, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 128, 1, 198, 18, 128, 10]);
    let s = 0;
    for (let i = 0; i < 20; i += 2) s += (pk[i]! << 8) | pk[i + 1]!;
    while (s >> 16) s = (s & 0xffff) + (s >>> 16);
    pk[10] = ~s >> 8 & 255;
    pk[11] = ~s & 255;
    for (let i = 0; i < 300; i++) dp.ring(abi.RingId.TUN_RX).push(pk);
    dp.pump();
    const outs = got.filter((g) => g === 'a:out').length;
    expect(outs).toBe(Math.ceil(256 / 12) + Math.ceil(44 / 12));
    expect(got).toEqual([...new Array(outs).fill('a:out'), 'a:end']);
    got.length = 0;
    dp.pump(); // nothing to do: no end either
    expect(got).toEqual([]);
    expect(dp.drops().ring_full).toBe(0n);
    dp.close();
  });
});

describe('STREAM_IN back-pressure', () => {
  it('streamIn() takes what fits; onStreamInSpace() calls back once, after a pump freed slots', () => {
    const dp = new DataPlane({ maxSessions: 2, ringSlots: { [abi.RingId.STREAM_IN]: 2 } });
    const idx = dp.openSession({ control: () => {} })!;
    dp.sessions.attach(idx, { tunnel: abi.Tunnel.SSTP });
    // Three slots' worth of SSTP data packets (4 + 4092 octets each, never completed: the content is irrelevant).
    const chunk = new Uint8Array(3 * abi.STREAM_SLOT_MAX_PAYLOAD);
    const taken = dp.streamIn(idx, chunk);
    expect(taken).toBe(2 * abi.STREAM_SLOT_MAX_PAYLOAD);
    expect(dp.streamIn(idx, chunk.subarray(taken))).toBe(0);
    let calls = 0;
    dp.onStreamInSpace(() => calls++);
    expect(calls).toBe(0);
    dp.pump();
    expect(calls).toBe(1);
    expect(dp.streamIn(idx, chunk.subarray(taken))).toBe(abi.STREAM_SLOT_MAX_PAYLOAD);
    dp.pump();
    expect(calls).toBe(1);
    dp.close();
  });
});

describe('wake-ups', () => {
  it('processes packets that reached an input ring before the engine first announced sleep', async () => {
    const dp = new DataPlane({ mode: abi.Mode.RESPONDER, maxSessions: 4 });
    // As if the I/O thread had produced before attach() returned.
    dp.ring(abi.RingId.TUN_RX).push(ipv4Packet('198.18.1.2', '198.18.1.1', 1, icmpEcho(8, 1, 1, new Uint8Array(8))));
    const fd = native.udpSocket({ address: '127.0.0.1', port: 0 });
    try {
      dp.attach('udp', fd, 'socket', abi.RingId.TUN_RX);
      await new Promise((r) => setTimeout(r, 50));
      expect(dp.stat(abi.Stat.RESPONDER_REPLIES)).toBe(1n);
      expect(dp.ring(abi.RingId.TUN_RX).occupancy).toBe(0);
    } finally {
      dp.close();
      native.close(fd);
    }
  });
});
