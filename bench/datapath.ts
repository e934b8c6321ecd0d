/**
 * The WASM data path alone, in memory (no syscalls): how fast one core
 * turns TUN packets into tunnel packets and back, per protocol.
 *
 * - PPTP downlink: TUN_RX -> classify -> PPP -> MPPE (RC4) -> GRE -> GRE_TX,
 *   stateful and stateless, 1400 and 64 bytes, one session and 100 sessions.
 *   Reference: the WASM RC4 ceiling, rc4Crypt over the same bytes in the
 *   same module (the cipher alone, no framing, no classification).
 * - PPTP uplink: GRE_RX -> GRE sequencing -> MPPE decrypt -> TUN_TX.
 * - SSTP downlink: TUN_RX -> framing -> coalesced STREAM_OUT (TLS is
 *   node:tls's job and is measured in the sstp suite).
 *
 * Ring contents are prepared once; each round re-publishes the same slots
 * (head = tail + n) and discards the output (tail = head), so what is timed
 * is the WASM batch call and nothing in JavaScript per packet.
 */
import * as abi from '../assembly/abi.js';
import { RC4_STATE_SIZE } from '../assembly/crypto/sizes.js';
import { DataPlane } from '../src/dataplane/engine.js';
import { createKernelInstance } from '../src/crypto/kernels.js';
import type { Ring } from '../src/dataplane/ring.js';
import { fmt, sideBySide, type BenchContext, type BenchRow, type BenchSuite } from './lib.js';

const SLOTS = 1024;
/** Packets per WASM batch call (and per rc4Ceiling call). */
export const BATCH = 256;

function ipv4(src: number, dst: number, total: number, seed: number): Uint8Array {
  const p = new Uint8Array(total);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, total);
  p[8] = 64;
  p[9] = 17;
  dv.setUint32(12, src);
  dv.setUint32(16, dst);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += dv.getUint16(i);
  while (s >> 16) s = (s & 0xffff) + (s >>> 16);
  dv.setUint16(10, ~s & 0xffff);
  for (let i = 28; i < total; i++) p[i] = (i * 31 + seed) & 255;
  return p;
}

const BASE = 0xc6128000; // 198.18.128.0
const SERVER = '198.18.1.1';
const peerOf = (i: number) => `198.18.2.${(i % 250) + 1}`;
const slotAddr = (a: string) => new DataView(new Uint8Array(a.split('.').map(Number)).buffer).getUint32(0, true);

function engine(kind: 'pptp' | 'sstp', sessions: number, mppe: { stateless: boolean } | null, client = false): DataPlane {
  const dp = new DataPlane({
    maxSessions: Math.max(sessions, 16),
    ringSlots: { [abi.RingId.TUN_RX]: SLOTS, [abi.RingId.GRE_TX]: SLOTS, [abi.RingId.GRE_RX]: SLOTS, [abi.RingId.TUN_TX]: SLOTS, [abi.RingId.STREAM_OUT]: 256 },
  });
  for (let i = 0; i < sessions; i++) {
    const idx = dp.openSession({ control: () => {}, streamOut: () => {} })!;
    if (kind === 'pptp') {
      dp.sessions.attach(idx, {
        tunnel: abi.Tunnel.PPTP,
        client,
        gre: { peer: client ? SERVER : peerOf(i), myCallId: client ? 0x8000 + i : 1 + i, peerCallId: client ? 1 + i : 0x8000 + i },
      });
      if (mppe) {
        const a = new Uint8Array(16).fill(0x11 + i);
        const b = new Uint8Array(16).fill(0x77 + i);
        dp.sessions.mppe(idx, { bits: 128, stateless: mppe.stateless, sendStartKey: client ? b : a, recvStartKey: client ? a : b });
      }
    } else {
      dp.sessions.attach(idx, { tunnel: abi.Tunnel.SSTP });
    }
    dp.sessions.activate(idx, { ipv4: `198.18.128.${10 + i}`, mtu: 1500 });
  }
  return dp;
}

/** Fill every slot of `r` once from `packets` (round robin) with the given meta. */
function prefill(r: Ring, packets: { data: Uint8Array; addr?: number }[]): void {
  for (let i = 0; i < r.slots; i++) {
    const p = packets[i % packets.length]!;
    r.push(p.data, p.addr !== undefined ? { addr: p.addr } : {});
  }
  // Leave the ring empty (head == tail) with the slot contents in place.
  r.drain(() => {}, Infinity);
}

/** One round: republish `n` prepared slots of `input`, run the batch, drop the output. */
function runner(dp: DataPlane, input: abi.RingId, output: abi.RingId, n: number): () => void {
  const rin = dp.ring(input);
  const rout = dp.ring(output);
  const u32 = new Uint32Array(dp.memory.buffer as SharedArrayBuffer);
  const inHead = (rin.offset + abi.R_HEAD) >>> 2;
  const inTail = (rin.offset + abi.R_TAIL) >>> 2;
  const outHead = (rout.offset + abi.R_HEAD) >>> 2;
  const outTail = (rout.offset + abi.R_TAIL) >>> 2;
  return () => {
    u32[inHead] = (u32[inTail]! + n) >>> 0;
    dp.wasm.process(n);
    u32[outTail] = u32[outHead]!;
  };
}

