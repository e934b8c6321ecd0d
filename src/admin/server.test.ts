import { describe, it, expect, afterEach } from 'vitest';
import { GatewayMetrics } from '../metrics/registry.js';
import { startAdminServer, tokenMatches, type AdminServer } from './server.js';
import type { GatewayControl, SessionInfo } from './types.js';

const TOKEN = 'test-token-0123456789abcdef';

function session(id: string, user: string | null, extra: Partial<SessionInfo> = {}): SessionInfo {
  return {
    id,
    protocol: 'sstp',
    user,
    peer: '198.18.0.2:50000',
    innerAddress: '198.18.128.2',
    state: 'up',
    since: '2026-01-01T00:00:00.000Z',
    bytesIn: 100,
    bytesOut: 200,
    ...extra,
  };
}

class FakeGateway implements GatewayControl {
  isReady = true;
  list = [session('s1', 'alice'), session('s2', 'bob', { protocol: 'pptp' }), session('s3', 'alice', { state: 'authenticating' })];
  killed: { id?: string; user?: string; reason: string }[] = [];
  ready() {
    return this.isReady;
  }
  sessions() {
    return this.list;
  }
  async kill(id: string, reason: string) {
    const i = this.list.findIndex((s) => s.id === id);
    if (i < 0) return false;
    this.killed.push({ id, reason });
    this.list.splice(i, 1);
    return true;
  }
  async killUser(user: string, reason: string) {
    const mine = this.list.filter((s) => s.user === user);
    this.list = this.list.filter((s) => s.user !== user);
    this.killed.push({ user, reason });
    return mine.length;
  }
}

let server: AdminServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(opts: { token?: string; listen?: string; metrics?: boolean } = {}) {
  const gw = new FakeGateway();
  const metrics = opts.metrics === false ? undefined : new GatewayMetrics(undefined, { defaultMetrics: false });
  server = await startAdminServer({ listen: opts.listen ?? '127.0.0.1', port: 0, token: opts.token, gateway: gw, metrics });
  return { gw, url: server.url };
}

const auth = { authorization: `Bearer ${TOKEN}` };

describe('admin API over HTTP on loopback', () => {
  it('GET /healthz and /readyz', async () => {
    const { gw, url } = await start();
    let r = await fetch(`${url}/healthz`);
    expect([r.status, await r.text()]).toEqual([200, 'ok\n']);
    r = await fetch(`${url}/readyz`);
    expect([r.status, await r.text()]).toEqual([200, 'ready\n']);
    gw.isReady = false;
    r = await fetch(`${url}/readyz`);
    expect([r.status, await r.text()]).toEqual([503, 'not ready\n']);
  });

  it('GET /metrics serves the registry in the Prometheus text format', async () => {
    const { url } = await start();
    const r = await fetch(`${url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    expect(text).toContain('# TYPE vpngw_sessions gauge');
    expect(text).toContain('vpngw_sessions{protocol="sstp",state="up"} 0');
  });

  it('GET /metrics is 404 when metrics are disabled', async () => {
    const { url } = await start({ metrics: false });
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
  });

  it('GET /sessions lists sessions as JSON', async () => {
    const { url } = await start();
    const r = await fetch(`${url}/sessions`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await r.json()) as SessionInfo[];
    expect(body.map((s) => s.id)).toEqual(['s1', 's2', 's3']);
    expect(body[0]).toEqual(session('s1', 'alice'));
  });

  it('DELETE /sessions/:id tears one down, 404 when unknown', async () => {
    const { gw, url } = await start();
    let r = await fetch(`${url}/sessions/s2?reason=maintenance`, { method: 'DELETE' });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ id: 's2', killed: true });
    expect(gw.killed).toEqual([{ id: 's2', reason: 'maintenance' }]);
    r = await fetch(`${url}/sessions/s2`, { method: 'DELETE' });
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ error: { code: 'ERR_ADMIN', message: 'no session s2' } });
  });

  it('DELETE /sessions?user=U tears down all of a user; without user it is a 400', async () => {
    const { gw, url } = await start();
    let r = await fetch(`${url}/sessions?user=alice`, { method: 'DELETE' });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ user: 'alice', killed: 2 });
    expect(gw.list.map((s) => s.id)).toEqual(['s2']);
    expect(gw.killed).toEqual([{ user: 'alice', reason: 'administrative disconnect' }]);
    r = await fetch(`${url}/sessions`, { method: 'DELETE' });
    expect(r.status).toBe(400);
  });

  it('unknown paths are 404, wrong methods 405 with Allow', async () => {
    const { url } = await start();
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    let r = await fetch(`${url}/healthz`, { method: 'POST' });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, HEAD');
    r = await fetch(`${url}/sessions/s1`);
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('DELETE');
  });

  it('refuses a request body larger than the limit', async () => {
    const { url } = await start();
    const r = await fetch(`${url}/sessions/s1`, { method: 'DELETE', body: 'x'.repeat(4096) });
    expect(r.status).toBe(413);
  });
});

describe('bearer token', () => {
  it('with a token configured, every endpoint but the probes needs it: 401 with WWW-Authenticate', async () => {
    const { gw, url } = await start({ token: TOKEN });
    for (const [path, method] of [
      ['/metrics', 'GET'],
      ['/sessions', 'GET'],
      ['/sessions/s1', 'DELETE'],
      ['/sessions?user=alice', 'DELETE'],
    ] as const) {
      for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${TOKEN}x` }]) {
        const r = await fetch(`${url}${path}`, { method, headers });
        expect(r.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(r.headers.get('www-authenticate')).toBe('Bearer realm="vpngw"');
      }
    }
    expect(gw.killed).toEqual([]);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect((await fetch(`${url}/sessions`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${url}/metrics`, { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${url}/sessions/s1`, { method: 'DELETE', headers: auth })).status).toBe(200);
  });

  it('refuses to listen on a non-loopback address without a token', async () => {
    await expect(startAdminServer({ listen: '0.0.0.0', port: 0, gateway: new FakeGateway() })).rejects.toMatchObject({ code: 'ERR_ADMIN' });
  });

  it('tokenMatches compares whole tokens of any length', () => {
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(TOKEN.slice(0, -1), TOKEN)).toBe(false);
    expect(tokenMatches(`${TOKEN}0`, TOKEN)).toBe(false);
    expect(tokenMatches('', TOKEN)).toBe(false);
    expect(tokenMatches(undefined, TOKEN)).toBe(false);
  });

  it('a port in use is ERR_ADDRESS_IN_USE', async () => {
    const { url } = await start();
    const port = Number(new URL(url).port);
    await expect(startAdminServer({ listen: '127.0.0.1', port, gateway: new FakeGateway() })).rejects.toMatchObject({ code: 'ERR_ADDRESS_IN_USE' });
  });
});
