/**
 * The contract between the PPP session (which runs LCP, then authentication,
 * then the network control protocols) and the authentication protocols, and
 * between the server-side protocols and whatever checks credentials (the
 * local user store now, RADIUS later).
 *
 * An authentication protocol instance handles the packets of one PPP
 * protocol number (PAP 0xc023, CHAP 0xc223 for CHAP-MD5 and MS-CHAPv2,
 * EAP 0xc227). It is created when LCP has agreed on it and started when the
 * session enters the Authenticate phase.
 */
import type { Clock } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';

export type AuthMethod = 'pap' | 'chap-md5' | 'mschapv2' | 'eap-mschapv2';

export const PPP_PAP = 0xc023;
export const PPP_CHAP = 0xc223;
export const PPP_EAP = 0xc227;

/** MPPE master keys (RFC 3079 section 3.4), 16 octets each, from the point of view of the side holding them. */
export interface MppeMasterKeys {
  masterSendKey: Uint8Array;
  masterReceiveKey: Uint8Array;
}

/** What a successful authentication yields to the session. */
export interface AuthSuccess {
  ok: true;
  method: AuthMethod;
  username: string;
  /** MS-CHAPv2 and EAP-MSCHAPv2 only. */
  mppe?: MppeMasterKeys;
  /**
   * SSTP Higher-Layer Authentication Key, 32 octets (MS-SSTP 3.2.5.2.2 /
   * 3.2.5.2.4), already in the orientation of the side holding it:
   *   - PAP, CHAP-MD5: 32 zero octets (no keys);
   *   - MS-CHAPv2: client MasterSendKey | MasterReceiveKey, server
   *     MasterReceiveKey | MasterSendKey (the same 32 octets on both sides);
   *   - EAP-MSCHAPv2: the first 32 octets of the EAP MSK, which [MS-CHAP]
   *     defines as MasterReceiveKey | MasterSendKey | 32 zero octets with the
   *     authenticator's key names: numerically equal to the MS-CHAPv2 HLAK.
   * Always set by the protocols of src/ppp/auth.
   */
  hlak?: Uint8Array;
  /** EAP methods only: the 64-octet EAP Master Session Key (RFC 3748 section 7.10). */
  msk?: Uint8Array;
  /** Per-user settings the verifier found (static address, policies). */
  attributes: UserAttributes;
}

export type AuthFailureReason =
  | 'unknown-user'
  | 'bad-credentials'
  | 'disabled'
  | 'expired'
  | 'method-not-allowed'
  | 'protocol-not-allowed'
  | 'rate-limited'
  | 'timeout'
  | 'protocol-error'
  | 'backend-error';

export interface AuthFailure {
  ok: false;
  method: AuthMethod;
  username?: string;
  reason: AuthFailureReason;
  /** Human-readable, safe to log (never contains secrets). */
  message: string;
}

export type AuthResult = AuthSuccess | AuthFailure;

export interface UserAttributes {
  /** Static inner IPv4 address, dotted quad. */
  staticIpv4?: string;
  /** 'deny' | 'allow' | 'require' MPPE, overriding the global policy. */
  mppe?: 'deny' | 'allow' | 'require';
  /** Maximum simultaneous sessions for this user. */
  maxSessions?: number;
}

/**
 * Server side: checks what a peer presented. Implemented by the local user
 * store (src/aaa) and later by the RADIUS client. Verifiers compare in
 * constant time and never log secrets. The session context lets them apply
 * per-protocol and per-source policy and rate limits.
 */
export interface VerifyContext {
  /** Tunnel protocol the session arrived on. */
  tunnel: 'sstp' | 'pptp' | 'l2tp' | 'test';
  /** Peer's outer address (rate limiting, logs). */
  peer: string;
  /** The tunnel session the exchange belongs to, when there is one (logs). */
  sessionId?: string;
  /**
   * The method being run, filled in by the protocol instance (MS-CHAPv2 and
   * EAP-MSCHAPv2 both call {@link Verifier.msChapV2}; per-user method
   * policy needs to tell them apart).
   */
  method?: AuthMethod;
}

export interface MsChapV2Verified {
  /** The 42-character "S=<40 hex>" authenticator response (RFC 2759 section 8.7). */
  authenticatorResponse: string;
  mppe: MppeMasterKeys;
  attributes: UserAttributes;
  username: string;
}

export type VerifyOutcome<T> = ({ ok: true } & T) | { ok: false; reason: AuthFailureReason; message: string };

export interface Verifier {
  pap(ctx: VerifyContext, username: string, password: Uint8Array): Promise<VerifyOutcome<{ attributes: UserAttributes; username: string }>>;
  chapMd5(
    ctx: VerifyContext,
    username: string,
    identifier: number,
    challenge: Uint8Array,
    response: Uint8Array,
  ): Promise<VerifyOutcome<{ attributes: UserAttributes; username: string }>>;
  msChapV2(
    ctx: VerifyContext,
    username: string,
    authenticatorChallenge: Uint8Array,
    peerChallenge: Uint8Array,
    ntResponse: Uint8Array,
  ): Promise<VerifyOutcome<MsChapV2Verified>>;
}

/** Client side credentials. */
export interface ClientCredentials {
  username: string;
  password: string;
}

/** What an authentication protocol instance needs from its session. */
export interface AuthHost {
  /** Send a packet of this protocol (the bytes after the PPP protocol field). */
  send(packet: Uint8Array): void;
  /** Authentication finished (either way); called exactly once. */
  done(result: AuthResult): void;
  clock: Clock;
  log: Logger;
}

/** One running authentication exchange (either role). */
export interface AuthProtocol {
  readonly protocol: number;
  readonly method: AuthMethod;
  /** Enter the Authenticate phase (server: send the first challenge; client: send credentials or wait). */
  start(): void;
  /** A packet of this protocol arrived (bytes after the PPP protocol field). Never throws. */
  input(packet: Uint8Array): void;
  /** The session is going down: cancel timers, send nothing more. */
  stop(): void;
}
