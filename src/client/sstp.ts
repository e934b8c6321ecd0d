/**
 * The SSTP client: the same stack as the server in the client role, usable
 * in-process (tests, benchmarks: {@link connectSstp}) and from the command
 * line (`vpngw connect sstp://user@host[:port]`: {@link connect}).
 *
 *   TCP (optionally from inside a network namespace) ─► TLS 1.2+, server
 *   certificate verified (CA file or pinned SHA-256 fingerprint)
 *     ─► HTTP SSTP_DUPLEX_POST ─► 200: data-plane session attached (client role)
 *     ─► Call Connect Request / Ack ─► PPP (LCP, auth) ─► Call Connected with
 *        the crypto binding (HLAK from the PPP authentication, MS-SSTP 3.2.5.2)
 *     ─► IPCP up ─► data-plane session activated; TUN device with the
 *        assigned address, routes ─► connected
 *
 * Teardown (close(), Ctrl-C): LCP Terminate-Request, then SSTP Call
 * Disconnect; the TUN device goes away with its fd.
 *
 * Client life:
 *
 *   Connecting ──up──► Connected ──close() / server disconnect / failure──► Closing ──► Closed
 *        └────────────── failure (TLS, HTTP, auth, binding, timers) ───────────────────┘
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import * as abi from '../../assembly/abi.js';
import { VpnError, type ErrorCode } from '../util/errors.js';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import { logTransition, silentLogger, type Logger } from '../util/log.js';
import { DataPlane } from '../dataplane/engine.js';
import { PppSession, PPP_IPV4, type PppDownInfo, type PppUpInfo } from '../ppp/index.js';
import type { AuthFailure, AuthMethod } from '../ppp/auth/types.js';
import { terminatePpp } from '../tunnel/session.js';
import { AttributeId, type HashProtocol, type SstpTimers } from '../sstp/constants.js';
import { certificateHashes } from '../sstp/binding.js';
import type { SstpCallEnd } from '../sstp/call.js';
import { SstpClientCall } from '../sstp/client.js';
import { dataPacketBytes } from '../sstp/codec.js';
import { SstpHttpResponseParser, sstpHttpRequest } from '../sstp/http.js';
import { SstpStreamPath } from '../sstp/datapath.js';
import { parseFingerprint } from '../sstp/cert.js';
import { SSTP_MAX_MRU } from '../sstp/server-session.js';
import { coalescingWriter } from '../net/coalesce.js';
import type { ClientOptions } from '../cli/plugins.js';
import {
  ClientPhase,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_TUN_NAME,
  authError,
  checkRoutes,
  closeClientTun,
  connectTcp,
  endSocket,
  holdTunnel,
  openClientTun,
  pppEndError,
  urlHostPort,
  type ClientTun,
} from './common.js';

export { ClientPhase, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_TUN_NAME } from './common.js';

// Our choices.
/** Methods the client accepts, in order of preference (the server picks). */
export const DEFAULT_CLIENT_METHODS: readonly AuthMethod[] = ['eap-mschapv2', 'mschapv2', 'chap-md5', 'pap'];
/** The client's own engine is small: one session, short rings. */
const CLIENT_RING_SLOTS: Partial<Record<abi.RingId, number>> = {
  [abi.RingId.TUN_RX]: 512,
  [abi.RingId.TUN_TX]: 512,
  [abi.RingId.GRE_RX]: 0,
  [abi.RingId.GRE_TX]: 0,
  [abi.RingId.CTRL]: 64,
  [abi.RingId.INJECT]: 16,
  [abi.RingId.STREAM_IN]: 64,
  [abi.RingId.STREAM_OUT]: 64,
};

export interface SstpClientOptions {
  host: string;
  port?: number;
  /** TLS SNI and HTTP Host (default: `host` when it is a name). */
  serverName?: string;
  username: string;
  password: string;
  /** Pinned SHA-256 fingerprint of the server certificate (any case, colons optional). */
  fingerprint?: string;
  /** PEM of the CA(s) the server certificate must chain to (the host name is checked too). */
  ca?: string | Buffer;
  /** Open the TCP socket and the TUN device inside this network namespace. */
  netns?: string;
  /** A TUN device for the tunnel (default), or false: IP only through sendIp()/the engine's TUN_TX ring (tests). */
  tun?: { name?: string; routes?: readonly string[] } | false;
  /** Share one engine between several clients (tests, benchmarks); default: an engine of its own. */
  dataplane?: DataPlane;
  methods?: readonly AuthMethod[];
  log?: Logger;
  clock?: Clock;
  timers?: Partial<SstpTimers>;
  connectTimeoutMs?: number;
  /** LCP echo interval (0 disables). */
  lcpEchoIntervalMs?: number;
  /** Called with the connected TCP socket before TLS starts (tests: write a PROXY protocol header as a load balancer would). */
  beforeTls?: (socket: net.Socket) => void;
  /** Test hook: rewrite each write before it reaches TLS (e.g. flip a Compound MAC bit). */
  tamper?: (bytes: Uint8Array) => Uint8Array;
}

