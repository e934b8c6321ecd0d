/**
 * What every tunnel's server session does the same way, whatever carries
 * its PPP (an SSTP call over TLS, a PPTP call over GRE, later an L2TP
 * session): the PPP server session, the data-plane session it is installed
 * into, the gateway's view of it (ManagedSession: listing, per-user count,
 * operator teardown), metrics, and the session's log lines.
 *
 *   transport connected ──► (protocol hand-shake) ──► PPP opened
 *     ──authenticated──► user bound to every log line of the session
 *     ──PPP up (IPCP)──► activate(): installed in the data plane, IP flows,
 *                        set-up duration recorded, "session up"
 *   teardown(): LCP Terminate-Request ──PPP down, or TEARDOWN_LCP_WAIT_MS──►
 *     the protocol's hang-up (SSTP Call Disconnect, PPTP Call-Disconnect-Notify)
 *   transport gone / hang-up done ──► finish(): timers stopped, the protocol
 *     cleans up, `closed` resolves (once)
 *
 * The protocol's own state machines, hand-shake and hang-up live in its
 * subclass (src/sstp/server-session.ts, src/pptp/service.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Bindings } from 'pino';
import type { Clock, Timer } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { TunnelMetrics } from '../metrics/registry.js';
import type { ManagedSession, Protocol, SessionInfo, SessionPhase } from '../admin/types.js';
import type { SessionCounters } from '../dataplane/sessions.js';
import { PppSession, Phase, type IpcpResult, type MppePolicy, type NameServers, type PppDownInfo, type PppUpInfo } from '../ppp/index.js';
import type { AuthMethod, AuthSuccess, Verifier } from '../ppp/auth/types.js';
import type { AddressAllocator } from '../pool/types.js';

// Our choices.
/** After our LCP Terminate-Request, how long to wait for PPP to finish before the protocol hangs up. */
export const TEARDOWN_LCP_WAIT_MS = 3_000;

