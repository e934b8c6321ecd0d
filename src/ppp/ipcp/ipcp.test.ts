import { describe, it, expect } from 'vitest';
import { FsmState } from '../fsm.js';
import { Code } from '../protocols.js';
import { RecordingHost, hexOf, opt, packet } from '../testing.js';
import { Ipcp, type IpcpConfig } from './ipcp.js';

// 198.18.10.1 = c6 12 0a 01, 198.18.10.10 = c6 12 0a 0a, 198.18.0.53 = c6 12 00 35
const GW = [0xc6, 0x12, 0x0a, 0x01];
const ASSIGNED = [0xc6, 0x12, 0x0a, 0x0a];
const DNS1 = [0xc6, 0x12, 0x00, 0x35];
const DNS2 = [0xc6, 0x12, 0x00, 0x36];
const ZERO = [0, 0, 0, 0];

function ipcp(cfg: IpcpConfig) {
  const h = new RecordingHost();
  const p = new Ipcp(cfg, h);
  p.fsm.open();
  p.fsm.up();
  return { p, h };
}

const server = () =>
  ipcp({ role: 'server', localAddress: '198.18.10.1', peerAddress: '198.18.10.10', dns: { primary: '198.18.0.53', secondary: '198.18.0.54' } });
const client = (over: Partial<IpcpConfig> = {}) => ipcp({ role: 'client', localAddress: '0.0.0.0', requestDns: true, ...over });

describe('IPCP server (RFC 1332, RFC 1877)', () => {
  it('requests its own IP-Address only', () => {
    const { h } = server();
    expect(hexOf(h.last(Code.ConfigureRequest)?.data)).toBe(hexOf(opt(3, ...GW)));
  });

  function judge(...options: Uint8Array[]) {
    const s = server();
    s.p.fsm.receive(packet(Code.ConfigureRequest, 1, ...options));
    return s.h.last();
  }

  it('Naks 0.0.0.0 and a foreign address with the assigned one; Acks the assigned one', () => {
    for (const asked of [ZERO, [10, 0, 0, 7]]) {
      const r = judge(opt(3, ...asked));
      expect(r?.code).toBe(Code.ConfigureNak);
      expect(hexOf(r?.data)).toBe(hexOf(opt(3, ...ASSIGNED)));
    }
    expect(judge(opt(3, ...ASSIGNED))?.code).toBe(Code.ConfigureAck);
  });

  it('Naks DNS requests with the configured servers; Acks the right ones', () => {
    const r = judge(opt(3, ...ASSIGNED), opt(129, ...ZERO), opt(131, ...ZERO));
    expect(r?.code).toBe(Code.ConfigureNak);
    expect(hexOf(r?.data)).toBe(hexOf(opt(129, ...DNS1)) + hexOf(opt(131, ...DNS2)));
    expect(judge(opt(3, ...ASSIGNED), opt(129, ...DNS1), opt(131, ...DNS2))?.code).toBe(Code.ConfigureAck);
  });

  it('rejects NBNS when none is configured, IP-Compression-Protocol (VJ) and the deprecated IP-Addresses', () => {
    const nbns = opt(130, ...ZERO);
    const vj = opt(2, 0x00, 0x2d, 0x0f, 0x01);
    const addrs = opt(1, ...ASSIGNED, ...GW);
    const r = judge(opt(3, ...ASSIGNED), nbns, vj, addrs, opt(132, ...ZERO));
    expect(r?.code).toBe(Code.ConfigureReject);
    expect(hexOf(r?.data)).toBe([nbns, vj, addrs, opt(132, ...ZERO)].map(hexOf).join(''));
  });

  it('asks a peer that left IP-Address out to take one (a Nak hint), once', () => {
    const s = server();
    s.p.fsm.receive(packet(Code.ConfigureRequest, 1, opt(129, ...DNS1)));
    expect(s.h.last()?.code).toBe(Code.ConfigureNak);
    expect(hexOf(s.h.last()?.data)).toBe(hexOf(opt(3, ...ASSIGNED)));
    s.p.fsm.receive(packet(Code.ConfigureRequest, 2, opt(129, ...DNS1)));
    expect(s.h.last()?.code).toBe(Code.ConfigureAck);
  });

  it('keeps its own address when the peer Naks it', () => {
    const s = server();
    const req = s.h.last(Code.ConfigureRequest)!;
    s.p.fsm.receive(packet(Code.ConfigureNak, req.id, opt(3, 10, 9, 9, 9)));
    expect(hexOf(s.h.last(Code.ConfigureRequest)?.data)).toBe(hexOf(opt(3, ...GW)));
  });

  it('opens and reports the assignment', () => {
    const s = server();
    s.p.fsm.receive(packet(Code.ConfigureRequest, 1, opt(3, ...ASSIGNED), opt(129, ...DNS1)));
    const req = s.h.last(Code.ConfigureRequest)!;
    s.p.fsm.receive(packet(Code.ConfigureAck, req.id, req.data));
    expect(s.p.fsm.state).toBe(FsmState.Opened);
    expect(s.p.negotiated).toEqual({ localAddress: '198.18.10.1', peerAddress: '198.18.10.10', dns: ['198.18.0.53', '198.18.0.54'], nbns: [] });
  });
});

