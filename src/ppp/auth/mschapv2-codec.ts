/**
 * MS-CHAPv2 fields carried in CHAP packets (RFC 2759 sections 3-6) and, with
 * the same content, in EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2).
 *
 * Challenge Value (section 3): 16 octets, the Authenticator Challenge.
 *
 * Response Value (section 4), 49 octets:
 *   +----------------+----------+-------------+-------+
 *   | Peer-Challenge | Reserved | NT-Response | Flags |
 *   |      16        |  8 (0)   |     24      | 1 (0) |
 *   +----------------+----------+-------------+-------+
 *
 * Success Message (section 5): "S=<auth_string> M=<message>", auth_string
 * being 40 uppercase hexadecimal digits.
 *
 * Failure Message (section 6):
 *   "E=eeeeeeeeee R=r C=cccccccccccccccccccccccccccccccc V=vvvvvvvvvv M=<msg>"
 *   E decimal error code, R '1' when a retry is allowed, C the new
 *   Authenticator Challenge (32 hex digits), V the password-change protocol
 *   version (3), M free text.
 */
import type { AuthFailureReason } from './types.js';
import { AUTHENTICATOR_CHALLENGE_SIZE, NT_RESPONSE_SIZE, PEER_CHALLENGE_SIZE, RESPONSE_VALUE_SIZE } from './mschapv2-crypto.js';

// From the spec (RFC 2759 section 6).
export const MsChapError = {
  RestrictedLogonHours: 646,
  AccountDisabled: 647,
  PasswordExpired: 648,
  NoDialinPermission: 649,
  AuthenticationFailure: 691,
  ChangingPassword: 709,
} as const;
/** V=3: the version of the password-change protocol we would accept (RFC 2759 6). */
export const PASSWORD_CHANGE_VERSION = 3;

export interface ResponseValue {
  peerChallenge: Uint8Array;
  ntResponse: Uint8Array;
}

/** Peer-Challenge | 8 zero octets | NT-Response | Flags 0. */
export function encodeResponseValue(r: ResponseValue): Uint8Array {
  const v = new Uint8Array(RESPONSE_VALUE_SIZE);
  v.set(r.peerChallenge.subarray(0, PEER_CHALLENGE_SIZE), 0);
  v.set(r.ntResponse.subarray(0, NT_RESPONSE_SIZE), PEER_CHALLENGE_SIZE + 8);
  return v;
}

/**
 * The Response Value, or undefined when it is not 49 octets. Reserved and
 * Flags "MUST be zero" for the sender; as a receiver we ignore them, as
 * Windows and pppd do.
 */
export function decodeResponseValue(v: Uint8Array): ResponseValue | undefined {
  if (v.length !== RESPONSE_VALUE_SIZE) return undefined;
  return {
    peerChallenge: v.slice(0, PEER_CHALLENGE_SIZE),
    ntResponse: v.slice(PEER_CHALLENGE_SIZE + 8, PEER_CHALLENGE_SIZE + 8 + NT_RESPONSE_SIZE),
  };
}

export function encodeSuccessMessage(authenticatorResponse: string, text: string): string {
  return text ? `${authenticatorResponse} M=${text}` : authenticatorResponse;
}

/** The "S=" part of a Success message (checked by the caller), and the M= text; undefined when there is no S=. */
export function parseSuccessMessage(message: string): { authenticatorResponse: string; text: string } | undefined {
  if (!message.startsWith('S=')) return undefined;
  const m = message.indexOf(' M=');
  const auth = (m >= 0 ? message.slice(0, m) : message).trimEnd();
  return { authenticatorResponse: auth, text: m >= 0 ? message.slice(m + 3) : '' };
}

export interface FailureMessage {
  error: number;
  retry: boolean;
  /** New Authenticator Challenge (C=); RFC 2759 6 says it MUST be present, we tolerate its absence. */
  challenge: Uint8Array | undefined;
  version: number | undefined;
  text: string;
}

export function encodeFailureMessage(f: { error: number; retry: boolean; challenge: Uint8Array; text: string }): string {
  if (f.challenge.length !== AUTHENTICATOR_CHALLENGE_SIZE) throw new RangeError('C= carries a 16-octet challenge');
  const c = Buffer.from(f.challenge).toString('hex').toUpperCase();
  return `E=${f.error} R=${f.retry ? 1 : 0} C=${c} V=${PASSWORD_CHANGE_VERSION} M=${f.text}`;
}

/** Parse a Failure message; undefined when it has no E= code. */
export function parseFailureMessage(message: string): FailureMessage | undefined {
  const m = message.indexOf('M=');
  const head = m >= 0 ? message.slice(0, m) : message;
  const text = m >= 0 ? message.slice(m + 2) : '';
  const fields = new Map<string, string>();
  for (const tok of head.split(' ')) {
    const eq = tok.indexOf('=');
    if (eq > 0) fields.set(tok.slice(0, eq), tok.slice(eq + 1));
  }
  const e = fields.get('E');
  if (e === undefined || !/^\d{1,10}$/.test(e)) return undefined;
  const c = fields.get('C');
  const v = fields.get('V');
  return {
    error: Number(e),
    retry: fields.get('R') === '1',
    challenge: c !== undefined && /^[0-9A-Fa-f]{32}$/.test(c) ? new Uint8Array(Buffer.from(c, 'hex')) : undefined,
    version: v !== undefined && /^\d{1,10}$/.test(v) ? Number(v) : undefined,
    text,
  };
}

/**
 * The E= code for a refusal: 648 for an expired password, 649 (no dial-in
 * permission) for a disabled account or one not allowed this tunnel or
 * method, 691 for everything else (wrong or unknown credentials look alike).
 */
export function errorCodeFor(reason: AuthFailureReason): number {
  switch (reason) {
    case 'expired':
      return MsChapError.PasswordExpired;
    case 'disabled':
    case 'protocol-not-allowed':
    case 'method-not-allowed':
      return MsChapError.NoDialinPermission;
    default:
      return MsChapError.AuthenticationFailure;
  }
}

/** Client side: what a server's E= code means for us. */
export function reasonForError(code: number): AuthFailureReason {
  switch (code) {
    case MsChapError.PasswordExpired:
      return 'expired';
    case MsChapError.AccountDisabled:
    case MsChapError.NoDialinPermission:
    case MsChapError.RestrictedLogonHours:
      return 'disabled';
    default:
      return 'bad-credentials';
  }
}
