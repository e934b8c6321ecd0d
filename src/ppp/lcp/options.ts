/**
 * LCP Configuration Options (RFC 1661 section 6) as a table.
 *
 *   Type  Name                        Length  Value
 *   1     Maximum-Receive-Unit        4       u16 (6.1)
 *   2     Async-Control-Character-Map 6       u32 (RFC 1662 7.1; meaningless on tunnels, acknowledged)
 *   3     Authentication-Protocol     >= 4    u16 protocol + data (6.2; CHAP: RFC 1994 3, algorithm octet)
 *   5     Magic-Number                6       u32 (6.4)
 *   7     Protocol-Field-Compression  2       - (6.5)
 *   8     Address-and-Control-Field-
 *         Compression                 2       - (6.6)
 *   anything else (Quality-Protocol, Callback, MRRU, Endpoint-Discriminator, ...): Configure-Reject.
 *
 * The server asks the peer to authenticate with its first configured method
 * and walks its list as the peer Naks; the client Acks a method it accepts
 * or Naks with the first one it accepts.
 */
import type { AuthMethod } from '../auth/types.js';
import { PPP_CHAP, PPP_EAP, PPP_PAP } from '../auth/types.js';
import { ACK, REJECT, emptyCodec, nak, option, u16Codec, u32Codec, OptionTable, type OptionCodec } from '../options.js';

// From the spec.
export const LCP_OPT_MRU = 1;
export const LCP_OPT_ACCM = 2;
export const LCP_OPT_AUTH = 3;
export const LCP_OPT_MAGIC = 5;
export const LCP_OPT_PFC = 7;
export const LCP_OPT_ACFC = 8;
/** RFC 1661 6.1: the default MRU, which needs no negotiation. */
export const DEFAULT_MRU = 1500;
/** CHAP algorithm octets: RFC 1994 (MD5 = 5), RFC 2759 section 2 (MS-CHAPv2 = 0x81). */
export const CHAP_ALG_MD5 = 0x05;
export const CHAP_ALG_MSCHAPV2 = 0x81;

// Our choices.
/** Smallest MRU we accept from or grant to a peer (pppd's MINMRU; RFC 1661 sets no floor). */
export const MIN_MRU = 128;

export interface AuthOptionValue {
  protocol: number;
  data: Uint8Array;
}

export const authCodec: OptionCodec<AuthOptionValue> = {
  decode: (d) => (d.length >= 2 ? { protocol: (d[0]! << 8) | d[1]!, data: d.slice(2) } : undefined),
  encode: (v) => {
    const out = new Uint8Array(2 + v.data.length);
    out[0] = v.protocol >>> 8;
    out[1] = v.protocol & 0xff;
    out.set(v.data, 2);
    return out;
  },
};

export function authOptionFor(method: AuthMethod): AuthOptionValue {
  switch (method) {
    case 'pap':
      return { protocol: PPP_PAP, data: new Uint8Array(0) };
    case 'chap-md5':
      return { protocol: PPP_CHAP, data: new Uint8Array([CHAP_ALG_MD5]) };
    case 'mschapv2':
      return { protocol: PPP_CHAP, data: new Uint8Array([CHAP_ALG_MSCHAPV2]) };
    case 'eap-mschapv2':
      return { protocol: PPP_EAP, data: new Uint8Array(0) };
  }
}

/** The method an Authentication-Protocol value names, if we implement it. */
export function authMethodOf(v: AuthOptionValue): AuthMethod | undefined {
  if (v.protocol === PPP_PAP && v.data.length === 0) return 'pap';
  if (v.protocol === PPP_EAP && v.data.length === 0) return 'eap-mschapv2';
  if (v.protocol === PPP_CHAP && v.data.length === 1) {
    if (v.data[0] === CHAP_ALG_MD5) return 'chap-md5';
    if (v.data[0] === CHAP_ALG_MSCHAPV2) return 'mschapv2';
  }
  return undefined;
}

/** What we ask for in our Configure-Request; reset at the start of each negotiation. */
export interface LcpWant {
  /** MRU to request; undefined = the default 1500 (or the peer rejected the option). */
  mru: number | undefined;
  /** Server: the method we ask the peer to authenticate with. */
  auth: AuthMethod | undefined;
  /** 0 = not requested (rejected by the peer). */
  magic: number;
  pfc: boolean;
  acfc: boolean;
}

/** What the peer asked for in the request we judged last (= the one we acknowledged, at tlu). */
export interface LcpPeer {
  mru: number;
  magic: number;
  pfc: boolean;
  acfc: boolean;
  /** Client: the method the server authenticates us with. */
  auth: AuthMethod | undefined;
}

/** The negotiation state the option rows read and update (implemented by the Lcp class). */
export interface LcpNegotiation {
  readonly role: 'server' | 'client';
  /** Largest MRU we can receive (the tunnel's limit). */
  readonly maxMru: number;
  /** Server: methods offered, in order. Client: methods accepted, in order of preference. */
  readonly authMethods: readonly AuthMethod[];
  want: LcpWant;
  peer: LcpPeer;
  /** Server: methods proposed so far in this negotiation. */
  readonly authTried: Set<AuthMethod>;
  /** A new non-zero magic number different from `avoid`. */
  newMagic(avoid: number[]): number;
  /** RFC 1661 6.4 loop-back suspicion; the implementation gives up after a bound. */
  loopSuspected(how: string): void;
  /** Last Magic-Number we suggested in a Nak (looped-back detection). */
  lastNakMagic: number;
  /** Negotiation cannot succeed: close the link with this reason. */
  fail(reason: string, detail: string): void;
}

