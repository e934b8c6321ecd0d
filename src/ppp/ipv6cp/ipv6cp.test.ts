import { describe, it, expect } from 'vitest';
import { FsmState } from '../fsm.js';
import { Code } from '../protocols.js';
import { RecordingHost, hexOf, opt, packet } from '../testing.js';
import { Ipv6cp, linkLocalAddress } from './ipv6cp.js';

const OURS = [0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55];
const PEERS = [0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11];

function ipv6cp() {
  const h = new RecordingHost();
  const p = new Ipv6cp({ interfaceId: new Uint8Array(OURS) }, h);
  p.fsm.open();
  p.fsm.up();
  return { p, h };
}

describe('IPV6CP Interface-Identifier (RFC 5072 4.1)', () => {
  it('requests our identifier', () => {
    const { h } = ipv6cp();
    expect(hexOf(h.last(Code.ConfigureRequest)?.data)).toBe(hexOf(opt(1, ...OURS)));
  });

  it('Acks a distinct non-zero identifier', () => {
    const { p, h } = ipv6cp();
    p.fsm.receive(packet(Code.ConfigureRequest, 1, opt(1, ...PEERS)));
    expect(h.last()?.code).toBe(Code.ConfigureAck);
  });

  it('Naks zero with a non-zero suggestion different from ours', () => {
    const { p, h } = ipv6cp();
    p.fsm.receive(packet(Code.ConfigureRequest, 1, opt(1, 0, 0, 0, 0, 0, 0, 0, 0)));
    const r = h.last()!;
    expect(r.code).toBe(Code.ConfigureNak);
    const s = r.data.subarray(2);
    expect(s.some((b) => b !== 0)).toBe(true);
    expect(hexOf(s)).not.toBe(hexOf(new Uint8Array(OURS)));
  });

  it('Naks our own identifier (collision) with a different non-zero one', () => {
    const { p, h } = ipv6cp();
    p.fsm.receive(packet(Code.ConfigureRequest, 1, opt(1, ...OURS)));
    const r = h.last()!;
    expect(r.code).toBe(Code.ConfigureNak);
    expect(hexOf(r.data.subarray(2))).not.toBe(hexOf(new Uint8Array(OURS)));
  });

  it('rejects IPv6-Compression-Protocol and a wrong-length identifier', () => {
    const { p, h } = ipv6cp();
    p.fsm.receive(packet(Code.ConfigureRequest, 1, opt(1, ...PEERS), opt(2, 0x00, 0x4f), opt(1, 1, 2, 3)));
    expect(h.last()?.code).toBe(Code.ConfigureReject);
    expect(hexOf(h.last()?.data)).toBe(hexOf(opt(2, 0x00, 0x4f)) + hexOf(opt(1, 1, 2, 3)));
  });

  it('adopts a suggested identifier; one equal to our own last suggestion is replaced by a fresh one', () => {
    const { p, h } = ipv6cp();
    let req = h.last(Code.ConfigureRequest)!;
    p.fsm.receive(packet(Code.ConfigureNak, req.id, opt(1, 1, 2, 3, 4, 5, 6, 7, 8)));
    req = h.last(Code.ConfigureRequest)!;
    expect(hexOf(req.data)).toBe(hexOf(opt(1, 1, 2, 3, 4, 5, 6, 7, 8)));
    // We suggest something to the peer, and it comes back as a suggestion for us: looks looped, choose anew.
    p.fsm.receive(packet(Code.ConfigureRequest, 2, opt(1, 0, 0, 0, 0, 0, 0, 0, 0)));
    const suggestion = h.last(Code.ConfigureNak)!.data.subarray(2);
    p.fsm.receive(packet(Code.ConfigureNak, req.id, opt(1, ...suggestion)));
    const mine = h.last(Code.ConfigureRequest)!.data.subarray(2);
    expect(hexOf(mine)).not.toBe(hexOf(suggestion));
    expect(mine.some((b) => b !== 0)).toBe(true);
  });

  it('opens and reports both link-local addresses', () => {
    const { p, h } = ipv6cp();
    p.fsm.receive(packet(Code.ConfigureRequest, 1, opt(1, ...PEERS)));
    const req = h.last(Code.ConfigureRequest)!;
    p.fsm.receive(packet(Code.ConfigureAck, req.id, req.data));
    expect(p.fsm.state).toBe(FsmState.Opened);
    expect(p.negotiated.localLinkLocal).toBe('fe80::211:22ff:fe33:4455');
    expect(p.negotiated.peerLinkLocal).toBe('fe80::a0b:c0d:e0f:1011');
  });

  it('link-local text is RFC 5952 canonical', () => {
    for (const iid of [
      [0, 0, 0, 0, 0, 0, 0, 1],
      [0, 1, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 5, 0, 0, 0, 0],
      [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]) {
      const s = linkLocalAddress(new Uint8Array(iid));
      expect(new URL(`http://[${s}]/`).hostname).toBe(`[${s}]`);
    }
    expect(linkLocalAddress(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1]))).toBe('fe80::1');
  });
});
