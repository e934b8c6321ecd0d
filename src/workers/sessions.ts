/**
 * The session registry across threads. A worker's services register their
 * sessions with a {@link MirroringRegistry} (a SessionRegistry that also
 * tells main); main keeps one {@link RemoteSession} per mirrored session in
 * the gateway's own SessionRegistry, so the admin listing, kill, the
 * sessions gauge and the per-user count work there unchanged.
 *
 *   worker: registry.add(s)      ──note 'session.add' {fields}──►    main: registry.add(RemoteSession)
 *           s changes (watch)    ──note 'session.update' [fields]──► main: fields replaced
 *             (the changes of one event-loop turn, every session, in one note)
 *           unregister()         ──note 'session.remove' {id}──►     main: unregistered
 *   main:   RemoteSession.teardown ──call 'session.teardown'──► worker: the protocol's teardown
 *
 * A RemoteSession's info() is the mirrored fields plus the byte counters
 * read from the worker's memory (DataplaneView) plus the worker's index.
 */
import { SessionRegistry } from '../admin/gateway.js';
import type { ManagedSession, Protocol, SessionInfo } from '../admin/types.js';
import type { SessionCounters } from '../dataplane/sessions.js';
import type { Logger } from '../util/log.js';
import type { RpcPeer } from './rpc.js';

// Our choices.
/** Longest a protocol teardown asked of a worker may take (LCP wait + the protocol's hang-up, with margin). */
export const REMOTE_TEARDOWN_TIMEOUT_MS = 15_000;

/** What main knows of a worker's session: its listing without the byte counts (main reads those from the worker's memory). */
export interface MirroredSession extends Omit<SessionInfo, 'bytesIn' | 'bytesOut' | 'worker'> {
  /** Entry in the worker's data-plane session table (for the byte counters). */
  dataplaneIndex: number | null;
}

function mirrorOf(s: ManagedSession): MirroredSession {
  const i = s.info();
  return {
    id: i.id,
    protocol: i.protocol,
    user: i.user,
    peer: i.peer,
    innerAddress: i.innerAddress,
    state: i.state,
    since: i.since,
    dataplaneIndex: s.dataplaneIndex?.() ?? null,
  };
}

const sameMirror = (a: MirroredSession, b: MirroredSession) =>
  a.user === b.user && a.innerAddress === b.innerAddress && a.state === b.state && a.dataplaneIndex === b.dataplaneIndex && a.peer === b.peer;

/** Worker side: the services' registry, mirrored to main. */
export class MirroringRegistry extends SessionRegistry {
  /** Sessions that may have changed since the last flush, with what main was last told. */
  private readonly dirty = new Map<ManagedSession, { last: MirroredSession }>();
  private flushing = false;

  constructor(private readonly peer: RpcPeer) {
    super();
  }

  override add(s: ManagedSession): () => void {
    const unregister = super.add(s);
    const told = { last: mirrorOf(s) };
    this.peer.notify('session.add', told.last);
    const unwatch = s.watch?.(() => {
      this.dirty.set(s, told);
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(this.flush);
      }
    });
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      unwatch?.();
      this.dirty.delete(s);
      unregister();
      this.peer.notify('session.remove', { id: s.id });
    };
  }

  private readonly flush = (): void => {
    this.flushing = false;
    const out: MirroredSession[] = [];
    for (const [s, told] of this.dirty) {
      const now = mirrorOf(s);
      if (sameMirror(now, told.last)) continue;
      told.last = now;
      out.push(now);
    }
    this.dirty.clear();
    if (out.length) this.peer.notify('session.update', out);
  };
}

/** Main side: one worker's session as the gateway's registry holds it. */
export class RemoteSession implements ManagedSession {
  constructor(
    public fields: MirroredSession,
    readonly worker: number,
    private readonly opts: { peer: RpcPeer; counters(idx: number): SessionCounters | undefined; teardownTimeoutMs: number; log: Logger },
  ) {}

  get id(): string {
    return this.fields.id;
  }

  get protocol(): Protocol {
    return this.fields.protocol;
  }

  username(): string | null {
    return this.fields.user;
  }

  dataplaneIndex(): number | undefined {
    return this.fields.dataplaneIndex ?? undefined;
  }

  info(): SessionInfo {
    const f = this.fields;
    const c = f.dataplaneIndex !== null ? this.opts.counters(f.dataplaneIndex) : undefined;
    return {
      id: f.id,
      protocol: f.protocol,
      user: f.user,
      peer: f.peer,
      innerAddress: f.innerAddress,
      state: f.state,
      since: f.since,
      bytesIn: c ? Number(c.upBytes) : 0,
      bytesOut: c ? Number(c.downBytes) : 0,
      worker: this.worker,
    };
  }

  /** The worker runs the protocol's teardown; resolves when it did, or failed, or timed out. Never rejects. */
  async teardown(reason: string): Promise<void> {
    try {
      await this.opts.peer.call('session.teardown', { id: this.id, reason }, this.opts.teardownTimeoutMs);
    } catch (e) {
      this.opts.log.warn({ session: this.id, worker: this.worker, err: (e as Error).message }, 'remote session teardown failed');
    }
  }
}

/** Main side: the sessions of one worker, kept in `registry`. */
export class RemoteSessions {
  private readonly sessions = new Map<string, { s: RemoteSession; unregister: () => void }>();

  constructor(
    private readonly opts: {
      worker: number;
      peer: RpcPeer;
      registry: SessionRegistry;
      counters(idx: number): SessionCounters | undefined;
      log: Logger;
      teardownTimeoutMs?: number;
      /** A session was added or removed. */
      onChange?(): void;
    },
  ) {
    const p = opts.peer;
    p.handle<MirroredSession>('session.add', (f) => this.add(f));
    p.handle<MirroredSession[]>('session.update', (fs) => {
      for (const f of fs) {
        const e = this.sessions.get(f.id);
        if (e) e.s.fields = f;
      }
    });
    p.handle<{ id: string }>('session.remove', ({ id }) => this.remove(id));
  }

  get size(): number {
    return this.sessions.size;
  }

  private add(f: MirroredSession): void {
    if (this.sessions.has(f.id)) return;
    const o = this.opts;
    const s = new RemoteSession(f, o.worker, { peer: o.peer, counters: o.counters, teardownTimeoutMs: o.teardownTimeoutMs ?? REMOTE_TEARDOWN_TIMEOUT_MS, log: o.log });
    this.sessions.set(f.id, { s, unregister: o.registry.add(s) });
    o.onChange?.();
  }

  private remove(id: string): void {
    const e = this.sessions.get(id);
    if (!e) return;
    this.sessions.delete(id);
    e.unregister();
    this.opts.onChange?.();
  }

  /** The worker is gone: forget its sessions. */
  dropAll(): number {
    const n = this.sessions.size;
    for (const id of [...this.sessions.keys()]) this.remove(id);
    return n;
  }
}

/** Worker side: answer main's teardown of one of our sessions (false: not ours, or already gone). */
export function serveTeardowns(peer: RpcPeer, registry: SessionRegistry): void {
  peer.handle<{ id: string; reason: string }>('session.teardown', ({ id, reason }) => registry.kill(id, reason));
}
