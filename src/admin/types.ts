/**
 * The operations contract: what the admin API and the metrics need from the
 * running gateway, and what a protocol server (SSTP, PPTP, L2TP) must offer
 * to be supervised, listed and torn down by an operator.
 */
import type { Protocol } from '../config/schema.js';

export type { Protocol };

/**
 * Where a session is in its life, coarsely (protocol state machines map
 * their own states onto these for listing and the sessions gauge):
 *
 *   establishing --> authenticating --> network --> up --> closing
 *        \________________\_______________\__________/--> closing
 */
export const SESSION_PHASES = ['establishing', 'authenticating', 'network', 'up', 'closing'] as const;
export type SessionPhase = (typeof SESSION_PHASES)[number];

/** One session as listed by GET /sessions. */
export interface SessionInfo {
  id: string;
  protocol: Protocol;
  /** Authenticated user name; null before authentication. */
  user: string | null;
  /** Outer peer address, `ip:port` (or `ip` for GRE/ESP-only paths). */
  peer: string;
  /** Inner IPv4 address once IPCP assigned one. */
  innerAddress: string | null;
  state: SessionPhase;
  /** ISO 8601 time the transport connected. */
  since: string;
  /** IP payload bytes from the client (uplink) and to the client (downlink). */
  bytesIn: number;
  bytesOut: number;
  /** The data-plane worker that owns the session (`vpngw serve` with worker threads; absent in-process). */
  worker?: number;
}

/** What the admin API asks of the gateway. */
export interface GatewayControl {
  /** Ready to accept clients (data plane up, listeners bound). */
  ready(): boolean;
  sessions(): SessionInfo[];
  /** Tear one session down with its protocol's teardown. False if unknown. */
  kill(id: string, reason: string): Promise<boolean>;
  /** Tear down every session of `user`; resolves to how many. */
  killUser(user: string, reason: string): Promise<number>;
}

/**
 * A protocol server's handle on one of its sessions, registered with the
 * gateway's {@link SessionRegistry} when the transport connects and
 * unregistered when it is gone.
 */
export interface ManagedSession {
  readonly id: string;
  readonly protocol: Protocol;
  info(): SessionInfo;
  /**
   * The authenticated user name (what info().user says), without building
   * the listing: the per-user session limit asks on every authentication.
   * Null until authenticated; once set it does not change. Optional: the
   * registry falls back to info().user.
   */
  username?(): string | null;
  /**
   * Call `onChange` whenever what info() says (user, inner address, state)
   * may have changed; returns the unsubscribe. Optional: for mirrors of the
   * registry in another thread (src/workers).
   */
  watch?(onChange: () => void): () => void;
  /** The session's entry in its worker's data-plane session table, while it has one. */
  dataplaneIndex?(): number | undefined;
  /**
   * Proper protocol teardown (SSTP Call Disconnect, PPTP Call-Clear and
   * Stop-Control-Connection, L2TP CDN/StopCCN, after LCP Terminate). Resolves
   * when the session is gone or its teardown deadline passed; never rejects.
   */
  teardown(reason: string): Promise<void>;
}
