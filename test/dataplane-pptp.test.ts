/**
 * The PPTP data path in WASM: enhanced GRE (RFC 2637 4.1) framing,
 * sequencing and acknowledgments, MPPE (RFC 3078) in stateful and stateless
 * modes at every strength, against the RFC 3079 key vectors, with loss,
 * reordering and resynchronisation, between two data planes back to back
 * (a server and a client, as the real ones would be on either side of a
 * network).
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as abi from '../assembly/abi.js';
import { DataPlane } from '../src/dataplane/engine.js';
import { rc4, mppeChangeKey } from '../src/crypto/wasm-crypto.js';
import { fromHex, hex } from '../src/util/decode.js';
import { inetChecksum, ipv4Packet, udp } from './lib/packets.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const mppeVectors = JSON.parse(readFileSync(path.resolve(here, '../../shared/vectors/mppe.json'), 'utf8')) as {
  vectors: Record<string, unknown>[];
};
const directional = mppeVectors.vectors.find((v) => v.id === 'derived-directional-keys') as {
  master_send_key_client: string;
  master_receive_key_client: string;
};
const v128 = mppeVectors.vectors.find((v) => v.id === 'rfc3079-3.5.3') as { send_start_key: string; send_session_key: string };

const SERVER = '198.18.1.1';
const CLIENT = '198.18.1.2';
const INNER = '198.18.128.10';
const SERVER_CALL = 0x1234;
const CLIENT_CALL = 0x4321;
// Server send = client receive = Magic3 key; client send = server receive = Magic2 key (RFC 3079 3.4).
const serverSend = fromHex(directional.master_receive_key_client);
const clientSend = fromHex(directional.master_send_key_client);

const slotAddr = (a: string) => new DataView(new Uint8Array(a.split('.').map(Number)).buffer).getUint32(0, true);

type Mode = { bits: 40 | 56 | 128; stateless: boolean } | null;

function side(role: 'server' | 'client', mppe: Mode) {
  const dp = new DataPlane({ maxSessions: 8 });
  const st = dp.sessions;
  const idx = st.allocate()!;
  const server = role === 'server';
  st.attach(idx, {
    tunnel: abi.Tunnel.PPTP,
    client: !server,
    gre: { peer: server ? CLIENT : SERVER, myCallId: server ? SERVER_CALL : CLIENT_CALL, peerCallId: server ? CLIENT_CALL : SERVER_CALL },
  });
  if (mppe) st.mppe(idx, { ...mppe, sendStartKey: server ? serverSend : clientSend, recvStartKey: server ? clientSend : serverSend });
  st.activate(idx, { ipv4: INNER, mtu: 1400 });
  if (!server) dp.wasm.setDefaultSession(idx);
  const ctrl: { kind: number; data: Uint8Array }[] = [];
  dp.onControl((p, m) => ctrl.push({ kind: m.aux, data: p.slice() }));
  return { dp, st, idx, ctrl, addr: server ? SERVER : CLIENT };
}

/** What the raw socket would deliver: an IPv4 header (protocol 47) in front of the GRE packet. */
function overIp(src: string, dst: string, gre: Uint8Array): Uint8Array {
  return ipv4Packet(src, dst, 47, gre);
}

/** Drain a side's GRE_TX (what its I/O thread would send). */
function sent(s: ReturnType<typeof side>): { gre: Uint8Array; to: number }[] {
  const out: { gre: Uint8Array; to: number }[] = [];
  s.dp.ring(abi.RingId.GRE_TX).drain((p, m) => out.push({ gre: p.slice(), to: m.addr }));
  return out;
}

function deliver(to: ReturnType<typeof side>, from: ReturnType<typeof side>, pkts: { gre: Uint8Array }[]): void {
  for (const p of pkts) to.dp.ring(abi.RingId.GRE_RX).push(overIp(from.addr, to.addr, p.gre), { addr: slotAddr(from.addr) });
  to.dp.pump();
}

