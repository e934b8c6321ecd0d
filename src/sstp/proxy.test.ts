/**
 * SSTP behind an L4 load balancer (sstp.proxyProtocol): the real TLS
 * listener and client on loopback, the client writing the PROXY header a
 * load balancer would (beforeTls). The header's source becomes the session's
 * peer (listing, log lines, per-source half-open bound and authentication
 * throttle); connections without a valid header are closed and counted;
 * without proxyProtocol a header is just bad TLS.
 */
import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import { ByteWriter } from '../util/decode.js';
import { createLogger } from '../util/log.js';
import { connectSstp } from '../client/sstp.js';
import { PROXY_V2_SIGNATURE } from '../net/proxy-protocol.js';
import { DEFAULT_PROXY_HEADER_TIMEOUT_MS } from '../net/proxy-socket.js';
import { isTrusted, trustedProxies } from './service.js';
import { startLoopbackSstp } from '../../test/lib/sstp-loopback.js';

/** A v2 PROXY header over TCP/IPv4 as section 2.2 lays it out (ver 2, cmd PROXY, 0x11, length 12). */
function v2Tcp4(src: string, sport: number, dst: string, dport: number): Uint8Array {
  return new ByteWriter()
    .bytes(PROXY_V2_SIGNATURE)
    .u8(0x21)
    .u8(0x11)
    .u16(12)
    .bytes(src.split('.').map(Number))
    .bytes(dst.split('.').map(Number))
    .u16(sport)
    .u16(dport)
    .finish();
}

/** TCP/IPv6 (0x21, length 36). */
function v2Tcp6(src: readonly number[], sport: number, dport: number): Uint8Array {
  return new ByteWriter().bytes(PROXY_V2_SIGNATURE).u8(0x21).u8(0x21).u16(36).bytes(src).bytes(new Uint8Array(15)).u8(1).u16(sport).u16(dport).finish();
}

/** LOCAL (ver 2, cmd 0), UNSPEC, no address: a load balancer's health check. */
const V2_LOCAL = new ByteWriter().bytes(PROXY_V2_SIGNATURE).u8(0x20).u8(0x00).u16(0).finish();

