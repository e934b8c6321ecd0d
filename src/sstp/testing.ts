/**
 * In-memory stand-ins for the TLS socket, so a whole SSTP server and client
 * (or a scripted peer) run back to back in a unit test without sockets.
 * Delivery is queued and pumped explicitly with flush(): a write never
 * re-enters the writer's own input.
 */
import type { SstpTransport } from './call.js';

export interface PipeEnd extends SstpTransport {
  /** Everything this end wrote, in order. */
  readonly written: Uint8Array[];
  readonly closed: boolean;
  /** Receives what the other end writes (set by the test). */
  onData: (bytes: Uint8Array) => void;
  /** Told when the other end closes. */
  onPeerClosed: () => void;
  /** When false, what this end writes is recorded but not delivered (a peer gone silent). */
  deliver: boolean;
  /** Rewrite (or drop, by returning null) what this end writes before delivery. */
  tamper: ((bytes: Uint8Array) => Uint8Array | null) | null;
}

export interface Pipe {
  a: PipeEnd;
  b: PipeEnd;
  /** Deliver queued writes and closes until nothing moves (bounded). */
  flush(): void;
}

export function createPipe(): Pipe {
  type Event = { to: EndImpl; bytes?: Uint8Array; close?: true };
  const queue: Event[] = [];

  class EndImpl implements PipeEnd {
    readonly written: Uint8Array[] = [];
    closed = false;
    onData: (bytes: Uint8Array) => void = () => {};
    onPeerClosed: () => void = () => {};
    deliver = true;
    tamper: ((bytes: Uint8Array) => Uint8Array | null) | null = null;
    other!: EndImpl;

    write(bytes: Uint8Array): void {
      if (this.closed) throw new Error('write after close');
      const copy = bytes.slice();
      this.written.push(copy);
      if (!this.deliver) return;
      const out = this.tamper ? this.tamper(copy) : copy;
      if (out) queue.push({ to: this.other, bytes: out });
    }

    close(): void {
      if (this.closed) return;
      this.closed = true;
      queue.push({ to: this.other, close: true });
    }
  }

  const a = new EndImpl();
  const b = new EndImpl();
  a.other = b;
  b.other = a;

  return {
    a,
    b,
    flush() {
      for (let i = 0; queue.length > 0; i++) {
        if (i > 100_000) throw new Error('pipe does not quiesce');
        const ev = queue.shift()!;
        if (ev.close) ev.to.onPeerClosed();
        else if (!ev.to.closed) ev.to.onData(ev.bytes!);
      }
    },
  };
}

/** Concatenate what an end wrote. */
export function joined(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}