export const LCP_OPTIONS = new OptionTable<LcpNegotiation>([
  option({
    type: LCP_OPT_MRU,
    name: 'Maximum-Receive-Unit',
    length: [4, 4],
    codec: u16Codec,
    request: (ctx) => ctx.want.mru,
    judge: (ctx, v) => {
      // The peer's receive limit; we send min(this, what the tunnel carries).
      if (v < MIN_MRU) return nak(MIN_MRU);
      ctx.peer.mru = v;
      return ACK;
    },
    naked: (ctx, v, requested) => {
      // A Nak suggests an MRU we should receive: take it if the tunnel carries it.
      if (requested && v >= MIN_MRU && v <= ctx.maxMru) ctx.want.mru = v === DEFAULT_MRU ? undefined : v;
    },
    rejected: (ctx) => {
      ctx.want.mru = undefined;
    },
  }),
  option({
    type: LCP_OPT_ACCM,
    name: 'Async-Control-Character-Map',
    length: [6, 6],
    codec: u32Codec,
    // No async HDLC on a tunnel: any map is harmless, so acknowledge it (as peers expect).
    judge: () => ACK,
  }),
  option({
    type: LCP_OPT_AUTH,
    name: 'Authentication-Protocol',
    length: [4, 255],
    codec: authCodec,
    request: (ctx) => (ctx.role === 'server' && ctx.want.auth ? authOptionFor(ctx.want.auth) : undefined),
    judge: (ctx, v) => {
      // The peer asks us to authenticate ourselves. A gateway never does.
      if (ctx.role === 'server') return REJECT;
      const m = authMethodOf(v);
      if (m && ctx.authMethods.includes(m)) {
        ctx.peer.auth = m;
        return ACK;
      }
      const preferred = ctx.authMethods[0];
      return preferred ? nak(authOptionFor(preferred)) : REJECT;
    },
    naked: (ctx, v, requested) => {
      if (ctx.role !== 'server' || !requested) return;
      const suggested = authMethodOf(v);
      if (suggested && ctx.authMethods.includes(suggested) && suggested !== ctx.want.auth) {
        ctx.want.auth = suggested;
      } else {
        const next = ctx.authMethods.find((m) => !ctx.authTried.has(m));
        if (!next) {
          ctx.fail('no-common-auth', `peer accepts none of the configured methods (${ctx.authMethods.join(', ')})`);
          return;
        }
        ctx.want.auth = next;
      }
      ctx.authTried.add(ctx.want.auth);
    },
    rejected: (ctx) => {
      if (ctx.role === 'server') ctx.fail('peer-refused-auth', 'peer rejected the Authentication-Protocol option');
    },
  }),
  option({
    type: LCP_OPT_MAGIC,
    name: 'Magic-Number',
    length: [6, 6],
    codec: u32Codec,
    request: (ctx) => (ctx.want.magic !== 0 ? ctx.want.magic : undefined),
    judge: (ctx, v) => {
      // RFC 1661 6.4: zero is illegal and MUST be Nak'd; equal to ours suggests a looped-back
      // link: a Configure-Nak MUST be sent with a different value.
      if (v === 0 || v === ctx.want.magic) {
        if (v !== 0) ctx.loopSuspected('peer requested our own Magic-Number');
        ctx.lastNakMagic = ctx.newMagic([ctx.want.magic, v]);
        return nak(ctx.lastNakMagic);
      }
      ctx.peer.magic = v;
      return ACK;
    },
    naked: (ctx, v, requested) => {
      if (!requested) return;
      // RFC 1661 6.4: a Nak carrying the number we last suggested makes a loop more likely;
      // either way a new Magic-Number is chosen.
      if (v === ctx.lastNakMagic && v !== 0) ctx.loopSuspected('peer Nak carried our suggested Magic-Number');
      ctx.want.magic = ctx.newMagic([v, ctx.want.magic]);
    },
    rejected: (ctx) => {
      ctx.want.magic = 0;
    },
  }),
  option({
    type: LCP_OPT_PFC,
    name: 'Protocol-Field-Compression',
    length: [2, 2],
    codec: emptyCodec,
    request: (ctx) => (ctx.want.pfc ? true : undefined),
    judge: (ctx) => {
      ctx.peer.pfc = true;
      return ACK;
    },
    // A Nak of a boolean option cannot suggest anything: treat it as a Reject.
    naked: (ctx) => {
      ctx.want.pfc = false;
    },
    rejected: (ctx) => {
      ctx.want.pfc = false;
    },
  }),
  option({
    type: LCP_OPT_ACFC,
    name: 'Address-and-Control-Field-Compression',
    length: [2, 2],
    codec: emptyCodec,
    request: (ctx) => (ctx.want.acfc ? true : undefined),
    judge: (ctx) => {
      ctx.peer.acfc = true;
      return ACK;
    },
    naked: (ctx) => {
      ctx.want.acfc = false;
    },
    rejected: (ctx) => {
      ctx.want.acfc = false;
    },
  }),
]);
