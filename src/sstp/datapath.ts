/**
 * One SSTP connection's data-plane session: the TLS byte stream on one side,
 * the WASM data path on the other (MS-SSTP 2.2.1 framing is done in
 * assembly/sstp.ts).
 *
 *   TLS socket --bytes--> streamIn (STREAM_IN ring) --WASM--> IPv4 to the TUN
 *                                                   \--> CTRL: SSTP control packet,
 *                                                        PPP frame that is not IP,
 *                                                        stream error --> sink
 *   TUN --WASM frames, coalesced--> STREAM_OUT --> streamOut --> TLS socket
 *
 * Uplink back-pressure: when STREAM_IN is full, the bytes not taken are kept,
 * the socket is paused, and both resume when the engine has pumped
 * (DataPlane.onStreamInSpace). Downlink: a socket whose unsent backlog is
 * above the bound gets no more downlink data (dropped and counted) instead
 * of queueing without limit; TCP inside the tunnel backs off.
 *
 * Downlink writes: the STREAM_OUT slots of one pump are copied into one
 * buffer and written at once when the pump ends (streamOutEnd), one TLS
 * write instead of one per 16 KiB slot (which node:tls would queue and copy
 * together again). The buffers come back to a small shared pool when the
 * socket is done with them, so steady traffic allocates nothing: a fresh
 * buffer per write was enough external memory to trigger a major GC every
 * few hundred milliseconds, pauses that showed up as tunnel latency. A
 * control frame for the session first flushes what is collected, so
 * responses keep their place behind the data that preceded them.
 */
import * as abi from '../../assembly/abi.js';
import type { DataPlane } from '../dataplane/engine.js';
import type { ActivateParams, SessionCounters } from '../dataplane/sessions.js';

/** SSTP packets in a STREAM_OUT slot (whole packets, MS-SSTP 2.2.1: 12-bit Length in octets 2-3, header included). */
export function framesIn(bytes: Uint8Array): number {
  let n = 0;
  for (let at = 0; at + 4 <= bytes.length; n++) {
    const len = ((bytes[at + 2]! & 0x0f) << 8) | bytes[at + 3]!;
    if (len < 4) break;
    at += len;
  }
  return n;
}

/** Our choice: unsent TLS bytes beyond which downlink data is dropped (about 80 ms at 100 Mbit/s). */
export const MAX_WRITE_BACKLOG = 1 << 20;
/**
 * Our choices: the downlink write buffers. A pump's output for a session
 * starts in a small one (a STREAM_OUT slot's worth: with many sessions each
 * gets a little per pump) and moves to a large one when it outgrows it (a
 * busy session). Idle buffers wait in two pools shared by every session,
 * bounded in count.
 */
export const OUT_SMALL = abi.STREAM_SLOT_MAX_PAYLOAD;
export const OUT_LARGE = 256 * 1024;
const OUT_POOL_MAX: Readonly<Record<number, number>> = { [OUT_SMALL]: 256, [OUT_LARGE]: 16 };
const outPools = new Map<number, Buffer[]>([
  [OUT_SMALL, []],
  [OUT_LARGE, []],
]);

function takeOut(size: number): Buffer {
  return outPools.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
}

function recycle(b: Buffer): void {
  const pool = outPools.get(b.length);
  if (pool && pool.length < OUT_POOL_MAX[b.length]!) pool.push(b);
}

/** Idle downlink write buffers in the shared pools (tests). */
export function outPoolSize(size: number): number {
  return outPools.get(size)?.length ?? 0;
}

/** The slice of a net.Socket / tls.TLSSocket the data path needs. */
export interface StreamSocket {
  /** `done` runs once the socket no longer needs `bytes` (it may never run if the socket is destroyed first). */
  write(bytes: Uint8Array, done?: () => void): unknown;
  readonly writableLength: number;
  pause(): unknown;
  resume(): unknown;
}

/** Where the frames the data plane diverts go (copies, the callee's to keep). */
export interface StreamPathSink {
  /** A whole SSTP control packet, header included. */
  onControl(packet: Uint8Array): void;
  /** A PPP frame that is not IPv4 data (LCP, authentication, NCPs, ...), as it was in the data packet. */
  onPppFrame(frame: Uint8Array): void;
  /** MS-SSTP 3.1.5.1: the stream could not be delineated; nothing more is parsed. */
  onStreamError(): void;
}

export interface StreamPathStats {
  /** Downlink writes dropped because the socket backlog was over the bound. */
  downlinkDropped: number;
  downlinkDroppedBytes: number;
  /** Times the socket was paused because STREAM_IN was full. */
  pauses: number;
}

export class SstpStreamPath {
  readonly stats: StreamPathStats = { downlinkDropped: 0, downlinkDroppedBytes: 0, pauses: 0 };
  private backlog: Uint8Array | undefined;
  private closed = false;
  private attached = false;
  /** Downlink bytes of the current pump, written at its end. */
  private out: Buffer | undefined;
  private outLen = 0;

