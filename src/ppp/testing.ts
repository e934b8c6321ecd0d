/**
 * In-memory link for tests: a server and a client {@link PppSession} back
 * to back on one {@link VirtualClock}. Frames are queued, never delivered
 * re-entrantly, and can be dropped or rewritten in flight; verifier
 * promises resolve between delivery rounds.
 */
import { VirtualClock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { decodeFrame } from './frame.js';
import { concatBytes, decodeControlPacket, encodeControlPacket, encodeOption, type ControlPacket } from './packet.js';
import { protocolName } from './protocols.js';
import { PppSession, type ClientSessionOptions, type PppDownInfo, type PppUpInfo, type ServerSessionOptions } from './session.js';
import type { AuthFailure, AuthSuccess } from './auth/types.js';

export type LinkDirection = 'toServer' | 'toClient';

export interface TracedFrame {
  dir: LinkDirection;
  at: number;
  frame: Uint8Array;
}

/** Return the frame to deliver (possibly rewritten), or null to drop it. */
export type FrameTamper = (dir: LinkDirection, frame: Uint8Array) => Uint8Array | null;

type Side = 'server' | 'client';

export interface SideRecord {
  up: PppUpInfo | undefined;
  upAt: number | undefined;
  down: PppDownInfo | undefined;
  downAt: number | undefined;
  authenticated: AuthSuccess | undefined;
  authFailed: AuthFailure | undefined;
  phases: string[];
  data: { protocol: number; payload: Uint8Array }[];
  resetRequests: number[];
}

export type LinkServerOptions = Omit<ServerSessionOptions, 'send' | 'clock' | 'role'>;
export type LinkClientOptions = Omit<ClientSessionOptions, 'send' | 'clock' | 'role'>;

export class PppLink {
  readonly clock = new VirtualClock();
  readonly server: PppSession;
  readonly client: PppSession;
  readonly trace: TracedFrame[] = [];
  readonly rec: Record<Side, SideRecord> = { server: emptyRecord(), client: emptyRecord() };
  tamper: FrameTamper | undefined;
  private queue: { dir: LinkDirection; frame: Uint8Array }[] = [];

  constructor(server: LinkServerOptions, client: LinkClientOptions, log: Logger = silentLogger) {
    this.server = new PppSession({ log, ...server, role: 'server', clock: this.clock, send: (f) => this.enqueue('toClient', f) });
    this.client = new PppSession({ log, ...client, role: 'client', clock: this.clock, send: (f) => this.enqueue('toServer', f) });
    for (const side of ['server', 'client'] as const) {
      const s = this[side];
      const r = this.rec[side];
      s.on('up', (i) => {
        r.up = i;
        r.upAt = this.clock.now();
      });
      s.on('down', (i) => {
        r.down = i;
        r.downAt = this.clock.now();
      });
      s.on('authenticated', (a) => (r.authenticated = a));
      s.on('authFailed', (a) => (r.authFailed = a));
      s.on('phase', (to) => r.phases.push(to));
      s.on('data', (protocol, payload) => r.data.push({ protocol, payload: payload.slice() }));
      s.on('ccpResetRequest', (id) => r.resetRequests.push(id));
    }
  }

  private enqueue(dir: LinkDirection, frame: Uint8Array): void {
    const copy = frame.slice();
    this.trace.push({ dir, at: this.clock.now(), frame: copy });
    const out = this.tamper ? this.tamper(dir, copy) : copy;
    if (out) this.queue.push({ dir, frame: out });
  }

  /** Put a frame on the wire as if the other side had sent it. */
  inject(dir: LinkDirection, frame: Uint8Array): void {
    this.queue.push({ dir, frame });
  }

  /** Deliver queued frames and let promises resolve until nothing moves. */
  async settle(): Promise<void> {
    for (let round = 0; round < 10_000; round++) {
      const batch = this.queue;
      this.queue = [];
      for (const { dir, frame } of batch) (dir === 'toServer' ? this.server : this.client).input(frame);
      await new Promise<void>((r) => setImmediate(r));
      if (this.queue.length === 0 && batch.length === 0) return;
    }
    throw new Error('PppLink.settle: the link did not quiesce');
  }

  /** Open both sides (client first) and settle. */
  async connect(): Promise<void> {
    this.client.open();
    this.server.open();
    await this.settle();
  }

  /** Advance virtual time in steps, settling after each. */
  async run(ms: number, step = 100): Promise<void> {
    for (let t = 0; t < ms; t += step) {
      this.clock.advance(Math.min(step, ms - t));
      await this.settle();
    }
  }

  /** Frames sent by one side, decoded to "PROTO code" labels (control) or the protocol name (data). */
  labels(side: Side): string[] {
    const dir: LinkDirection = side === 'server' ? 'toClient' : 'toServer';
    return this.trace.filter((t) => t.dir === dir).map((t) => frameLabel(t.frame));
  }
}

export function frameLabel(frame: Uint8Array): string {
  const f = decodeFrame(frame);
  if (!f.ok) return `malformed(${f.kind})`;
  const name = protocolName(f.value.protocol);
  if (f.value.protocol >= 0x8000) {
    const p = decodeControlPacket(f.value.info);
    return p.ok ? `${name} ${p.value.code}` : `${name} malformed`;
  }
  return name;
}

function emptyRecord(): SideRecord {
  return { up: undefined, upAt: undefined, down: undefined, downAt: undefined, authenticated: undefined, authFailed: undefined, phases: [], data: [], resetRequests: [] };
}

/** Deterministic "random" bytes for tests: a counter-based generator with a seed. */
export function seededRandom(seed: number): (n: number) => Uint8Array {
  let x = seed >>> 0 || 1;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      // xorshift32
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out[i] = x & 0xff;
    }
    return out;
  };
}

