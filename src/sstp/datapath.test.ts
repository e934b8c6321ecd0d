/**
 * SstpStreamPath: the bounds between a TLS socket and the data plane.
 * Uplink: a full STREAM_IN pauses the socket and resumes it after a pump,
 * every byte delivered in order. Downlink: a socket backlog over the bound
 * drops (and counts) instead of queueing; a pump's frames go out in one
 * write, from buffers reused once the socket is done with them.
 */
import { describe, it, expect } from 'vitest';
import * as abi from '../../assembly/abi.js';
import { DataPlane } from '../dataplane/engine.js';
import { OUT_LARGE, OUT_SMALL, SstpStreamPath, outPoolSize } from './datapath.js';
import { dataPacketBytes } from './codec.js';
import { ipv4Packet, udp } from '../../test/lib/packets.js';

const CLIENT = '198.18.128.10';

function fakeSocket(backlog = 0) {
  const s = { writes: [] as Uint8Array[], writableLength: backlog, paused: 0, resumed: 0 };
  return {
    s,
    socket: {
      write: (b: Uint8Array) => s.writes.push(b),
      get writableLength() {
        return s.writableLength;
      },
      pause: () => s.paused++,
      resume: () => s.resumed++,
    },
  };
}

const noSink = { onControl: () => {}, onPppFrame: () => {}, onStreamError: () => {} };

