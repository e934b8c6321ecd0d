/**
 * Messages between the main thread and a data-plane worker: request /
 * response with ids and timeouts, one-way notes, and a synchronous call for
 * what must answer synchronously on the worker side (address allocation:
 * AddressAllocator is synchronous by contract).
 *
 *   call(method, params)   {rpc:'req', id, method, params} ──► handler
 *                          ◄── {rpc:'res', id, ok, value | error}
 *   notify(method, params) {rpc:'note', method, params} ──► handler (no answer)
 *   callSync(method, ...)  {rpc:'sync', seq, method, params} ──► sync handler,
 *                          whose answer is written into the shared buffer;
 *                          the caller blocks on Atomics.wait until it is there
 *
 * Errors cross as {code, message} and come back as VpnError with the same
 * stable code (ERR_INTERNAL for a handler's non-VpnError). A call not
 * answered in time rejects with ERR_TIMEOUT; every pending call rejects with
 * ERR_WORKER when the peer is gone (close()).
 *
 * Deadlock freedom: only a worker blocks (callSync), and only on the main
 * thread, which never blocks on a worker.
 *
 * Sync buffer (SYNC_BUFFER_BYTES, shared by the two ends of one channel):
 *
 *   0      4        8
 *   +------+--------+--------------------------------------+
 *   | seq  | length | answer: UTF-8 JSON {ok, value|error} |
 *   +------+--------+--------------------------------------+
 *   seq is the last answered call; written last (Atomics.store + notify).
 */
import { ERROR_CODES, VpnError, isVpnError, type ErrorCode } from '../util/errors.js';
import type { Clock, Timer } from '../util/clock.js';

// Our choices.
/** Size of a channel's synchronous answer buffer. */
export const SYNC_BUFFER_BYTES = 16 * 1024;
const SYNC_HEADER = 8;

/** A MessagePort, a Worker, or worker_threads' parentPort. */
export interface Endpoint {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export interface RpcError {
  code: string;
  message: string;
}

type Message =
  | { rpc: 'req'; id: number; method: string; params: unknown }
  | { rpc: 'res'; id: number; ok: true; value: unknown }
  | { rpc: 'res'; id: number; ok: false; error: RpcError }
  | { rpc: 'note'; method: string; params: unknown }
  | { rpc: 'sync'; seq: number; method: string; params: unknown };

type SyncAnswer = { ok: true; value: unknown } | { ok: false; error: RpcError };

export type Handler = (params: never) => unknown;
export type SyncHandler = (params: never) => unknown;

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timer: Timer;
  method: string;
}