export interface SstpClientEnd {
  /** Closed by close() (local), by the server (peer), or failed. */
  initiator: 'local' | 'peer' | 'failure';
  call: SstpCallEnd | undefined;
  ppp: PppDownInfo | undefined;
  error?: VpnError;
}

export interface SstpClient {
  readonly ipv4: string;
  /** The server's inner address (IPCP peer). */
  readonly gateway: string;
  readonly dns: readonly string[];
  readonly mtu: number;
  readonly hashProtocol: HashProtocol;
  readonly tunName: string | undefined;
  readonly dataplane: DataPlane;
  /** The data-plane session index (shared engines: slot `session` of TUN_TX packets). */
  readonly sessionIndex: number;
  /** Time from start to connected, ms. */
  readonly setupMs: number;
  /** Send an IPv4 packet through the tunnel by the control plane (for a client without TUN). */
  sendIp(packet: Uint8Array): boolean;
  /** Resolves when the tunnel is gone, however it ended. */
  readonly ended: Promise<SstpClientEnd>;
  /** Proper teardown: LCP Terminate, SSTP Call Disconnect; resolves when closed. */
  close(reason?: string): Promise<SstpClientEnd>;
}

function isIpLiteral(h: string): boolean {
  return net.isIP(h) !== 0;
}

// Our choice: how many distinct TLS client contexts (one per CA bundle, one for pinning) a process keeps.
const SECURE_CONTEXT_CACHE_SIZE = 8;
const secureContexts = new Map<string, tls.SecureContext>();

/**
 * The TLS client context for a CA bundle (or none, when a pin is the whole
 * check). Building one parses the CA PEM and the cipher lists, a third of a
 * millisecond: a process running many clients (benchmarks, tests) builds each
 * once. Keyed by the CA's bytes, so a changed file gets a context of its own.
 */
function clientSecureContext(ca: string | Buffer | undefined): tls.SecureContext {
  const key = ca === undefined ? '' : createHash('sha256').update(ca).digest('hex');
  let ctx = secureContexts.get(key);
  if (!ctx) {
    ctx = tls.createSecureContext({ minVersion: 'TLSv1.2', ...(ca !== undefined ? { ca } : {}) });
    if (secureContexts.size >= SECURE_CONTEXT_CACHE_SIZE) secureContexts.delete(secureContexts.keys().next().value!);
    secureContexts.set(key, ctx);
  }
  return ctx;
}

/** Open the TLS connection and check the server certificate; resolves to the socket and the certificate's DER. */
async function openTls(o: SstpClientOptions, log: Logger): Promise<{ socket: tls.TLSSocket; certificate: Uint8Array }> {
  const port = o.port ?? 443;
  const pin = o.fingerprint !== undefined ? parseFingerprint(o.fingerprint) : undefined;
  if (o.fingerprint !== undefined && !pin) throw new VpnError('ERR_USAGE', `--fingerprint ${o.fingerprint} is not a SHA-256 fingerprint (64 hex digits)`);
  if (!pin && o.ca === undefined) {
    throw new VpnError('ERR_USAGE', 'refusing to connect without a way to verify the server certificate: give a CA file (--ca) or its SHA-256 fingerprint (--fingerprint)');
  }
  const serverName = o.serverName ?? (isIpLiteral(o.host) ? undefined : o.host);
  const raw = await connectTcp({ host: o.host, port, netns: o.netns });
  o.beforeTls?.(raw);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      socket: raw,
      // With a pin the fingerprint is the whole check; with a CA the chain and the name are.
      secureContext: clientSecureContext(pin ? undefined : o.ca),
      ...(serverName ? { servername: serverName } : {}),
      rejectUnauthorized: !pin,
      ...(!pin && !serverName ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(o.host, cert) } : {}),
    });
    const onError = (e: Error) => {
      socket.destroy();
      reject(new VpnError('ERR_TLS', `TLS with ${o.host}:${port} failed: ${e.message}`, { cause: e }));
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      // The X509Certificate view: the DER and the fingerprint without building getPeerCertificate()'s whole object.
      const cert = socket.getPeerX509Certificate();
      if (!cert) {
        socket.destroy();
        reject(new VpnError('ERR_TLS', 'the server presented no certificate'));
        return;
      }
      if (pin && cert.fingerprint256 !== pin) {
        socket.destroy();
        reject(new VpnError('ERR_TLS', `the server certificate's SHA-256 fingerprint ${cert.fingerprint256} is not the pinned ${pin}`));
        return;
      }
      log.info({ subject: cert.subject, fingerprint256: cert.fingerprint256, protocol: socket.getProtocol() }, 'sstp: TLS established, server certificate verified');
      resolve({ socket, certificate: new Uint8Array(cert.raw) });
    });
  });
}