/** The WASM RC4 ceiling: one call encrypts BATCH packets of `len` bytes in place (the cipher alone). */
export function rc4Ceiling(len: number): () => void {
  const w = createKernelInstance(1 << 20);
  const st = w.base;
  const pk = st + RC4_STATE_SIZE + 64;
  w.u8.set(new Uint8Array(16).fill(9), pk);
  w.kernels.rc4Init(st, pk, 16);
  return () => {
    for (let i = 0; i < BATCH; i++) w.kernels.rc4Crypt(st, pk + (i & 7) * 2048, pk + (i & 7) * 2048, len);
  };
}

export const suite: BenchSuite = {
  name: 'datapath',
  async run(ctx: BenchContext) {
    const rounds = ctx.quick ? 2 : 5;
    const ms = ctx.quick ? 80 : 200;
    const rows: BenchRow[] = [];
    const gbit = (pps: number, len: number) => (pps * len * 8) / 1e9;

    for (const len of [1400, 64]) {
      const ceiling = rc4Ceiling(len);
      for (const stateless of [false, true]) {
        for (const sessions of [1, 100]) {
          const dp = engine('pptp', sessions, { stateless });
          const pk = Array.from({ length: sessions }, (_, i) => ({ data: ipv4(0xc6120001, BASE + 10 + i, len, i) }));
          prefill(dp.ring(abi.RingId.TUN_RX), pk);
          const [pps, ref] = sideBySide(runner(dp, abi.RingId.TUN_RX, abi.RingId.GRE_TX, BATCH), ceiling, BATCH, rounds, ms);
          const drops = Object.entries(dp.drops()).filter(([, v]) => v > 0n);
          if (drops.length) throw new Error(`pptp downlink bench dropped packets: ${JSON.stringify(drops.map(([k, v]) => [k, Number(v)]))}`);
          const row: BenchRow = {
            name: `PPTP down ${len}B MPPE-128 ${stateless ? 'stateless' : 'stateful'}, ${sessions} session${sessions > 1 ? 's' : ''}`,
            value: pps,
            unit: 'pps',
            reference: { name: 'WASM RC4 ceiling, same bytes', value: ref },
            note: `${gbit(pps, len).toFixed(2)} Gbit/s`,
          };
          if (len === 1400 && !stateless) row.target = { op: '>=', value: 0.7, of: 'ratio' };
          rows.push(row);
          ctx.log(`${row.name}: ${fmt(pps)} pps, ${gbit(pps, len).toFixed(2)} Gbit/s (ceiling ${gbit(ref, len).toFixed(2)})`);
          dp.close();
        }
      }
      // Uplink: packets encrypted by a client-side engine, decrypted by the server-side engine.
      for (const stateless of [false, true]) {
        const cli = engine('pptp', 1, { stateless }, true);
        cli.wasm.setDefaultSession(0);
        const srv = engine('pptp', 1, { stateless });
        const total = 20 * SLOTS;
        const gre: Uint8Array[] = [];
        const up = ipv4(BASE + 10, 0xc6120001, len, 1);
        while (gre.length < total) {
          for (let i = 0; i < BATCH; i++) cli.ring(abi.RingId.TUN_RX).push(up);
          cli.pump();
          cli.ring(abi.RingId.GRE_TX).drain((p) => {
            const ip = new Uint8Array(20 + p.length);
            ip.set([0x45, 0, (20 + p.length) >> 8, (20 + p.length) & 255, 0, 0, 0, 0, 64, 47]);
            ip.set([198, 18, 2, 1], 12);
            ip.set(p, 20);
            gre.push(ip);
          });
        }
        const rx = srv.ring(abi.RingId.GRE_RX);
        const from = slotAddr(peerOf(0));
        let next = 0;
        const t0 = performance.now();
        let done = 0;
        while (next < total) {
          for (let i = 0; i < BATCH && next < total; i++) rx.push(gre[next++]!, { addr: from });
          done += srv.wasm.process(BATCH);
          srv.ring(abi.RingId.TUN_TX).drain(() => {});
        }
        const secs = (performance.now() - t0) / 1000;
        const delivered = Number(srv.stat(abi.Stat.PPTP_UP_PKTS));
        if (delivered !== total) throw new Error(`pptp uplink bench delivered ${delivered} of ${total}: ${JSON.stringify(Object.entries(srv.drops()).filter(([, v]) => v > 0n).map(([k, v]) => [k, Number(v)]))}`);
        const [refPps] = sideBySide(ceiling, ceiling, BATCH, 1, ms);
        rows.push({
          name: `PPTP up ${len}B MPPE-128 ${stateless ? 'stateless' : 'stateful'} (incl. JS ring push)`,
          value: done / secs,
          unit: 'pps',
          reference: { name: 'WASM RC4 ceiling, same bytes', value: refPps },
          note: `${gbit(done / secs, len).toFixed(2)} Gbit/s`,
        });
        cli.close();
        srv.close();
      }
      // SSTP downlink framing.
      for (const sessions of [1, 100]) {
        const dp = engine('sstp', sessions, null);
        prefill(dp.ring(abi.RingId.TUN_RX), Array.from({ length: sessions }, (_, i) => ({ data: ipv4(0xc6120001, BASE + 10 + i, len, i) })));
        const [pps, ref] = sideBySide(runner(dp, abi.RingId.TUN_RX, abi.RingId.STREAM_OUT, BATCH), ceiling, BATCH, rounds, ms);
        rows.push({
          name: `SSTP down ${len}B framing, ${sessions} session${sessions > 1 ? 's' : ''}`,
          value: pps,
          unit: 'pps',
          reference: { name: 'WASM RC4 ceiling, same bytes', value: ref },
          note: `${gbit(pps, len).toFixed(2)} Gbit/s`,
        });
        dp.close();
      }
    }
    return rows;
  },
};
