/**
 * The main thread's read-only view of a worker's data plane: the worker's
 * shared WebAssembly.Memory and its layout, no WASM instance. Metrics read
 * the statistics and ring occupancies through it at scrape time, and the
 * session listing reads each session's byte counters from the session
 * table (the worker writes them; a read here may be one packet behind).
 */
import * as abi from '../../assembly/abi.js';
import type { Layout } from '../dataplane/layout.js';
import { Ring } from '../dataplane/ring.js';
import { readSessionCounters, type SessionCounters } from '../dataplane/sessions.js';
import type { DataplaneStats } from '../metrics/dataplane.js';

export class DataplaneView implements DataplaneStats {
  private readonly dv: DataView;
  private readonly rings = new Map<number, Ring>();

  constructor(
    readonly memory: WebAssembly.Memory,
    readonly layout: Layout,
  ) {
    this.dv = new DataView(memory.buffer as SharedArrayBuffer);
    layout.rings.forEach((off, id) => {
      if (off) this.rings.set(id, new Ring(memory, off));
    });
  }

  stat(s: abi.Stat | number): bigint {
    return this.dv.getBigUint64(this.layout.stats + s * 8, true);
  }

  drops(): Record<string, bigint> {
    const out: Record<string, bigint> = {};
    for (let d = 0; d < abi.DROP_COUNT; d++) out[(abi.Drop[d] ?? `reason_${d}`).toLowerCase()] = this.stat(abi.STAT_DROP_BASE + d);
    return out;
  }

  hasRing(id: abi.RingId): boolean {
    return this.rings.has(id);
  }

  ring(id: abi.RingId): { readonly occupancy: number; readonly slots: number } {
    const r = this.rings.get(id);
    if (!r) throw new RangeError(`ring ${abi.RingId[id]} is not in this layout`);
    return r;
  }

  /** Counters of session entry `idx`; undefined when out of range. */
  sessionCounters(idx: number): SessionCounters | undefined {
    if (!Number.isInteger(idx) || idx < 0 || idx >= this.layout.maxSessions) return undefined;
    return readSessionCounters(this.dv, this.layout.sessionTable + idx * abi.SESSION_SIZE);
  }
}
