/**
 * The SSTP service on loopback without root: a data plane with no TUN
 * device, the real TLS listener, the real client (connectSstp, tun: false).
 * Admission and bounds: sessions per user, total sessions (HTTP 503),
 * half-open connections per source, TLS below 1.2, graceful stop.
 */
import { describe, it, expect, afterEach, vi } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import { connectSstp } from '../client/sstp.js';
import { hashBitmask, normalizePeerAddress, sstpPolicyVerifier, SstpService, tlsFailureReason } from './service.js';
import type { Verifier } from '../ppp/auth/types.js';
import { startLoopbackSstp } from '../../test/lib/sstp-loopback.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(limits = '', sstp = '') {
  const { gateway, service, metrics, port, dp, close } = await startLoopbackSstp({ limits, sstp });
  cleanups.push(close);
  const client = (user = 'alice', password = `pw-${user}`) =>
    connectSstp({ host: '127.0.0.1', port, username: user, password, fingerprint: service.certificate!.fingerprint256, tun: false });
  return { gateway, service, metrics, port, client, dp };
}

describe('SstpService on loopback', () => {
  it('a client connects (generated certificate pinned), is listed with its address, and disconnects cleanly', async () => {
    const t = await start();
    const c = await t.client();
    expect(c.ipv4).toBe('198.18.128.2');
    expect(t.gateway.sessions.list()).toMatchObject([{ protocol: 'sstp', user: 'alice', innerAddress: '198.18.128.2', state: 'up' }]);
    await c.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(t.gateway.sessions.size).toBe(0);
    expect(t.dp.sessions.used).toBe(0);
  });

  it('turns Nagle off on both ends of the tunnel transport (TCP_NODELAY): small frames are not held back behind unacknowledged data', async () => {
    const setNoDelay = vi.spyOn(net.Socket.prototype, 'setNoDelay');
    try {
      const t = await start();
      const accepted: net.Socket[] = [];
      (t.service as unknown as { server: tls.Server }).server.on('connection', (s: net.Socket) => accepted.push(s));
      const c = await t.client();
      // Client: on its TCP socket before TLS. Server: every accepted socket (net.Server noDelay).
      expect(setNoDelay.mock.calls.filter(([on]) => on === true)).toHaveLength(1);
      expect(accepted).toHaveLength(1);
      const flag = Object.getOwnPropertySymbols(accepted[0]!).find((k) => k.description === 'kSetNoDelay');
      expect(flag && (accepted[0] as unknown as Record<symbol, unknown>)[flag]).toBe(true);
      await c.close();
    } finally {
      setNoDelay.mockRestore();
    }
  });

  it('sessions per user: the second login of a user at the limit is refused (ERR_AUTH_REJECTED), others get in', async () => {
    const t = await start('maxSessionsPerUser: 1');
    const a = await t.client('alice');
    await expect(t.client('alice')).rejects.toMatchObject({ code: 'ERR_AUTH_REJECTED' });
    const b = await t.client('bob');
    expect(await t.metrics.text()).toMatch(/^vpngw_auth_results_total\{method="eap-mschapv2",outcome="rate-limited"\} 1$/m);
    await Promise.all([a.close(), b.close()]);
  });

  it('total sessions: past limits.maxSessions the HTTP request gets 503', async () => {
    const t = await start('maxSessions: 1, maxSessionsPerUser: 1');
    const a = await t.client('alice');
    await expect(t.client('bob')).rejects.toMatchObject({ code: 'ERR_CONNECT', message: expect.stringMatching(/503/) });
    expect(t.service.counters.httpRejected).toBe(1);
    await a.close();
  });

  it('half-open connections per source are bounded', async () => {
    const t = await start('maxHalfOpenPerSource: 2');
    const socks = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(t.port, '127.0.0.1', () => resolve(s));
            s.on('error', () => undefined);
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(socks.map((s) => s.destroyed || s.readableEnded)).toEqual([false, false, true]);
    expect(t.service.counters.refusedHalfOpen).toBe(1);
    for (const s of socks) s.destroy();
    // Once they are gone the source may connect again; a connected session no longer counts as half-open.
    await new Promise((r) => setTimeout(r, 50));
    const cs = [await t.client('alice'), await t.client('bob'), await t.client('alice')];
    expect(t.gateway.sessions.list().filter((s) => s.state === 'up')).toHaveLength(3);
    await Promise.all(cs.map((c) => c.close()));
  });

  it('TLS 1.1 is refused and counted as protocol_version', async () => {
    const t = await start();
    const err = await new Promise<Error>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: t.port, rejectUnauthorized: false, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
      s.once('error', resolve);
      s.once('secureConnect', () => resolve(new Error('connected')));
    });
    expect(err.message).not.toBe('connected');
    await new Promise((r) => setTimeout(r, 50));
    expect(await t.metrics.text()).toMatch(/^vpngw_tls_handshake_failures_total\{reason="protocol_version"\} 1$/m);
  });

  it('sstp.tlsMaxVersion bounds the version offered: TLS 1.3 by default, TLS 1.2 when set', async () => {
    const version = (port: number) =>
      new Promise<string | null>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, maxVersion: 'TLSv1.3' });
        s.once('error', reject);
        s.once('secureConnect', () => {
          resolve(s.getProtocol());
          s.destroy();
        });
      });
    expect(await version((await start()).port)).toBe('TLSv1.3');
    const t = await start('', ', tlsMaxVersion: TLSv1.2');
    expect(await version(t.port)).toBe('TLSv1.2');
    // A whole tunnel still comes up over TLS 1.2.
    const c = await t.client();
    expect(t.gateway.sessions.list().filter((s) => s.state === 'up')).toHaveLength(1);
    await c.close();
  });

  it('graceful stop: connected clients get the protocol teardown (LCP Terminate, Call Disconnect)', async () => {
    const t = await start();
    const c = await t.client();
    await t.gateway.shutdown('stopping', 5_000);
    const end = await c.ended;
    expect(end.initiator).toBe('peer');
    expect(end.ppp?.reason).toBe('peer-terminated');
    expect(end.call?.reason).toBe('disconnected');
  });
});

