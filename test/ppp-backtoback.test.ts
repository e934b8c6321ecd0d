/**
 * A server PppSession and a client PppSession back to back in memory, with
 * the real authentication protocols (src/ppp/auth), the real user store and
 * verifier (src/aaa), the real address pool (src/pool), in virtual time.
 */
import { describe, it, expect } from 'vitest';
import { LocalVerifier, UserStore } from '../src/aaa/index.js';
import type { AuthMethod, Verifier } from '../src/ppp/auth/types.js';
import { Ipv4Pool } from '../src/pool/index.js';
import { decodeFrame } from '../src/ppp/frame.js';
import { decodeControlPacket } from '../src/ppp/packet.js';
import { PPP_IPV4, PPP_LCP, Code } from '../src/ppp/protocols.js';
import { Phase } from '../src/ppp/session.js';
import { PppLink, seededRandom, type LinkClientOptions, type LinkServerOptions } from '../src/ppp/testing.js';
import type { MppePolicy } from '../src/ppp/ccp/mppe.js';

const USERS = {
  users: {
    alice: { password: 'correct horse' },
    bob: { password: 'battery staple', enabled: false },
    carol: { password: 'pw-carol', mppe: 'require' },
    dave: { password: 'pw-dave', staticIpv4: '198.18.10.200' },
  },
};

/** The real verifier over the real user store, recording who asked. */
function recordingVerifier(): Verifier & { calls: string[] } {
  const inner = new LocalVerifier(UserStore.fromObject(USERS));
  const calls: string[] = [];
  return {
    calls,
    pap: (ctx, u, ...r) => (calls.push(u), inner.pap(ctx, u, ...r)),
    chapMd5: (ctx, u, ...r) => (calls.push(u), inner.chapMd5(ctx, u, ...r)),
    msChapV2: (ctx, u, ...r) => (calls.push(u), inner.msChapV2(ctx, u, ...r)),
  };
}

const GATEWAY = '198.18.10.1';

function pool(ranges = ['198.18.10.10-198.18.10.20']) {
  return Ipv4Pool.create({ ranges, gateway: GATEWAY });
}

interface Setup {
  methods?: AuthMethod[];
  clientMethods?: AuthMethod[];
  username?: string;
  password?: string;
  serverMppe?: Partial<MppePolicy>;
  clientMppe?: Partial<MppePolicy>;
  ipv6?: boolean;
  echo?: { intervalMs: number; failures: number };
  server?: Partial<LinkServerOptions>;
  client?: Partial<LinkClientOptions>;
  addresses?: Ipv4Pool;
}

function link(s: Setup = {}) {
  const verifier = recordingVerifier();
  const addresses = s.addresses ?? pool();
  const l = new PppLink(
    {
      tunnel: 'test',
      peer: '198.18.0.2',
      auth: { methods: s.methods ?? ['mschapv2'], verifier, serverName: 'vpngw' },
      ipcp: { allocator: addresses, localAddress: GATEWAY, dns: { primary: '198.18.0.53', secondary: '198.18.0.54' }, nbns: { primary: '198.18.0.55' } },
      ipv6cp: s.ipv6 ?? false,
      mppe: s.serverMppe ?? { policy: 'allow', strengths: [128] },
      echo: s.echo ?? { intervalMs: 0, failures: 3 },
      random: seededRandom(1),
      ...s.server,
    },
    {
      tunnel: 'test',
      peer: '198.18.0.1',
      auth: { methods: s.clientMethods ?? s.methods ?? ['mschapv2'], credentials: { username: s.username ?? 'alice', password: s.password ?? 'correct horse' } },
      ipcp: { requestDns: true, requestNbns: true },
      ipv6cp: s.ipv6 ?? false,
      mppe: s.clientMppe ?? { policy: 'allow', strengths: [128] },
      echo: s.echo ?? { intervalMs: 0, failures: 3 },
      random: seededRandom(2),
      ...s.client,
    },
  );
  return { link: l, verifier, addresses };
}

const METHODS: AuthMethod[] = ['pap', 'chap-md5', 'mschapv2', 'eap-mschapv2'];

