/**
 * What the tunnel clients (src/client/sstp.ts, src/client/pptp.ts) do the
 * same way around their protocol: the TCP connection (optionally from
 * inside a network namespace), the TUN device with the assigned address and
 * the routes, the errors a failed attempt maps to, and `vpngw connect`'s
 * life in a terminal (the "connected" line, Ctrl-C / SIGTERM as a proper
 * teardown, how the end is reported).
 *
 * Client life (each client's own states):
 *
 *   Connecting ──tunnel up, TUN ready──► Connected ──close() / server hang-up / failure──► Closing ──► Closed
 *        └───────────────────────────── failure ─────────────────────────────────────────────────┘
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import * as abi from '../../assembly/abi.js';
import { VpnError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { Attachment, DataPlane } from '../dataplane/engine.js';
import { native } from '../dataplane/native.js';
import type { PppDownInfo } from '../ppp/index.js';
import type { AuthFailure } from '../ppp/auth/types.js';
import type { ClientOptions } from '../cli/plugins.js';

const pexec = promisify(execFile);

// Our choices.
/** The whole set-up (transport, protocol hand-shake, PPP), before giving up. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_TUN_NAME = 'vpngwc0';
/** After our close(), how long the TCP connection may take to flush before it is destroyed. */
export const CLIENT_LINGER_MS = 1_000;
/** Bound of each `ip route` call. */
const IP_COMMAND_TIMEOUT_MS = 10_000;

export enum ClientPhase {
  Connecting = 'Connecting',
  Connected = 'Connected',
  Closing = 'Closing',
  Closed = 'Closed',
}

/**
 * TCP to `host`:`port` (connecting to `address` when given, e.g. the
 * resolved IPv4 one), from inside `netns` when given; Nagle off (the tunnel
 * carries interactive traffic and the inner TCP's own ACKs). A failure is
 * ERR_CONNECT.
 */
export function connectTcp(o: { host: string; port: number; address?: string; netns?: string | undefined }): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    try {
      socket = o.netns !== undefined ? new net.Socket({ fd: native.tcpSocket({ netns: o.netns }) }) : new net.Socket();
    } catch (e) {
      reject(e);
      return;
    }
    const fail = (e: Error) => {
      socket.destroy();
      reject(e instanceof VpnError ? e : new VpnError('ERR_CONNECT', `cannot connect to ${o.host}:${o.port}: ${e.message}`, { cause: e }));
    };
    socket.once('error', fail);
    socket.connect(o.port, o.address ?? o.host, () => {
      socket.off('error', fail);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** End our side of the TCP connection, then destroy it after CLIENT_LINGER_MS. */
export function endSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  socket.end();
  setTimeout(() => socket.destroy(), CLIENT_LINGER_MS).unref();
}

/** A client's TUN device, attached to its engine. */
export interface ClientTun {
  fd: number;
  name: string;
  attachment: Attachment;
}

/**
 * The TUN device for an assigned address: `address`/32 with `mtu`, up;
 * routes to the gateway's inner address and to each of `routes` through it
 * (`ip route replace`, in `netns` when given); attached to the engine, whose
 * default session for what it reads becomes `session`.
 */
export async function openClientTun(
  dp: DataPlane,
  o: { protocol: string; name: string; netns?: string | undefined; address: string; gateway: string; mtu: number; routes: readonly string[]; session: number; log: Logger },
): Promise<ClientTun> {
  const ns = o.netns !== undefined ? { netns: o.netns } : {};
  const dev = native.openTun(o.name, ns);
  try {
    native.configureInterface(dev.name, { ...ns, ipv4: o.address, prefixLen: 32, mtu: o.mtu, up: true });
    const ipArgs = (args: string[]) => (o.netns !== undefined ? ['-n', o.netns, ...args] : args);
    for (const prefix of [`${o.gateway}/32`, ...o.routes]) {
      await pexec('ip', ipArgs(['route', 'replace', prefix, 'dev', dev.name]), { timeout: IP_COMMAND_TIMEOUT_MS });
    }
    const attachment = dp.attach(dev.name, dev.fd, 'tun', abi.RingId.TUN_RX, abi.RingId.TUN_TX);
    dp.wasm.setDefaultSession(o.session);
    o.log.info({ tun: dev.name, address: o.address, gateway: o.gateway, routes: o.routes, mtu: o.mtu }, `${o.protocol}: TUN device up`);
    return { fd: dev.fd, name: dev.name, attachment };
  } catch (e) {
    native.close(dev.fd);
    throw e;
  }
}

/** Detach and close the TUN device (it goes away with its fd, and its routes with it). */
export function closeClientTun(dp: DataPlane, tun: ClientTun): void {
  dp.detach(tun.attachment);
  native.close(tun.fd);
}

/** What authentication ended as, when it is why the attempt failed (ERR_AUTH_REJECTED). */
export function authError(auth: AuthFailure | undefined, ppp: PppDownInfo | undefined): VpnError | undefined {
  if (auth) return new VpnError('ERR_AUTH_REJECTED', `authentication as ${auth.username ?? '?'} refused (${auth.reason}): ${auth.message}`);
  if (ppp?.reason === 'auth-failed') return new VpnError('ERR_AUTH_REJECTED', `authentication refused: ${ppp.detail}`);
  return undefined;
}

/**
 * PPP ending by itself (not because the tunnel under it went) before the
 * tunnel was up: ERR_PEER_CLOSED when the server said goodbye (LCP
 * Terminate-Request: e.g. a gateway shutting down), else ERR_PROTOCOL.
 */
export function pppEndError(ppp: PppDownInfo | undefined): VpnError | undefined {
  if (!ppp || ppp.reason === 'lower-layer-down') return undefined;
  const code = ppp.reason === 'peer-terminated' ? 'ERR_PEER_CLOSED' : 'ERR_PROTOCOL';
  return new VpnError(code, `PPP ended before the tunnel was up: ${ppp.reason}${ppp.detail ? ` (${ppp.detail})` : ''}`);
}

/** `--route` values: IPv4 prefixes like 10.0.0.0/8 (`ip route` gets nothing else from us); ERR_USAGE otherwise. */
export function checkRoutes(routes: readonly string[] | undefined): void {
  for (const r of routes ?? []) {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(r);
    if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) throw new VpnError('ERR_USAGE', `--route ${r} is not an IPv4 prefix like 10.0.0.0/8`);
  }
}