describe('SstpStreamPath', () => {
  it('downlink: framed IP goes to the socket; over the backlog bound it is dropped and counted', () => {
    const dp = new DataPlane({ maxSessions: 2, streamBuffers: true });
    const { s, socket } = fakeSocket();
    const path = SstpStreamPath.open(dp, socket, noSink, { maxWriteBacklog: 1000 })!;
    path.attach();
    path.activate({ ipv4: CLIENT, mtu: 1400 });
    const pk = ipv4Packet('198.18.128.1', CLIENT, 17, udp(53, 1000, new Uint8Array(100)));
    dp.ring(abi.RingId.TUN_RX).push(pk);
    dp.pump();
    expect(s.writes).toHaveLength(1);
    expect(Array.from(s.writes[0]!)).toEqual(Array.from(dataPacketBytes(new Uint8Array([0xff, 0x03, 0x00, 0x21, ...pk]))));
    s.writableLength = 1001;
    dp.ring(abi.RingId.TUN_RX).push(pk);
    dp.pump();
    expect(s.writes).toHaveLength(1);
    expect(path.stats).toMatchObject({ downlinkDropped: 1, downlinkDroppedBytes: 4 + 4 + pk.length });
    expect(dp.drops().stream_backlog).toBe(1n);
    // A pump's slot of three packets dropped at once counts three.
    for (let i = 0; i < 3; i++) dp.ring(abi.RingId.TUN_RX).push(pk);
    dp.pump();
    expect(s.writes).toHaveLength(1);
    expect(dp.drops().stream_backlog).toBe(4n);
    path.close();
    expect(dp.sessions.used).toBe(0);
    dp.close();
  });

  it('uplink: a full STREAM_IN pauses the socket; the pump resumes it and every byte arrives in order', () => {
    const dp = new DataPlane({ maxSessions: 2, streamBuffers: true, ringSlots: { [abi.RingId.STREAM_IN]: 2 } });
    const { s, socket } = fakeSocket();
    const path = SstpStreamPath.open(dp, socket, noSink)!;
    path.attach();
    path.activate({ ipv4: CLIENT, mtu: 1400 });
    const pk = ipv4Packet(CLIENT, '198.18.128.1', 17, udp(1000, 53, new Uint8Array(1300)));
    const one = dataPacketBytes(new Uint8Array([0xff, 0x03, 0x00, 0x21, ...pk]));
    const N = 40; // about 53 KB: more than two 16 KiB slots
    const all = new Uint8Array(one.length * N);
    for (let i = 0; i < N; i++) all.set(one, i * one.length);
    path.input(all.subarray(0, 30_000));
    path.input(all.subarray(30_000)); // arrives while paused: queued behind the rest
    expect(s.paused).toBe(1);
    let rounds = 0;
    const tun: number[] = [];
    while (s.resumed === 0 && rounds++ < 20) {
      dp.pump();
      dp.ring(abi.RingId.TUN_TX).drain((p) => tun.push(p.length));
    }
    dp.pump();
    dp.ring(abi.RingId.TUN_TX).drain((p) => tun.push(p.length));
    expect(s.resumed).toBe(1);
    expect(tun).toEqual(new Array(N).fill(pk.length));
    expect(dp.stat(abi.Stat.STREAM_IN_BYTES)).toBe(BigInt(all.length));
    path.close();
    dp.close();
  });

  it('downlink: one write per pump with every frame in order, from pooled buffers the socket hands back', () => {
    const dp = new DataPlane({ maxSessions: 2, streamBuffers: true });
    const writes: { bytes: Uint8Array; done?: () => void }[] = [];
    const socket = { write: (bytes: Uint8Array, done?: () => void) => writes.push({ bytes, done }), writableLength: 0, pause: () => {}, resume: () => {} };
    const path = SstpStreamPath.open(dp, socket, noSink)!;
    path.attach();
    path.activate({ ipv4: CLIENT, mtu: 1400 });
    const pks = Array.from({ length: 100 }, (_, i) => ipv4Packet('198.18.128.1', CLIENT, 17, udp(53, 1000 + i, new Uint8Array(1250).fill(i))));
    const framed = pks.map((pk) => dataPacketBytes(new Uint8Array([0xff, 0x03, 0x00, 0x21, ...pk])));
    const burst = () => {
      // 100 packets: about 130 KB, eight or nine 16 KiB STREAM_OUT slots, in one pump.
      for (const pk of pks) dp.ring(abi.RingId.TUN_RX).push(pk);
      dp.pump();
    };
    burst();
    expect(writes).toHaveLength(1);
    const all = Buffer.concat(framed);
    expect(Buffer.compare(writes[0]!.bytes, all)).toBe(0);
    // A busy pump ends up in a large buffer; the socket hands it back, the next busy pump writes from it again.
    const large = writes[0]!.bytes.buffer;
    expect(large.byteLength).toBe(OUT_LARGE);
    const idleLarge = outPoolSize(OUT_LARGE);
    writes[0]!.done!();
    expect(outPoolSize(OUT_LARGE)).toBe(idleLarge + 1);
    burst();
    expect(writes).toHaveLength(2);
    expect(writes[1]!.bytes.buffer).toBe(large);
    expect(Buffer.compare(writes[1]!.bytes, all)).toBe(0);
    // A pump with little for the session writes from a small buffer, reused the same way.
    dp.ring(abi.RingId.TUN_RX).push(pks[0]!);
    dp.pump();
    const small = writes[2]!.bytes.buffer;
    expect(small.byteLength).toBe(OUT_SMALL);
    expect(Buffer.compare(writes[2]!.bytes, framed[0]!)).toBe(0);
    writes[2]!.done!();
    dp.ring(abi.RingId.TUN_RX).push(pks[1]!);
    dp.pump();
    expect(writes[3]!.bytes.buffer).toBe(small);
    expect(Buffer.compare(writes[3]!.bytes, framed[1]!)).toBe(0);
    // A buffer still in the socket's hands is not reused.
    dp.ring(abi.RingId.TUN_RX).push(pks[2]!);
    dp.pump();
    expect(writes[4]!.bytes.buffer).not.toBe(small);
    expect(writes[4]!.bytes.buffer).not.toBe(large);
    path.close();
    dp.close();
  });

  it('downlink with many sessions: each gets one small write per pump, not a large buffer each', () => {
    const dp = new DataPlane({ maxSessions: 64, streamBuffers: true });
    const writes: Uint8Array[][] = [];
    const paths = Array.from({ length: 50 }, (_, i) => {
      const mine: Uint8Array[] = [];
      writes.push(mine);
      const p = SstpStreamPath.open(dp, { write: (b: Uint8Array) => mine.push(b), writableLength: 0, pause: () => {}, resume: () => {} }, noSink)!;
      p.attach();
      p.activate({ ipv4: `198.18.128.${10 + i}`, mtu: 1400 });
      return p;
    });
    for (let k = 0; k < 3; k++) for (let i = 0; i < 50; i++) dp.ring(abi.RingId.TUN_RX).push(ipv4Packet('198.18.128.1', `198.18.128.${10 + i}`, 17, udp(53, 1000 + k, new Uint8Array(1000))));
    dp.pump();
    for (const mine of writes) {
      expect(mine).toHaveLength(1);
      expect(mine[0]!.buffer.byteLength).toBe(OUT_SMALL);
      expect(mine[0]!.length).toBe(3 * (4 + 4 + 1028));
    }
    for (const p of paths) p.close();
    dp.close();
  });

  it('a full session table refuses the connection (open returns undefined)', () => {
    const dp = new DataPlane({ maxSessions: 1, streamBuffers: true });
    const a = SstpStreamPath.open(dp, fakeSocket().socket, noSink);
    expect(a).toBeDefined();
    expect(SstpStreamPath.open(dp, fakeSocket().socket, noSink)).toBeUndefined();
    a!.close();
    expect(SstpStreamPath.open(dp, fakeSocket().socket, noSink)).toBeDefined();
    dp.close();
  });
});