describe('authentication: every method x outcome, then the network phase', () => {
  for (const method of METHODS) {
    it(`${method}: success -> both up with the pool address and DNS`, async () => {
      const { link: l, addresses } = link({ methods: [method] });
      await l.connect();
      const s = l.rec.server;
      const c = l.rec.client;
      expect(s.down).toBeUndefined();
      expect(c.down).toBeUndefined();
      expect(s.authenticated?.username).toBe('alice');
      expect(s.up?.username).toBe('alice');
      expect(s.up?.authMethod).toBe(method);
      expect(c.up?.authMethod).toBe(method);
      expect(s.up?.ipv4).toEqual({ localAddress: GATEWAY, peerAddress: '198.18.10.10', dns: ['198.18.0.53', '198.18.0.54'], nbns: ['198.18.0.55'] });
      expect(c.up?.ipv4).toEqual({ localAddress: '198.18.10.10', peerAddress: GATEWAY, dns: ['198.18.0.53', '198.18.0.54'], nbns: ['198.18.0.55'] });
      expect(addresses.used).toBe(1);
      expect(l.server.phase).toBe(Phase.Network);
      expect(s.phases).toEqual([Phase.Establish, Phase.Authenticate, Phase.Network]);
      // NCPs only after authentication (RFC 1661 3.5): no IPCP frame precedes the auth exchange's end.
      const labels = l.labels('server');
      const firstNcp = labels.findIndex((x) => x.startsWith('IPCP') || x.startsWith('CCP'));
      const lastAuth = labels.map((x) => /^(PAP|CHAP|EAP)/.test(x)).lastIndexOf(true);
      expect(firstNcp).toBeGreaterThan(lastAuth);
      // Key material for SSTP's crypto binding travels with `up`.
      expect(s.up?.auth?.hlak?.length).toBe(32);
      if (method === 'mschapv2' || method === 'eap-mschapv2') {
        expect(s.up?.auth?.mppe).toBeDefined();
        expect(Array.from(s.up!.auth!.hlak!)).toEqual(Array.from(c.up!.auth!.hlak!));
      }
    });

    for (const [name, username, password, failure] of [
      ['wrong password', 'alice', 'wrong', 'bad-credentials'],
      ['unknown user', 'mallory', 'whatever', 'unknown-user'],
      ['disabled user', 'bob', 'battery staple', 'disabled'],
    ] as const) {
      it(`${method}: ${name} -> auth-failed, no address held`, async () => {
        const { link: l, addresses, verifier } = link({ methods: [method], username, password });
        await l.connect();
        await l.run(60_000, 500);
        const s = l.rec.server;
        const c = l.rec.client;
        expect(s.up).toBeUndefined();
        expect(c.up).toBeUndefined();
        expect(verifier.calls).toContain(username);
        // The server reports the verifier's reason when it concludes; with a retryable failure (PAP,
        // MS-CHAPv2 E=691 R=1) it waits for a retry and the client concludes and hangs up instead.
        if (s.authFailed) expect(s.authFailed.reason).toBe(failure);
        else expect(c.authFailed).toBeDefined();
        const reasons = [s.down?.reason, c.down?.reason];
        expect(reasons).toContain('auth-failed');
        for (const r of reasons) expect(['auth-failed', 'peer-terminated']).toContain(r);
        if (s.down?.reason === 'auth-failed') expect(s.down.detail).toContain(failure);
        expect(addresses.used).toBe(0);
        expect(l.server.phase).toBe(Phase.Dead);
        expect(l.client.phase).toBe(Phase.Dead);
        // The server never started a network protocol.
        expect(l.labels('server').some((x) => x.startsWith('IPCP') || x.startsWith('CCP'))).toBe(false);
      });
    }
  }
});

describe('authentication method negotiation (LCP Authentication-Protocol)', () => {
  it('the client Naks the proposed method with one it supports; the server takes it when configured', async () => {
    const { link: l } = link({ methods: ['eap-mschapv2', 'mschapv2'], clientMethods: ['mschapv2'] });
    await l.connect();
    expect(l.rec.server.up?.authMethod).toBe('mschapv2');
    // One Configure-Nak from the client carried c2 23 81.
    const naks = l.trace.filter((t) => t.dir === 'toServer').map((t) => decodeFrame(t.frame)).filter((f) => f.ok && f.value.protocol === PPP_LCP);
    const nakPkt = naks.map((f) => (f.ok ? decodeControlPacket(f.value.info) : undefined)).find((p) => p?.ok && p.value.code === Code.ConfigureNak);
    expect(nakPkt?.ok && Buffer.from(nakPkt.value.data).toString('hex')).toBe('0305c22381');
  });

  it('a Nak naming an unconfigured method moves the server to its next method in order', async () => {
    const { link: l } = link({ methods: ['eap-mschapv2', 'pap', 'chap-md5'], clientMethods: ['mschapv2', 'chap-md5'] });
    await l.connect();
    // eap refused (Nak suggests mschapv2, not configured) -> pap; pap refused -> chap-md5, which the client accepts.
    expect(l.rec.server.up?.authMethod).toBe('chap-md5');
  });

  it('a client that accepts none of the server methods gets a clean Terminate-Request (no-common-auth)', async () => {
    const { link: l } = link({ methods: ['pap'], clientMethods: ['mschapv2'] });
    await l.connect();
    await l.run(10_000);
    expect(l.rec.server.down?.reason).toBe('no-common-auth');
    expect(l.rec.server.down?.detail).toContain('pap');
    expect(l.labels('server')).toContain('LCP 5');
    expect(l.rec.server.up).toBeUndefined();
  });
});

