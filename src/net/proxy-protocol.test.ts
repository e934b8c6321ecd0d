/**
 * PROXY protocol decoder against headers built by hand from the spec
 * ("The PROXY protocol, Versions 1 & 2", sections 2.1 and 2.2): every
 * family and command, v1 lines, every split point, truncation, lies and
 * garbage. The decoder must never throw.
 */
import { describe, it, expect } from 'vitest';
import { ByteWriter, type DecodeResult } from '../util/decode.js';
import { PROXY_V1_MAX_LEN, PROXY_V2_MAX_LENGTH, PROXY_V2_SIGNATURE, decodeProxyHeader, formatIpv6, type ProxyHeader } from './proxy-protocol.js';

/** A v2 header as section 2.2 draws it: signature, ver|cmd, fam|proto, length, then the block. */
function v2(verCmd: number, famProto: number, block: Uint8Array | readonly number[] = [], length = block.length): Uint8Array {
  return new ByteWriter().bytes(PROXY_V2_SIGNATURE).u8(verCmd).u8(famProto).u16(length).bytes(block).finish();
}

/** TCP/IPv4 address block (section 2.2, len = 12): src addr, dst addr, src port, dst port. */
function inet(src: readonly number[], dst: readonly number[], sport: number, dport: number): Uint8Array {
  return new ByteWriter().bytes(src).bytes(dst).u16(sport).u16(dport).finish();
}

function inet6(src: readonly number[], dst: readonly number[], sport: number, dport: number): Uint8Array {
  return new ByteWriter().bytes(src).bytes(dst).u16(sport).u16(dport).finish();
}

const ascii = (s: string) => new ByteWriter().ascii(s).finish();
const concat = (...parts: Uint8Array[]) => {
  const w = new ByteWriter();
  for (const p of parts) w.bytes(p);
  return w.finish();
};

/** 2001:db8::1 and 2001:db8::2. */
const V6_SRC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
const V6_DST = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02];

const TCP4_V2 = v2(0x21, 0x11, inet([198, 18, 77, 9], [198, 18, 0, 1], 40000, 443));
const TCP6_V2 = v2(0x21, 0x21, inet6(V6_SRC, V6_DST, 40000, 443));
const LOCAL_V2 = v2(0x20, 0x00);
const TCP4_V1 = ascii('PROXY TCP4 198.18.77.9 198.18.0.1 40000 443\r\n');
const TCP6_V1 = ascii('PROXY TCP6 2001:db8::1 2001:db8::2 40000 443\r\n');
const UNKNOWN_V1 = ascii('PROXY UNKNOWN\r\n');

function okOf(r: DecodeResult<ProxyHeader>): { value: ProxyHeader; consumed: number } {
  if (!r.ok) throw new Error(`expected a header, got ${r.kind}: ${r.message}`);
  return { value: r.value, consumed: r.consumed };
}

const tcp4Header: ProxyHeader = {
  version: 2,
  command: 'proxy',
  addresses: { family: 'tcp4', source: { address: '198.18.77.9', port: 40000 }, destination: { address: '198.18.0.1', port: 443 } },
};

