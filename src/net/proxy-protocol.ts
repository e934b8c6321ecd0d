/**
 * PROXY protocol header codec: "The PROXY protocol, Versions 1 & 2"
 * (HAProxy, Willy Tarreau, revision 2020/03/05), receiver side. A load
 * balancer in TCP mode (HAProxy `send-proxy-v2`, AWS NLB, nginx stream
 * `proxy_protocol on`) prepends one header to each connection it relays; it
 * names the client's real address, which the receiver then uses as the peer.
 *
 * Version 2 (section 2.2), binary, 16 octets then `Length` octets:
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |   Signature: 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A (12 octets)  |
 *    |                              ...                              |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  Ver  |  Cmd  |  Fam  | Proto |            Length             |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  Address block (Fam/Proto: 0x11 TCP/IPv4 12 octets, 0x21      |
 *    |  TCP/IPv6 36, 0x31 UNIX 216): src addr, dst addr, src port,   |
 *    |  dst port, network byte order; then TLVs up to Length         |
 *
 *   Ver = 2; Cmd 0 = LOCAL (the proxy's own connection, e.g. a health
 *   check: use the real endpoints), 1 = PROXY; Fam 0 UNSPEC, 1 INET,
 *   2 INET6, 3 UNIX; Proto 0 UNSPEC, 1 STREAM, 2 DGRAM.
 *
 * Version 1 (section 2.1), one US-ASCII line of at most 107 octets:
 *
 *    "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF
 *    "PROXY" SP "UNKNOWN" [ anything ] CRLF
 *
 * What the receiver uses: the source of a PROXY command over TCP/IPv4 or
 * TCP/IPv6. LOCAL, v1 UNKNOWN, v2 UNSPEC, and the families we do not
 * implement (UDP, UNIX) give no address: the caller keeps the TCP
 * connection's own endpoints, as section 2.2 lets a receiver do ("falls back
 * to the UNSPEC mode"). TLVs are skipped (2.2: "a receiver may choose to
 * skip over and ignore those bytes"); we implement none, so neither the
 * CRC32C check (2.2.3 binds only receivers that support it).
 *
 * The decoder is total: a header with the octets it took, `truncated` (wait
 * for more: every proper prefix of a valid header is truncated, so a header
 * split anywhere decodes the same), or a typed failure as early as the
 * octets allow (a TLS ClientHello fails on its first octet).
 */
import { fail, ok, type DecodeResult } from '../util/decode.js';

// From the spec.
/** Section 2.2: the 12-octet v2 signature. */
export const PROXY_V2_SIGNATURE: readonly number[] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
/** Section 2.2: signature, ver/cmd, fam/proto, length. */
export const PROXY_V2_HEADER_LEN = 16;
/** Section 2.1: the longest v1 line, CRLF included ("PROXY UNKNOWN" with two IPv6 addresses). */
export const PROXY_V1_MAX_LEN = 107;
/** "PROXY" (section 2.1). */
const V1_PREFIX = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20];
export enum ProxyCommand {
  Local = 0x0,
  Proxy = 0x1,
}
export enum ProxyFamily {
  Unspec = 0x0,
  Inet = 0x1,
  Inet6 = 0x2,
  Unix = 0x3,
}
export enum ProxyTransport {
  Unspec = 0x0,
  Stream = 0x1,
  Dgram = 0x2,
}
/** Section 2.2: address block size per family (UNSPEC has none). */
const ADDRESS_BLOCK_LEN: Record<ProxyFamily, number> = { [ProxyFamily.Unspec]: 0, [ProxyFamily.Inet]: 12, [ProxyFamily.Inet6]: 36, [ProxyFamily.Unix]: 216 };

// Our choices.
/**
 * The largest v2 Length we accept (the spec allows 65535). An address block
 * is at most 216 octets; the TLVs a load balancer adds (AUTHORITY <= 258,
 * UNIQUE_ID <= 131, CRC32C 7, AWS/Azure endpoint ids ~40) stay well below.
 */
export const PROXY_V2_MAX_LENGTH = 1024;

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  command: 'local' | 'proxy';
  /**
   * The relayed connection's endpoints, or null when the header gives none
   * the receiver uses (LOCAL, v1 UNKNOWN, v2 UNSPEC / UDP / UNIX): then the
   * TCP connection's own endpoints stand.
   */
  addresses: { family: 'tcp4' | 'tcp6'; source: ProxyEndpoint; destination: ProxyEndpoint } | null;
}

export interface ProxyDecodeOptions {
  /** Largest v2 Length accepted (default {@link PROXY_V2_MAX_LENGTH}); a larger one fails at once. */
  maxV2Length?: number;
}