function tunOut(s: ReturnType<typeof side>): Uint8Array[] {
  const out: Uint8Array[] = [];
  s.dp.ring(abi.RingId.TUN_TX).drain((p) => out.push(p.slice()));
  return out;
}

interface Gre {
  seq?: number;
  ack?: number;
  call: number;
  payload: Uint8Array;
}
function parseGre(g: Uint8Array): Gre {
  const dv = new DataView(g.buffer, g.byteOffset);
  expect(g[0]! & ~0x10).toBe(0x20); // K, maybe S
  expect(g[1]! & 0x7f).toBe(1);
  expect(dv.getUint16(2)).toBe(0x880b);
  const len = dv.getUint16(4);
  let o = 8;
  const r: Gre = { call: dv.getUint16(6), payload: new Uint8Array() };
  if (g[0]! & 0x10) (r.seq = dv.getUint32(o)), (o += 4);
  if (g[1]! & 0x80) (r.ack = dv.getUint32(o)), (o += 4);
  expect(g.length).toBe(o + len);
  r.payload = g.subarray(o);
  return r;
}

const down = (i: number, n = 100) =>
  ipv4Packet('198.18.0.1', INNER, 17, udp(53, 1000 + (i & 0xfff), new Uint8Array(n).map((_, j) => (i + j) & 255)));
const up = (i: number, n = 100) =>
  ipv4Packet(INNER, '198.18.0.1', 17, udp(1000 + (i & 0xfff), 53, new Uint8Array(n).map((_, j) => (i * 3 + j) & 255)));

describe('PPTP GRE framing', () => {
  it('frames a downlink packet as GRE v1 + PPP ff03 + MPPE, encrypted with the RFC 3079 initial key', () => {
    const s = side('server', { bits: 128, stateless: false });
    const ip = down(1);
    s.dp.ring(abi.RingId.TUN_RX).push(ip);
    s.dp.pump();
    const out = sent(s);
    expect(out).toHaveLength(1);
    expect(out[0]!.to).toBe(slotAddr(CLIENT));
    const g = parseGre(out[0]!.gre);
    expect(g).toMatchObject({ call: CLIENT_CALL, seq: 0 });
    expect(g.ack).toBeUndefined();
    expect(Array.from(g.payload.subarray(0, 6))).toEqual([0xff, 0x03, 0x00, 0xfd, 0x10, 0x00]); // D set, count 0, not flushed
    // The session key of the first stateful packet is the initial key (RFC 3079 3.5.3 for this start key).
    expect(hex(serverSend)).toBe(v128.send_start_key);
    const expected = rc4(fromHex(v128.send_session_key), new Uint8Array([0x00, 0x21, ...ip]));
    expect(hex(g.payload.subarray(6))).toBe(hex(expected));
  });

  it('stateless: every packet is flushed and uses the next key of the RFC 3078 7.3 chain', () => {
    const s = side('server', { bits: 128, stateless: true });
    for (let i = 0; i < 3; i++) s.dp.ring(abi.RingId.TUN_RX).push(down(i));
    s.dp.pump();
    const out = sent(s).map((o) => parseGre(o.gre));
    let key = fromHex(v128.send_session_key);
    out.forEach((g, i) => {
      expect(g.seq).toBe(i);
      expect(Array.from(g.payload.subarray(4, 6))).toEqual([0x90, i]);
      key = mppeChangeKey(serverSend, key, 128);
      expect(hex(g.payload.subarray(6))).toBe(hex(rc4(key, new Uint8Array([0, 0x21, ...down(i)]))));
    });
  });

  it('without MPPE: plain PPP IP (ff 03 00 21), and cleartext is refused on an MPPE session', () => {
    const s = side('server', null);
    s.dp.ring(abi.RingId.TUN_RX).push(down(5));
    s.dp.pump();
    const g = parseGre(sent(s)[0]!.gre);
    expect(Array.from(g.payload)).toEqual([0xff, 0x03, 0x00, 0x21, ...down(5)]);
    // The same frame arriving at an MPPE session is dropped.
    const m = side('server', { bits: 128, stateless: false });
    const frame = new Uint8Array([0x30, 0x01, 0x88, 0x0b, 0, 0, SERVER_CALL >> 8, SERVER_CALL & 255, 0, 0, 0, 0, 0xff, 0x03, 0x00, 0x21, ...up(1)]);
    new DataView(frame.buffer).setUint16(4, frame.length - 12);
    m.dp.ring(abi.RingId.GRE_RX).push(overIp(CLIENT, SERVER, frame), { addr: slotAddr(CLIENT) });
    m.dp.pump();
    expect(tunOut(m)).toHaveLength(0);
    expect(m.dp.drops().mppe_required).toBe(1n);
  });
});

