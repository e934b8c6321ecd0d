/**
 * The SSTP data path in WASM against byte-exact expectations (MS-SSTP 2.2.1
 * framing, RFC 1661/1662 PPP headers): stream deframing under every split,
 * IP forwarding with anti-spoofing, control diversion, downlink coalescing.
 */
import { describe, it, expect } from 'vitest';
import * as abi from '../assembly/abi.js';
import { DataPlane } from '../src/dataplane/engine.js';
import type { SlotMeta } from '../src/dataplane/ring.js';
import { ByteWriter } from '../src/util/decode.js';
import { icmpEcho, ipv4Packet, udp } from './lib/packets.js';

/** SSTP packet: version 1.0, C bit, 12-bit length including the header. */
function sstp(control: boolean, body: Uint8Array): Uint8Array {
  return new ByteWriter()
    .u8(0x10)
    .u8(control ? 1 : 0)
    .u16(4 + body.length)
    .bytes(body)
    .finish();
}
const ppp = (protocol: number, info: Uint8Array, acfc = false, pfc = false) => {
  const w = new ByteWriter();
  if (!acfc) w.u8(0xff).u8(0x03);
  if (pfc && protocol < 0x100) w.u8(protocol);
  else w.u16(protocol);
  return w.bytes(info).finish();
};
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, (o += p.length) - p.length);
  return out;
};

const CLIENT_IP = '198.18.128.10';
const OTHER_IP = '198.18.128.11';
const echoCtl = sstp(true, new Uint8Array([0x00, 0x08, 0x00, 0x00])); // ECHO_REQUEST, 0 attributes
const lcpEcho = ppp(0xc021, new Uint8Array([9, 1, 0, 8, 0xde, 0xad, 0xbe, 0xef]));
const upIp = ipv4Packet(CLIENT_IP, '198.18.0.1', 17, udp(1000, 53, new Uint8Array(100).fill(0x42)));
const spoofed = ipv4Packet('10.9.9.9', '198.18.0.1', 17, udp(1000, 53, new Uint8Array(10)));
const upIp2 = ipv4Packet(CLIENT_IP, '198.18.0.1', 1, icmpEcho(8, 1, 2, new Uint8Array(1300).fill(7)));

function setup(opts: { activate?: boolean; pfc?: boolean; acfc?: boolean } = {}) {
  const dp = new DataPlane({ maxSessions: 8 });
  const st = dp.sessions;
  const idx = st.allocate()!;
  st.attach(idx, { tunnel: abi.Tunnel.SSTP });
  if (opts.activate !== false) st.activate(idx, { ipv4: CLIENT_IP, mtu: 1400, pfc: opts.pfc ?? false, acfc: opts.acfc ?? false });
  const ctrl: { kind: number; session: number; data: Uint8Array }[] = [];
  dp.onControl((p, m: SlotMeta) => ctrl.push({ kind: m.aux, session: m.session, data: p.slice() }));
  const out: { session: number; data: Uint8Array }[] = [];
  dp.onStreamOut((p, m) => out.push({ session: m.session, data: p.slice() }));
  const tunOut = () => {
    const pk: Uint8Array[] = [];
    dp.ring(abi.RingId.TUN_TX).drain((p) => pk.push(p.slice()));
    return pk;
  };
  return { dp, st, idx, ctrl, out, tunOut };
}

const stream = concat(
  sstp(false, ppp(0x21, upIp)),
  echoCtl,
  sstp(false, lcpEcho),
  sstp(false, ppp(0x21, spoofed)),
  sstp(false, ppp(0x21, upIp2, true, true)), // ACFC + PFC from the peer: accepted on receive
);