/** Decode the PROXY header (v1 or v2) at the start of `buf`. */
export function decodeProxyHeader(buf: Uint8Array, opts: ProxyDecodeOptions = {}): DecodeResult<ProxyHeader> {
  if (buf.length === 0) return fail('truncated', 'no octet yet');
  // Section 2.2: v2 starts with 0x0D, v1 with "P"; anything else is not covered by the spec: drop.
  if (buf[0] === PROXY_V2_SIGNATURE[0]) return decodeV2(buf, opts.maxV2Length ?? PROXY_V2_MAX_LENGTH);
  if (buf[0] === V1_PREFIX[0]) return decodeV1(buf);
  return fail('magic', `not a PROXY protocol header (first octet 0x${buf[0]!.toString(16).padStart(2, '0')})`, 0);
}

// ---------------------------------------------------------------- version 2

function decodeV2(buf: Uint8Array, maxLength: number): DecodeResult<ProxyHeader> {
  const sigLen = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < sigLen; i++) {
    if (buf[i] !== PROXY_V2_SIGNATURE[i]) return fail('magic', 'PROXY v2 signature mismatch', i);
  }
  if (buf.length < 13) return fail('truncated', 'PROXY v2 signature incomplete');
  const version = buf[12]! >> 4;
  const command = buf[12]! & 0x0f;
  // 2.2: "it must always be sent as \x2 and the receiver must only accept this value".
  if (version !== 2) return fail('version', `PROXY v2 header with version ${version}`, 12);
  // 2.2: other commands "Receivers must drop connections presenting unexpected values here".
  if (command !== ProxyCommand.Local && command !== ProxyCommand.Proxy) return fail('value', `PROXY v2 command 0x${command.toString(16)}`, 12);
  if (buf.length < 14) return fail('truncated', 'PROXY v2 header incomplete');
  const family = buf[13]! >> 4;
  const transport = buf[13]! & 0x0f;
  // 2.2: other families and protocols "must be rejected as invalid by receivers".
  if (family > ProxyFamily.Unix) return fail('value', `PROXY v2 address family 0x${family.toString(16)}`, 13);
  if (transport > ProxyTransport.Dgram) return fail('value', `PROXY v2 transport protocol 0x${transport.toString(16)}`, 13);
  if (buf.length < PROXY_V2_HEADER_LEN) return fail('truncated', 'PROXY v2 header incomplete');
  const length = (buf[14]! << 8) | buf[15]!;
  if (length > maxLength) return fail('length', `PROXY v2 length ${length} exceeds our limit of ${maxLength}`, 14);
  const total = PROXY_V2_HEADER_LEN + length;
  // 2.2: "The receiver must not start to parse an address before the whole address block is received."
  if (buf.length < total) return fail('truncated', `PROXY v2 header needs ${total} octets`);
  if (command === ProxyCommand.Local) {
    // 2.2: LOCAL: "discard the protocol block including the family which is ignored"; Length is still skipped.
    return ok({ version: 2, command: 'local', addresses: null }, total);
  }
  if (family === ProxyFamily.Unspec || transport === ProxyTransport.Unspec) return ok({ version: 2, command: 'proxy', addresses: null }, total);
  const need = ADDRESS_BLOCK_LEN[family as ProxyFamily];
  if (length < need) return fail('length', `PROXY v2 length ${length} is shorter than the ${need}-octet address block of family ${family}`, 14);
  // UDP and UNIX: valid, not implemented: fall back to UNSPEC (2.2).
  if (transport !== ProxyTransport.Stream || family === ProxyFamily.Unix) return ok({ version: 2, command: 'proxy', addresses: null }, total);
  const at = PROXY_V2_HEADER_LEN;
  const port = (p: number) => (buf[p]! << 8) | buf[p + 1]!;
  if (family === ProxyFamily.Inet) {
    return ok(
      {
        version: 2,
        command: 'proxy',
        addresses: {
          family: 'tcp4',
          source: { address: formatIpv4Octets(buf, at), port: port(at + 8) },
          destination: { address: formatIpv4Octets(buf, at + 4), port: port(at + 10) },
        },
      },
      total,
    );
  }
  return ok(
    {
      version: 2,
      command: 'proxy',
      addresses: {
        family: 'tcp6',
        source: { address: formatIpv6(buf.subarray(at, at + 16)), port: port(at + 32) },
        destination: { address: formatIpv6(buf.subarray(at + 16, at + 32)), port: port(at + 34) },
      },
    },
    total,
  );
}

// ---------------------------------------------------------------- version 1