describe('PROXY v2 (section 2.2)', () => {
  it('PROXY over TCP/IPv4: source and destination, 16 + 12 octets consumed, what follows left alone', () => {
    expect(TCP4_V2.length).toBe(28);
    // The octets exactly as the spec lays them out.
    expect(Buffer.from(TCP4_V2).toString('hex')).toBe('0d0a0d0a000d0a515549540a' + '21' + '11' + '000c' + 'c6124d09' + 'c6120001' + '9c40' + '01bb');
    const r = okOf(decodeProxyHeader(concat(TCP4_V2, Uint8Array.of(0x16, 0x03, 0x01))));
    expect(r).toEqual({ value: tcp4Header, consumed: 28 });
  });

  it('PROXY over TCP/IPv6: 16 + 36 octets, RFC 5952 text', () => {
    const r = okOf(decodeProxyHeader(TCP6_V2));
    expect(r.consumed).toBe(52);
    expect(r.value.addresses).toEqual({ family: 'tcp6', source: { address: '2001:db8::1', port: 40000 }, destination: { address: '2001:db8::2', port: 443 } });
  });

  it('an IPv4-mapped IPv6 source is written ::ffff:a.b.c.d', () => {
    const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 77, 9];
    expect(okOf(decodeProxyHeader(v2(0x21, 0x21, inet6(mapped, V6_DST, 1, 2)))).value.addresses?.source).toEqual({ address: '::ffff:198.18.77.9', port: 1 });
  });

  it('LOCAL (health check): no address, the family is ignored and Length is still skipped', () => {
    expect(okOf(decodeProxyHeader(LOCAL_V2))).toEqual({ value: { version: 2, command: 'local', addresses: null }, consumed: 16 });
    // "Receivers MUST always consider this field to skip the appropriate number of bytes".
    const withBlock = v2(0x20, 0x11, inet([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
    expect(okOf(decodeProxyHeader(withBlock))).toEqual({ value: { version: 2, command: 'local', addresses: null }, consumed: 28 });
  });

  it('PROXY with UNSPEC family or transport, UDP, or UNIX: no address used (UNSPEC fallback)', () => {
    const none = (b: Uint8Array) => okOf(decodeProxyHeader(b));
    expect(none(v2(0x21, 0x00))).toEqual({ value: { version: 2, command: 'proxy', addresses: null }, consumed: 16 });
    expect(none(v2(0x21, 0x10, inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))).value.addresses).toBeNull();
    expect(none(v2(0x21, 0x12, inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))).value.addresses).toBeNull();
    expect(none(v2(0x21, 0x22, inet6(V6_SRC, V6_DST, 1, 2))).value.addresses).toBeNull();
    const unix = v2(0x21, 0x31, new Uint8Array(216));
    expect(none(unix)).toEqual({ value: { version: 2, command: 'proxy', addresses: null }, consumed: 232 });
  });

  it('TLVs after the address block are skipped (ALPN, AUTHORITY, UNIQUE_ID, NOOP)', () => {
    const tlvs = new ByteWriter()
      .u8(0x01).u16(8).ascii('sstp/1.0')
      .u8(0x02).u16(11).ascii('vpn.example')
      .u8(0x05).u16(4).bytes([1, 2, 3, 4])
      .u8(0x04).u16(0)
      .finish();
    const hdr = v2(0x21, 0x11, concat(inet([198, 18, 77, 9], [198, 18, 0, 1], 40000, 443), tlvs));
    expect(okOf(decodeProxyHeader(concat(hdr, Uint8Array.of(0x16))))).toEqual({ value: tcp4Header, consumed: 16 + 12 + tlvs.length });
  });

  it('every proper prefix is truncated (split at every octet), the whole decodes', () => {
    for (const whole of [TCP4_V2, TCP6_V2, LOCAL_V2]) {
      for (let n = 0; n < whole.length; n++) expect(decodeProxyHeader(whole.subarray(0, n))).toMatchObject({ ok: false, kind: 'truncated' });
      expect(decodeProxyHeader(whole).ok).toBe(true);
    }
  });

  it('a wrong signature octet fails at that octet, as soon as it arrives', () => {
    for (let i = 1; i < 12; i++) {
      const bad = TCP4_V2.slice();
      bad[i]! ^= 0x40;
      expect(decodeProxyHeader(bad)).toMatchObject({ ok: false, kind: 'magic', offset: i });
      expect(decodeProxyHeader(bad.subarray(0, i + 1))).toMatchObject({ ok: false, kind: 'magic', offset: i });
    }
  });

  it('version other than 2, unassigned command, family or transport: refused', () => {
    for (const vc of [0x11, 0x31, 0x01, 0xf1]) expect(decodeProxyHeader(v2(vc, 0x11, inet([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)))).toMatchObject({ ok: false, kind: 'version', offset: 12 });
    for (const vc of [0x22, 0x2f]) expect(decodeProxyHeader(v2(vc, 0x11, inet([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)))).toMatchObject({ ok: false, kind: 'value', offset: 12 });
    for (const fp of [0x41, 0xf1, 0x13, 0x1f]) expect(decodeProxyHeader(v2(0x21, fp, inet([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)))).toMatchObject({ ok: false, kind: 'value', offset: 13 });
    // Refused from the 13th (14th) octet on, without waiting for the rest.
    expect(decodeProxyHeader(v2(0x11, 0x11).subarray(0, 13))).toMatchObject({ ok: false, kind: 'version' });
    expect(decodeProxyHeader(v2(0x21, 0x51).subarray(0, 14))).toMatchObject({ ok: false, kind: 'value' });
  });

  it('a length that lies: shorter than the family address block', () => {
    expect(decodeProxyHeader(v2(0x21, 0x11, [198, 18, 77, 9, 198, 18, 0, 1]))).toMatchObject({ ok: false, kind: 'length', offset: 14 });
    expect(decodeProxyHeader(v2(0x21, 0x21, inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)))).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeProxyHeader(v2(0x21, 0x31, new Uint8Array(108)))).toMatchObject({ ok: false, kind: 'length' });
    // Longer than what arrived: wait (the stream may bring it), bounded by the caller's size cap.
    expect(decodeProxyHeader(v2(0x21, 0x11, inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), 40))).toMatchObject({ ok: false, kind: 'truncated' });
  });

  it('oversize: a Length above our limit fails on the 16th octet; the limit is an option', () => {
    const head = v2(0x21, 0x11, [], PROXY_V2_MAX_LENGTH + 1);
    expect(head.length).toBe(16);
    expect(decodeProxyHeader(head)).toMatchObject({ ok: false, kind: 'length', offset: 14 });
    expect(decodeProxyHeader(v2(0x21, 0x11, [], 0xffff))).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeProxyHeader(v2(0x21, 0x11, [], PROXY_V2_MAX_LENGTH))).toMatchObject({ ok: false, kind: 'truncated' });
    expect(decodeProxyHeader(TCP4_V2, { maxV2Length: 11 })).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeProxyHeader(TCP4_V2, { maxV2Length: 12 }).ok).toBe(true);
  });
});

