/**
 * Memory layout of one data-plane worker's WebAssembly.Memory, computed once
 * at start-up from the configuration and written as the header at DP_BASE
 * that the WASM side reads in init(). Nothing is allocated after this.
 */
import * as abi from '../../assembly/abi.js';
import { VpnError } from '../util/errors.js';

export interface LayoutOptions {
  /** Session table entries (sessions this worker can hold). */
  maxSessions?: number;
  /** Slots per ring (power of two; 0 = ring not present). Defaults in DEFAULT_RING_SLOTS. */
  ringSlots?: Partial<Record<abi.RingId, number>>;
  mode?: abi.Mode;
  workerId?: number;
  /** Gateway's own inner IPv4 address (host order); 0 if none. */
  gatewayV4?: number;
  /** Give every session a stream reassembly buffer (needed by SSTP). */
  streamBuffers?: boolean;
}

/** Our choices (not from any spec): sized for ~1 ms of line rate at 1 Mpps. */
export const DEFAULT_RING_SLOTS: Readonly<Record<abi.RingId, number>> = {
  [abi.RingId.TUN_RX]: 1024,
  [abi.RingId.TUN_TX]: 1024,
  [abi.RingId.GRE_RX]: 1024,
  [abi.RingId.GRE_TX]: 1024,
  [abi.RingId.ESP_RX]: 0,
  [abi.RingId.ESP_TX]: 0,
  [abi.RingId.CTRL]: 256,
  [abi.RingId.INJECT]: 256,
  [abi.RingId.STREAM_IN]: 256,
  [abi.RingId.STREAM_OUT]: 256,
};
export const DEFAULT_MAX_SESSIONS = 1024;

/** Slot size of each ring (stream rings carry TLS-record-sized chunks). */
export function slotSizeOf(id: abi.RingId): number {
  return id === abi.RingId.STREAM_IN || id === abi.RingId.STREAM_OUT ? abi.STREAM_SLOT_SIZE : abi.SLOT_SIZE;
}

export interface Layout {
  readonly totalBytes: number;
  readonly pages: number;
  readonly maxSessions: number;
  readonly mode: abi.Mode;
  readonly workerId: number;
  readonly gatewayV4: number;
  readonly ringDir: number;
  /** Ring header offset per RingId (0 = absent). */
  readonly rings: readonly number[];
  readonly ringSlots: readonly number[];
  readonly stats: number;
  readonly sessionTable: number;
  readonly v4Table: number;
  readonly v4Cap: number;
  readonly callIdTable: number;
  readonly streamBuf: number;
  readonly streamBufSize: number;
  readonly scratch: number;
  readonly scratchSize: number;
}

const align = (n: number, a = abi.REGION_ALIGN) => Math.ceil(n / a) * a;
const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

export function computeLayout(opts: LayoutOptions = {}): Layout {
  const maxSessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
  if (!Number.isInteger(maxSessions) || maxSessions < 1 || maxSessions > 1 << 20) {
    throw new VpnError('ERR_LAYOUT', `maxSessions must be an integer in 1..1048576, not ${maxSessions}`);
  }
  let at = abi.DP_BASE + abi.LAYOUT_HEADER_SIZE;
  const ringDir = at;
  at = align(at + abi.RING_COUNT * 4);
  const stats = at;
  at = align(at + abi.STAT_COUNT * 8);
  const rings: number[] = [];
  const ringSlots: number[] = [];
  for (let id = 0; id < abi.RING_COUNT; id++) {
    const slots = opts.ringSlots?.[id as abi.RingId] ?? DEFAULT_RING_SLOTS[id as abi.RingId];
    if (slots !== 0 && !isPow2(slots)) throw new VpnError('ERR_LAYOUT', `ring ${abi.RingId[id]} slots must be a power of two, not ${slots}`);
    ringSlots.push(slots);
    if (slots === 0) {
      rings.push(0);
      continue;
    }
    rings.push(at);
    at = align(at + abi.RING_HEADER_SIZE + slots * slotSizeOf(id));
  }
  const sessionTable = at;
  at = align(at + maxSessions * abi.SESSION_SIZE);
  let v4Cap = 16;
  while (v4Cap < maxSessions * 2) v4Cap *= 2;
  const v4Table = at;
  at = align(at + v4Cap * 8);
  const callIdTable = at;
  at = align(at + 65536 * 4);
  const streamBufSize = opts.streamBuffers === false ? 0 : abi.STREAM_BUF_SIZE;
  const streamBuf = streamBufSize ? at : 0;
  at = align(at + maxSessions * streamBufSize);
  const scratch = at;
  const scratchSize = abi.SCRATCH_SIZE;
  at = align(at + scratchSize);
  const totalBytes = at;
  if (totalBytes > 0xffff0000) throw new VpnError('ERR_LAYOUT', `layout needs ${totalBytes} bytes, more than 4 GiB`);
  const pages = Math.max(32, Math.ceil(totalBytes / abi.WASM_PAGE));
  return {
    totalBytes,
    pages,
    maxSessions,
    mode: opts.mode ?? abi.Mode.FORWARD,
    workerId: opts.workerId ?? 0,
    gatewayV4: opts.gatewayV4 ?? 0,
    ringDir,
    rings,
    ringSlots,
    stats,
    sessionTable,
    v4Table,
    v4Cap,
    callIdTable,
    streamBuf,
    streamBufSize,
    scratch,
    scratchSize,
  };
}

/** Write the header, ring directory and ring headers into a fresh (zeroed) memory. */
export function writeLayout(memory: WebAssembly.Memory, l: Layout): void {
  const dv = new DataView(memory.buffer);
  if (memory.buffer.byteLength < l.totalBytes) {
    throw new VpnError('ERR_LAYOUT', `memory has ${memory.buffer.byteLength} bytes, layout needs ${l.totalBytes}`);
  }
  const h = abi.DP_BASE;
  const put = (field: number, v: number) => dv.setUint32(h + field, v >>> 0, true);
  put(abi.L_MAGIC, abi.LAYOUT_MAGIC);
  put(abi.L_ABI, abi.ABI_VERSION);
  put(abi.L_TOTAL_BYTES, l.totalBytes);
  put(abi.L_MAX_SESSIONS, l.maxSessions);
  put(abi.L_SESSION_TABLE, l.sessionTable);
  put(abi.L_SESSION_SIZE, abi.SESSION_SIZE);
  put(abi.L_STATS, l.stats);
  put(abi.L_RING_DIR, l.ringDir);
  put(abi.L_V4_TABLE, l.v4Table);
  put(abi.L_V4_TABLE_CAP, l.v4Cap);
  put(abi.L_CALLID_TABLE, l.callIdTable);
  put(abi.L_SCRATCH, l.scratch);
  put(abi.L_SCRATCH_SIZE, l.scratchSize);
  put(abi.L_MODE, l.mode);
  put(abi.L_WORKER_ID, l.workerId);
  put(abi.L_STREAM_BUF, l.streamBuf);
  put(abi.L_STREAM_BUF_SIZE, l.streamBufSize);
  put(abi.L_GATEWAY_V4, l.gatewayV4);
  for (let id = 0; id < abi.RING_COUNT; id++) {
    const r = l.rings[id]!;
    dv.setUint32(l.ringDir + id * 4, r, true);
    if (!r) continue;
    dv.setUint32(r + abi.R_SLOTS, l.ringSlots[id]!, true);
    dv.setUint32(r + abi.R_SLOT_SIZE, slotSizeOf(id), true);
    dv.setUint32(r + abi.R_ID, id, true);
  }
}
