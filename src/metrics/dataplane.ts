/**
 * Reading the data plane's counters for a scrape: the u64 statistics and
 * drop counters in each worker's WASM memory, summed over workers, and each
 * ring's occupancy. Called only from `collect()` at scrape time.
 */
import * as abi from '../../assembly/abi.js';
import type { Protocol } from '../config/schema.js';
import type { DataplaneSnapshot, ProtocolTraffic } from './registry.js';

/** The part of a data-plane engine (src/dataplane/engine.ts DataPlane) a scrape reads. */
export interface DataplaneStats {
  stat(s: abi.Stat | number): bigint;
  drops(): Record<string, bigint>;
  hasRing(id: abi.RingId): boolean;
  ring(id: abi.RingId): { readonly occupancy: number; readonly slots: number };
}

const TRAFFIC_STATS: Record<Protocol, [up: abi.Stat, upBytes: abi.Stat, down: abi.Stat, downBytes: abi.Stat]> = {
  sstp: [abi.Stat.SSTP_UP_PKTS, abi.Stat.SSTP_UP_BYTES, abi.Stat.SSTP_DOWN_PKTS, abi.Stat.SSTP_DOWN_BYTES],
  pptp: [abi.Stat.PPTP_UP_PKTS, abi.Stat.PPTP_UP_BYTES, abi.Stat.PPTP_DOWN_PKTS, abi.Stat.PPTP_DOWN_BYTES],
  l2tp: [abi.Stat.L2TP_UP_PKTS, abi.Stat.L2TP_UP_BYTES, abi.Stat.L2TP_DOWN_PKTS, abi.Stat.L2TP_DOWN_BYTES],
};

export function ringLabel(id: abi.RingId): string {
  return (abi.RingId[id] ?? `ring_${id}`).toLowerCase();
}

/** Snapshot of `workers` (index = worker id). */
export function snapshotDataplane(workers: readonly DataplaneStats[]): DataplaneSnapshot {
  const drops: Record<string, bigint> = {};
  const perProtocol: Partial<Record<Protocol, ProtocolTraffic>> = {};
  const rings: DataplaneSnapshot['rings'] = [];
  workers.forEach((w, worker) => {
    for (const [reason, n] of Object.entries(w.drops())) drops[reason] = (drops[reason] ?? 0n) + n;
    for (const [p, [up, upB, down, downB]] of Object.entries(TRAFFIC_STATS) as [Protocol, (typeof TRAFFIC_STATS)[Protocol]][]) {
      const t = (perProtocol[p] ??= { inPackets: 0n, inBytes: 0n, outPackets: 0n, outBytes: 0n });
      t.inPackets += w.stat(up);
      t.inBytes += w.stat(upB);
      t.outPackets += w.stat(down);
      t.outBytes += w.stat(downB);
    }
    for (let id = 0; id < abi.RING_COUNT; id++) {
      if (!w.hasRing(id)) continue;
      const r = w.ring(id);
      rings.push({ worker, ring: ringLabel(id), occupancy: r.occupancy, slots: r.slots });
    }
  });
  return { drops, perProtocol, rings };
}