/** Map how a client attempt ended to the error the caller sees. */
function failureOf(call: SstpCallEnd | undefined, ppp: PppDownInfo | undefined, auth: AuthFailure | undefined): VpnError {
  const refused = authError(auth, ppp);
  if (refused) return refused;
  if (call?.reason === 'aborted' && call.status?.attribId === AttributeId.CryptoBinding) {
    return new VpnError('ERR_CRYPTO_BINDING', `the server aborted the call: crypto binding refused (${call.detail})`);
  }
  const pppEnded = pppEndError(ppp);
  if (pppEnded) return pppEnded;
  if (call) {
    // The server hanging up (its Call Disconnect, or the connection closing) is not a protocol error.
    const code: ErrorCode = call.reason === 'transport-closed' || (call.reason === 'disconnected' && call.initiator === 'peer') ? 'ERR_PEER_CLOSED' : 'ERR_PROTOCOL';
    return new VpnError(code, `SSTP call ended before the tunnel was up: ${call.reason} (${call.detail})`);
  }
  return new VpnError('ERR_PEER_CLOSED', 'the connection closed before the tunnel was up');
}

/** Connect; resolves once IP flows, rejects (VpnError) when that cannot happen. */
export async function connectSstp(o: SstpClientOptions): Promise<SstpClient> {
  const clock = o.clock ?? systemClock;
  const log = (o.log ?? silentLogger).child({ protocol: 'sstp', role: 'client', server: `${o.host}:${o.port ?? 443}` });
  const started = clock.now();
  const deadline = o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  let phase = ClientPhase.Connecting;
  const setPhase = (to: ClientPhase, reason: string) => {
    logTransition(log, 'sstp-client', phase, to, reason, 'info');
    phase = to;
  };

  const { socket, certificate } = await openTls(o, log);
  const ownDp = !o.dataplane;
  const dp = o.dataplane ?? new DataPlane({ maxSessions: 1, ringSlots: CLIENT_RING_SLOTS, streamBuffers: true });
  const tunOpt = o.tun === false ? undefined : (o.tun ?? {});

  let call: SstpClientCall | undefined;
  let ppp: PppSession | undefined;
  let up: PppUpInfo | undefined;
  let connected = false;
  let authFailure: AuthFailure | undefined;
  let pppDown: PppDownInfo | undefined;
  let tun: ClientTun | undefined;
  let lcpWait: Timer | undefined;
  let closingLocally = false;
  let endResolve!: (e: SstpClientEnd) => void;
  const ended = new Promise<SstpClientEnd>((r) => (endResolve = r));
  let settle: { resolve(c: SstpClient): void; reject(e: unknown): void } | undefined;
  const result = new Promise<SstpClient>((resolve, reject) => (settle = { resolve, reject }));

  const out = coalescingWriter(socket);
  const write = (b: Uint8Array, done?: () => void) => out.write(o.tamper ? o.tamper(b) : b, done);
  const path = SstpStreamPath.open(
    dp,
    { write, get writableLength() { return socket.writableLength; }, pause: () => socket.pause(), resume: () => socket.resume() },
    {
      onControl: (packet) => call?.input(packet),
      onPppFrame: (frame) => call?.input(dataPacketBytes(frame)),
      onStreamError: () => call?.streamBroken('the data plane could not delineate the SSTP stream'),
    },
  );
  if (!path) {
    socket.destroy();
    if (ownDp) dp.close();
    throw new VpnError('ERR_SESSION_TABLE_FULL', 'the client data plane has no free session');
  }

  const cleanup = () => {
    lcpWait?.cancel();
    connectTimer.cancel();
    if (tun) {
      closeClientTun(dp, tun);
      tun = undefined;
    }
    path.close();
    if (ownDp) dp.close();
    endSocket(socket);
  };

  const finish = (callEnd: SstpCallEnd | undefined) => {
    if (phase === ClientPhase.Closed) return;
    const wasConnected = phase === ClientPhase.Connected || (phase === ClientPhase.Closing && up !== undefined && connected);
    setPhase(ClientPhase.Closed, callEnd ? `call ${callEnd.reason}` : 'closed');
    ppp?.lowerDown('lower-layer-down', 'SSTP call closed');
    cleanup();
    if (settle) {
      const err = failureOf(callEnd, pppDown, authFailure);
      settle.reject(err);
      settle = undefined;
      endResolve({ initiator: 'failure', call: callEnd, ppp: pppDown, error: err });
      return;
    }
    endResolve({ initiator: closingLocally ? 'local' : wasConnected ? 'peer' : 'failure', call: callEnd, ppp: pppDown });
  };

  const connectTimer = clock.setTimer(deadline, () => {
    if (!settle) return;
    const err = new VpnError('ERR_TIMEOUT', `the tunnel was not up within ${deadline} ms`);
    settle.reject(err);
    settle = undefined;
    endResolve({ initiator: 'failure', call: undefined, ppp: pppDown, error: err });
    closingLocally = true;
    call?.close('connect timeout');
    if (!call) {
      setPhase(ClientPhase.Closed, 'connect timeout');
      cleanup();
    }
  });

  const startPpp = () => {
    if (ppp) return;
    ppp = new PppSession({
      role: 'client',
      send: (frame) => {
        call?.sendPppFrame(frame);
      },
      clock,
      log,
      tunnel: 'sstp',
      peer: `${o.host}:${o.port ?? 443}`,
      mru: { desired: Math.min(abi.SLOT_MAX_PAYLOAD, SSTP_MAX_MRU, 1400), max: Math.min(abi.SLOT_MAX_PAYLOAD, SSTP_MAX_MRU) },
      ...(o.lcpEchoIntervalMs !== undefined ? { echo: { intervalMs: o.lcpEchoIntervalMs } } : {}),
      auth: { methods: o.methods ?? DEFAULT_CLIENT_METHODS, credentials: { username: o.username, password: o.password } },
      ipcp: { requestDns: true },
      mppe: { policy: 'deny' },
    });
    ppp.on('authenticated', (r) => {
      log.info({ method: r.method }, 'sstp: PPP authenticated; sending Call Connected');
      call?.authenticated(r.hlak);
    });
    ppp.on('authFailed', (r) => {
      authFailure = r;
      log.warn({ method: r.method, reason: r.reason }, `sstp: authentication refused: ${r.message}`);
    });
    ppp.on('up', (info) => {
      up = info;
      maybeUp();
    });
    ppp.on('down', (info) => {
      pppDown = info;
      lcpWait?.cancel();
      call?.disconnect(`PPP down: ${info.reason}`);
    });
    ppp.open();
  };

  const maybeUp = () => {
    if (!connected || !up || !settle || phase !== ClientPhase.Connecting) return;
    const v4 = up.ipv4;
    if (!v4) {
      call?.disconnect('no IPv4 address assigned');
      return;
    }
    bringUp(v4.localAddress, v4.peerAddress, up).then(
      () => {
        if (!settle) return;
        setPhase(ClientPhase.Connected, `address ${v4.localAddress}`);
        const client: SstpClient = {
          ipv4: v4.localAddress,
          gateway: v4.peerAddress,
          dns: v4.dns,
          mtu: up!.mtu,
          hashProtocol: call!.hashProtocol!,
          tunName: tun?.name,
          dataplane: dp,
          sessionIndex: path.idx,
          setupMs: clock.now() - started,
          sendIp: (packet) => ppp?.sendData(PPP_IPV4, packet) ?? false,
          ended,
          close: (reason = 'closed by the user') => closeTunnel(reason),
        };
        connectTimer.cancel();
        settle.resolve(client);
        settle = undefined;
      },
      (e: unknown) => {
        log.error({ err: e }, 'sstp: cannot bring the tunnel up locally');
        const s = settle;
        settle = undefined;
        closingLocally = true;
        call?.disconnect('local set-up failed');
        s?.reject(e);
      },
    );
  };

  /** Data plane and TUN device for the assigned address. */
  const bringUp = async (address: string, gateway: string, info: PppUpInfo) => {
    path.activate({ ipv4: address, mtu: info.mtu, pfc: info.pfc, acfc: info.acfc });
    if (!tunOpt) return;
    tun = await openClientTun(dp, {
      protocol: 'sstp',
      name: tunOpt.name ?? DEFAULT_TUN_NAME,
      netns: o.netns,
      address,
      gateway,
      mtu: info.mtu,
      routes: tunOpt.routes ?? [],
      session: path.idx,
      log,
    });
  };

  const closeTunnel = (reason: string): Promise<SstpClientEnd> => {
    if (phase === ClientPhase.Closed || phase === ClientPhase.Closing) return ended;
    closingLocally = true;
    setPhase(ClientPhase.Closing, reason);
    // Before the call exists there is nobody to tell.
    lcpWait = terminatePpp(ppp, reason, clock, () => (call ? call.disconnect(reason) : finish(undefined)));
    return ended;
  };

  // ---- HTTP, then the call
  const parser = new SstpHttpResponseParser();
  let httpDone = false;
  const httpTimer = clock.setTimer(deadline, () => {
    if (!httpDone) socket.destroy(new Error('no HTTP response'));
  });
  const onHttpResponse = (rest: Uint8Array) => {
    httpDone = true;
    httpTimer.cancel();
    path.attach(true);
    call = new SstpClientCall({
      transport: { write, close: () => socket.end() },
      clock,
      log,
      serverCertHashes: certificateHashes(certificate),
      ...(o.timers ? { timers: o.timers } : {}),
      events: {
        onPppStart: startPpp,
        onPppFrame: (f) => ppp?.input(f),
        onConnected: () => {
          connected = true;
          maybeUp();
        },
        onClosed: (end) => finish(end),
      },
    });
    call.start();
    if (rest.length) path.input(rest);
  };
  socket.on('data', (chunk: Buffer) => {
    if (httpDone) return path.input(chunk);
    const r = parser.push(chunk);
    if (r.state === 'incomplete') return;
    if (r.state === 'rejected') {
      httpDone = true;
      httpTimer.cancel();
      const err = new VpnError('ERR_CONNECT', `the server refused the SSTP request: ${r.message}`);
      settle?.reject(err);
      settle = undefined;
      endResolve({ initiator: 'failure', call: undefined, ppp: undefined, error: err });
      setPhase(ClientPhase.Closed, 'HTTP refused');
      cleanup();
      return;
    }
    onHttpResponse(r.rest);
  });
  socket.on('error', (e) => log.debug({ err: e.message }, 'sstp: socket error'));
  socket.once('close', () => {
    httpTimer.cancel();
    if (call) call.transportClosed();
    else if (phase !== ClientPhase.Closed) {
      const err = new VpnError('ERR_PEER_CLOSED', 'the server closed the connection before answering the SSTP request');
      settle?.reject(err);
      settle = undefined;
      endResolve({ initiator: 'failure', call: undefined, ppp: undefined, error: err });
      setPhase(ClientPhase.Closed, 'transport closed');
      cleanup();
    }
  });
  const host = o.serverName ?? o.host;
  const hostField = (host.includes(':') ? `[${host}]` : host) + ((o.port ?? 443) !== 443 ? `:${o.port}` : '');
  write(sstpHttpRequest({ host: hostField, correlationId: `{${randomUUID().toUpperCase()}}` }));
  return result;
}

