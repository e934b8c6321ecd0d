/**
 * IPV6CP, the IPv6 Control Protocol (RFC 5072), on protocol 0x8057.
 * It negotiates only 64-bit Interface-Identifiers, from which each side
 * forms its link-local address fe80::/64 + identifier (RFC 5072 section 5).
 *
 *   Type  Name                          Length
 *   1     Interface-Identifier          10      (RFC 5072 4.1)
 *   2     IPv6-Compression-Protocol     >= 4    Reject
 *
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |    Length     | Interface-Identifier (MS Bytes)
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *                     Interface-Identifier (cont)
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    Interface-Identifier (LS Bytes) |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * RFC 5072 4.1, when judging the peer's identifier:
 *   - zero: Configure-Nak with a non-zero suggestion different from ours;
 *   - equal to ours: Configure-Nak with a different non-zero suggestion;
 *   - otherwise: Configure-Ack.
 * A Nak of ours suggesting an identifier: adopt it unless it is the one we
 * last suggested to the peer (then choose a fresh random one).
 */
import type { FsmTimers } from '../fsm.js';
import { TableProtocol, type NcpHost } from '../ncp.js';
import { ACK, REJECT, bytesCodec, nak, option, OptionTable } from '../options.js';
import { bytesEqual } from '../packet.js';

// From the spec.
export const IPV6CP_OPT_INTERFACE_ID = 1;
export const IPV6CP_OPT_COMPRESSION = 2;
export const INTERFACE_ID_LENGTH = 8;

export interface Ipv6cpConfig {
  /** Our identifier; random when absent. */
  interfaceId?: Uint8Array;
  timers?: Partial<FsmTimers>;
}

export interface Ipv6cpResult {
  localInterfaceId: Uint8Array;
  peerInterfaceId: Uint8Array | undefined;
  localLinkLocal: string;
  peerLinkLocal: string | undefined;
}

const isZero = (b: Uint8Array) => b.every((x) => x === 0);

/** fe80::/64 followed by the identifier, in RFC 5952 text form. */
export function linkLocalAddress(iid: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push(((iid[i]! << 8) | iid[i + 1]!).toString(16));
  // fe80:0:0:0 + four groups: compress the zero run after fe80 (longest, leftmost).
  return `fe80::${compressTail(groups)}`;
}

function compressTail(groups: string[]): string {
  // The prefix already holds the longest zero run (three groups) unless the tail has a longer one, which it cannot
  // (four groups, a non-zero identifier). Leading zero groups of the tail join the prefix run.
  let i = 0;
  while (i < groups.length - 1 && groups[i] === '0') i++;
  return groups.slice(i).join(':');
}

const IPV6CP_OPTIONS = new OptionTable<Ipv6cp>([
  option({
    type: IPV6CP_OPT_INTERFACE_ID,
    name: 'Interface-Identifier',
    length: [10, 10],
    codec: bytesCodec,
    request: (ctx) => (ctx.requestIid ? ctx.want : undefined),
    judge: (ctx, v) => {
      if (isZero(v) || bytesEqual(v, ctx.want)) {
        ctx.lastNakSuggestion = ctx.newIid([ctx.want, v]);
        return nak(ctx.lastNakSuggestion);
      }
      ctx.peerIid = v;
      return ACK;
    },
    naked: (ctx, v, requested) => {
      if (!requested) return;
      const usable = !isZero(v) && !(ctx.lastNakSuggestion && bytesEqual(v, ctx.lastNakSuggestion));
      ctx.want = usable ? v : ctx.newIid([v, ctx.want]);
    },
    rejected: (ctx) => {
      // The peer will not negotiate identifiers: keep ours for the link-local address.
      ctx.requestIid = false;
    },
  }),
  option({ type: IPV6CP_OPT_COMPRESSION, name: 'IPv6-Compression-Protocol', length: [4, 255], codec: bytesCodec, judge: () => REJECT }),
]);

export class Ipv6cp extends TableProtocol<Ipv6cp> {
  want: Uint8Array;
  requestIid = true;
  peerIid: Uint8Array | undefined;
  lastNakSuggestion: Uint8Array | undefined;
  private readonly initial: Uint8Array;

  constructor(
    readonly cfg: Ipv6cpConfig,
    host: NcpHost,
  ) {
    super('IPV6CP', IPV6CP_OPTIONS, host, cfg.timers);
    this.initial = cfg.interfaceId && cfg.interfaceId.length === INTERFACE_ID_LENGTH && !isZero(cfg.interfaceId) ? cfg.interfaceId.slice() : this.newIid([]);
    this.want = this.initial.slice();
  }

  protected ctx(): Ipv6cp {
    return this;
  }

  /** A random non-zero identifier different from each of `avoid`. */
  newIid(avoid: Uint8Array[]): Uint8Array {
    for (let i = 0; i < 16; i++) {
      const c = this.host.random(INTERFACE_ID_LENGTH).slice();
      if (!isZero(c) && !avoid.some((a) => bytesEqual(a, c))) return c;
    }
    // A broken random source: count upwards from 1 until unique.
    const c = new Uint8Array(INTERFACE_ID_LENGTH);
    for (let n = 1; ; n++) {
      c[7] = n & 0xff;
      c[6] = (n >>> 8) & 0xff;
      if (!avoid.some((a) => bytesEqual(a, c))) return c;
    }
  }

  resetRequest(): void {
    this.want = this.initial.slice();
    this.requestIid = true;
    this.lastNakSuggestion = undefined;
  }

  protected resetPeer(): void {
    this.peerIid = undefined;
  }

  get negotiated(): Ipv6cpResult {
    return {
      localInterfaceId: this.want.slice(),
      peerInterfaceId: this.peerIid?.slice(),
      localLinkLocal: linkLocalAddress(this.want),
      peerLinkLocal: this.peerIid ? linkLocalAddress(this.peerIid) : undefined,
    };
  }
}