export function toRpcError(e: unknown): RpcError {
  if (isVpnError(e)) return { code: e.code, message: e.message };
  return { code: 'ERR_INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

export function fromRpcError(e: RpcError): VpnError {
  const code = (ERROR_CODES as readonly string[]).includes(e.code) ? (e.code as ErrorCode) : 'ERR_INTERNAL';
  return new VpnError(code, e.message);
}

function isMessage(m: unknown): m is Message {
  return typeof m === 'object' && m !== null && typeof (m as { rpc?: unknown }).rpc === 'string';
}

/** A shared buffer for one channel's synchronous calls. */
export function createSyncBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(SYNC_BUFFER_BYTES);
}

export class RpcPeer {
  private nextId = 1;
  private syncSeq = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Handler>();
  private readonly syncHandlers = new Map<string, SyncHandler>();
  private closedBy: string | undefined;
  private readonly ctl: Int32Array | undefined;
  private readonly bytes: Uint8Array | undefined;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly opts: {
      clock: Clock;
      /** For messages: "worker 1", "main". */
      name: string;
      /** The channel's sync buffer (both ends get the same one). */
      sync?: SharedArrayBuffer;
      /** A message nobody handles, or a note whose handler failed. */
      onUnhandled?(what: string, e?: unknown): void;
    },
  ) {
    if (opts.sync) {
      this.ctl = new Int32Array(opts.sync, 0, 2);
      this.bytes = new Uint8Array(opts.sync, SYNC_HEADER);
    }
    endpoint.on('message', this.onMessage);
  }

  /** Answer requests and notes for `method`. A request's handler may return a promise. */
  handle<P>(method: string, fn: (params: P) => unknown): void {
    this.handlers.set(method, fn as Handler);
  }

  /** Answer synchronous calls for `method` (the handler itself must be synchronous). */
  handleSync<P>(method: string, fn: (params: P) => unknown): void {
    this.syncHandlers.set(method, fn as SyncHandler);
  }

  get closed(): boolean {
    return this.closedBy !== undefined;
  }

  /** Calls waiting for an answer. */
  get pendingCalls(): number {
    return this.pending.size;
  }

  call<T>(method: string, params: unknown, timeoutMs: number): Promise<T> {
    if (this.closedBy !== undefined) return Promise.reject(new VpnError('ERR_WORKER', `${this.opts.name}: cannot call ${method}: ${this.closedBy}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = this.opts.clock.setTimer(timeoutMs, () => {
        if (!this.pending.delete(id)) return;
        reject(new VpnError('ERR_TIMEOUT', `${this.opts.name}: no answer to ${method} within ${timeoutMs} ms`));
      });
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, method });
      try {
        this.endpoint.postMessage({ rpc: 'req', id, method, params } satisfies Message);
      } catch (e) {
        this.pending.delete(id);
        timer.cancel();
        reject(new VpnError('ERR_WORKER', `${this.opts.name}: cannot send ${method}: ${(e as Error).message}`, { cause: e }));
      }
    });
  }

  /** One-way message; dropped when the channel is closed. */
  notify(method: string, params: unknown): void {
    if (this.closedBy !== undefined) return;
    this.endpoint.postMessage({ rpc: 'note', method, params } satisfies Message);
  }

  /**
   * Block until the peer's sync handler answered, at most `timeoutMs`.
   * Returns the value; throws the handler's error as VpnError, ERR_TIMEOUT
   * when no answer came in time (a late answer is then ignored), ERR_WORKER
   * when the channel has no sync buffer or is closed. `seq` is given to
   * `params` builders that need to name this call later (e.g. to undo it).
   */
  callSync<T>(method: string, params: (seq: number) => unknown, timeoutMs: number): T {
    if (!this.ctl || !this.bytes) throw new VpnError('ERR_WORKER', `${this.opts.name}: no sync buffer for ${method}`);
    if (this.closedBy !== undefined) throw new VpnError('ERR_WORKER', `${this.opts.name}: cannot call ${method}: ${this.closedBy}`);
    const seq = (this.syncSeq = (this.syncSeq % 0x7ffffffe) + 1);
    this.endpoint.postMessage({ rpc: 'sync', seq, method, params: params(seq) } satisfies Message);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const answered = Atomics.load(this.ctl, 0);
      if (answered === seq) break;
      const left = deadline - performance.now();
      if (left <= 0) throw new VpnError('ERR_TIMEOUT', `${this.opts.name}: no answer to ${method} within ${timeoutMs} ms`);
      Atomics.wait(this.ctl, 0, answered, left);
    }
    const len = Atomics.load(this.ctl, 1);
    // Decoders refuse views of shared memory: copy out first.
    const a = JSON.parse(new TextDecoder().decode(this.bytes.slice(0, len))) as SyncAnswer;
    if (!a.ok) throw fromRpcError(a.error);
    return a.value as T;
  }

  /** The peer is gone: every pending call rejects with ERR_WORKER; later calls too. */
  close(reason: string): void {
    if (this.closedBy !== undefined) return;
    this.closedBy = reason;
    this.endpoint.off('message', this.onMessage);
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.timer.cancel();
      p.reject(new VpnError('ERR_WORKER', `${this.opts.name}: ${p.method} not answered: ${reason}`));
    }
  }

  private readonly onMessage = (m: unknown): void => {
    if (!isMessage(m)) return;
    switch (m.rpc) {
      case 'res': {
        const p = this.pending.get(m.id);
        if (!p) return; // answered after its timeout
        this.pending.delete(m.id);
        p.timer.cancel();
        if (m.ok) p.resolve(m.value);
        else p.reject(fromRpcError(m.error));
        return;
      }
      case 'req':
        void this.answer(m.id, m.method, m.params);
        return;
      case 'note': {
        const h = this.handlers.get(m.method);
        if (!h) {
          this.opts.onUnhandled?.(`note ${m.method}`);
          return;
        }
        try {
          const r = h(m.params as never);
          if (r instanceof Promise) r.catch((e: unknown) => this.opts.onUnhandled?.(`note ${m.method}`, e));
        } catch (e) {
          this.opts.onUnhandled?.(`note ${m.method}`, e);
        }
        return;
      }
      case 'sync':
        this.answerSync(m.seq, m.method, m.params);
        return;
    }
  };

  private async answer(id: number, method: string, params: unknown): Promise<void> {
    let msg: Message;
    const h = this.handlers.get(method);
    try {
      if (!h) throw new VpnError('ERR_USAGE', `${this.opts.name}: no handler for ${method}`);
      msg = { rpc: 'res', id, ok: true, value: await h(params as never) };
    } catch (e) {
      msg = { rpc: 'res', id, ok: false, error: toRpcError(e) };
    }
    if (this.closedBy === undefined) this.endpoint.postMessage(msg);
  }

  private answerSync(seq: number, method: string, params: unknown): void {
    if (!this.ctl || !this.bytes) {
      this.opts.onUnhandled?.(`sync ${method} (no sync buffer)`);
      return;
    }
    let a: SyncAnswer;
    const h = this.syncHandlers.get(method);
    try {
      if (!h) throw new VpnError('ERR_USAGE', `${this.opts.name}: no sync handler for ${method}`);
      a = { ok: true, value: h(params as never) };
    } catch (e) {
      a = { ok: false, error: toRpcError(e) };
    }
    let encoded = new TextEncoder().encode(JSON.stringify(a));
    if (encoded.length > this.bytes.length) {
      encoded = new TextEncoder().encode(JSON.stringify({ ok: false, error: { code: 'ERR_INTERNAL', message: `answer to ${method} too large (${encoded.length} bytes)` } }));
    }
    this.bytes.set(encoded);
    Atomics.store(this.ctl, 1, encoded.length);
    Atomics.store(this.ctl, 0, seq);
    Atomics.notify(this.ctl, 0);
  }
}
