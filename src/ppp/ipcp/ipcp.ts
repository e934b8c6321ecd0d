/**
 * IPCP, the IPv4 Control Protocol (RFC 1332), with the DNS and NBNS server
 * options of RFC 1877. Packets are RFC 1661's Configure-* / Terminate-* /
 * Code-Reject (codes 1-7) on protocol 0x8021.
 *
 *   Type  Name                        Length  Server (gateway)            Client
 *   1     IP-Addresses (deprecated)   10      Reject                      Reject
 *   2     IP-Compression-Protocol     >= 4    Reject (no VJ compression)  Reject
 *   3     IP-Address                  6       0.0.0.0 or not the assigned Ack any non-zero server
 *                                             address -> Nak(assigned);   address; adopt the Nak'd
 *                                             asks once if left out       address for ourselves
 *   129   Primary-DNS-Address         6       Nak(configured) / Ack;      Reject; ask with 0.0.0.0
 *   130   Primary-NBNS-Address        6       Reject when not configured  and adopt the Nak'd value
 *   131   Secondary-DNS-Address       6
 *   132   Secondary-NBNS-Address      6
 *
 *   IP-Address option:
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |    Length     |           IP-Address
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *           IP-Address (cont)       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
import type { FsmEvent, FsmTimers } from '../fsm.js';
import { TableProtocol, type NcpHost } from '../ncp.js';
import { ACK, IPV4_ZERO, REJECT, ipv4Bytes, ipv4Codec, nak, option, OptionTable, bytesCodec, type OptionSpec } from '../options.js';
import { encodeOption } from '../packet.js';

// From the spec.
export const IPCP_OPT_ADDRESSES = 1;
export const IPCP_OPT_COMPRESSION = 2;
export const IPCP_OPT_ADDRESS = 3;
export const IPCP_OPT_DNS1 = 129;
export const IPCP_OPT_NBNS1 = 130;
export const IPCP_OPT_DNS2 = 131;
export const IPCP_OPT_NBNS2 = 132;

export interface NameServers {
  primary?: string;
  secondary?: string;
}

export interface IpcpConfig {
  role: 'server' | 'client';
  /** Server: our own inner address. Client: the address we ask for (0.0.0.0: assign one). */
  localAddress: string;
  /** Server: the address assigned to the peer (its lease). */
  peerAddress?: string;
  /** Server: the name servers we hand out. */
  dns?: NameServers;
  nbns?: NameServers;
  /** Client: ask for DNS / NBNS servers (RFC 1877). */
  requestDns?: boolean;
  requestNbns?: boolean;
  timers?: Partial<FsmTimers>;
}

type ServerKey = 'dns1' | 'dns2' | 'nbns1' | 'nbns2';

interface IpcpWant {
  address: string | undefined;
  dns1: string | undefined;
  dns2: string | undefined;
  nbns1: string | undefined;
  nbns2: string | undefined;
}

interface IpcpPeer {
  address: string | undefined;
}

export interface IpcpResult {
  /** Our address on the link. */
  localAddress: string;
  /** The peer's address on the link (server: the assigned address). */
  peerAddress: string;
  /** Name servers: server side, those handed out; client side, those learned. */
  dns: string[];
  nbns: string[];
}