describe('service helpers', () => {
  it('hash bitmask, peer address, TLS failure reasons', () => {
    expect(hashBitmask(['sha256', 'sha1'])).toBe(3);
    expect(hashBitmask(['sha1'])).toBe(1);
    expect(normalizePeerAddress('::ffff:198.18.0.2')).toBe('198.18.0.2');
    expect(normalizePeerAddress('fd00::2')).toBe('fd00::2');
    expect(tlsFailureReason(Object.assign(new Error('x'), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }))).toBe('timeout');
    expect(tlsFailureReason(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe('reset');
    expect(tlsFailureReason(Object.assign(new Error('unsupported protocol'), { code: 'ERR_SSL_UNSUPPORTED_PROTOCOL' }))).toBe('protocol_version');
    expect(tlsFailureReason(Object.assign(new Error('no shared cipher'), { code: 'ERR_SSL_NO_SHARED_CIPHER' }))).toBe('no_shared_cipher');
    expect(tlsFailureReason(new Error('something'))).toBe('other');
  });

  it('the policy verifier strips a per-user MPPE policy, enforces the per-user limit and reports every outcome', async () => {
    const inner: Verifier = {
      pap: async (_c, u) => ({ ok: true, username: u, attributes: { mppe: 'require', staticIpv4: '198.18.128.9' } }),
      chapMd5: async () => ({ ok: false, reason: 'bad-credentials', message: 'no' }),
      msChapV2: async () => ({ ok: false, reason: 'unknown-user', message: 'no' }),
    };
    const seen: string[] = [];
    let sessions = 0;
    const v = sstpPolicyVerifier(inner, { sessionsOf: () => sessions, maxPerUser: () => 1, outcome: (m, o) => seen.push(`${m}:${o}`) });
    const ctx = { tunnel: 'sstp' as const, peer: '198.18.0.2:1' };
    expect(await v.pap(ctx, 'u', new Uint8Array(0))).toEqual({ ok: true, username: 'u', attributes: { staticIpv4: '198.18.128.9' } });
    sessions = 1;
    expect(await v.pap(ctx, 'u', new Uint8Array(0))).toMatchObject({ ok: false, reason: 'rate-limited' });
    await v.chapMd5(ctx, 'u', 1, new Uint8Array(0), new Uint8Array(0));
    await v.msChapV2({ ...ctx, method: 'eap-mschapv2' }, 'u', new Uint8Array(0), new Uint8Array(0), new Uint8Array(0));
    expect(seen).toEqual(['pap:success', 'pap:rate-limited', 'chap-md5:bad-credentials', 'eap-mschapv2:unknown-user']);
  });
});