describe('PPTP control frames under a burst', () => {
  it('more control frames than the CTRL ring holds wait in GRE_RX instead of being dropped', () => {
    const dp = new DataPlane({ maxSessions: 8, ringSlots: { [abi.RingId.CTRL]: 32, [abi.RingId.GRE_RX]: 256 } });
    const idx = dp.sessions.allocate()!;
    dp.sessions.attach(idx, { tunnel: abi.Tunnel.PPTP, client: false, gre: { peer: CLIENT, myCallId: SERVER_CALL, peerCallId: CLIENT_CALL } });
    const seen: number[] = [];
    dp.onControl((p) => seen.push(p[p.length - 1]!));
    for (let i = 0; i < 100; i++) {
      // GRE v1 with sequence number i, then an LCP Echo-Request (a control frame, diverted to TypeScript) tagged i.
      const frame = new Uint8Array([0x30, 0x01, 0x88, 0x0b, 0, 0, SERVER_CALL >> 8, SERVER_CALL & 255, 0, 0, 0, i, 0xff, 0x03, 0xc0, 0x21, 9, i, 0, 9, 0, 0, 0, 0, i]);
      new DataView(frame.buffer).setUint16(4, frame.length - 12);
      expect(dp.ring(abi.RingId.GRE_RX).push(overIp(CLIENT, SERVER, frame), { addr: slotAddr(CLIENT) })).toBe(true);
    }
    for (let i = 0; i < 50 && dp.ring(abi.RingId.GRE_RX).occupancy > 0; i++) dp.pump();
    expect(dp.drops().ctrl_ring_full).toBe(0n);
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe('PPTP back to back (server <-> client data planes)', () => {
  for (const bits of [40, 56, 128] as const) {
    for (const stateless of [false, true]) {
      it(`${bits}-bit ${stateless ? 'stateless' : 'stateful'}: 600 packets each way decrypt exactly (crossing flag packets)`, () => {
        const srv = side('server', { bits, stateless });
        const cli = side('client', { bits, stateless });
        for (let round = 0; round < 6; round++) {
          const d = Array.from({ length: 100 }, (_, i) => down(round * 100 + i, (i * 13) % 1300));
          const u = Array.from({ length: 100 }, (_, i) => up(round * 100 + i, (i * 7) % 1300));
          for (const p of d) srv.dp.ring(abi.RingId.TUN_RX).push(p);
          srv.dp.pump();
          for (const p of u) cli.dp.ring(abi.RingId.TUN_RX).push(p);
          cli.dp.pump();
          deliver(cli, srv, sent(srv));
          deliver(srv, cli, sent(cli));
          expect(tunOut(cli).map(hex)).toEqual(d.map(hex));
          expect(tunOut(srv).map(hex)).toEqual(u.map(hex));
        }
        expect(srv.dp.stat(abi.Stat.PPTP_UP_PKTS)).toBe(600n);
        expect(srv.dp.stat(abi.Stat.PPTP_DOWN_PKTS)).toBe(600n);
        expect(srv.ctrl).toHaveLength(0);
      });
    }
  }

  it('stateful: a lost packet asks for a Reset-Request; after the flush both sides are in sync again', () => {
    const srv = side('server', { bits: 128, stateless: false });
    const cli = side('client', { bits: 128, stateless: false });
    const push = (n: number, from = 0) => {
      for (let i = 0; i < n; i++) srv.dp.ring(abi.RingId.TUN_RX).push(down(from + i));
      srv.dp.pump();
      return sent(srv);
    };
    deliver(cli, srv, push(10));
    expect(tunOut(cli)).toHaveLength(10);
    // Lose packets 10..12 (and across the flag packet at count 255 later).
    const batch = push(300, 10);
    deliver(cli, srv, batch.slice(3, 20));
    expect(tunOut(cli)).toHaveLength(0);
    expect(cli.ctrl.map((c) => c.kind)).toEqual([abi.CtrlKind.MPPE_RESET_NEEDED]);
    expect(cli.dp.drops().mppe_coherency).toBe(1n);
    expect(cli.dp.drops().mppe_discard).toBe(16n);
    // Packets keep being discarded until a flushed one: the flag packet at count 255 (every
    // 256th is flushed) resynchronises even before the Reset-Request is answered.
    deliver(cli, srv, batch.slice(20, 300));
    expect(tunOut(cli).map(hex)).toEqual(Array.from({ length: 55 }, (_, i) => hex(down(255 + i))));
    expect(cli.dp.drops().mppe_discard).toBe(16n + 225n);
    // The control plane relays the CCP Reset-Request: the server flushes its next packet.
    srv.st.mppeReset(srv.idx);
    const after = push(5, 1000);
    expect(parseGre(after[0]!.gre).payload[4]! & 0x80).toBe(0x80);
    deliver(cli, srv, after);
    expect(tunOut(cli).map(hex)).toEqual([1000, 1001, 1002, 1003, 1004].map((i) => hex(down(i))));
  });

  it('stateful: after a loss a Reset-Request flush mid-block resynchronises (no flag packet needed)', () => {
    const srv = side('server', { bits: 40, stateless: false });
    const cli = side('client', { bits: 40, stateless: false });
    for (let i = 0; i < 20; i++) srv.dp.ring(abi.RingId.TUN_RX).push(down(i));
    srv.dp.pump();
    const b = sent(srv);
    deliver(cli, srv, [...b.slice(0, 5), ...b.slice(6)]); // lose #5
    expect(tunOut(cli)).toHaveLength(5);
    srv.st.mppeReset(srv.idx);
    srv.dp.ring(abi.RingId.TUN_RX).push(down(99));
    srv.dp.pump();
    deliver(cli, srv, sent(srv));
    expect(tunOut(cli).map(hex)).toEqual([hex(down(99))]);
  });

  it('stateless: loss and reordering cost only the lost/late packets, no resync needed', () => {
    const srv = side('server', { bits: 128, stateless: true });
    const cli = side('client', { bits: 128, stateless: true });
    for (let i = 0; i < 50; i++) srv.dp.ring(abi.RingId.TUN_RX).push(down(i));
    srv.dp.pump();
    const b = sent(srv);
    // Drop every 10th; swap pairs 20/21 and 30/31.
    const order = b.map((_, i) => i).filter((i) => i % 10 !== 9);
    const sw = (a: number, c: number) => {
      const ia = order.indexOf(a);
      const ic = order.indexOf(c);
      [order[ia], order[ic]] = [order[ic]!, order[ia]!];
    };
    sw(20, 21);
    sw(30, 31);
    deliver(cli, srv, order.map((i) => b[i]!));
    const got = tunOut(cli).map(hex);
    // Late packets (21 after 20? no: 21 arrived first, so 20 is late) are dropped by GRE sequencing.
    const want = order.filter((i, k) => order.slice(0, k).every((j) => j < i)).map((i) => hex(down(i)));
    expect(got).toEqual(want);
    expect(cli.dp.drops().gre_sequence).toBe(2n);
    expect(cli.ctrl).toHaveLength(0);
  });
});

describe('PPTP GRE sequencing, acknowledgments and checks', () => {
  it('acknowledges received data with an ack-only packet when nothing else goes out, else piggybacks', () => {
    const srv = side('server', { bits: 128, stateless: false });
    const cli = side('client', { bits: 128, stateless: false });
    for (let i = 0; i < 3; i++) cli.dp.ring(abi.RingId.TUN_RX).push(up(i));
    cli.dp.pump();
    deliver(srv, cli, sent(cli));
    const acks = sent(srv).map((o) => parseGre(o.gre));
    expect(acks).toEqual([{ call: CLIENT_CALL, ack: 2, seq: undefined, payload: new Uint8Array() }]);
    // Data in and data out in one batch: the ack rides on the data packet.
    cli.dp.ring(abi.RingId.TUN_RX).push(up(3));
    cli.dp.pump();
    for (const p of sent(cli)) srv.dp.ring(abi.RingId.GRE_RX).push(overIp(CLIENT, SERVER, p.gre), { addr: slotAddr(CLIENT) });
    srv.dp.ring(abi.RingId.TUN_RX).push(down(1));
    srv.dp.pump();
    const out = sent(srv).map((o) => parseGre(o.gre));
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ seq: 0, ack: 3 });
  });

  it('drops duplicates, unknown calls, wrong peers and malformed headers by reason', () => {
    const srv = side('server', { bits: 128, stateless: true });
    const cli = side('client', { bits: 128, stateless: true });
    cli.dp.ring(abi.RingId.TUN_RX).push(up(1));
    cli.dp.pump();
    const [p] = sent(cli);
    deliver(srv, cli, [p!, p!]); // duplicate
    expect(tunOut(srv)).toHaveLength(1);
    expect(srv.dp.drops().gre_sequence).toBe(1n);
    const rx = srv.dp.ring(abi.RingId.GRE_RX);
    rx.push(overIp('198.18.1.99', SERVER, p!.gre), { addr: slotAddr('198.18.1.99') });
    const other = p!.gre.slice();
    other[7] = other[7]! ^ 0xff; // another call id
    rx.push(overIp(CLIENT, SERVER, other), { addr: slotAddr(CLIENT) });
    const bad: Uint8Array[] = [];
    const v0 = p!.gre.slice();
    v0[1] = 0; // version 0
    bad.push(v0);
    const proto = p!.gre.slice();
    proto[3] = 0x0c; // protocol type
    bad.push(proto);
    const nokey = p!.gre.slice();
    nokey[0] = nokey[0]! & ~0x20; // K clear
    bad.push(nokey);
    const lying = p!.gre.slice();
    lying[4] = 0xff; // payload length past the end
    bad.push(lying);
    bad.push(p!.gre.slice(0, 6)); // truncated header
    const routing = p!.gre.slice();
    routing[0] = routing[0]! | 0x40; // R set
    bad.push(routing);
    for (const b of bad) rx.push(overIp(CLIENT, SERVER, b), { addr: slotAddr(CLIENT) });
    rx.push(new Uint8Array([0x45, 0, 0, 20]), { addr: slotAddr(CLIENT) }); // truncated IP
    srv.dp.pump();
    const d = srv.dp.drops();
    expect(d.gre_wrong_peer).toBe(1n);
    expect(d.gre_unknown_call).toBe(1n);
    expect(d.gre_header).toBe(BigInt(bad.length));
    expect(d.bad_ip_header).toBe(1n);
    expect(tunOut(srv)).toHaveLength(0);
  });

  it('diverts PPP control frames to TypeScript and sends injected ones sequenced and in the clear', () => {
    const srv = side('server', { bits: 128, stateless: false });
    const lcp = new Uint8Array([0xff, 0x03, 0xc0, 0x21, 0x09, 0x07, 0x00, 0x08, 1, 2, 3, 4]);
    srv.dp.submit(abi.RingId.INJECT, lcp, { session: srv.idx });
    srv.dp.pump();
    const g = parseGre(sent(srv)[0]!.gre);
    expect(g.seq).toBe(0);
    expect(Array.from(g.payload)).toEqual(Array.from(lcp));
    // And from the peer: an LCP frame arriving in GRE goes to the CTRL ring as a PPP frame.
    const cli = side('client', { bits: 128, stateless: false });
    cli.dp.submit(abi.RingId.INJECT, lcp, { session: cli.idx });
    cli.dp.pump();
    deliver(srv, cli, sent(cli));
    expect(srv.ctrl.map((c) => [c.kind, hex(c.data)])).toEqual([[abi.CtrlKind.PPP_FRAME, hex(lcp)]]);
    // An injected frame for a session that is not PPTP is refused.
    srv.dp.submit(abi.RingId.INJECT, lcp, { session: 7 });
    srv.dp.pump();
    expect(srv.dp.drops().inject_invalid).toBe(1n);
  });

  it('refuses a second session on the same call id and frees the call id on release', () => {
    const s = side('server', null);
    const idx2 = s.st.allocate()!;
    expect(() => s.st.attach(idx2, { tunnel: abi.Tunnel.PPTP, gre: { peer: CLIENT, myCallId: SERVER_CALL, peerCallId: 9 } })).toThrow(/call id/);
    s.st.release(s.idx);
    s.st.release(idx2);
    const idx3 = s.st.allocate()!;
    s.st.attach(idx3, { tunnel: abi.Tunnel.PPTP, gre: { peer: CLIENT, myCallId: SERVER_CALL, peerCallId: 9 } });
    expect(s.st.state(idx3)).toBe(abi.SessionState.ATTACHED);
  });

  it('decrypted packets keep valid IP checksums and the spoofing check applies inside MPPE', () => {
    const srv = side('server', { bits: 128, stateless: false });
    const cli = side('client', { bits: 128, stateless: false });
    const spoof = ipv4Packet('10.1.1.1', '198.18.0.1', 17, udp(1, 2, new Uint8Array(8)));
    cli.dp.ring(abi.RingId.TUN_RX).push(up(1));
    cli.dp.ring(abi.RingId.TUN_RX).push(spoof);
    cli.dp.pump();
    deliver(srv, cli, sent(cli));
    const t = tunOut(srv);
    expect(t).toHaveLength(1);
    expect(inetChecksum(t[0]!, 0, 20)).toBe(0);
    expect(srv.dp.drops().spoofed_source).toBe(1n);
  });
});

describe('MPPE coherency count wrap (RFC 3078 section 3: 12 bits, modulo 4096)', () => {
  /** The MPPE header of a data packet sent in GRE (payload: ff 03 00 fd | A B C D count(12) | encrypted). */
  const mppeHeader = (g: Gre) => ({ count: ((g.payload[4]! & 0x0f) << 8) | g.payload[5]!, flushed: (g.payload[4]! & 0x80) !== 0 });
  const size = (i: number) => 40 + ((i * 13) % 1200);
  const BATCH = 250;

  /** Downlink packets from..to-1 out of the server: its data packets (ack-only ones left out), parsed. */
  function serverSends(srv: ReturnType<typeof side>, from: number, to: number): { raw: { gre: Uint8Array }; g: Gre }[] {
    for (let i = from; i < to; i++) srv.dp.ring(abi.RingId.TUN_RX).push(down(i, size(i)));
    srv.dp.pump();
    return sent(srv)
      .map((raw) => ({ raw, g: parseGre(raw.gre) }))
      .filter((p) => p.g.payload.length > 0);
  }

  /** The key after `changes` RFC 3078 7.3 changes of the 128-bit initial session key (RFC 3079 3.5.3 vector). */
  function keyAfter(changes: number): Uint8Array {
    let key = fromHex(v128.send_session_key);
    for (let i = 0; i < changes; i++) key = mppeChangeKey(serverSend, key, 128);
    return key;
  }

  for (const stateless of [false, true]) {
    for (const bits of [40, 128] as const) {
      it(`${bits}-bit ${stateless ? 'stateless' : 'stateful'}: 5000 packets each way across the wrap decrypt exactly; counts run 4095 -> 0, flushed as the mode says`, () => {
        const srv = side('server', { bits, stateless });
        const cli = side('client', { bits, stateless });
        const headers: { count: number; flushed: boolean }[] = [];
        const wire: Gre[] = [];
        for (let from = 0; from < 5000; from += BATCH) {
          const d = Array.from({ length: BATCH }, (_, k) => down(from + k, size(from + k)));
          const u = Array.from({ length: BATCH }, (_, k) => up(from + k, size(from + k + 7)));
          const out = serverSends(srv, from, from + BATCH);
          for (const p of u) cli.dp.ring(abi.RingId.TUN_RX).push(p);
          cli.dp.pump();
          for (const p of out) headers.push(mppeHeader(p.g));
          if (from >= 4000 && from < 4500) wire.push(...out.map((p) => p.g));
          deliver(cli, srv, out.map((p) => p.raw));
          deliver(srv, cli, sent(cli));
          sent(srv); // acknowledgments
          expect(tunOut(cli).map(hex)).toEqual(d.map(hex));
          expect(tunOut(srv).map(hex)).toEqual(u.map(hex));
        }
        expect(headers.map((h) => h.count)).toEqual(Array.from({ length: 5000 }, (_, i) => i % 4096));
        // Stateless: every packet flushed (RFC 3078 8.1); stateful: exactly the flag packets, count & 0xff == 0xff (8.2).
        expect(headers.filter((h) => h.flushed).map((h) => h.count)).toEqual(
          stateless ? headers.map((h) => h.count) : Array.from({ length: 5000 }, (_, i) => i % 4096).filter((c) => (c & 0xff) === 0xff),
        );
        expect(srv.dp.stat(abi.Stat.PPTP_UP_PKTS)).toBe(5000n);
        expect(cli.dp.stat(abi.Stat.PPTP_UP_PKTS)).toBe(5000n);
        expect(srv.ctrl).toHaveLength(0);
        expect(cli.ctrl).toHaveLength(0);
        expect(srv.dp.drops()).toEqual(side('server', null).dp.drops()); // nothing dropped, for any reason

        if (bits !== 128) return;
        // The bytes across the wrap against a model of RFC 3078 7.3 built from the RFC 3079 3.5.3 key.
        const plain = (i: number) => new Uint8Array([0x00, 0x21, ...down(i, size(i))]);
        const enc = (i: number) => wire[i - 4000]!.payload.subarray(6);
        if (stateless) {
          // Packet i is sent under the key after i + 1 changes, RC4 restarted.
          let key = keyAfter(4094);
          for (let i = 4094; i <= 4098; i++) {
            key = mppeChangeKey(serverSend, key, 128);
            expect(hex(enc(i)), `packet ${i}`).toBe(hex(rc4(key, plain(i))));
          }
        } else {
          // Flag packets 255, 511, ..., 4095: packets 4095 (count 4095) .. 4350 (count 254) are one
          // RC4 stream under the key after 16 changes, running on across the wrap.
          const ids = Array.from({ length: 256 }, (_, k) => 4095 + k);
          const stream = rc4(keyAfter(16), new Uint8Array(ids.flatMap((i) => [...plain(i)])));
          let o = 0;
          for (const i of ids) {
            const n = plain(i).length;
            expect(hex(enc(i)), `packet ${i}`).toBe(hex(stream.subarray(o, o + n)));
            o += n;
          }
          // And 4351 (count 255) is the next flag packet, under the key after 17 changes.
          expect(hex(enc(4351))).toBe(hex(rc4(keyAfter(17), plain(4351))));
        }
      });
    }
  }

  /**
   * Stateful, 128-bit: deliver 0..4089, then 4090..4119 with `lost` missing,
   * relay the receiver's Reset-Request, and expect the first flushed packet
   * after it to resynchronise (every packet after it decrypts), on through
   * the next flag packet.
   */
  function lossAtWrap(lost: readonly number[]) {
    const srv = side('server', { bits: 128, stateless: false });
    const cli = side('client', { bits: 128, stateless: false });
    for (let from = 0; from < 4090; from += 409) {
      deliver(cli, srv, serverSends(srv, from, from + 409).map((p) => p.raw));
      expect(tunOut(cli)).toHaveLength(409);
      sent(cli);
    }
    const batch = serverSends(srv, 4090, 4120);
    expect(batch.map((p) => mppeHeader(p.g).count)).toEqual(Array.from({ length: 30 }, (_, k) => (4090 + k) % 4096));
    deliver(
      cli,
      srv,
      batch.filter((_, k) => !lost.includes(4090 + k)).map((p) => p.raw),
    );
    const firstLost = Math.min(...lost);
    // Before the loss: delivered; from the first packet after it: discarded until a flushed packet.
    expect(tunOut(cli).map(hex)).toEqual(Array.from({ length: firstLost - 4090 }, (_, k) => hex(down(4090 + k, size(4090 + k)))));
    expect(cli.ctrl.map((c) => c.kind)).toEqual([abi.CtrlKind.MPPE_RESET_NEEDED]);
    expect(cli.dp.drops().mppe_coherency).toBe(1n);
    const arrivedAfter = 4120 - firstLost - lost.length;
    expect(cli.dp.drops().mppe_discard).toBe(BigInt(arrivedAfter - 1));
    // The control plane relays the CCP Reset-Request: the server's next packet is flushed.
    srv.st.mppeReset(srv.idx);
    const answer = serverSends(srv, 4120, 4140);
    expect(answer.map((p) => mppeHeader(p.g))[0]).toEqual({ count: 4120 % 4096, flushed: true });
    deliver(cli, srv, answer.map((p) => p.raw));
    expect(tunOut(cli).map(hex), 'the first flushed packet after the Reset-Request resynchronises').toEqual(
      Array.from({ length: 20 }, (_, k) => hex(down(4120 + k, size(4120 + k)))),
    );
    // On through the next flag packet (4351, count 255) and beyond.
    deliver(cli, srv, serverSends(srv, 4140, 4600).map((p) => p.raw));
    expect(tunOut(cli)).toHaveLength(460);
    expect(cli.ctrl).toHaveLength(1);
    expect(cli.dp.drops().mppe_discard).toBe(BigInt(arrivedAfter - 1));
  }

  it('stateful: loss just before the wrap (counts 4093, 4094; the flag packet 4095 arrives out of order): Reset-Request, resync', () => {
    lossAtWrap([4093, 4094]);
  });

  it('stateful: the flag packet at the wrap lost (counts 4095, 0): Reset-Request, resync with the missed key change', () => {
    lossAtWrap([4095, 4096]);
  });

  it('stateful: loss just after the wrap (counts 0, 1, 2; the flag packet 4095 received): Reset-Request, resync', () => {
    lossAtWrap([4096, 4097, 4098]);
  });

  it('stateful: the very first packet lost (count 0): the flag packet at count 255 resynchronises without a Reset-Request answer', () => {
    const srv = side('server', { bits: 128, stateless: false });
    const cli = side('client', { bits: 128, stateless: false });
    const b = serverSends(srv, 0, 300);
    deliver(cli, srv, b.slice(1).map((p) => p.raw));
    expect(cli.ctrl.map((c) => c.kind)).toEqual([abi.CtrlKind.MPPE_RESET_NEEDED]);
    expect(tunOut(cli).map(hex)).toEqual(Array.from({ length: 45 }, (_, k) => hex(down(255 + k, size(255 + k)))));
    expect(cli.dp.drops().mppe_discard).toBe(253n);
  });

  it('stateful: loss right after an ordinary flag packet (count 255 received, 256 lost) needs only the answer to the Reset-Request', () => {
    const srv = side('server', { bits: 128, stateless: false });
    const cli = side('client', { bits: 128, stateless: false });
    const b = serverSends(srv, 0, 300);
    deliver(cli, srv, b.filter((_, i) => i !== 256).map((p) => p.raw));
    expect(tunOut(cli)).toHaveLength(256);
    expect(cli.ctrl.map((c) => c.kind)).toEqual([abi.CtrlKind.MPPE_RESET_NEEDED]);
    srv.st.mppeReset(srv.idx);
    deliver(cli, srv, serverSends(srv, 300, 310).map((p) => p.raw));
    expect(tunOut(cli).map(hex)).toEqual(Array.from({ length: 10 }, (_, k) => hex(down(300 + k, size(300 + k)))));
  });
});
