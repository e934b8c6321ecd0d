/**
 * The admin HTTP API (node:http, plain HTTP, loopback by default):
 *
 *   GET    /healthz              200 while the process runs (liveness)
 *   GET    /readyz               200 when the gateway is ready, else 503
 *   GET    /metrics              Prometheus text exposition (when enabled)
 *   GET    /sessions             JSON array of SessionInfo
 *   DELETE /sessions/:id         tear one session down (404 if unknown)
 *   DELETE /sessions?user=U      tear down every session of U
 *
 * Authentication: `Authorization: Bearer <token>`, compared in constant
 * time. A token is required when the listener is not on loopback (the config
 * refuses such a listener without one) and enforced whenever one is
 * configured, for every path except /healthz and /readyz: probes carry no
 * credentials and those answers reveal nothing. Failures are 401 with
 * `WWW-Authenticate: Bearer realm="vpngw"`.
 */
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { VpnError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/log.js';
import { isLoopback } from '../config/ipv4.js';
import type { GatewayControl } from './types.js';

// Our choices.
/** Requests carry no body; anything larger than this is refused. */
export const MAX_BODY_BYTES = 1024;
export const REQUEST_TIMEOUT_MS = 10_000;
/** How long DELETE waits for protocol teardowns before answering anyway. */
export const KILL_WAIT_MS = 15_000;

export interface AdminOptions {
  listen: string;
  port: number;
  /** Bearer token; required when `listen` is not loopback. */
  token?: string | undefined;
  /** Serve /metrics from this (undefined: metrics disabled, 404). */
  metrics?: { text(): Promise<string>; readonly contentType: string } | undefined;
  gateway: GatewayControl;
  log?: Logger;
}

export interface AdminServer {
  readonly address: string;
  readonly port: number;
  /** Base URL, e.g. `http://127.0.0.1:9477`. */
  readonly url: string;
  close(): Promise<void>;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time token check (hashing first makes the comparison length-independent). */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

function bearer(req: http.IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

const sendError = (res: http.ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  send(res, status, { error: { code, message } }, headers);

function withDeadline<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(fallback), ms);
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(fallback);
      },
    );
  });
}

export async function startAdminServer(opts: AdminOptions): Promise<AdminServer> {
  const log = opts.log ?? silentLogger;
  if (!isLoopback(opts.listen) && !opts.token) {
    throw new VpnError('ERR_ADMIN', `the admin API on ${opts.listen} (not loopback) needs a bearer token (admin.token)`);
  }
  const token = opts.token;

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const p = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const allow = (methods: string) => {
      if (methods.split(', ').includes(method)) return true;
      sendError(res, 405, 'ERR_ADMIN', `${method} is not allowed on ${p}`, { allow: methods });
      return false;
    };

    if (p === '/healthz') {
      if (allow('GET, HEAD')) send(res, 200, 'ok\n');
      return;
    }
    if (p === '/readyz') {
      if (!allow('GET, HEAD')) return;
      let ready = false;
      try {
        ready = opts.gateway.ready();
      } catch {
        ready = false;
      }
      send(res, ready ? 200 : 503, ready ? 'ready\n' : 'not ready\n');
      return;
    }

    if (token !== undefined && !tokenMatches(bearer(req), token)) {
      log.warn({ path: p, method, remote: req.socket.remoteAddress }, 'admin: request without a valid bearer token');
      sendError(res, 401, 'ERR_ADMIN', 'a valid bearer token is required', { 'www-authenticate': 'Bearer realm="vpngw"' });
      return;
    }

    if (p === '/metrics') {
      if (!opts.metrics) return sendError(res, 404, 'ERR_ADMIN', 'metrics are disabled (admin.metrics: false)');
      if (!allow('GET, HEAD')) return;
      const text = await opts.metrics.text();
      res.writeHead(200, { 'content-type': opts.metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
      return;
    }

    if (p === '/sessions') {
      if (method === 'GET' || method === 'HEAD') return send(res, 200, opts.gateway.sessions());
      if (!allow('GET, HEAD, DELETE')) return;
      const user = url.searchParams.get('user');
      if (!user) return sendError(res, 400, 'ERR_USAGE', 'DELETE /sessions needs ?user=NAME (or use DELETE /sessions/ID)');
      const reason = url.searchParams.get('reason') ?? 'administrative disconnect';
      log.info({ user, reason }, 'admin: disconnecting every session of a user');
      const killed = await withDeadline(opts.gateway.killUser(user, reason), KILL_WAIT_MS, -1);
      if (killed < 0) return sendError(res, 504, 'ERR_TIMEOUT', `teardown of ${user}'s sessions did not finish in ${KILL_WAIT_MS} ms`);
      return send(res, 200, { user, killed });
    }

    const m = /^\/sessions\/([^/]+)$/.exec(p);
    if (m) {
      if (!allow('DELETE')) return;
      const id = decodeURIComponent(m[1]!);
      const reason = url.searchParams.get('reason') ?? 'administrative disconnect';
      log.info({ session: id, reason }, 'admin: disconnecting a session');
      const killed = await withDeadline(opts.gateway.kill(id, reason), KILL_WAIT_MS, undefined);
      if (killed === undefined) return sendError(res, 504, 'ERR_TIMEOUT', `teardown of session ${id} did not finish in ${KILL_WAIT_MS} ms`);
      if (!killed) return sendError(res, 404, 'ERR_ADMIN', `no session ${id}`);
      return send(res, 200, { id, killed: true });
    }

    sendError(res, 404, 'ERR_ADMIN', `no such endpoint: ${p}`);
  };

  const server = http.createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS }, (req, res) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      sendError(res, 413, 'ERR_ADMIN', 'request body too large');
      req.destroy();
      return;
    }
    let seen = 0;
    req.on('data', (c: Buffer) => {
      seen += c.length;
      if (seen > MAX_BODY_BYTES) req.destroy();
    });
    handle(req, res).catch((e: unknown) => {
      log.error({ err: e instanceof Error ? { message: e.message, code: (e as VpnError).code } : String(e) }, 'admin: request failed');
      if (!res.headersSent) sendError(res, 500, 'ERR_ADMIN', 'internal error');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(
        new VpnError(
          e.code === 'EADDRINUSE' ? 'ERR_ADDRESS_IN_USE' : e.code === 'EACCES' ? 'ERR_PERMISSION' : 'ERR_ADMIN',
          `admin API cannot listen on ${opts.listen}:${opts.port}: ${e.code ?? e.message}`,
          { cause: e },
        ),
      );
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(opts.port, opts.listen);
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  log.info({ address: addr.address, port: addr.port, auth: token !== undefined }, 'admin: listening');
  return {
    address: addr.address,
    port: addr.port,
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