describe('PROXY v1 (section 2.1)', () => {
  it('TCP4 and TCP6 lines; the octets after CRLF are not consumed', () => {
    expect(okOf(decodeProxyHeader(concat(TCP4_V1, ascii('GET'))))).toEqual({ value: { ...tcp4Header, version: 1 }, consumed: TCP4_V1.length });
    expect(okOf(decodeProxyHeader(TCP6_V1))).toEqual({
      value: { version: 1, command: 'proxy', addresses: { family: 'tcp6', source: { address: '2001:db8::1', port: 40000 }, destination: { address: '2001:db8::2', port: 443 } } },
      consumed: TCP6_V1.length,
    });
  });

  it('IPv6 in any form the spec allows comes out in RFC 5952 form (full, upper case, IPv4-mapped dotted)', () => {
    const src = (line: string) => okOf(decodeProxyHeader(ascii(line))).value.addresses?.source.address;
    expect(src('PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::1 1 2\r\n')).toBe('2001:db8::1');
    expect(src('PROXY TCP6 ::ffff:198.18.77.9 ::1 1 2\r\n')).toBe('::ffff:198.18.77.9');
    expect(src('PROXY TCP6 :: ::1 0 65535\r\n')).toBe('::');
  });

  it('UNKNOWN: short form, and with anything before the CRLF ignored', () => {
    expect(okOf(decodeProxyHeader(UNKNOWN_V1))).toEqual({ value: { version: 1, command: 'proxy', addresses: null }, consumed: 15 });
    expect(okOf(decodeProxyHeader(ascii('PROXY UNKNOWN whatever 1 2 3\r\n'))).value.addresses).toBeNull();
  });

  it('the 107-octet worst case is accepted; no CRLF within 107 octets is refused', () => {
    const ff = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const worst = `PROXY UNKNOWN ${ff} ${ff} 65535 65535\r\n`;
    expect(worst.length).toBe(PROXY_V1_MAX_LEN);
    expect(okOf(decodeProxyHeader(ascii(worst))).consumed).toBe(107);
    const longer = `PROXY UNKNOWN ${ff} ${ff} 65535 655350\r\n`;
    expect(decodeProxyHeader(ascii(longer))).toMatchObject({ ok: false, kind: 'length' });
    // The CR at octet 107 already says the line is too long.
    expect(decodeProxyHeader(ascii(longer).subarray(0, 107))).toMatchObject({ ok: false, kind: 'length' });
    expect(decodeProxyHeader(ascii('PROXY TCP4 ' + '1'.repeat(200)))).toMatchObject({ ok: false, kind: 'length' });
  });

  it('every proper prefix is truncated (split at every octet)', () => {
    for (const whole of [TCP4_V1, TCP6_V1, UNKNOWN_V1]) {
      for (let n = 0; n < whole.length; n++) expect(decodeProxyHeader(whole.subarray(0, n))).toMatchObject({ ok: false, kind: 'truncated' });
    }
  });

  it.each([
    ['PROXY TCP4 198.18.077.9 198.18.0.1 40000 443\r\n', 'leading zero in an address'],
    ['PROXY TCP4 198.18.77.9 198.18.0.1 040000 443\r\n', 'leading zero in a port'],
    ['PROXY TCP4 198.18.77.9 198.18.0.1 65536 443\r\n', 'port above 65535'],
    ['PROXY TCP4 198.18.77.256 198.18.0.1 1 443\r\n', 'octet above 255'],
    ['PROXY TCP4 198.18.77 198.18.0.1 1 443\r\n', 'three octets'],
    ['PROXY TCP4 198.18.77.9  198.18.0.1 1 443\r\n', 'two spaces'],
    ['PROXY TCP4 198.18.77.9 198.18.0.1 1\r\n', 'a field missing'],
    ['PROXY TCP4 198.18.77.9 198.18.0.1 1 443 x\r\n', 'a field too many'],
    ['PROXY TCP4 198.18.77.9 198.18.0.1 1 443 \r\n', 'a trailing space'],
    ['PROXY TCP4 2001:db8::1 2001:db8::2 1 443\r\n', 'IPv6 addresses in a TCP4 line'],
    ['PROXY TCP6 198.18.77.9 198.18.0.1 1 443\r\n', 'IPv4 addresses in a TCP6 line'],
    ['PROXY TCP6 fe80::1%eth0 ::1 1 443\r\n', 'an IPv6 zone'],
    ['PROXY TCP6 1::2::3 ::1 1 443\r\n', 'two double colons'],
    ['PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 443\r\n', 'nine groups'],
    ['PROXY TCP6 1:2:3:4:5:6:7::8 ::1 1 443\r\n', 'eight groups and a double colon'],
    ['PROXY TCP6 12345::1 ::1 1 443\r\n', 'a five-digit group'],
    ['PROXY TCP6 1.2.3.4::1 ::1 1 443\r\n', 'dotted IPv4 before the double colon'],
    ['PROXY tcp4 198.18.77.9 198.18.0.1 1 443\r\n', 'lower-case protocol'],
    ['PROXY UDP4 198.18.77.9 198.18.0.1 1 443\r\n', 'unknown protocol'],
    ['PROXY UNKNOWNX\r\n', 'UNKNOWN with a suffix'],
    ['PROXY \r\n', 'no protocol'],
  ])('%j is refused (%s)', (line) => {
    expect(decodeProxyHeader(ascii(line))).toMatchObject({ ok: false, kind: 'value' });
  });

  it('a lone LF or a CR not followed by LF is refused where it stands; a non-ASCII octet too', () => {
    expect(decodeProxyHeader(ascii('PROXY UNKNOWN\n'))).toMatchObject({ ok: false, kind: 'value', offset: 13 });
    expect(decodeProxyHeader(ascii('PROXY UNKNOWN\rX'))).toMatchObject({ ok: false, kind: 'value', offset: 13 });
    expect(decodeProxyHeader(concat(ascii('PROXY TCP4 198.18.77.9'), Uint8Array.of(0xc3, 0xa9)))).toMatchObject({ ok: false, kind: 'value', offset: 22 });
    expect(decodeProxyHeader(concat(ascii('PROXY UNKNOWN'), Uint8Array.of(0)))).toMatchObject({ ok: false, kind: 'value' });
  });
});

