/**
 * One data-plane worker's engine: its shared memory, the WASM instance over
 * it, the native I/O threads attached to its rings, and the pump that runs
 * the WASM batch entry point when a ring has work.
 *
 *   native I/O thread --rx ring--> process(budget) --tx ring--> native I/O thread
 *                                        |  ^
 *                      CTRL / STREAM_OUT v  | INJECT / STREAM_IN
 *                                  TypeScript control plane
 *
 * Wake-ups: a native producer wakes us through a thread-safe function only
 * after we announced sleep on its ring; we wake a native consumer (eventfd
 * kick) only after it announced sleep on its ring. A busy path costs no
 * wake-ups at all.
 */
import * as abi from '../../assembly/abi.js';
import { VpnError } from '../util/errors.js';
import { computeLayout, writeLayout, type Layout, type LayoutOptions } from './layout.js';
import { native, type IoHandle } from './native.js';
import { Ring, type SlotMeta } from './ring.js';
import { createMemory, instantiate, INIT_ERRORS, type DataPlaneExports } from './wasm.js';
import { SessionTable } from './sessions.js';

/** Packets per process() call, and calls per pump before yielding to the event loop (our choices). */
export const PROCESS_BUDGET = 256;
export const ROUNDS_PER_PUMP = 16;

export interface Attachment {
  readonly name: string;
  readonly fd: number;
  readonly rx: RingId | undefined;
  readonly tx: RingId | undefined;
  readonly handle: IoHandle;
}

type RingId = abi.RingId;

export type ControlHandler = (payload: Uint8Array, meta: SlotMeta) => void;

/**
 * What a tunnel session (SSTP call, PPTP call) registers for its data-plane
 * entry: control frames the data plane diverted for it (CTRL ring; `kind`
 * is an abi.CtrlKind, `payload` valid only during the call) and framed bytes
 * to write to its stream transport (STREAM_OUT, SSTP only; `bytes` valid
 * only during the call).
 */
export interface SessionHandler {
  control(kind: abi.CtrlKind, payload: Uint8Array): void;
  streamOut?(bytes: Uint8Array): void;
  /**
   * Once at the end of a pump that gave this session stream bytes: a stream
   * transport may collect a pump's output and write it at once.
   */
  streamOutEnd?(): void;
}

export { SESSION_RESULTS } from './sessions.js';

export class DataPlane {
  readonly memory: WebAssembly.Memory;
  readonly layout: Layout;
  readonly wasm: DataPlaneExports;
  readonly u8: Uint8Array;
  readonly dv: DataView;
  private readonly rings = new Map<RingId, Ring>();
  private readonly attachments: Attachment[] = [];
  /** Rings whose consumer is this engine (WASM or TS), for sleep announcements. */
  private readonly inputs = new Set<RingId>();
  private scheduled = false;
  private closed = false;
  private ctrlHandler: ControlHandler | undefined;
  private streamOutHandler: ControlHandler | undefined;
  private readonly handlers: (SessionHandler | undefined)[] = [];
  /** The session table of this engine (allocate/attach/activate/release). */
  readonly sessions: SessionTable;
  /** Frames for sessions nobody registered (torn down meanwhile): counted, dropped. */
  orphanFrames = 0;
  /** Number of pumps run (observability and tests). */
  pumps = 0;
  /** Told once after a pump that left room in STREAM_IN (see streamIn()). */
  private streamInWaiters: (() => void)[] = [];
  /** Handlers given stream bytes during the current pump that want streamOutEnd(). */
  private readonly streamOutEnds = new Set<SessionHandler>();

  constructor(opts: LayoutOptions = {}) {
    this.layout = computeLayout(opts);
    this.memory = createMemory(this.layout.pages);
    writeLayout(this.memory, this.layout);
    this.wasm = instantiate(this.memory);
    const r = this.wasm.init();
    if (r !== 0) throw new VpnError('ERR_LAYOUT', `data plane refused its layout: ${INIT_ERRORS[r] ?? `code ${r}`}`);
    this.u8 = new Uint8Array(this.memory.buffer as SharedArrayBuffer);
    this.dv = new DataView(this.memory.buffer as SharedArrayBuffer);
    for (let id = 0; id < abi.RING_COUNT; id++) {
      const off = this.layout.rings[id]!;
      if (off) this.rings.set(id, new Ring(this.memory, off));
    }
    this.sessions = new SessionTable(this);
    // TS-fed rings are always inputs of the WASM side.
    for (const id of [abi.RingId.INJECT, abi.RingId.STREAM_IN]) if (this.rings.has(id)) this.inputs.add(id);
  }