/** `vpngw connect sstp://user@host[:port]` (found by src/cli/plugins.ts). */
export async function connect(opts: ClientOptions): Promise<void> {
  const { host, port } = urlHostPort(opts.url, 443);
  let ca: Buffer | undefined;
  if (opts.ca !== undefined) {
    try {
      ca = await readFile(opts.ca);
    } catch (e) {
      throw new VpnError('ERR_USAGE', `cannot read --ca ${opts.ca}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }
  checkRoutes(opts.routes);
  if (opts.signal.aborted) return;
  const client = await connectSstp({
    host,
    port,
    username: opts.username,
    password: opts.password,
    ...(opts.fingerprint !== undefined ? { fingerprint: opts.fingerprint } : {}),
    ...(ca ? { ca } : {}),
    tun: { name: opts.tun ?? DEFAULT_TUN_NAME, routes: opts.routes ?? [] },
    log: opts.log,
  });
  await holdTunnel(opts, client, {
    // A server's Call Disconnect is a goodbye; anything else (Hello timeout, abort) a dead tunnel.
    peerError: (end) =>
      end.call && end.call.reason !== 'disconnected' ? new VpnError('ERR_PEER_CLOSED', `the tunnel went down: ${end.call.reason} (${end.call.detail})`) : undefined,
  });
}
