// IPv4/IPv6 header helpers for classification (RFC 791, RFC 8200) and the
// Internet checksum (RFC 1071, incremental update RFC 1624).

/** Big-endian u16 at p. */
@inline export function be16(p: usize): u32 {
  return (<u32>load<u8>(p) << 8) | <u32>load<u8>(p + 1);
}
/** Big-endian u32 at p. */
@inline export function be32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}
@inline export function putBe16(p: usize, v: u32): void {
  store<u8>(p, <u8>(v >> 8));
  store<u8>(p + 1, <u8>v);
}
@inline export function putBe32(p: usize, v: u32): void {
  store<u32>(p, bswap<u32>(v));
}

/** Ones-complement sum of len bytes at p, folded to 16 bits (not inverted). */
export function csumPartial(p: usize, len: u32, sum: u32): u32 {
  let s: u64 = <u64>sum;
  let i: u32 = 0;
  // 8 bytes at a time; the sum of big-endian 16-bit words equals the
  // byte-swapped sum of little-endian words, so add LE words and swap once.
  let le: u64 = 0;
  while (i + 8 <= len) {
    const w = load<u64>(p + i);
    le += (w & 0xffff) + ((w >> 16) & 0xffff) + ((w >> 32) & 0xffff) + (w >> 48);
    i += 8;
  }
  while (i + 2 <= len) {
    le += <u64>load<u16>(p + i);
    i += 2;
  }
  while (le >> 16) le = (le & 0xffff) + (le >> 16);
  s += <u64>(((le & 0xff) << 8) | (le >> 8));
  if (i < len) s += <u64>load<u8>(p + i) << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return <u32>s;
}

/** Internet checksum of len bytes at p, ready to store. */
@inline export function checksum(p: usize, len: u32): u32 {
  return ~csumPartial(p, len, 0) & 0xffff;
}

/** Is there a well-formed IPv4 header at p within len bytes? Returns header length or 0. */
export function ipv4HeaderLen(p: usize, len: u32): u32 {
  if (len < 20) return 0;
  const vihl = <u32>load<u8>(p);
  if ((vihl >> 4) != 4) return 0;
  const ihl = (vihl & 15) << 2;
  if (ihl < 20 || ihl > len) return 0;
  const total = be16(p + 2);
  if (total < ihl || total > len) return 0;
  return ihl;
}