  ring(id: RingId): Ring {
    const r = this.rings.get(id);
    if (!r) throw new VpnError('ERR_LAYOUT', `ring ${abi.RingId[id]} is not in this layout`);
    return r;
  }

  hasRing(id: RingId): boolean {
    return this.rings.has(id);
  }

  /**
   * Attach a file descriptor: a native I/O thread fills `rx` from it and
   * drains `tx` to it. The engine does not own the fd (close it after detach).
   */
  attach(name: string, fd: number, kind: 'tun' | 'socket', rx?: RingId, tx?: RingId, batch = 64): Attachment {
    const handle = native.ioStart(
      this.u8,
      {
        fd,
        kind,
        ...(rx !== undefined ? { rxRing: this.ring(rx).offset } : {}),
        ...(tx !== undefined ? { txRing: this.ring(tx).offset } : {}),
        batch,
      },
      () => this.schedule(),
    );
    const a: Attachment = { name, fd, rx, tx, handle };
    this.attachments.push(a);
    if (rx !== undefined) this.inputs.add(rx);
    // The I/O thread wakes us only after we announced sleep on its ring; the
    // pump makes that announcement (and catches packets that arrived first).
    this.schedule();
    return a;
  }

  detach(a: Attachment): void {
    const i = this.attachments.indexOf(a);
    if (i < 0) return;
    this.attachments.splice(i, 1);
    native.ioStop(a.handle);
    if (a.rx !== undefined) this.inputs.delete(a.rx);
  }

  /**
   * Allocate a session entry and register its handler. Returns undefined
   * when the table is full (the caller refuses the session cleanly).
   */
  openSession(handler: SessionHandler): number | undefined {
    const idx = this.sessions.allocate();
    if (idx !== undefined) this.handlers[idx] = handler;
    return idx;
  }

  /** Take a session out of the data path and forget its handler. Idempotent. */
  closeSession(idx: number): void {
    this.handlers[idx] = undefined;
    this.sessions.release(idx);
  }

  /** Catch-all for control frames of sessions without a registered handler (tests, diagnostics). */
  onControl(fn: ControlHandler): void {
    this.ctrlHandler = fn;
  }

  /** Catch-all for stream bytes of sessions without a registered handler. */
  onStreamOut(fn: ControlHandler): void {
    this.streamOutHandler = fn;
  }

  private dispatchControl = (p: Uint8Array, m: SlotMeta): void => {
    const h = this.handlers[m.session];
    if (h) h.control(m.aux, p);
    else if (this.ctrlHandler) this.ctrlHandler(p, m);
    else this.orphanFrames++;
  };

  private dispatchStreamOut = (p: Uint8Array, m: SlotMeta): void => {
    const h = this.handlers[m.session];
    if (h?.streamOut) {
      h.streamOut(p);
      if (h.streamOutEnd) this.streamOutEnds.add(h);
    } else if (this.streamOutHandler) this.streamOutHandler(p, m);
    else this.orphanFrames++;
  };

  private endStreamOut(): void {
    if (this.streamOutEnds.size === 0) return;
    const hs = [...this.streamOutEnds];
    this.streamOutEnds.clear();
    for (const h of hs) h.streamOutEnd!();
  }

  /** Queue bytes for the data plane (INJECT / STREAM_IN) and make sure it runs. */
  submit(id: RingId, data: Uint8Array, meta: Partial<SlotMeta>): boolean {
    const ok = this.ring(id).push(data, meta);
    this.schedule();
    return ok;
  }