describe('IPV6CP', () => {
  it('comes up with matching interface identifiers and link-local addresses', async () => {
    const { link: l } = link({ ipv6: true });
    await l.connect();
    const s = l.rec.server.up!.ipv6!;
    const c = l.rec.client.up!.ipv6!;
    expect(s.peerInterfaceId).toEqual(c.localInterfaceId);
    expect(c.peerInterfaceId).toEqual(s.localInterfaceId);
    expect(s.localLinkLocal).toMatch(/^fe80::[0-9a-f:]+$/);
    expect(s.peerLinkLocal).toBe(c.localLinkLocal);
    // The text form is canonical (RFC 5952), as the WHATWG URL serializer writes it.
    expect(new URL(`http://[${s.localLinkLocal}]/`).hostname).toBe(`[${s.localLinkLocal}]`);
  });

  it('resolves an interface-identifier collision (both sides configured with the same one)', async () => {
    const iid = new Uint8Array([2, 0, 0x5e, 0xff, 0xfe, 0, 0x53, 1]);
    const { link: l } = link({ ipv6: true, server: { ipv6cp: { interfaceId: iid } }, client: { ipv6cp: { interfaceId: iid } } });
    await l.connect();
    const s = l.rec.server.up!.ipv6!;
    const c = l.rec.client.up!.ipv6!;
    expect(Buffer.from(s.localInterfaceId).equals(Buffer.from(c.localInterfaceId))).toBe(false);
    expect(s.peerInterfaceId).toEqual(c.localInterfaceId);
    expect(c.peerInterfaceId).toEqual(s.localInterfaceId);
  });

  it('an IPv4-only peer Protocol-Rejects IPV6CP and the session comes up on IPv4', async () => {
    const { link: l } = link({ server: { ipv6cp: true }, client: { ipv6cp: false } });
    await l.connect();
    expect(l.rec.server.up?.ipv4?.peerAddress).toBe('198.18.10.10');
    expect(l.rec.server.up?.ipv6).toBeUndefined();
    expect(l.labels('client')).toContain('LCP 8');
  });
});