describe('not a PROXY header', () => {
  it('TLS, HTTP and near misses fail on the first octet that cannot match', () => {
    expect(decodeProxyHeader(Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00))).toMatchObject({ ok: false, kind: 'magic', offset: 0 });
    expect(decodeProxyHeader(ascii('POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n'))).toMatchObject({ ok: false, kind: 'magic', offset: 1 });
    expect(decodeProxyHeader(ascii('PROXYTCP4'))).toMatchObject({ ok: false, kind: 'magic', offset: 5 });
    expect(decodeProxyHeader(ascii('proxy TCP4'))).toMatchObject({ ok: false, kind: 'magic', offset: 0 });
    expect(decodeProxyHeader(new Uint8Array(0))).toMatchObject({ ok: false, kind: 'truncated' });
  });

  it('never throws: random octets, and every single-octet corruption and truncation of valid headers', () => {
    let seed = 0x2545f491;
    const rnd = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const results = new Set<string>();
    const check = (b: Uint8Array) => {
      const r = decodeProxyHeader(b);
      results.add(r.ok ? 'ok' : r.kind);
      if (r.ok) expect(r.consumed).toBeLessThanOrEqual(b.length);
    };
    for (let i = 0; i < 2000; i++) {
      const b = new Uint8Array(Math.floor(rnd() * 120));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
      // Half of them start like a header, to get past the first octet.
      if (i % 2 === 0 && b.length > 0) b.set(i % 4 === 0 ? PROXY_V2_SIGNATURE.slice(0, Math.min(b.length, 12)) : ascii('PROXY ').subarray(0, Math.min(b.length, 6)));
      check(b);
    }
    for (const whole of [TCP4_V2, TCP6_V2, LOCAL_V2, TCP4_V1, TCP6_V1, UNKNOWN_V1]) {
      for (let i = 0; i < whole.length; i++) {
        for (const v of [0x00, 0x0a, 0x0d, 0x20, 0x3a, 0xff, whole[i]! ^ 1]) {
          const b = whole.slice();
          b[i] = v;
          check(b);
        }
      }
    }
    expect(results).toEqual(new Set(['ok', 'truncated', 'magic', 'version', 'value', 'length']));
  });
});

describe('formatIpv6 (RFC 5952 section 4)', () => {
  const bytes = (groups: number[]) => {
    const w = new ByteWriter();
    for (const g of groups) w.u16(g);
    return w.finish();
  };
  it.each([
    [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], '2001:db8::1:0:0:1'],
    [[0x2001, 0, 0, 1, 0, 0, 0, 1], '2001:0:0:1::1'],
    [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], '2001:db8:0:1:1:1:1:1'],
    [[0, 0, 0, 0, 0, 0, 0, 0], '::'],
    [[0, 0, 0, 0, 0, 0, 0, 1], '::1'],
    [[1, 0, 0, 0, 0, 0, 0, 0], '1::'],
    [[0xfe80, 0, 0, 0, 0x2aa, 0xff, 0xfe9a, 0x4ca2], 'fe80::2aa:ff:fe9a:4ca2'],
    [[0, 0, 0, 0, 0, 0xffff, 0xc612, 0x4d09], '::ffff:198.18.77.9'],
  ])('%j -> %s', (groups, text) => {
    expect(formatIpv6(bytes(groups))).toBe(text);
  });
});