function ipcpTable(): OptionTable<Ipcp> {
  const nameServer = (type: number, name: string, key: ServerKey): OptionSpec<Ipcp, unknown> =>
    option({
      type,
      name,
      length: [6, 6],
      codec: ipv4Codec,
      request: (ctx) => (ctx.role === 'client' ? ctx.want[key] : undefined),
      judge: (ctx, v) => {
        // RFC 1877: the server hands these out; a client never supplies them.
        const configured = ctx.role === 'server' ? ctx.configuredServer(key) : undefined;
        if (!configured) return REJECT;
        return v === configured ? ACK : nak(configured);
      },
      naked: (ctx, v, requested) => {
        if (ctx.role === 'client' && requested) ctx.want[key] = v;
      },
      rejected: (ctx) => {
        ctx.want[key] = undefined;
      },
    });
  return new OptionTable<Ipcp>([
    option({ type: IPCP_OPT_ADDRESSES, name: 'IP-Addresses', length: [10, 10], codec: bytesCodec, judge: () => REJECT }),
    option({ type: IPCP_OPT_COMPRESSION, name: 'IP-Compression-Protocol', length: [4, 255], codec: bytesCodec, judge: () => REJECT }),
    option({
      type: IPCP_OPT_ADDRESS,
      name: 'IP-Address',
      length: [6, 6],
      codec: ipv4Codec,
      request: (ctx) => ctx.want.address,
      judge: (ctx, v) => {
        if (ctx.role === 'server') {
          // RFC 1332 3.3: 0.0.0.0 asks us to supply one; any other address but the assigned one is Nak'd with it.
          const assigned = ctx.cfg.peerAddress;
          if (!assigned) return REJECT;
          if (v === assigned) {
            ctx.peer.address = v;
            return ACK;
          }
          return nak(assigned);
        }
        // Client: the server tells us its address; we have none to suggest if it asks for one.
        if (v === IPV4_ZERO) return REJECT;
        ctx.peer.address = v;
        return ACK;
      },
      naked: (ctx, v, requested) => {
        // Client: the server assigns our address. Server: our own address is not negotiable.
        if (ctx.role === 'client' && requested && v !== IPV4_ZERO) ctx.want.address = v;
      },
      rejected: (ctx) => {
        ctx.want.address = undefined;
      },
    }),
    nameServer(IPCP_OPT_DNS1, 'Primary-DNS-Address', 'dns1'),
    nameServer(IPCP_OPT_NBNS1, 'Primary-NBNS-Address', 'nbns1'),
    nameServer(IPCP_OPT_DNS2, 'Secondary-DNS-Address', 'dns2'),
    nameServer(IPCP_OPT_NBNS2, 'Secondary-NBNS-Address', 'nbns2'),
  ]);
}

const IPCP_OPTIONS = ipcpTable();

export class Ipcp extends TableProtocol<Ipcp> {
  readonly role: 'server' | 'client';
  want: IpcpWant;
  peer: IpcpPeer = { address: undefined };
  /** Server: we asked a peer that left out IP-Address to include it (once per negotiation). */
  private hinted = false;

  constructor(
    readonly cfg: IpcpConfig,
    host: NcpHost,
  ) {
    super('IPCP', IPCP_OPTIONS, host, cfg.timers);
    this.role = cfg.role;
    this.want = this.initialWant();
    this.hints = (present) => {
      // RFC 1332 3.3: a server may Nak with an IP-Address the peer did not request, to supply one.
      if (this.role !== 'server' || present.has(IPCP_OPT_ADDRESS) || this.hinted || !this.cfg.peerAddress) return [];
      this.hinted = true;
      return [encodeOption(IPCP_OPT_ADDRESS, ipv4Bytes(this.cfg.peerAddress))];
    };
  }

  protected ctx(): Ipcp {
    return this;
  }

  configuredServer(key: ServerKey): string | undefined {
    const src = key.startsWith('dns') ? this.cfg.dns : this.cfg.nbns;
    return key.endsWith('1') ? src?.primary : src?.secondary;
  }

  private initialWant(): IpcpWant {
    if (this.role === 'server') return { address: this.cfg.localAddress, dns1: undefined, dns2: undefined, nbns1: undefined, nbns2: undefined };
    const ask = (b: boolean | undefined) => (b ? IPV4_ZERO : undefined);
    return {
      address: this.cfg.localAddress || IPV4_ZERO,
      dns1: ask(this.cfg.requestDns),
      dns2: ask(this.cfg.requestDns),
      nbns1: ask(this.cfg.requestNbns),
      nbns2: ask(this.cfg.requestNbns),
    };
  }

  resetRequest(): void {
    this.want = this.initialWant();
    this.hinted = false;
  }

  protected resetPeer(): void {
    this.peer = { address: undefined };
  }

  override up(cause: FsmEvent): void {
    if (this.role === 'client' && (!this.want.address || this.want.address === IPV4_ZERO)) {
      this.host.fail('no-address', 'IPCP opened without an address for us');
      return;
    }
    super.up(cause);
  }

  get negotiated(): IpcpResult {
    const present = (xs: (string | undefined)[]) => xs.filter((x): x is string => !!x && x !== IPV4_ZERO);
    if (this.role === 'server') {
      return {
        localAddress: this.cfg.localAddress,
        peerAddress: this.cfg.peerAddress ?? IPV4_ZERO,
        dns: present([this.cfg.dns?.primary, this.cfg.dns?.secondary]),
        nbns: present([this.cfg.nbns?.primary, this.cfg.nbns?.secondary]),
      };
    }
    return {
      localAddress: this.want.address ?? IPV4_ZERO,
      peerAddress: this.peer.address ?? IPV4_ZERO,
      dns: present([this.want.dns1, this.want.dns2]),
      nbns: present([this.want.nbns1, this.want.nbns2]),
    };
  }
}
