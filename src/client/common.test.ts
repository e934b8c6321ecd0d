/**
 * What the two clients share, without a tunnel: `--route` checks, the URL's
 * host and port, the errors an attempt maps to, and `vpngw connect`'s hold
 * of a tunnel (the connected line, Ctrl-C as a proper close, how the end is
 * reported). The clients themselves run in src/client/pptp.test.ts,
 * src/sstp/service.test.ts, src/pptp/service.test.ts and test/*-cli.e2e.
 */
import { describe, it, expect } from 'vitest';
import { isVpnError, VpnError } from '../util/errors.js';
import { silentLogger } from '../util/log.js';
import { authError, checkRoutes, holdTunnel, pppEndError, urlHostPort, type HeldTunnel } from './common.js';

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return isVpnError(e) ? e.code : String(e);
  }
  return undefined;
};

describe('client helpers', () => {
  it('--route takes IPv4 prefixes only', () => {
    expect(code(() => checkRoutes(['10.0.0.0/8', '198.18.5.0/24', '0.0.0.0/0']))).toBeUndefined();
    expect(code(() => checkRoutes(undefined))).toBeUndefined();
    for (const bad of ['10.0.0.0', '10.0.0.256/8', '10.0.0.0/33', 'fd00::/8', '10.0.0.0/8 dev eth0', 'default']) expect(code(() => checkRoutes([bad])), bad).toBe('ERR_USAGE');
  });

  it('the URL gives the host without IPv6 brackets and the port or the default', () => {
    expect(urlHostPort(new URL('sstp://u@vpn.example.test'), 443)).toEqual({ host: 'vpn.example.test', port: 443 });
    expect(urlHostPort(new URL('pptp://u@[2001:db8::1]:1724'), 1723)).toEqual({ host: '2001:db8::1', port: 1724 });
  });

  it('maps a refused authentication, and PPP ending by itself, to their errors', () => {
    expect(authError({ ok: false, method: 'mschapv2', username: 'alice', reason: 'bad-credentials', message: 'E=691' }, undefined)?.message).toBe(
      'authentication as alice refused (bad-credentials): E=691',
    );
    expect(authError(undefined, { reason: 'auth-failed', detail: 'E=691 R=0', wasUp: false })).toMatchObject({ code: 'ERR_AUTH_REJECTED', message: 'authentication refused: E=691 R=0' });
    expect(authError(undefined, { reason: 'lcp-timeout', detail: '', wasUp: false })).toBeUndefined();
    expect(pppEndError({ reason: 'lcp-timeout', detail: 'no answer', wasUp: false })).toMatchObject({ code: 'ERR_PROTOCOL', message: 'PPP ended before the tunnel was up: lcp-timeout (no answer)' });
    // The tunnel under PPP went: the protocol's own error says why.
    // The server's own goodbye (e.g. a gateway shutting down) is the peer closing, not a protocol error.
    expect(pppEndError({ reason: 'peer-terminated', detail: 'shutting down', wasUp: false })).toMatchObject({ code: 'ERR_PEER_CLOSED' });
    expect(pppEndError({ reason: 'lower-layer-down', detail: '', wasUp: false })).toBeUndefined();
    expect(pppEndError(undefined)).toBeUndefined();
  });
});

describe('holdTunnel', () => {
  type End = { initiator: 'local' | 'peer' | 'failure'; why?: string };
  function tunnel() {
    let end!: (e: End) => void;
    const closes: string[] = [];
    const t: HeldTunnel<End> & { closes: string[]; end(e: End): void } = {
      ipv4: '198.18.128.10',
      gateway: '198.18.128.1',
      mtu: 1400,
      dns: ['198.18.128.53'],
      tunName: 'vpngwc0',
      ended: new Promise<End>((r) => (end = r)),
      close: (reason = 'closed by the user') => {
        closes.push(reason);
        end({ initiator: 'local' });
        return t.ended;
      },
      closes,
      end: (e) => end(e),
    };
    return t;
  }
  const opts = (signal: AbortSignal, lines: string[], routes?: string[]) => ({
    url: new URL('sstp://u@h'),
    username: 'u',
    password: 'p',
    log: silentLogger,
    signal,
    progress: (m: string) => void lines.push(m),
    ...(routes ? { routes } : {}),
  });

  it('prints the connected line, and on abort (Ctrl-C, SIGTERM) closes the tunnel properly and resolves', async () => {
    const ac = new AbortController();
    const lines: string[] = [];
    const t = tunnel();
    const held = holdTunnel(opts(ac.signal, lines, ['10.0.0.0/8']), t, { extra: ', MPPE 128-bit stateful', peerError: () => undefined });
    expect(lines).toEqual(['connected: address 198.18.128.10 on vpngwc0, gateway 198.18.128.1, MTU 1400, MPPE 128-bit stateful, DNS 198.18.128.53, routes 10.0.0.0/8 (Ctrl-C disconnects)']);
    ac.abort();
    await held;
    expect(t.closes).toEqual(['interrupted']);
    expect(lines).toHaveLength(1);
  });

  it('an already aborted signal closes at once', async () => {
    const ac = new AbortController();
    ac.abort();
    const t = tunnel();
    await holdTunnel(opts(ac.signal, []), t, { peerError: () => undefined });
    expect(t.closes).toEqual(['interrupted']);
  });

  it('a server hang-up resolves ("the server disconnected"), a dead tunnel rejects with the error peerError makes', async () => {
    const lines: string[] = [];
    const t = tunnel();
    const held = holdTunnel(opts(new AbortController().signal, lines), t, { peerError: (e) => (e.why ? new VpnError('ERR_PEER_CLOSED', `the tunnel went down: ${e.why}`) : undefined) });
    t.end({ initiator: 'peer' });
    await held;
    expect(lines.at(-1)).toBe('the server disconnected');

    const dead = tunnel();
    const p = holdTunnel(opts(new AbortController().signal, []), dead, { peerError: (e) => (e.why ? new VpnError('ERR_PEER_CLOSED', `the tunnel went down: ${e.why}`) : undefined) });
    dead.end({ initiator: 'peer', why: 'echo-timeout' });
    await expect(p).rejects.toMatchObject({ code: 'ERR_PEER_CLOSED', message: 'the tunnel went down: echo-timeout' });
  });
});