describe('SSTP uplink (stream -> WASM)', () => {
  it('forwards IP, diverts SSTP control and PPP control, drops a spoofed source', () => {
    const { dp, idx, ctrl, tunOut, st } = setup();
    expect(dp.streamIn(idx, stream)).toBe(stream.length);
    dp.pump();
    const pk = tunOut();
    expect(pk.map((p) => Array.from(p))).toEqual([Array.from(upIp), Array.from(upIp2)]);
    expect(ctrl.map((c) => [c.kind, c.session, Array.from(c.data)])).toEqual([
      [abi.CtrlKind.SSTP_CONTROL, idx, Array.from(echoCtl)],
      [abi.CtrlKind.PPP_FRAME, idx, Array.from(lcpEcho)],
    ]);
    expect(dp.drops().spoofed_source).toBe(1n);
    expect(dp.stat(abi.Stat.SSTP_UP_PKTS)).toBe(2n);
    expect(dp.stat(abi.Stat.SSTP_UP_BYTES)).toBe(BigInt(upIp.length + upIp2.length));
    const c = st.counters(idx);
    expect(c.upPackets).toBe(2n);
    expect(c.drops).toBe(1n);
  });

  it('gives the same result for the stream split at every byte offset, and in 1..7-byte pieces', () => {
    const reference = (() => {
      const s = setup();
      s.dp.streamIn(s.idx, stream);
      s.dp.pump();
      return { tun: s.tunOut().map((p) => Array.from(p)), ctrl: s.ctrl.map((c) => Array.from(c.data)) };
    })();
    const s = setup();
    for (let cut = 0; cut <= stream.length; cut++) {
      s.dp.streamIn(s.idx, stream.subarray(0, cut));
      s.dp.pump();
      s.dp.streamIn(s.idx, stream.subarray(cut));
      s.dp.pump();
      expect(s.tunOut().map((p) => Array.from(p))).toEqual(reference.tun);
      expect(s.ctrl.splice(0).map((c) => Array.from(c.data))).toEqual(reference.ctrl);
    }
    let off = 0;
    for (let n = 1; off < stream.length; n = (n % 7) + 1) {
      s.dp.streamIn(s.idx, stream.subarray(off, Math.min(stream.length, off + n)));
      off += n;
      if (off % 3 === 0) s.dp.pump();
    }
    s.dp.pump();
    expect(s.tunOut().map((p) => Array.from(p))).toEqual(reference.tun);
  });

  it('before IP is activated, control flows and IP is dropped (session_down)', () => {
    const { dp, idx, ctrl, tunOut } = setup({ activate: false });
    dp.streamIn(idx, stream);
    dp.pump();
    expect(tunOut()).toHaveLength(0);
    expect(ctrl).toHaveLength(2);
    expect(dp.drops().session_down).toBe(3n);
  });

  it('a bad SSTP header breaks the stream: STREAM_ERROR once, the rest dropped', () => {
    const { dp, idx, ctrl, tunOut } = setup();
    const bad = concat(sstp(false, ppp(0x21, upIp)), new Uint8Array([0x20, 0, 0, 8, 1, 2, 3, 4]), sstp(false, ppp(0x21, upIp)));
    dp.streamIn(idx, bad);
    dp.pump();
    expect(tunOut()).toHaveLength(1);
    expect(ctrl.map((c) => c.kind)).toEqual([abi.CtrlKind.STREAM_ERROR]);
    dp.streamIn(idx, sstp(false, ppp(0x21, upIp)));
    dp.pump();
    expect(tunOut()).toHaveLength(0);
    for (const len of [0, 1, 2, 3]) {
      const s = setup();
      s.dp.streamIn(s.idx, new Uint8Array([0x10, 0, len >> 8, len]));
      s.dp.pump();
      expect(s.ctrl.map((c) => c.kind)).toEqual([abi.CtrlKind.STREAM_ERROR]);
    }
  });

  it('a burst of control frames from many sessions larger than the CTRL ring waits in STREAM_IN instead of being dropped', () => {
    // 48 tunnels being set up at once, each TLS read carrying three control frames: 144 for a CTRL ring of 32.
    const dp = new DataPlane({ maxSessions: 64, ringSlots: { [abi.RingId.CTRL]: 32, [abi.RingId.STREAM_IN]: 64 } });
    const ctrl: { session: number; data: number[] }[] = [];
    dp.onControl((p, m: SlotMeta) => ctrl.push({ session: m.session, data: Array.from(p) }));
    const chunk = concat(echoCtl, sstp(false, lcpEcho), echoCtl);
    const sessions: number[] = [];
    for (let i = 0; i < 48; i++) {
      const idx = dp.sessions.allocate()!;
      dp.sessions.attach(idx, { tunnel: abi.Tunnel.SSTP });
      expect(dp.streamIn(idx, chunk)).toBe(chunk.length);
      sessions.push(idx);
    }
    // Each pump stops consuming while CTRL is short of room; the next one (rescheduled by the engine) goes on.
    for (let i = 0; i < 50 && dp.ring(abi.RingId.STREAM_IN).occupancy > 0; i++) dp.pump();
    expect(dp.ring(abi.RingId.STREAM_IN).occupancy).toBe(0);
    expect(dp.drops().ctrl_ring_full).toBe(0n);
    expect(ctrl).toHaveLength(144);
    for (const idx of sessions) {
      expect(ctrl.filter((c) => c.session === idx).map((c) => c.data)).toEqual([Array.from(echoCtl), Array.from(lcpEcho), Array.from(echoCtl)]);
    }
  });

  it('drops stream bytes for a session that is not attached', () => {
    const { dp, st } = setup();
    const other = st.allocate()!;
    dp.streamIn(other, stream);
    dp.pump();
    expect(dp.drops().stream_no_session).toBe(1n);
  });
});