describe('IPCP client', () => {
  it('asks for 0.0.0.0 and both DNS servers', () => {
    const { h } = client();
    expect(hexOf(h.last(Code.ConfigureRequest)?.data)).toBe(hexOf(opt(3, ...ZERO)) + hexOf(opt(129, ...ZERO)) + hexOf(opt(131, ...ZERO)));
  });

  it('adopts the Nak\'d address and servers, drops what the server rejects, and opens', () => {
    const c = client();
    let req = c.h.last(Code.ConfigureRequest)!;
    c.p.fsm.receive(packet(Code.ConfigureNak, req.id, opt(3, ...ASSIGNED), opt(129, ...DNS1), opt(131, ...DNS2)));
    req = c.h.last(Code.ConfigureRequest)!;
    expect(hexOf(req.data)).toBe(hexOf(opt(3, ...ASSIGNED)) + hexOf(opt(129, ...DNS1)) + hexOf(opt(131, ...DNS2)));
    c.p.fsm.receive(packet(Code.ConfigureReject, req.id, opt(131, ...DNS2)));
    req = c.h.last(Code.ConfigureRequest)!;
    expect(hexOf(req.data)).toBe(hexOf(opt(3, ...ASSIGNED)) + hexOf(opt(129, ...DNS1)));
    c.p.fsm.receive(packet(Code.ConfigureAck, req.id, req.data));
    c.p.fsm.receive(packet(Code.ConfigureRequest, 5, opt(3, ...GW)));
    expect(c.h.last()?.code).toBe(Code.ConfigureAck);
    expect(c.p.fsm.state).toBe(FsmState.Opened);
    expect(c.h.events).toEqual(['up']);
    expect(c.p.negotiated).toEqual({ localAddress: '198.18.10.10', peerAddress: '198.18.10.1', dns: ['198.18.0.53'], nbns: [] });
  });

  it('rejects a server that asks us for DNS servers or for its own address', () => {
    const c = client();
    c.p.fsm.receive(packet(Code.ConfigureRequest, 5, opt(3, ...ZERO), opt(129, ...ZERO)));
    expect(c.h.last()?.code).toBe(Code.ConfigureReject);
    expect(hexOf(c.h.last()?.data)).toBe(hexOf(opt(3, ...ZERO)) + hexOf(opt(129, ...ZERO)));
  });

  it('fails no-address when IPCP opens without an address for us', () => {
    const c = client({ requestDns: false });
    const req = c.h.last(Code.ConfigureRequest)!;
    c.p.fsm.receive(packet(Code.ConfigureReject, req.id, opt(3, ...ZERO)));
    const req2 = c.h.last(Code.ConfigureRequest)!;
    expect(req2.data.length).toBe(0);
    c.p.fsm.receive(packet(Code.ConfigureAck, req2.id));
    c.p.fsm.receive(packet(Code.ConfigureRequest, 9, opt(3, ...GW)));
    expect(c.h.events).toEqual(['fail:no-address']);
  });
});