describe('CCP / MPPE', () => {
  for (const stateless of [false, true]) {
    it(`128-bit ${stateless ? 'stateless' : 'stateful'}: both directions agree and the keys cross over`, async () => {
      const { link: l } = link({
        methods: ['mschapv2'],
        serverMppe: { policy: 'require', strengths: [128, 40], statelessAllowed: true },
        clientMppe: { policy: 'require', strengths: [128, 56, 40], statelessAllowed: stateless, statelessPreferred: stateless },
      });
      await l.connect();
      const s = l.rec.server.up!.mppe!;
      const c = l.rec.client.up!.mppe!;
      expect(s.bits).toBe(128);
      expect(c.bits).toBe(128);
      expect(s.stateless).toBe(stateless);
      expect(c.stateless).toBe(stateless);
      expect(s.sendKey.length).toBe(16);
      expect(Buffer.from(s.sendKey).equals(Buffer.from(c.recvKey))).toBe(true);
      expect(Buffer.from(s.recvKey).equals(Buffer.from(c.sendKey))).toBe(true);
      expect(Buffer.from(s.sendKey).equals(Buffer.from(s.recvKey))).toBe(false);
      // CCP was Opened before `up`: the data plane installs encrypted sessions only.
      expect(l.server.snapshot().CCP?.state).toBe('Opened');
    });
  }

  it('40-bit when that is the only strength in common, with the RFC 3079 reduction', async () => {
    const { link: l } = link({ serverMppe: { policy: 'require', strengths: [40] }, clientMppe: { policy: 'require', strengths: [128, 40] } });
    await l.connect();
    const s = l.rec.server.up!.mppe!;
    expect(s.bits).toBe(40);
    expect(s.sendKey.length).toBe(8);
    expect(Array.from(s.sendKey.subarray(0, 3))).toEqual([0xd1, 0x26, 0x9e]);
    expect(Buffer.from(s.sendKey).equals(Buffer.from(l.rec.client.up!.mppe!.recvKey))).toBe(true);
  });

  it('the server refuses MPPE by policy (deny) and a client that requires it gives up', async () => {
    const { link: l } = link({ serverMppe: { policy: 'deny' }, clientMppe: { policy: 'require', strengths: [128] } });
    await l.connect();
    await l.run(10_000);
    expect(l.rec.client.down?.reason).toBe('mppe-required');
    expect(l.rec.server.down?.reason).toBe('peer-terminated');
    expect(l.rec.client.up).toBeUndefined();
    expect(l.labels('server')).toContain('LCP 8'); // Protocol-Reject of CCP
  });

  it('the server requires MPPE and a client that refuses it is terminated', async () => {
    const { link: l, addresses } = link({ serverMppe: { policy: 'require', strengths: [128] }, clientMppe: { policy: 'deny' } });
    await l.connect();
    await l.run(10_000);
    expect(l.rec.server.down?.reason).toBe('mppe-required');
    expect(l.rec.server.up).toBeUndefined();
    expect(addresses.used).toBe(0);
  });

  it('allow on one side, deny on the other: up without MPPE', async () => {
    const { link: l } = link({ serverMppe: { policy: 'allow', strengths: [128] }, clientMppe: { policy: 'deny' } });
    await l.connect();
    expect(l.rec.server.up?.mppe).toBeUndefined();
    expect(l.rec.client.up?.mppe).toBeUndefined();
  });

  it('a per-user policy (require) overrides the global allow', async () => {
    const { link: l } = link({ username: 'carol', password: 'pw-carol', serverMppe: { policy: 'allow', strengths: [128] }, clientMppe: { policy: 'deny' } });
    await l.connect();
    await l.run(10_000);
    expect(l.rec.server.down?.reason).toBe('mppe-required');
  });

  it('MPPE required with an authentication method that derives no keys: mppe-unavailable', async () => {
    const { link: l } = link({ methods: ['pap'], serverMppe: { policy: 'require', strengths: [128] } });
    await l.connect();
    await l.run(10_000);
    expect(l.rec.server.down?.reason).toBe('mppe-unavailable');
  });

  it('CCP Reset-Request reaches the other side as an event', async () => {
    const { link: l } = link({ serverMppe: { policy: 'require', strengths: [128] }, clientMppe: { policy: 'require', strengths: [128] } });
    await l.connect();
    expect(l.client.sendResetRequest()).toBe(true);
    await l.settle();
    expect(l.rec.server.resetRequests).toHaveLength(1);
    expect(l.labels('client').at(-1)).toBe('CCP 14');
  });
});

