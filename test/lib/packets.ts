/** Packet builders for tests: IPv4 (RFC 791), ICMP echo (RFC 792), UDP (RFC 768). */

export function inetChecksum(b: Uint8Array, start = 0, end = b.length): number {
  let s = 0;
  for (let i = start; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if ((end - start) & 1) s += b[end - 1]! << 8;
  while (s >> 16) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export function ipv4(a: string): number {
  const p = a.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function ipv4String(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function ipv4Packet(src: string, dst: string, proto: number, payload: Uint8Array, ttl = 64, id = 1): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, p.length);
  dv.setUint16(4, id);
  p[8] = ttl;
  p[9] = proto;
  dv.setUint32(12, ipv4(src));
  dv.setUint32(16, ipv4(dst));
  dv.setUint16(10, inetChecksum(p, 0, 20));
  p.set(payload, 20);
  return p;
}

export function icmpEcho(type: 8 | 0, id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  const dv = new DataView(m.buffer);
  m[0] = type;
  dv.setUint16(4, id);
  dv.setUint16(6, seq);
  m.set(data, 8);
  dv.setUint16(2, inetChecksum(m));
  return m;
}

export function udp(srcPort: number, dstPort: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  const dv = new DataView(m.buffer);
  dv.setUint16(0, srcPort);
  dv.setUint16(2, dstPort);
  dv.setUint16(4, m.length);
  m.set(data, 8);
  return m; // checksum 0 = none (IPv4)
}
