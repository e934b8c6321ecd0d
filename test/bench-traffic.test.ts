/**
 * The tunnel benchmarks' traffic helpers (bench/traffic.ts): the packets
 * they make must be what a kernel accepts (a wrong checksum would make a
 * benchmark measure nothing), uplink batches must carry each session's own
 * source address, and the windowed sender must keep its bound and account
 * for losses.
 */
import { describe, it, expect } from 'vitest';
import * as abi from '../assembly/abi.js';
import { DataPlane } from '../src/dataplane/engine.js';
import { TunRxWriter, ipv4Checksum, runWindowed, udpPacket } from '../bench/traffic.js';

/** One's-complement sum of the IPv4 header: 0xffff when the checksum is right (RFC 791, RFC 1071). */
function headerSum(p: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (p[i]! << 8) | p[i + 1]!;
  while (s >> 16) s = (s & 0xffff) + (s >>> 16);
  return s;
}

describe('bench traffic helpers', () => {
  it('udpPacket: IPv4/UDP of the asked size with a header checksum a receiver accepts', () => {
    for (const total of [64, 1400]) {
      const p = udpPacket('198.18.128.10', '198.18.5.1', 9, total);
      expect(p.length).toBe(total);
      expect(p[0]).toBe(0x45);
      expect((p[2]! << 8) | p[3]!).toBe(total);
      expect(p[9]).toBe(17);
      expect(Array.from(p.subarray(12, 20))).toEqual([198, 18, 128, 10, 198, 18, 5, 1]);
      expect((p[22]! << 8) | p[23]!).toBe(9);
      expect((p[24]! << 8) | p[25]!).toBe(total - 20);
      expect(headerSum(p)).toBe(0xffff);
      expect(ipv4Checksum(p)).toBe((p[10]! << 8) | p[11]!);
    }
  });

  it('TunRxWriter: each batch goes out of its own session with that session\'s source address and a valid checksum', () => {
    const dp = new DataPlane({ maxSessions: 8, streamBuffers: true });
    const clients = ['198.18.128.10', '198.18.128.11', '198.18.128.12'].map((ipv4) => {
      const idx = dp.openSession({ control: () => {} })!;
      dp.sessions.attach(idx, { tunnel: abi.Tunnel.SSTP, client: true });
      dp.sessions.activate(idx, { ipv4, mtu: 1400 });
      return { sessionIndex: idx, ipv4 };
    });
    const seen = new Map<number, string[]>();
    dp.onStreamOut((bytes, m) => {
      // SSTP data packets (MS-SSTP 2.2.2): 4-byte header, then PPP ff 03 00 21 and the IP packet.
      for (let at = 0; at < bytes.length; ) {
        const len = ((bytes[at + 2]! & 0x0f) << 8) | bytes[at + 3]!;
        const ip = bytes.subarray(at + 8, at + len);
        expect(headerSum(ip)).toBe(0xffff);
        const list = seen.get(m.session) ?? [];
        list.push(Array.from(ip.subarray(12, 16)).join('.'));
        seen.set(m.session, list);
        at += len;
      }
    });
    const w = new TunRxWriter(dp, clients, '198.18.5.1', 9, 200, 4);
    expect(w.publish(22)).toBe(22);
    // Round robin in batches of 4: 8 + 8 + 6 packets.
    expect(clients.map((c) => seen.get(c.sessionIndex)?.length)).toEqual([8, 8, 6]);
    for (const c of clients) expect(new Set(seen.get(c.sessionIndex))).toEqual(new Set([c.ipv4]));
    expect(dp.drops().spoofed_source).toBe(0n);
    dp.close();
  });

  it('runWindowed: never more than the window in flight; the sink count over the window is reported; a stalled window counts as lost', async () => {
    let sent = 0;
    let delivered = 0;
    let maxInFlight = 0;
    const inPipe: number[] = [];
    let dropNext = 0;
    const marks: string[] = [];
    // A pipe that delivers what was sent two turns ago, losing a batch once.
    const timer = setInterval(() => {
      const n = inPipe.shift() ?? 0;
      if (dropNext > 0) {
        dropNext = 0;
        return;
      }
      delivered += n;
    }, 1);
    try {
      let first = true;
      const r = await runWindowed({
        warmMs: 50,
        ms: 300,
        window: 64,
        publish: (n) => {
          if (first) {
            first = false;
            dropNext = 1;
          }
          sent += n;
          inPipe.push(n);
          maxInFlight = Math.max(maxInFlight, sent - delivered);
          return n;
        },
        delivered: () => delivered,
        drainSink: () => {},
        mark: (tag) => marks.push(tag),
      });
      expect(marks).toEqual(['start', 'end']);
      expect(r.seconds).toBeGreaterThan(0.25);
      expect(r.seconds).toBeLessThan(1);
      expect(r.packets).toBeGreaterThan(0);
      expect(r.sent).toBe(sent);
      // The first batch (a whole window) vanished: declared lost once the window stalled.
      expect(r.lost).toBe(64);
      // In flight = sent - delivered - lost never above the window: before the loss at most 64.
      expect(maxInFlight).toBeLessThanOrEqual(64 + r.lost);
    } finally {
      clearInterval(timer);
    }
  });
});