  private constructor(
    readonly dp: DataPlane,
    private readonly socket: StreamSocket,
    private readonly sink: StreamPathSink,
    private readonly maxWriteBacklog: number,
    private idxValue = -1,
  ) {}

  /** A data-plane session for this connection; undefined when the session table is full (refuse the connection). */
  static open(dp: DataPlane, socket: StreamSocket, sink: StreamPathSink, opts: { maxWriteBacklog?: number } = {}): SstpStreamPath | undefined {
    const path = new SstpStreamPath(dp, socket, sink, opts.maxWriteBacklog ?? MAX_WRITE_BACKLOG);
    const idx = dp.openSession({
      control: (kind, payload) => path.onControl(kind, payload),
      streamOut: (bytes) => path.onStreamOut(bytes),
      streamOutEnd: () => path.flushOut(),
    });
    if (idx === undefined) return undefined;
    path.idxValue = idx;
    return path;
  }

  get idx(): number {
    return this.idxValue;
  }

  /** Right after the HTTP 200: from now on every byte read from the socket goes through input(). */
  attach(client = false): void {
    if (this.closed || this.attached) return;
    this.dp.sessions.attach(this.idx, { tunnel: abi.Tunnel.SSTP, client });
    this.attached = true;
  }

  /** Bytes read from the socket, in order. */
  input(bytes: Uint8Array): void {
    if (this.closed || bytes.length === 0) return;
    if (this.backlog) {
      // Paused already; whatever was in flight queues behind the backlog.
      const b = new Uint8Array(this.backlog.length + bytes.length);
      b.set(this.backlog);
      b.set(bytes, this.backlog.length);
      this.backlog = b;
      return;
    }
    this.feed(bytes);
  }

  private feed(bytes: Uint8Array): void {
    const n = this.dp.streamIn(this.idx, bytes);
    if (n === bytes.length) return;
    this.backlog = bytes.slice(n);
    this.stats.pauses++;
    this.socket.pause();
    this.dp.onStreamInSpace(this.retry);
  }

  private readonly retry = (): void => {
    if (this.closed || !this.backlog) return;
    const b = this.backlog;
    this.backlog = undefined;
    this.feed(b);
    if (!this.backlog && !this.closed) this.socket.resume();
  };

  /** PPP is up (and the call connected): IP flows both ways. */
  activate(p: ActivateParams): void {
    if (this.closed) return;
    this.dp.sessions.activate(this.idx, p);
  }

  counters(): SessionCounters | undefined {
    if (this.closed) return undefined;
    return this.dp.sessions.counters(this.idx);
  }

  /** Out of the data path; the entry goes back to the table. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.flushOut();
    this.closed = true;
    this.backlog = undefined;
    if (this.idx >= 0) this.dp.closeSession(this.idx);
  }

  private onControl(kind: abi.CtrlKind, payload: Uint8Array): void {
    if (this.closed) return;
    this.flushOut();
    switch (kind) {
      case abi.CtrlKind.SSTP_CONTROL:
        return this.sink.onControl(payload.slice());
      case abi.CtrlKind.PPP_FRAME:
        return this.sink.onPppFrame(payload.slice());
      case abi.CtrlKind.STREAM_ERROR:
        return this.sink.onStreamError();
      default:
        return;
    }
  }

  private onStreamOut(bytes: Uint8Array): void {
    if (this.closed) return;
    if (this.socket.writableLength + this.outLen > this.maxWriteBacklog) {
      this.stats.downlinkDropped++;
      this.stats.downlinkDroppedBytes += bytes.length;
      this.dp.countDrop(abi.Drop.STREAM_BACKLOG, framesIn(bytes));
      return;
    }
    const need = this.outLen + bytes.length;
    if (this.out && need > this.out.length) {
      if (this.out.length === OUT_SMALL && need <= OUT_LARGE) {
        // A busy session this pump: carry on in a large buffer.
        const large = takeOut(OUT_LARGE);
        large.set(this.out.subarray(0, this.outLen));
        recycle(this.out);
        this.out = large;
      } else this.flushOut();
    }
    if (!this.out) {
      this.out = takeOut(bytes.length <= OUT_SMALL ? OUT_SMALL : Math.max(OUT_LARGE, bytes.length));
      this.outLen = 0;
    }
    // The view is only valid during this call.
    this.out.set(bytes, this.outLen);
    this.outLen += bytes.length;
  }

  /** Write what this pump collected (end of the pump, before a control frame, at close). */
  private flushOut(): void {
    const b = this.out;
    if (!b || this.closed) return;
    const n = this.outLen;
    this.out = undefined;
    this.outLen = 0;
    if (n === 0) {
      recycle(b);
      return;
    }
    this.socket.write(b.subarray(0, n), () => recycle(b));
  }
}