type LogLine = Record<string, unknown> & { msg: string };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(o: { proxyProtocol?: boolean; limits?: string; trusted?: string } = {}) {
  const lines: LogLine[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) } });
  const { gateway, service, metrics, port, close } = await startLoopbackSstp({
    sstp: `, proxyProtocol: ${o.proxyProtocol ?? true}, proxyTrusted: [${o.trusted ?? ''}]`,
    ...(o.limits !== undefined ? { limits: o.limits } : {}),
    log,
  });
  cleanups.push(close);
  const client = (header: ((raw: net.Socket) => Uint8Array) | Uint8Array | undefined, user = 'alice', password = `pw-${user}`) =>
    connectSstp({
      host: '127.0.0.1',
      port,
      username: user,
      password,
      fingerprint: service.certificate!.fingerprint256,
      tun: false,
      connectTimeoutMs: 10_000,
      ...(header ? { beforeTls: (raw: net.Socket) => void raw.write(typeof header === 'function' ? header(raw) : header) } : {}),
    });
  /** A bare TCP connection that writes `bytes` and resolves when the gateway closes it (bounded). */
  const raw = (bytes: Uint8Array | string | undefined) =>
    new Promise<{ socket: net.Socket; closed: Promise<number> }>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        const t0 = performance.now();
        if (bytes !== undefined) s.write(bytes);
        const closed = new Promise<number>((r, reject) => {
          const bound = setTimeout(() => reject(new Error('the gateway did not close the connection')), DEFAULT_PROXY_HEADER_TIMEOUT_MS + 5_000);
          s.once('close', () => {
            clearTimeout(bound);
            r(performance.now() - t0);
          });
        });
        closed.catch(() => undefined);
        resolve({ socket: s, closed });
      });
      s.on('error', () => undefined);
      s.resume();
      cleanups.push(() => void s.destroy());
    });
  return { gateway, service, metrics, port, client, raw, lines };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SSTP with sstp.proxyProtocol', () => {
  it('v2 header: the tunnel comes up; the listing and every log line of the session carry the client the header named', async () => {
    const t = await start();
    const c = await t.client(v2Tcp4('198.18.77.9', 40000, '127.0.0.1', t.port));
    const [s] = t.gateway.sessions.list();
    expect(s).toMatchObject({ protocol: 'sstp', user: 'alice', peer: '198.18.77.9:40000', state: 'up' });
    const own = t.lines.filter((l) => l.session === s!.id);
    expect(own.length).toBeGreaterThan(3);
    expect(new Set(own.map((l) => l.peer))).toEqual(new Set(['198.18.77.9:40000']));
    expect(own.some((l) => l.msg === 'sstp: session up')).toBe(true);
    // The load balancer's address appears only as `via` on the header line.
    expect(t.lines.find((l) => l.msg === 'sstp: PROXY header read')).toMatchObject({ peer: '198.18.77.9:40000', via: expect.stringMatching(/^127\.0\.0\.1:\d+$/), version: 2, command: 'proxy' });
    await c.close();
  });

  it('v1 header (TCP4) and v2 over IPv6: same', async () => {
    const t = await start();
    const a = await t.client(new ByteWriter().ascii(`PROXY TCP4 198.18.77.10 127.0.0.1 40001 ${t.port}\r\n`).finish(), 'alice');
    const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x09];
    const b = await t.client(v2Tcp6(v6, 40002, t.port), 'bob');
    const peers = Object.fromEntries(t.gateway.sessions.list().map((s) => [s.user, s.peer]));
    expect(peers).toEqual({ alice: '198.18.77.10:40001', bob: '[2001:db8::9]:40002' });
    await Promise.all([a.close(), b.close()]);
  });

  it('LOCAL (health check): the TCP peer is the peer', async () => {
    const t = await start();
    let local = 0;
    const c = await t.client((raw) => {
      local = raw.localPort!;
      return V2_LOCAL;
    });
    expect(t.gateway.sessions.list()[0]?.peer).toBe(`127.0.0.1:${local}`);
    await c.close();
  });

  it('sstp.proxyTrusted: a header from a trusted balancer is used; any other source is closed before its header is read', async () => {
    const ok = await start({ trusted: '198.18.0.0/15, 127.0.0.0/8' });
    const c = await ok.client(v2Tcp4('198.18.77.9', 40000, '127.0.0.1', ok.port));
    expect(ok.gateway.sessions.list()[0]?.peer).toBe('198.18.77.9:40000');
    await c.close();
    expect(ok.service.counters.proxyUntrusted).toBe(0);

    const t = await start({ trusted: '198.18.0.0/15, fd00::/64' });
    const { closed } = await t.raw(v2Tcp4('198.18.77.9', 40000, '127.0.0.1', t.port));
    expect(await closed).toBeLessThan(1_000);
    expect(t.service.counters.proxyUntrusted).toBe(1);
    expect(await t.metrics.text()).toMatch(/^vpngw_proxy_protocol_refused_total\{reason="untrusted"\} 1$/m);
    expect(t.service.counters.proxyRefused.timeout).toBe(0);
    expect(t.gateway.sessions.list()).toHaveLength(0);
    expect(t.lines.find((l) => l.msg === 'sstp: connection closed: not from a trusted proxy (sstp.proxyTrusted)')).toMatchObject({ level: 'warn', peer: '127.0.0.1' });
  });

  it('trustedProxies / isTrusted: IPv4, IPv6 and IPv4-mapped peers', () => {
    const l = trustedProxies(['10.1.0.0/16', 'fd00:1::/64', '192.0.2.7/32'])!;
    expect(trustedProxies([])).toBeUndefined();
    expect(isTrusted(l, '10.1.200.3')).toBe(true);
    expect(isTrusted(l, '::ffff:10.1.0.9')).toBe(true);
    expect(isTrusted(l, '10.2.0.1')).toBe(false);
    expect(isTrusted(l, 'fd00:1::42')).toBe(true);
    expect(isTrusted(l, 'fd00:2::42')).toBe(false);
    expect(isTrusted(l, '192.0.2.7')).toBe(true);
    expect(isTrusted(l, '192.0.2.8')).toBe(false);
    expect(isTrusted(l, undefined)).toBe(false);
  });

  it('no header: closed when the header deadline (min(limits.handshakeTimeout, 5 s)) passes, counted as timeout', async () => {
    const t = await start({ limits: 'handshakeTimeout: 1s' });
    const { closed } = await t.raw(undefined);
    const ms = await closed;
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(DEFAULT_PROXY_HEADER_TIMEOUT_MS);
    expect(t.service.counters.proxyRefused).toEqual({ signature: 0, version: 0, length: 0, invalid: 0, timeout: 1, closed: 0 });
    expect(await t.metrics.text()).toMatch(/^vpngw_proxy_protocol_refused_total\{reason="timeout"\} 1$/m);
    expect(t.lines.find((l) => l.msg === 'sstp: connection closed: no valid PROXY protocol header')).toMatchObject({ level: 'info', peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/), reason: 'timeout' });
  });

  it('a client speaking TLS straight away, garbage, a bad version, an oversize or lying header, a half header: closed and counted by reason', async () => {
    const t = await start();
    await expect(t.client(undefined)).rejects.toMatchObject({ code: 'ERR_TLS' });
    const bad = (b: Uint8Array, i: number, v: number) => {
      const c = b.slice();
      c[i] = v;
      return c;
    };
    const good = v2Tcp4('198.18.77.9', 1, '127.0.0.1', 443);
    const cases = [
      'GET / HTTP/1.1\r\n\r\n',
      bad(good, 12, 0x11), // version 1 in a v2 header
      bad(bad(good, 14, 0xff), 15, 0xff), // Length 65535
      bad(good, 15, 8), // Length 8: shorter than the TCP/IPv4 block
      'PROXY TCP4 198.18.77.09 127.0.0.1 1 443\r\n',
    ];
    for (const c of cases) expect(await (await t.raw(c)).closed).toBeGreaterThanOrEqual(0);
    // Half a header, then the client goes.
    const half = await t.raw(good.subarray(0, 20));
    half.socket.end();
    await half.closed;
    await wait(50);
    expect(t.service.counters.proxyRefused).toEqual({ signature: 2, version: 1, length: 2, invalid: 1, timeout: 0, closed: 1 });
    expect(t.service.counters.accepted).toBe(0);
    expect(t.gateway.sessions.size).toBe(0);
  });

  it('the half-open bound counts the client the header names, not the load balancer', async () => {
    const t = await start({ limits: 'maxHalfOpenPerSource: 1' });
    // Two clients through the same TCP peer (127.0.0.1): both admitted; a second from one of them is not.
    const a = await t.raw(v2Tcp4('198.18.77.20', 1, '127.0.0.1', 443));
    const b = await t.raw(v2Tcp4('198.18.77.21', 1, '127.0.0.1', 443));
    await wait(100);
    const c = await t.raw(v2Tcp4('198.18.77.20', 2, '127.0.0.1', 443));
    await c.closed;
    expect([a.socket.destroyed, b.socket.destroyed]).toEqual([false, false]);
    expect(t.service.counters.refusedHalfOpen).toBe(1);
    expect(t.lines.find((l) => l.msg === 'sstp: refusing a connection: too many unfinished set-ups from this source')).toMatchObject({ source: '198.18.77.20', via: '127.0.0.1' });
    // Once it is gone the source may come again, and a tunnel that is up no longer counts.
    a.socket.destroy();
    await a.closed;
    await wait(50);
    const up = await t.client(v2Tcp4('198.18.77.20', 3, '127.0.0.1', 443));
    const again = await t.client(v2Tcp4('198.18.77.20', 4, '127.0.0.1', 443), 'bob');
    expect(t.gateway.sessions.list().filter((s) => s.state === 'up')).toHaveLength(2);
    await Promise.all([up.close(), again.close()]);
  });

  it('the per-source authentication throttle counts the client the header names', async () => {
    const t = await start({ limits: 'authFailuresPerSourcePerMinute: 1' });
    await expect(t.client(v2Tcp4('198.18.77.30', 1, '127.0.0.1', 443), 'alice', 'wrong')).rejects.toMatchObject({ code: 'ERR_AUTH_REJECTED' });
    // The right password from the same client is refused without a look; another client behind the same balancer gets in.
    await expect(t.client(v2Tcp4('198.18.77.30', 2, '127.0.0.1', 443), 'alice')).rejects.toMatchObject({ code: 'ERR_AUTH_REJECTED' });
    expect(t.lines.find((l) => l.msg === 'authentication refused: too many failures from this source')).toMatchObject({ source: '198.18.77.30', peer: '198.18.77.30:2' });
    const ok = await t.client(v2Tcp4('198.18.77.31', 1, '127.0.0.1', 443), 'alice');
    expect(t.gateway.sessions.list()).toMatchObject([{ peer: '198.18.77.31:1', state: 'up' }]);
    await ok.close();
  });

  it('stop() closes connections still waiting for their header', async () => {
    const t = await start();
    const { closed } = await t.raw(Uint8Array.from(PROXY_V2_SIGNATURE));
    await wait(50);
    await t.gateway.shutdown('test', 1_000);
    expect(await closed).toBeLessThan(DEFAULT_PROXY_HEADER_TIMEOUT_MS);
  });
});

describe('SSTP without sstp.proxyProtocol', () => {
  it('a PROXY header is bad TLS: the handshake fails and is counted', async () => {
    const t = await start({ proxyProtocol: false });
    await expect(t.client(v2Tcp4('198.18.77.9', 40000, '127.0.0.1', t.port))).rejects.toMatchObject({ code: 'ERR_TLS' });
    await wait(50);
    expect(t.service.counters.tlsFailures).toBe(1);
    expect(t.service.counters.proxyRefused.signature).toBe(0);
    expect(await t.metrics.text()).toMatch(/^vpngw_tls_handshake_failures_total\{reason="protocol_version"\} 1$/m);
  });
});