describe('SSTP downlink (TUN -> WASM -> stream)', () => {
  const down = (n: number, dst = CLIENT_IP) => ipv4Packet('198.18.0.1', dst, 17, udp(53, 1000, new Uint8Array(n).fill(n & 255)));

  it('frames each IP packet as SSTP data + PPP (ff 03 00 21) and coalesces a burst into one write', () => {
    const { dp, idx, out } = setup();
    const pk = [down(10), down(500), down(1372)];
    for (const p of pk) dp.ring(abi.RingId.TUN_RX).push(p);
    dp.pump();
    expect(out).toHaveLength(1);
    expect(out[0]!.session).toBe(idx);
    expect(Array.from(out[0]!.data)).toEqual(Array.from(concat(...pk.map((p) => sstp(false, ppp(0x21, p))))));
    expect(dp.stat(abi.Stat.SSTP_DOWN_PKTS)).toBe(3n);
  });

  it('uses the negotiated ACFC and PFC on send', () => {
    const { dp, out } = setup({ acfc: true, pfc: true });
    const p = down(20);
    dp.ring(abi.RingId.TUN_RX).push(p);
    dp.pump();
    expect(Array.from(out[0]!.data)).toEqual(Array.from(sstp(false, concat(new Uint8Array([0x21]), p))));
  });

  it('starts a new write when the session changes, and drops packets for unknown addresses', () => {
    const { dp, st, idx, out } = setup();
    const idx2 = st.allocate()!;
    st.attach(idx2, { tunnel: abi.Tunnel.SSTP });
    st.activate(idx2, { ipv4: OTHER_IP, mtu: 1400 });
    const rx = dp.ring(abi.RingId.TUN_RX);
    rx.push(down(10));
    rx.push(down(11));
    rx.push(down(12, OTHER_IP));
    rx.push(down(13));
    rx.push(down(14, '198.18.128.99'));
    dp.pump();
    expect(out.map((o) => o.session)).toEqual([idx, idx2, idx]);
    expect(dp.drops().no_session).toBe(1n);
  });

  it('a client session takes every TUN packet and accepts only packets for its own address', () => {
    const dp = new DataPlane({ maxSessions: 4 });
    const st = dp.sessions;
    const idx = st.allocate()!;
    st.attach(idx, { tunnel: abi.Tunnel.SSTP, client: true });
    st.activate(idx, { ipv4: CLIENT_IP, mtu: 1400 });
    dp.wasm.setDefaultSession(idx);
    const out: Uint8Array[] = [];
    dp.onStreamOut((p) => out.push(p.slice()));
    dp.ring(abi.RingId.TUN_RX).push(ipv4Packet(CLIENT_IP, '203.0.113.7', 17, udp(1, 2, new Uint8Array(4))));
    const toMe = ipv4Packet('203.0.113.7', CLIENT_IP, 17, udp(2, 1, new Uint8Array(4)));
    const notMe = ipv4Packet('203.0.113.7', OTHER_IP, 17, udp(2, 1, new Uint8Array(4)));
    dp.streamIn(idx, concat(sstp(false, ppp(0x21, toMe)), sstp(false, ppp(0x21, notMe))));
    dp.pump();
    expect(out).toHaveLength(1);
    const tun: Uint8Array[] = [];
    dp.ring(abi.RingId.TUN_TX).drain((p) => tun.push(p.slice()));
    expect(tun.map((p) => Array.from(p))).toEqual([Array.from(toMe)]);
    expect(dp.drops().spoofed_source).toBe(1n);
  });
});
