/**
 * The PPTP client's failures before any tunnel exists (no root needed): the
 * CLI entry point refuses certificate options, a closed port is
 * ERR_CONNECT, an IPv6 literal is refused (GRE runs over IPv4 here), and a
 * server that closes right after accepting is ERR_PEER_CLOSED with nothing
 * left behind. The tunnel itself is tested back to back in
 * src/pptp/service.test.ts and in namespaces in test/pptp-*.e2e.test.ts.
 */
import { describe, it, expect } from 'vitest';
import net from 'node:net';
import { silentLogger } from '../util/log.js';
import { isVpnError } from '../util/errors.js';
import { DataPlane } from '../dataplane/engine.js';
import { connect, connectPptp } from './pptp.js';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(isVpnError(e), String(e)).toBe(true);
    return (e as { code: string }).code;
  }
  return 'resolved';
}

describe('PPTP client failures', () => {
  it('vpngw connect pptp:// refuses --fingerprint and --ca (PPTP has no certificate)', async () => {
    const base = { url: new URL('pptp://demo@127.0.0.1'), username: 'demo', password: 'x', log: silentLogger, signal: new AbortController().signal, progress: () => undefined };
    expect(await codeOf(connect({ ...base, fingerprint: 'AA' }))).toBe('ERR_USAGE');
    expect(await codeOf(connect({ ...base, ca: '/nonexistent' }))).toBe('ERR_USAGE');
  });

  it('a closed port is ERR_CONNECT; an IPv6 literal is ERR_USAGE', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const dp = new DataPlane({ maxSessions: 1, streamBuffers: false });
    try {
      expect(await codeOf(connectPptp({ host: '127.0.0.1', port, username: 'u', password: 'p', tun: false, dataplane: dp }))).toBe('ERR_CONNECT');
      expect(await codeOf(connectPptp({ host: '::1', port, username: 'u', password: 'p', tun: false, dataplane: dp }))).toBe('ERR_USAGE');
      expect(dp.sessions.used).toBe(0);
    } finally {
      dp.close();
    }
  });

  it('a server that closes the connection at once: ERR_PEER_CLOSED, the data-plane entry freed', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const dp = new DataPlane({ maxSessions: 1, streamBuffers: false });
    try {
      expect(await codeOf(connectPptp({ host: '127.0.0.1', port, username: 'u', password: 'p', tun: false, dataplane: dp }))).toBe('ERR_PEER_CLOSED');
      expect(dp.sessions.used).toBe(0);
    } finally {
      dp.close();
      server.close();
    }
  });
});