/** The host (without IPv6 brackets) and port of a `vpngw connect` URL. */
export function urlHostPort(url: URL, defaultPort: number): { host: string; port: number } {
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : defaultPort };
}

/** What `vpngw connect` needs of a connected client. */
export interface HeldTunnel<E extends { initiator: 'local' | 'peer' | 'failure' }> {
  readonly ipv4: string;
  readonly gateway: string;
  readonly mtu: number;
  readonly dns: readonly string[];
  readonly tunName: string | undefined;
  readonly ended: Promise<E>;
  close(reason?: string): Promise<E>;
}

/**
 * `vpngw connect` once the tunnel is up: print the "connected" line
 * (`extra` after the MTU, e.g. the MPPE mode), hold the tunnel until the
 * server ends it or the signal aborts (Ctrl-C, SIGTERM: a proper teardown,
 * then resolve: exit 0). A server's hang-up resolves too ("the server
 * disconnected"), unless `peerError` makes an error of how it ended (a dead
 * tunnel, not a goodbye).
 */
export async function holdTunnel<E extends { initiator: 'local' | 'peer' | 'failure' }>(
  opts: ClientOptions,
  client: HeldTunnel<E>,
  o: { extra?: string; peerError(end: E): VpnError | undefined },
): Promise<void> {
  opts.progress(
    `connected: address ${client.ipv4} on ${client.tunName}, gateway ${client.gateway}, MTU ${client.mtu}${o.extra ?? ''}` +
      `${client.dns.length ? `, DNS ${client.dns.join(' ')}` : ''}${opts.routes?.length ? `, routes ${opts.routes.join(' ')}` : ''} (Ctrl-C disconnects)`,
  );
  const onAbort = () => void client.close('interrupted');
  opts.signal.addEventListener('abort', onAbort, { once: true });
  if (opts.signal.aborted) onAbort();
  try {
    const end = await client.ended;
    if (end.initiator === 'peer') {
      const err = o.peerError(end);
      if (err) throw err;
      opts.progress('the server disconnected');
    }
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
  }
}