  /**
   * Stream bytes read from session idx's transport (SSTP over TLS), split
   * into STREAM_IN slots in order. Returns how many bytes were accepted:
   * fewer than given when the ring is full; the caller keeps the rest, pauses
   * its socket, and retries when onStreamInSpace() calls back.
   */
  streamIn(idx: number, data: Uint8Array): number {
    const r = this.ring(abi.RingId.STREAM_IN);
    let off = 0;
    while (off < data.length) {
      const n = Math.min(abi.STREAM_SLOT_MAX_PAYLOAD, data.length - off);
      if (!r.push(data.subarray(off, off + n), { session: idx })) break;
      off += n;
    }
    if (off > 0) this.schedule();
    return off;
  }

  /**
   * Call `fn` once, after the next pump that leaves free STREAM_IN slots
   * (at once, on the next pump, when there is room already). For a stream
   * transport whose bytes streamIn() did not all take: it paused its
   * socket and resumes from `fn`.
   */
  onStreamInSpace(fn: () => void): void {
    this.streamInWaiters.push(fn);
    this.schedule();
  }

  private notifyStreamInSpace(): void {
    if (this.streamInWaiters.length === 0) return;
    const r = this.rings.get(abi.RingId.STREAM_IN);
    if (!r || r.occupancy >= r.slots) return;
    const waiters = this.streamInWaiters;
    this.streamInWaiters = [];
    for (const fn of waiters) fn();
  }

  /** Run the pump soon (coalesced). Safe to call from any event. */
  schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(this.pump);
  }

  /** Run the data plane until its input rings are empty or the round limit is hit. */
  readonly pump = (): void => {
    this.scheduled = false;
    if (this.closed) return;
    this.pumps++;
    let more = false;
    for (let round = 0; round < ROUNDS_PER_PUMP; round++) {
      const n = this.wasm.process(PROCESS_BUDGET);
      this.afterProcess();
      if (n < PROCESS_BUDGET) break;
      if (round === ROUNDS_PER_PUMP - 1) more = true;
    }
    this.endStreamOut();
    this.notifyStreamInSpace();
    if (more) {
      this.schedule();
      return;
    }
    // Going idle: announce sleep on every input; if work raced in, go again.
    for (const id of this.inputs) {
      if (this.ring(id).sleepConsumer()) {
        this.schedule();
        return;
      }
    }
  };

  private afterProcess(): void {
    for (const a of this.attachments) {
      // Work published for a sleeping native consumer, or room freed for a waiting native producer.
      const kickTx = a.tx !== undefined && this.ring(a.tx).occupancy > 0 && this.ring(a.tx).takeConsumerSleeping();
      const kickRx = a.rx !== undefined && this.ring(a.rx).takeProducerWaiting();
      if (kickTx || kickRx) native.ioKick(a.handle);
    }
    const ctrl = this.rings.get(abi.RingId.CTRL);
    if (ctrl && ctrl.occupancy > 0) ctrl.drain(this.dispatchControl);
    const out = this.rings.get(abi.RingId.STREAM_OUT);
    if (out && out.occupancy > 0) out.drain(this.dispatchStreamOut);
  }

  /** Counter by Stat index. */
  stat(s: abi.Stat | number): bigint {
    return this.dv.getBigUint64(this.layout.stats + s * 8, true);
  }

  /**
   * Count `n` packets dropped by the TypeScript side of the data path (e.g.
   * Drop.STREAM_BACKLOG), in the same counters as the WASM drops. Only from
   * the thread that runs this engine (the counters have one writer).
   */
  countDrop(reason: abi.Drop, n: number): void {
    const at = this.layout.stats + (abi.STAT_DROP_BASE + reason) * 8;
    this.dv.setBigUint64(at, this.dv.getBigUint64(at, true) + BigInt(n), true);
  }

  /** Drop counters by reason name (lowercase, as metric labels). */
  drops(): Record<string, bigint> {
    const out: Record<string, bigint> = {};
    for (let d = 0; d < abi.DROP_COUNT; d++) {
      out[(abi.Drop[d] ?? `reason_${d}`).toLowerCase()] = this.stat(abi.STAT_DROP_BASE + d);
    }
    return out;
  }

  /** Byte offset of session entry `idx`. */
  sessionOffset(idx: number): number {
    if (idx < 0 || idx >= this.layout.maxSessions) throw new VpnError('ERR_SESSION_TABLE_FULL', `session index ${idx} out of range`);
    return this.layout.sessionTable + idx * abi.SESSION_SIZE;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const a of [...this.attachments]) this.detach(a);
  }
}