function decodeV1(buf: Uint8Array): DecodeResult<ProxyHeader> {
  const preLen = Math.min(buf.length, V1_PREFIX.length);
  for (let i = 0; i < preLen; i++) {
    if (buf[i] !== V1_PREFIX[i]) return fail('magic', 'not a PROXY v1 line', i);
  }
  // 2.1: the receiver waits for CRLF, within the first 107 characters; a lone CR or LF never ends the line.
  const scan = Math.min(buf.length, PROXY_V1_MAX_LEN);
  let end = -1;
  for (let i = V1_PREFIX.length; i < scan; i++) {
    const c = buf[i]!;
    if (c === 0x0d) {
      // The LF would be octet 108 (too long), or has not arrived yet.
      if (i + 1 >= PROXY_V1_MAX_LEN || i + 1 >= buf.length) break;
      if (buf[i + 1] !== 0x0a) return fail('value', 'PROXY v1 line: CR not followed by LF', i);
      end = i;
      break;
    }
    if (c === 0x0a) return fail('value', 'PROXY v1 line: LF without CR', i);
    if (c < 0x20 || c > 0x7e) return fail('value', `PROXY v1 line: octet 0x${c.toString(16).padStart(2, '0')} is not printable US-ASCII`, i);
  }
  if (end < 0) {
    if (buf.length >= PROXY_V1_MAX_LEN) return fail('length', `PROXY v1 line without CRLF in its first ${PROXY_V1_MAX_LEN} octets`, PROXY_V1_MAX_LEN);
    return fail('truncated', 'PROXY v1 line without CRLF yet');
  }
  const consumed = end + 2;
  let line = '';
  for (let i = 0; i < end; i++) line += String.fromCharCode(buf[i]!);
  const fields = line.split(' ');
  const proto = fields[1];
  // 2.1: for UNKNOWN "the receiver must ignore anything presented before the CRLF".
  if (proto === 'UNKNOWN') return ok({ version: 1, command: 'proxy', addresses: null }, consumed);
  if (proto !== 'TCP4' && proto !== 'TCP6') return fail('value', `PROXY v1 protocol ${JSON.stringify(proto ?? '')}`, 6);
  // 2.1: "exactly one space" between the six fields.
  if (fields.length !== 6) return fail('value', `PROXY v1 ${proto} line has ${fields.length} space-separated fields, not 6`, 6);
  const [, , src, dst, sport, dport] = fields as [string, string, string, string, string, string];
  const parse = proto === 'TCP4' ? parseIpv4Text : parseIpv6Text;
  const s = parse(src);
  const d = parse(dst);
  if (s === undefined || d === undefined) return fail('value', `PROXY v1 ${proto} line: ${s === undefined ? 'source' : 'destination'} address is not ${proto === 'TCP4' ? 'IPv4' : 'IPv6'}`, 6);
  const sp = parsePort(sport);
  const dp = parsePort(dport);
  if (sp === undefined || dp === undefined) return fail('value', `PROXY v1 ${proto} line: ${sp === undefined ? 'source' : 'destination'} port is not 0..65535 without leading zeros`, 6);
  return ok(
    { version: 1, command: 'proxy', addresses: { family: proto === 'TCP4' ? 'tcp4' : 'tcp6', source: { address: s, port: sp }, destination: { address: d, port: dp } } },
    consumed,
  );
}

/** 2.1: decimal 0..65535, "Heading zeroes are not permitted". */
function parsePort(s: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffff ? n : undefined;
}

/** 2.1: "exactly 4 integers in the range [0..255] ... Heading zeroes are not permitted"; returns the same text. */
function parseIpv4Text(s: string): string | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  for (const p of parts) if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
  return s;
}

/**
 * 2.1: groups of up to 4 hex digits, one "::" at most, 128 bits exactly. A
 * trailing dotted IPv4 (`::ffff:192.0.2.1`) is accepted, as inet_ntop, which
 * senders use, writes IPv4-mapped addresses that way. Returns the RFC 5952 form.
 */
function parseIpv6Text(s: string): string | undefined {
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string, v4Last: boolean): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const parts = h.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (v4Last && i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4Text(p);
        if (v4 === undefined) return undefined;
        const o = v4.split('.').map(Number) as [number, number, number, number];
        out.push((o[0] << 8) | o[1], (o[2] << 8) | o[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1]!, true) : [];
  if (!head || !tail) return undefined;
  const n = head.length + tail.length;
  // With "::" at least one group is elided; without it there are exactly eight.
  if (halves.length === 2 ? n > 7 : n !== 8) return undefined;
  const all = [...head, ...new Array<number>(8 - n).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return formatIpv6(bytes);
}

function formatIpv4Octets(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * RFC 5952 text of 16 octets: lower case, no leading zeros, the longest run
 * (the first of equals) of two or more zero groups as "::"; IPv4-mapped
 * addresses as `::ffff:a.b.c.d` (RFC 5952 section 5).
 */
export function formatIpv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${formatIpv4Octets(b, 12)}`;
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hexes = g.map((x) => x.toString(16));
  if (bestAt < 0) return hexes.join(':');
  return `${hexes.slice(0, bestAt).join(':')}::${hexes.slice(bestAt + bestLen).join(':')}`;
}