/** `ip:port`, IPv6 in brackets. */
export function formatPeer(peer: { address: string; port: number }): string {
  return peer.address.includes(':') ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}`;
}

/**
 * A session's loggers: its own child logger and every logger made from it
 * afterwards, at any depth (PPP, the control connection, the call). pino
 * copies a parent's bindings into a child when the child is made, so a
 * binding learnt later (the user, at authentication) has to be set on each
 * of them; {@link bind} does, and loggers made after it inherit it.
 */
export class SessionLog {
  readonly log: Logger;
  private readonly family: Logger[] = [];
  private readonly bound = new Map<string, unknown>();

  constructor(parent: Logger, bindings: Bindings) {
    const log = parent.child(bindings);
    const inherited = log.onChild;
    const family = this.family;
    // Children are made from their parent's prototype: this hook is inherited by every generation.
    log.onChild = function (this: Logger, child: Logger) {
      inherited.call(this, child);
      family.push(child);
    };
    family.push(log);
    this.log = log;
  }

  /** Add bindings to every logger of the session (a key already bound to the same value is left alone). */
  bind(bindings: Bindings): void {
    const add = Object.fromEntries(Object.entries(bindings).filter(([k, v]) => this.bound.get(k) !== v));
    if (Object.keys(add).length === 0) return;
    for (const [k, v] of Object.entries(add)) this.bound.set(k, v);
    for (const l of this.family) l.setBindings(add);
  }
}

/**
 * The first step of a proper teardown, client or server: LCP
 * Terminate-Request, then `hangUp` after `waitMs` unless PPP finished first
 * (whose 'down' handler hangs up and cancels the returned timer); `hangUp`
 * at once when PPP is not running. Returns the wait's timer, if one was
 * armed.
 */
export function terminatePpp(ppp: PppSession | undefined, reason: string, clock: Clock, hangUp: () => void, waitMs = TEARDOWN_LCP_WAIT_MS): Timer | undefined {
  if (!ppp || ppp.phase === Phase.Dead) {
    hangUp();
    return undefined;
  }
  ppp.close('admin', reason);
  // close() may have ended PPP at once (its 'down' handler then hung up).
  if ((ppp.phase as Phase) === Phase.Dead) return undefined;
  return clock.setTimer(waitMs, hangUp);
}

/** What a tunnel server hands each session for its PPP, from the config (the same for every tunnel). */
export interface TunnelPppOptions {
  methods: readonly AuthMethod[];
  verifier: Verifier;
  allocator: AddressAllocator;
  /** The gateway's inner address. */
  localAddress: string;
  dns?: NameServers;
  nbns?: NameServers;
  serverName: string;
}

/** What a session's PPP differs in from one tunnel to another. */
export interface TunnelPppLink {
  ppp: TunnelPppOptions;
  /** Frame and send one PPP frame to the peer. */
  send(frame: Uint8Array): void;
  /** The logger PPP lines go to (default the session's). */
  log?: Logger;
  mru: { desired: number; max: number };
  echo?: { intervalMs?: number; failures?: number };
  authTimeoutMs?: number;
  mppe: Partial<MppePolicy>;
  random?: (n: number) => Uint8Array;
}

/**
 * Where downlink packets for an inner address go, when the data plane has
 * several workers (src/workers): bound when a session's address is
 * installed in this worker's data plane, unbound when the session ends.
 * Both idempotent.
 */
export interface AddressSteering {
  bind(ipv4: string): void;
  unbind(ipv4: string): void;
}

export interface TunnelSessionOptions {
  clock: Clock;
  /** The service's logger; the session logs through a child of it. */
  log: Logger;
  /** Peer's outer address and port. */
  peer: { address: string; port: number };
  metrics?: TunnelMetrics;
  steering?: AddressSteering;
}

/** The data-plane session under a tunnel session (SstpStreamPath, PptpDataPath). */
export interface TunnelDataPath {
  readonly idx: number;
  counters(): SessionCounters | undefined;
}

export abstract class TunnelSession {
  readonly id = randomUUID();
  readonly since = new Date();
  /** Resolves when the session is fully torn down. */
  readonly closed: Promise<void>;
  protected readonly log: Logger;
  protected readonly clock: Clock;
  protected readonly metrics: TunnelMetrics | undefined;
  private readonly steering: AddressSteering | undefined;
  private steered: string | undefined;
  private readonly watchers = new Set<() => void>();
  protected readonly startedAt: number;
  protected ppp: PppSession | undefined;
  /** What PPP negotiated, once the session is activated with it. */
  protected pppUp: PppUpInfo | undefined;
  protected pppDown: PppDownInfo | undefined;
  protected activated = false;
  protected finished = false;
  private readonly logs: SessionLog;
  private readonly peerAddr: { address: string; port: number };
  private user: string | null = null;
  private lcpWait: Timer | undefined;
  private closedResolve!: () => void;

  protected constructor(
    readonly protocol: Protocol,
    opts: TunnelSessionOptions,
  ) {
    this.closed = new Promise((r) => (this.closedResolve = r));
    this.clock = opts.clock;
    this.metrics = opts.metrics;
    this.steering = opts.steering;
    this.peerAddr = opts.peer;
    this.startedAt = opts.clock.now();
    this.logs = new SessionLog(opts.log, { session: this.id, protocol, peer: this.peer });
    this.log = this.logs.log;
  }

  /** `ip:port` (IPv6 in brackets). */
  get peer(): string {
    return formatPeer(this.peerAddr);
  }

  /** The peer's outer address. */
  get peerAddress(): string {
    return this.peerAddr.address;
  }

  get username(): string | null {
    return this.user;
  }

  /** PPP is up, the session is in the data plane: IP flows. */
  get isUp(): boolean {
    return this.activated;
  }

  get isClosed(): boolean {
    return this.finished;
  }

  get dataplaneIndex(): number | undefined {
    return this.dataPath()?.idx;
  }

  info(): SessionInfo {
    const c = this.dataPath()?.counters();
    return {
      id: this.id,
      protocol: this.protocol,
      user: this.user,
      peer: this.peer,
      innerAddress: this.pppUp?.ipv4?.peerAddress ?? null,
      state: this.sessionPhase(),
      since: this.since.toISOString(),
      bytesIn: c ? Number(c.upBytes) : 0,
      bytesOut: c ? Number(c.downBytes) : 0,
    };
  }

  /** The gateway's handle on this session (register it when the session becomes visible). */
  managed(): ManagedSession {
    return {
      id: this.id,
      protocol: this.protocol,
      info: () => this.info(),
      username: () => this.user,
      teardown: (reason) => this.teardown(reason),
      watch: (fn) => {
        this.watchers.add(fn);
        return () => this.watchers.delete(fn);
      },
      dataplaneIndex: () => this.dataplaneIndex,
    };
  }

  /** What info() says may have changed (watchers: registry mirrors). */
  protected changed(): void {
    for (const fn of this.watchers) fn();
  }

  /** Bytes read from the transport. */
  abstract input(chunk: Uint8Array): void;
  /** The transport closed or failed under us. */
  abstract transportClosed(): void;
  /** Proper protocol teardown; resolves when the session is gone. Never rejects. */
  abstract teardown(reason: string): Promise<void>;
  /** Drop everything now, without any message (shutdown past its deadline). */
  abstract abort(reason: string): void;

  /** The transport reported an error (its 'close' follows). */
  transportError(e: Error): void {
    this.log.debug({ err: e.message }, `${this.protocol}: socket error`);
  }

  /** The data-plane session, while there is one. */
  protected abstract dataPath(): TunnelDataPath | undefined;
  /** The protocol is closing the session (its own states), whatever PPP says. */
  protected abstract isClosing(): boolean;
  /** PPP is up (IPCP done): activate when the protocol allows it. */
  protected abstract onPppUp(info: PppUpInfo): void;
  /** PPP is down (logged, counted, the LCP wait cancelled): hang the protocol up. */
  protected abstract onPppDown(info: PppDownInfo): void;
  /** The credentials verified (the user is bound to the session's lines by then). */
  protected onAuthenticated(r: AuthSuccess): void {
    void r;
  }

  private sessionPhase(): SessionPhase {
    if (this.finished || this.isClosing()) return 'closing';
    if (this.activated) return 'up';
    switch (this.ppp?.phase) {
      case Phase.Terminate:
        return 'closing';
      case Phase.Network:
        return 'network';
      case Phase.Authenticate:
        return 'authenticating';
      default:
        return 'establishing';
    }
  }

  // ---------------------------------------------------------------- PPP

  /** Open the PPP server session over `link`. */
  protected startPpp(link: TunnelPppLink): PppSession {
    const p = link.ppp;
    const ppp = new PppSession({
      role: 'server',
      send: link.send,
      clock: this.clock,
      log: link.log ?? this.log,
      tunnel: this.protocol,
      peer: this.peer,
      sessionId: this.id,
      mru: link.mru,
      ...(link.echo ? { echo: link.echo } : {}),
      ...(link.authTimeoutMs !== undefined ? { authTimeoutMs: link.authTimeoutMs } : {}),
      auth: { methods: p.methods, verifier: p.verifier, serverName: p.serverName, ctx: { tunnel: this.protocol, peer: this.peer, sessionId: this.id } },
      ipcp: {
        allocator: p.allocator,
        localAddress: p.localAddress,
        ...(p.dns ? { dns: p.dns } : {}),
        ...(p.nbns ? { nbns: p.nbns } : {}),
      },
      mppe: link.mppe,
      ...(link.random ? { random: link.random } : {}),
    });
    this.ppp = ppp;
    ppp.on('phase', () => this.changed());
    ppp.on('authenticated', (r) => {
      this.user = r.username;
      // From here on every line of the session names the user.
      this.logs.bind({ user: r.username });
      this.log.info({ method: r.method }, `${this.protocol}: PPP authenticated`);
      this.onAuthenticated(r);
      this.changed();
    });
    ppp.on('authFailed', (r) => {
      this.log.info({ user: r.username, method: r.method, reason: r.reason }, `${this.protocol}: PPP authentication failed`);
    });
    ppp.on('up', (info) => this.onPppUp(info));
    ppp.on('down', (info) => {
      this.pppDown = info;
      this.cancelLcpWait();
      if (info.reason === 'echo-timeout') this.metrics?.keepaliveTimeout(this.protocol);
      this.onPppDown(info);
    });
    ppp.open();
    return ppp;
  }

  /**
   * Install the session in the data plane (`install`), PPP being up with
   * `v4`: IP flows. The set-up duration is recorded and "session up"
   * logged with `fields`. False when the data plane refused it (the session
   * is then torn down).
   */
  protected activate(v4: IpcpResult, install: () => void, fields: Record<string, unknown>): boolean {
    try {
      install();
    } catch (e) {
      this.log.error({ err: e }, `${this.protocol}: the data plane refused the session`);
      this.teardown('data plane refused the session').catch(() => undefined);
      return false;
    }
    this.activated = true;
    if (this.steering) {
      try {
        this.steering.bind(v4.peerAddress);
        this.steered = v4.peerAddress;
      } catch (e) {
        // Uplink still flows; downlink for the address may reach another worker and be dropped there.
        this.log.error({ err: e, address: v4.peerAddress }, `${this.protocol}: cannot steer the session's address to this worker`);
      }
    }
    const seconds = (this.clock.now() - this.startedAt) / 1000;
    this.metrics?.sessionSetup(this.protocol, seconds);
    this.log.info({ address: v4.peerAddress, ...fields, setupSeconds: seconds }, `${this.protocol}: session up`);
    this.changed();
    return true;
  }

  // ---------------------------------------------------------------- teardown

  /** LCP Terminate-Request, then `hangUp` (see {@link terminatePpp}); one wait at a time. */
  protected terminatePpp(reason: string, hangUp: () => void): void {
    const wait = terminatePpp(this.ppp, reason, this.clock, () => {
      this.lcpWait = undefined;
      hangUp();
    });
    if (wait) {
      if (this.lcpWait) wait.cancel();
      else this.lcpWait = wait;
    }
  }

  private cancelLcpWait(): void {
    this.lcpWait?.cancel();
    this.lcpWait = undefined;
  }

  /**
   * The session is over (once): the LCP wait stops, `cleanUp` runs (the
   * protocol's timers and data path, its onClosed event), then `closed`
   * resolves. False if it already was over.
   */
  protected finish(cleanUp: () => void): boolean {
    if (this.finished) return false;
    this.finished = true;
    this.cancelLcpWait();
    cleanUp();
    this.unsteer();
    this.closedResolve();
    this.changed();
    return true;
  }

  /** The address no longer routes to this session's worker (also done when its lease is released). */
  private unsteer(): void {
    if (this.steered === undefined) return;
    const a = this.steered;
    this.steered = undefined;
    try {
      this.steering?.unbind(a);
    } catch (e) {
      this.log.error({ err: e, address: a }, `${this.protocol}: cannot remove the session's address steering`);
    }
  }
}
