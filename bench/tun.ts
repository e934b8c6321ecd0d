/**
 * TUN device packets/s through the native addon's I/O thread, per packet
 * (batch 1) and batched (batch 64), in a network namespace this bench makes.
 *
 * read:  a UDP socket in the namespace, driven by its own I/O thread with
 *        sendmmsg, sends 64-byte datagrams to a prefix routed into the TUN;
 *        the TUN reader thread moves them into TUN_RX and the WASM data plane
 *        (forward mode) classifies and drops them (no session): the whole
 *        downlink entry path. Reference: the generator's own send rate.
 * write: the main thread keeps TUN_TX full of 64-byte IPv4/UDP packets to a
 *        blackholed prefix; the TUN writer thread drains it. Reference: the
 *        same packets written by a UDP socket's sendmmsg (a raw socket ceiling
 *        for "one packet into the kernel").
 * Each is also given per core of the I/O thread (its own CPU time, kernel
 * work of its system calls included), the form of the "on one core" targets.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as abi from '../assembly/abi.js';
import { DataPlane } from '../src/dataplane/engine.js';
import { native, type IoHandle } from '../src/dataplane/native.js';
import { Ring } from '../src/dataplane/ring.js';
import { createMemory } from '../src/dataplane/wasm.js';
import type { BenchRow, BenchSuite } from './lib.js';

const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });

function udpPacket(src: number[], dst: number[], payload: number): Uint8Array {
  const p = new Uint8Array(20 + 8 + payload);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, p.length);
  p[8] = 64;
  p[9] = 17;
  p.set(src, 12);
  p.set(dst, 16);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (p[i]! << 8) | p[i + 1]!;
  while (s >> 16) s = (s & 0xffff) + (s >>> 16);
  dv.setUint16(10, ~s & 0xffff);
  dv.setUint16(20, 9999);
  dv.setUint16(22, 9);
  dv.setUint16(24, 8 + payload);
  return p;
}

function ringMemory(slots: number) {
  const mem = createMemory(Math.ceil((abi.DP_BASE + 2 * (abi.RING_HEADER_SIZE + slots * abi.SLOT_SIZE)) / abi.WASM_PAGE) + 1);
  const dv = new DataView(mem.buffer as SharedArrayBuffer);
  const tx = abi.DP_BASE;
  dv.setUint32(tx + abi.R_SLOTS, slots, true);
  dv.setUint32(tx + abi.R_SLOT_SIZE, abi.SLOT_SIZE, true);
  return { mem, u8: new Uint8Array(mem.buffer as SharedArrayBuffer), tx: new Ring(mem, tx), txOff: tx };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Keep `ring` full for `ms`, kicking `h` when its consumer sleeps; returns packets consumed per second. */
async function feed(ring: Ring, h: IoHandle, pkt: Uint8Array, meta: { addr?: number; aux?: number }, ms: number): Promise<number> {
  const c0 = ring.counter(abi.R_CONSUMED_PKTS);
  const t0 = performance.now();
  const end = t0 + ms;
  while (performance.now() < end) {
    for (let i = 0; i < ring.slots && ring.push(pkt, meta); i++);
    if (ring.takeConsumerSleeping()) native.ioKick(h);
    await new Promise((r) => setImmediate(r));
  }
  const n = Number(ring.counter(abi.R_CONSUMED_PKTS) - c0);
  return n / ((performance.now() - t0) / 1000);
}

/** Starts a CPU-time window on an I/O thread; the returned function gives the cores it used since (CPU s / wall s). */
function threadCpu(h: IoHandle): () => number {
  const c0 = native.ioCpuSeconds(h);
  const t0 = performance.now();
  return () => (native.ioCpuSeconds(h) - c0) / ((performance.now() - t0) / 1000);
}

/**
 * What one core of the I/O thread would move at this cost per packet: the
 * rate divided by the share of a core the thread used. The thread's CPU time
 * includes the kernel work of its system calls (the TUN read or write path).
 * On two shared cores the generator or the feeding main thread can be the
 * bound of the wall rate; this figure is the I/O thread's own capacity.
 */
function perCore(name: string, pps: number, cores: number, target: number | undefined): BenchRow {
  return {
    name,
    value: cores > 0 ? pps / Math.min(1, cores) : 0,
    unit: 'pps',
    note: `${(pps / 1e3).toFixed(0)} kpps at ${cores.toFixed(2)} cores`,
    ...(target !== undefined ? { target: { op: '>=', value: target, of: 'value' } as const } : {}),
  };
}