/**
 * A host for driving one control protocol (Lcp, Ipcp, Ipv6cp, Ccp) directly
 * in a unit test: records what it sends (decoded) and the upper-layer events.
 */
export class RecordingHost {
  readonly clock = new VirtualClock();
  readonly log: Logger = silentLogger;
  readonly sent: ControlPacket[] = [];
  readonly events: string[] = [];
  peerMruValue = 1500;
  random: (n: number) => Uint8Array = seededRandom(7);

  readonly send = (p: Uint8Array): void => {
    const d = decodeControlPacket(p);
    if (!d.ok) throw new Error(`protocol sent a malformed packet: ${d.message}`);
    this.sent.push({ ...d.value, data: d.value.data.slice(), raw: d.value.raw.slice() });
  };
  readonly peerMru = (): number => this.peerMruValue;
  readonly up = (): void => void this.events.push('up');
  readonly down = (cause: string): void => void this.events.push(`down:${cause}`);
  readonly finished = (cause: string): void => void this.events.push(`finished:${cause}`);
  readonly fail = (reason: string): void => void this.events.push(`fail:${reason}`);
  readonly echoTimeout = (): void => void this.events.push('echo-timeout');
  readonly protocolRejected = (p: number): void => void this.events.push(`protocol-rejected:${p.toString(16)}`);
  readonly resetRequested = (id: number): void => void this.events.push(`reset-request:${id}`);
  readonly resetAcked = (id: number): void => void this.events.push(`reset-ack:${id}`);

  /** The last packet sent (of a code, if given). */
  last(code?: number): ControlPacket | undefined {
    for (let i = this.sent.length - 1; i >= 0; i--) if (code === undefined || this.sent[i]!.code === code) return this.sent[i];
    return undefined;
  }

  /** Codes of the packets sent, in order. */
  codes(): number[] {
    return this.sent.map((p) => p.code);
  }
}

/** A received control packet, built like the spec's diagrams: Code, Identifier, then data bytes. */
export function packet(code: number, id: number, ...data: (Uint8Array | readonly number[])[]): ControlPacket {
  const body = concatBytes(data.map((d) => (d instanceof Uint8Array ? d : new Uint8Array(d))));
  const raw = encodeControlPacket(code, id, body);
  return { code, id, data: raw.subarray(4), raw };
}

/** One configuration option: Type, Length (computed), data. */
export function opt(type: number, ...data: number[]): Uint8Array {
  return encodeOption(type, new Uint8Array(data));
}

/** Option bytes of a packet's data as hex, for compact assertions. */
export function hexOf(b: Uint8Array | undefined): string {
  return b ? Buffer.from(b).toString('hex') : '(none)';
}