describe('keepalive, termination, address exhaustion', () => {
  it('echo timeout: a client that stops answering is declared dead after `failures` unanswered Echo-Requests', async () => {
    const interval = 10_000;
    const failures = 3;
    const { link: l, addresses } = link({ echo: { intervalMs: interval, failures }, client: { echo: { intervalMs: 0 } } });
    await l.connect();
    const upAt = l.rec.server.upAt!;
    expect(upAt).toBeDefined();
    // While the client answers, the link stays up through many intervals.
    await l.run(5 * interval);
    expect(l.rec.server.down).toBeUndefined();
    // The client goes silent.
    const silentFrom = l.clock.now();
    l.tamper = (dir, f) => (dir === 'toServer' ? null : f);
    const echoesBefore = l.labels('server').filter((x) => x === 'LCP 9').length;
    await l.run(interval * (failures + 1) - 200);
    expect(l.rec.server.down).toBeUndefined();
    await l.run(interval + 200);
    expect(l.rec.server.down?.reason).toBe('echo-timeout');
    expect(l.labels('server').filter((x) => x === 'LCP 9').length - echoesBefore).toBe(failures);
    // Declared dead `failures` intervals after the first unanswered Echo-Request.
    const firstUnanswered = l.trace.find((t) => t.dir === 'toClient' && t.at > silentFrom && t.frame[4] === Code.EchoRequest)!.at;
    expect(l.rec.server.downAt! - firstUnanswered).toBe(interval * failures);
    expect(addresses.used).toBe(0);
  });

  it('terminate from the server: client down peer-terminated, lease released', async () => {
    const { link: l, addresses } = link();
    await l.connect();
    const t0 = l.clock.now();
    l.server.close('admin', 'operator request');
    await l.settle();
    expect(l.rec.server.down).toEqual({ reason: 'admin', detail: 'operator request', wasUp: true });
    expect(l.rec.server.downAt).toBe(t0);
    expect(addresses.used).toBe(0);
    // The peer waits one Restart interval in Stopping (RFC 1661 zrc) before it finishes.
    expect(l.rec.client.down).toBeUndefined();
    await l.run(3_000);
    expect(l.rec.client.down?.reason).toBe('peer-terminated');
    expect(l.rec.client.down?.detail).toBe('admin');
  });

  it('terminate from the client: server down peer-terminated, lease released', async () => {
    const { link: l, addresses } = link();
    await l.connect();
    l.client.close();
    await l.settle();
    await l.run(3_000);
    expect(l.rec.client.down?.reason).toBe('admin');
    expect(l.rec.server.down?.reason).toBe('peer-terminated');
    expect(addresses.used).toBe(0);
  });

  it('terminate to a peer that never answers: down after Max-Terminate Restart intervals', async () => {
    const { link: l } = link();
    await l.connect();
    l.tamper = (dir, f) => (dir === 'toServer' ? null : f);
    const t0 = l.clock.now();
    l.server.close('admin');
    await l.run(10_000);
    expect(l.rec.server.downAt! - t0).toBe(6_000);
    expect(l.labels('server').filter((x) => x === 'LCP 5')).toHaveLength(2);
  });

  it('lower layer down: immediate down, lease released, nothing more sent', async () => {
    const { link: l, addresses } = link();
    await l.connect();
    const sent = l.trace.length;
    l.server.lowerDown();
    expect(l.rec.server.down).toEqual({ reason: 'lower-layer-down', detail: '', wasUp: true });
    expect(addresses.used).toBe(0);
    await l.run(10_000);
    expect(l.trace.filter((t) => t.dir === 'toClient').length).toBe(l.trace.slice(0, sent).filter((t) => t.dir === 'toClient').length);
  });

  it('pool exhaustion refuses the second session cleanly and leaves the first alone', async () => {
    const addresses = pool(['198.18.10.10/32']);
    const first = link({ addresses });
    await first.link.connect();
    expect(first.link.rec.server.up?.ipv4?.peerAddress).toBe('198.18.10.10');
    const second = link({ addresses });
    await second.link.connect();
    await second.link.run(10_000);
    expect(second.link.rec.server.down?.reason).toBe('pool-exhausted');
    expect(second.link.server.counters.allocationFailures).toBe(1);
    expect(second.link.rec.client.down?.reason).toBe('peer-terminated');
    expect(first.link.rec.server.down).toBeUndefined();
    expect(addresses.used).toBe(1);
    first.link.server.lowerDown();
    expect(addresses.used).toBe(0);
  });

  it("a user's static address is handed out", async () => {
    const { link: l } = link({ username: 'dave', password: 'pw-dave' });
    await l.connect();
    expect(l.rec.client.up?.ipv4?.localAddress).toBe('198.18.10.200');
  });

  it('IP data flows both ways once up (no MPPE), framed with what the peer negotiated', async () => {
    const { link: l } = link({ serverMppe: { policy: 'deny' }, client: { lcp: { requestPfc: true, requestAcfc: true } } });
    await l.connect();
    expect(l.rec.server.up?.pfc).toBe(true);
    expect(l.rec.server.up?.acfc).toBe(true);
    expect(l.rec.client.up?.pfc).toBe(false);
    const pkt = new Uint8Array([0x45, 0, 0, 20, 1, 2, 3, 4]);
    expect(l.server.sendData(PPP_IPV4, pkt)).toBe(true);
    expect(l.client.sendData(PPP_IPV4, pkt)).toBe(true);
    await l.settle();
    expect(l.rec.client.data.map((d) => Array.from(d.payload))).toEqual([Array.from(pkt)]);
    expect(l.rec.server.data.map((d) => Array.from(d.payload))).toEqual([Array.from(pkt)]);
    // Server -> client data went out with ACFC and PFC: one protocol octet, no ff 03.
    const dataFrame = l.trace.filter((t) => t.dir === 'toClient').at(-1)!.frame;
    expect(dataFrame[0]).toBe(0x21);
  });
});
