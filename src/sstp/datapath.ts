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
 */
import * as abi from '../../assembly/abi.js';
import type { DataPlane } from '../dataplane/engine.js';
import type { ActivateParams, SessionCounters } from '../dataplane/sessions.js';

/** Our choice: unsent TLS bytes beyond which downlink data is dropped (about 80 ms at 100 Mbit/s). */
export const MAX_WRITE_BACKLOG = 1 << 20;

/** The slice of a net.Socket / tls.TLSSocket the data path needs. */
export interface StreamSocket {
  write(bytes: Uint8Array): unknown;
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
    this.closed = true;
    this.backlog = undefined;
    if (this.idx >= 0) this.dp.closeSession(this.idx);
  }

  private onControl(kind: abi.CtrlKind, payload: Uint8Array): void {
    if (this.closed) return;
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
    if (this.socket.writableLength > this.maxWriteBacklog) {
      this.stats.downlinkDropped++;
      this.stats.downlinkDroppedBytes += bytes.length;
      return;
    }
    // The view is only valid during this call.
    this.socket.write(bytes.slice());
  }
}