export const suite: BenchSuite = {
  name: 'tun',
  unavailable() {
    if (process.getuid?.() !== 0) return 'needs root (network namespace, TUN device)';
    if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
    return undefined;
  },
  async run(ctx) {
    const ms = ctx.quick ? 700 : 2000;
    const ns = `vgb-tun-${process.pid}`;
    const rows: BenchRow[] = [];
    ip('netns', 'add', ns);
    try {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'addr', 'add', '198.18.11.1/32', 'dev', 'lo');
      ip('-n', ns, 'route', 'add', 'blackhole', '198.18.10.0/24');
      const pkt = udpPacket([198, 18, 9, 2], [198, 18, 10, 1], 36); // 64 bytes

      // Reference: sendmmsg of the same 64-byte IP packets into the kernel via a raw socket (IP_HDRINCL-free: UDP payload).
      {
        const fd = native.udpSocket({ netns: ns, port: 0, address: '198.18.11.1', sndbuf: 4 << 20 });
        const r = ringMemory(1024);
        const h = native.ioStart(r.u8, { fd, kind: 'socket', txRing: r.txOff, batch: 64 }, () => {});
        const dst = new DataView(new Uint8Array([198, 18, 10, 1]).buffer).getUint32(0, true);
        const ref = await feed(r.tx, h, pkt.subarray(28), { addr: dst, aux: 9 }, ms);
        native.ioStop(h);
        native.close(fd);
        ctx.log(`udp sendmmsg reference: ${(ref / 1e3).toFixed(0)} kpps`);

        for (const batch of [1, 64]) {
          const tun = native.openTun('vgbtun0', { netns: ns });
          native.configureInterface('vgbtun0', { netns: ns, ipv4: '198.18.9.1', prefixLen: 24, txQueueLen: 4096, up: true });
          const w = ringMemory(1024);
          const hw = native.ioStart(w.u8, { fd: tun.fd, kind: 'tun', txRing: w.txOff, batch }, () => {});
          const cpu = threadCpu(hw);
          const pps = await feed(w.tx, hw, pkt, {}, ms);
          const cores = cpu();
          native.ioStop(hw);
          native.close(tun.fd);
          rows.push({
            name: `TUN write 64B, batch ${batch}`,
            value: pps,
            unit: 'pps',
            reference: { name: 'UDP sendmmsg, same packets', value: ref },
            note: `writer thread ${cores.toFixed(2)} cores`,
          });
          rows.push(perCore(`TUN write 64B, batch ${batch}, per core of the writer thread`, pps, cores, batch > 1 ? 500_000 : undefined));
          await sleep(50);
        }
      }

      // Read path: generator (UDP sendmmsg in the namespace) -> routed into the TUN -> reader -> WASM.
      for (const batch of [1, 64]) {
        const dp = new DataPlane({ mode: abi.Mode.FORWARD, maxSessions: 16 });
        const tun = native.openTun('vgbtun1', { netns: ns });
        native.configureInterface('vgbtun1', { netns: ns, ipv4: '198.18.12.1', prefixLen: 24, txQueueLen: 8192, up: true });
        ip('-n', ns, 'route', 'replace', '198.18.13.0/24', 'dev', 'vgbtun1');
        const a = dp.attach('tun', tun.fd, 'tun', abi.RingId.TUN_RX, undefined, batch);
        const fd = native.udpSocket({ netns: ns, port: 0, address: '198.18.11.1', sndbuf: 4 << 20 });
        const g = ringMemory(1024);
        const hg = native.ioStart(g.u8, { fd, kind: 'socket', txRing: g.txOff, batch: 64 }, () => {});
        const dst = new DataView(new Uint8Array([198, 18, 13, 1]).buffer).getUint32(0, true);
        const rx = dp.ring(abi.RingId.TUN_RX);
        const p0 = rx.counter(abi.R_PRODUCED_PKTS);
        const t0 = performance.now();
        const cpu = threadCpu(a.handle);
        const sent = await feed(g.tx, hg, pkt.subarray(28), { addr: dst, aux: 9 }, ms);
        const read = Number(rx.counter(abi.R_PRODUCED_PKTS) - p0) / ((performance.now() - t0) / 1000);
        const cores = cpu();
        native.ioStop(hg);
        native.close(fd);
        dp.close();
        native.close(tun.fd);
        rows.push({
          name: `TUN read 64B -> WASM classify, batch ${batch}`,
          value: read,
          unit: 'pps',
          reference: { name: 'generator send rate', value: sent },
          note: `reader thread ${cores.toFixed(2)} cores; no_session drops ${dp.drops().no_session}`,
        });
        rows.push(perCore(`TUN read 64B, batch ${batch}, per core of the reader thread`, read, cores, batch > 1 ? 400_000 : undefined));
        await sleep(50);
      }
    } finally {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* already gone */
      }
    }
    return rows;
  },
};
