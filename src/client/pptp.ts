/**
 * The PPTP client: the same stack as the server in the PNS role, usable
 * in-process (tests, benchmarks: {@link connectPptp}) and from the command
 * line (`vpngw connect pptp://user@host[:port]`: {@link connect}).
 *
 *   TCP 1723 (optionally from inside a network namespace) ─► control
 *   connection (SCCRQ/SCCRP, RFC 2637 section 3.1) ─► Outgoing-Call-Request /
 *   Reply: call ids exchanged ─► data-plane session attached (client role,
 *   keyed by our call id, GRE from the server's address only) on a raw GRE
 *   socket ─► PPP (LCP, MS-CHAPv2, CCP/MPPE required, IPCP) ─► PPP up: MPPE
 *   keys and the assigned address installed; TUN device with that address,
 *   routes ─► connected
 *
 * Teardown (close(), Ctrl-C): LCP Terminate-Request, then Call-Clear-Request;
 * the server's Call-Disconnect-Notify clears the call and the control
 * connection stops (Stop-Control-Connection); bounded by
 * TEARDOWN_LCP_WAIT_MS + TEARDOWN_STOP_WAIT_MS. The TUN device goes away
 * with its fd.
 *
 * Client life:
 *
 *   Connecting ──PPP up, TUN ready──► Connected ──close() / server hang-up / failure──► Closing ──► Closed
 *        └──────────── failure (TCP, control, call refused, auth, MPPE, timers) ────────────────────┘
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import * as abi from '../../assembly/abi.js';
import { VpnError, type ErrorCode } from '../util/errors.js';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import { logTransition, silentLogger, type Logger } from '../util/log.js';
import { DataPlane, type Attachment } from '../dataplane/engine.js';
import { native } from '../dataplane/native.js';
import { PppSession, type MppeBits, type PppDownInfo, type PppUpInfo } from '../ppp/index.js';
import type { AuthFailure, AuthMethod } from '../ppp/auth/types.js';
import { terminatePpp } from '../tunnel/session.js';
import { CallIdAllocator } from '../pptp/callid.js';
import { CallState, type CallClearReason, type PptpCall } from '../pptp/call.js';
import { PPTP_TCP_PORT, StopReason } from '../pptp/codec.js';
import { ControlState, PptpClientConnection, type ControlCloseReason } from '../pptp/control.js';
import { IPPROTO_GRE } from '../pptp/gre.js';
import { GRE_SOCKET_BUFFER, PPTP_MAX_MTU, PptpDataPath, type PptpPathStats } from '../pptp/datapath.js';
import { TEARDOWN_STOP_WAIT_MS } from '../pptp/service.js';
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
/** Methods the client accepts, in order of preference: the two that give MPPE its keys. */
export const DEFAULT_CLIENT_METHODS: readonly AuthMethod[] = ['mschapv2', 'eap-mschapv2'];
/** The client's own engine is small: one session, no stream rings. */
const CLIENT_RING_SLOTS: Partial<Record<abi.RingId, number>> = {
  [abi.RingId.TUN_RX]: 512,
  [abi.RingId.TUN_TX]: 512,
  [abi.RingId.GRE_RX]: 1024,
  [abi.RingId.GRE_TX]: 1024,
  [abi.RingId.ESP_RX]: 0,
  [abi.RingId.ESP_TX]: 0,
  [abi.RingId.CTRL]: 64,
  [abi.RingId.INJECT]: 64,
  [abi.RingId.STREAM_IN]: 0,
  [abi.RingId.STREAM_OUT]: 0,
};

export interface PptpClientOptions {
  host: string;
  port?: number;
  username: string;
  password: string;
  /** Open the TCP socket, the raw GRE socket and the TUN device inside this network namespace. */
  netns?: string;
  /** A TUN device for the tunnel (default), or false: IP only through sendIp() and the engine's TUN_TX ring (tests). */
  tun?: { name?: string; routes?: readonly string[] } | false;
  /**
   * Share one engine between several clients (benchmarks): give them one
   * CallIdAllocator too (the engine finds sessions by call id), and attach
   * the GRE socket to the engine yourself. Default: an engine of its own.
   */
  dataplane?: DataPlane;
  callIds?: CallIdAllocator;
  /** Open a raw GRE socket for the own engine (default true); false: the caller moves GRE between its rings (tests). */
  greSocket?: boolean;
  methods?: readonly AuthMethod[];
  mppe?: {
    /** Ask for stateless mode (RFC 3078 "H" bit; default false: stateful). */
    stateless?: boolean;
    /** Strengths accepted (default [128]). */
    strengths?: readonly MppeBits[];
    /** Refuse a tunnel without MPPE (default true). */
    required?: boolean;
  };
  log?: Logger;
  clock?: Clock;
  connectTimeoutMs?: number;
  /** LCP echo interval (0 disables) and failures before the tunnel is declared dead. */
  lcpEchoIntervalMs?: number;
  lcpEchoFailures?: number;
}

export interface PptpClientEnd {
  /** Closed by close() (local), by the server (peer), or failed. */
  initiator: 'local' | 'peer' | 'failure';
  control: ControlCloseReason | undefined;
  call: CallClearReason | undefined;
  ppp: PppDownInfo | undefined;
  error?: VpnError;
}

export interface PptpClient {
  readonly ipv4: string;
  /** The server's inner address (IPCP peer). */
  readonly gateway: string;
  readonly dns: readonly string[];
  readonly mtu: number;
  /** MPPE as negotiated; undefined for a cleartext tunnel (mppe.required false). */
  readonly mppe: { bits: MppeBits; stateless: boolean } | undefined;
  /** Our call id (the key of GRE we receive) and the server's. */
  readonly callIds: { local: number; peer: number };
  readonly tunName: string | undefined;
  readonly dataplane: DataPlane;
  /** The data-plane session index (slot `session` of TUN_TX packets). */
  readonly sessionIndex: number;
  /** Time from start to connected, ms. */
  readonly setupMs: number;
  /** CCP resets and PPP frame counts of the data path. */
  stats(): PptpPathStats;
  /**
   * Send an IPv4 packet through the tunnel by the control plane: only for a
   * client with its own engine and no TUN device (the packet goes where the
   * TUN reader would put it). False otherwise, or when the ring is full.
   */
  sendIp(packet: Uint8Array): boolean;
  /** Resolves when the tunnel is gone, however it ended. */
  readonly ended: Promise<PptpClientEnd>;
  /** Proper teardown: LCP Terminate, Call-Clear-Request, Stop-Control-Connection; resolves when closed. */
  close(reason?: string): Promise<PptpClientEnd>;
}

/** Map how a client attempt ended to the error the caller sees. */
function failureOf(end: Omit<PptpClientEnd, 'initiator'>, auth: AuthFailure | undefined): VpnError {
  const { control, call, ppp } = end;
  const refused = authError(auth, ppp);
  if (refused) return refused;
  if (ppp && (ppp.reason === 'mppe-required' || ppp.reason === 'mppe-unavailable' || ppp.reason === 'mppe-mismatch')) {
    return new VpnError('ERR_POLICY', `no MPPE agreement with the server: ${ppp.reason}${ppp.detail ? ` (${ppp.detail})` : ''}`);
  }
  const pppEnded = pppEndError(ppp);
  if (pppEnded) return pppEnded;
  if (call === 'rejected') return new VpnError('ERR_CONNECT', 'the server refused the call (Outgoing-Call-Reply)');
  if (control === 'rejected' || control === 'version-unsupported') return new VpnError('ERR_CONNECT', `the server refused the control connection (${control})`);
  if (control === 'handshake-timeout' || call === 'reply-timeout') return new VpnError('ERR_TIMEOUT', `the server did not answer in time (${control ?? call})`);
  if (control || call) {
    const code: ErrorCode = control === 'peer-closed' || control === 'peer-stop' || call === 'peer-disconnect' ? 'ERR_PEER_CLOSED' : 'ERR_PROTOCOL';
    return new VpnError(code, `the PPTP connection ended before the tunnel was up: ${control ?? ''}${control && call ? ', call ' : ''}${call ?? ''}`);
  }
  return new VpnError('ERR_PEER_CLOSED', 'the connection closed before the tunnel was up');
}

async function resolveIpv4(host: string): Promise<string> {
  if (net.isIPv4(host)) return host;
  if (net.isIP(host)) throw new VpnError('ERR_USAGE', `PPTP runs GRE over IPv4: ${host} is not an IPv4 address`);
  try {
    return (await lookup(host, { family: 4 })).address;
  } catch (e) {
    throw new VpnError('ERR_CONNECT', `cannot resolve ${host} to an IPv4 address: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  }
}

/** Connect; resolves once IP flows, rejects (VpnError) when that cannot happen. */
export async function connectPptp(o: PptpClientOptions): Promise<PptpClient> {
  const clock = o.clock ?? systemClock;
  const port = o.port ?? PPTP_TCP_PORT;
  const log = (o.log ?? silentLogger).child({ protocol: 'pptp', role: 'client', server: `${o.host}:${port}` });
  const started = clock.now();
  const deadline = o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  let phase = ClientPhase.Connecting;
  const setPhase = (to: ClientPhase, reason: string) => {
    logTransition(log, 'pptp-client', phase, to, reason, 'info');
    phase = to;
  };

  const serverIp = await resolveIpv4(o.host);
  const ownDp = !o.dataplane;
  const dp = o.dataplane ?? new DataPlane({ maxSessions: 1, ringSlots: CLIENT_RING_SLOTS, streamBuffers: false });
  let gre: { fd: number; attachment: Attachment } | undefined;
  if (ownDp && o.greSocket !== false) {
    try {
      const fd = native.rawSocket(IPPROTO_GRE, { ...(o.netns !== undefined ? { netns: o.netns } : {}), rcvbuf: GRE_SOCKET_BUFFER, sndbuf: GRE_SOCKET_BUFFER });
      gre = { fd, attachment: dp.attach('gre', fd, 'socket', abi.RingId.GRE_RX, abi.RingId.GRE_TX) };
    } catch (e) {
      dp.close();
      throw e;
    }
  }
  let socket: net.Socket;
  try {
    socket = await connectTcp({ host: o.host, port, address: serverIp, netns: o.netns });
  } catch (e) {
    if (gre) {
      dp.detach(gre.attachment);
      native.close(gre.fd);
    }
    if (ownDp) dp.close();
    throw e;
  }
  log.info({ address: serverIp }, 'pptp: TCP connected');

  const tunOpt = o.tun === false ? undefined : (o.tun ?? {});
  let call: PptpCall | undefined;
  let ppp: PppSession | undefined;
  let up: PppUpInfo | undefined;
  let authFailure: AuthFailure | undefined;
  const end: Omit<PptpClientEnd, 'initiator'> = { control: undefined, call: undefined, ppp: undefined };
  let tun: ClientTun | undefined;
  let lcpWait: Timer | undefined;
  let stopWait: Timer | undefined;
  let closingLocally = false;
  let endResolve!: (e: PptpClientEnd) => void;
  const ended = new Promise<PptpClientEnd>((r) => (endResolve = r));
  let settle: { resolve(c: PptpClient): void; reject(e: unknown): void } | undefined;
  const result = new Promise<PptpClient>((resolve, reject) => (settle = { resolve, reject }));

  const path = PptpDataPath.open(dp, { clock, log, client: true, onSanity: () => void closeTunnel('malformed MPPE packets') });
  if (!path) {
    socket.destroy();
    if (gre) {
      dp.detach(gre.attachment);
      native.close(gre.fd);
    }
    if (ownDp) dp.close();
    throw new VpnError('ERR_SESSION_TABLE_FULL', 'the client data plane has no free session');
  }

  const control = new PptpClientConnection({
    transport: {
      write: (b) => {
        if (!socket.destroyed && socket.writable) socket.write(b);
      },
      close: () => endSocket(socket),
    },
    clock,
    log,
    peerAddress: serverIp,
    callIds: o.callIds ?? new CallIdAllocator(),
    events: {
      onEstablished: () => {
        try {
          call = control.openCall();
          // Keyed by our call id from now on: the server's first GRE packet (LCP) may overtake its Outgoing-Call-Reply.
          path.attach({ peer: serverIp, myCallId: call.localCallId, peerCallId: 0 });
        } catch (e) {
          log.error({ err: e }, 'pptp: cannot open a call');
          if (call) call.disconnect();
          else control.stop(StopReason.None);
        }
      },
      onCallEstablished: (c) => {
        if (c !== call) return;
        path.setPeerCallId(c.peerCallId);
        log.info({ callId: c.localCallId, peerCallId: c.peerCallId }, 'pptp: call established');
        startPpp();
      },
      onCallCleared: (c, reason) => {
        if (c !== call) return;
        end.call = reason;
        log.info({ reason }, 'pptp: call cleared');
        ppp?.lowerDown('lower-layer-down', `PPTP call cleared (${reason})`);
        path.close();
        armStopWait();
      },
      onClosed: (reason) => {
        end.control = reason;
        finish();
      },
    },
  });

  const cleanup = () => {
    for (const t of [lcpWait, stopWait]) t?.cancel();
    lcpWait = stopWait = undefined;
    connectTimer.cancel();
    if (tun) {
      closeClientTun(dp, tun);
      tun = undefined;
    }
    path.close();
    if (gre) {
      dp.detach(gre.attachment);
      native.close(gre.fd);
      gre = undefined;
    }
    if (ownDp) dp.close();
    endSocket(socket);
  };

  const finish = () => {
    if (phase === ClientPhase.Closed) return;
    const wasConnected = up !== undefined && settle === undefined;
    setPhase(ClientPhase.Closed, `control ${end.control ?? 'closed'}`);
    ppp?.lowerDown('lower-layer-down', 'PPTP control connection closed');
    cleanup();
    if (settle) {
      const err = failureOf(end, authFailure);
      settle.reject(err);
      settle = undefined;
      endResolve({ initiator: 'failure', ...end, error: err });
      return;
    }
    endResolve({ initiator: closingLocally ? 'local' : wasConnected ? 'peer' : 'failure', ...end });
  };

  /** After the call is cleared or PPP is down: the peer's Stop-Control-Connection-Reply, or we drop the TCP connection. */
  const armStopWait = () => {
    if (stopWait || phase === ClientPhase.Closed) return;
    stopWait = clock.setTimer(TEARDOWN_STOP_WAIT_MS, () => {
      stopWait = undefined;
      socket.destroy();
      control.transportClosed();
    });
  };

  /** Call-Clear-Request (the control connection then stops itself), or stop the control connection. */
  const hangUp = () => {
    if (call && (call.state === CallState.Established || call.state === CallState.WaitReply) && control.state === ControlState.Established) call.disconnect();
    else control.stop(StopReason.None);
    armStopWait();
  };

  const connectTimer = clock.setTimer(deadline, () => {
    if (!settle) return;
    const err = new VpnError('ERR_TIMEOUT', `the tunnel was not up within ${deadline} ms`);
    settle.reject(err);
    settle = undefined;
    endResolve({ initiator: 'failure', ...end, error: err });
    closingLocally = true;
    hangUp();
  });

  const startPpp = () => {
    if (ppp) return;
    const required = o.mppe?.required ?? true;
    ppp = new PppSession({
      role: 'client',
      send: (frame) => {
        path.sendPpp(frame);
      },
      clock,
      log,
      tunnel: 'pptp',
      peer: `${serverIp}:${port}`,
      mru: { desired: PPTP_MAX_MTU, max: PPTP_MAX_MTU },
      ...(o.lcpEchoIntervalMs !== undefined || o.lcpEchoFailures !== undefined
        ? { echo: { ...(o.lcpEchoIntervalMs !== undefined ? { intervalMs: o.lcpEchoIntervalMs } : {}), ...(o.lcpEchoFailures !== undefined ? { failures: o.lcpEchoFailures } : {}) } }
        : {}),
      auth: { methods: o.methods ?? DEFAULT_CLIENT_METHODS, credentials: { username: o.username, password: o.password } },
      ipcp: { requestDns: true },
      mppe: {
        policy: required ? 'require' : 'allow',
        strengths: o.mppe?.strengths ?? [128],
        statelessAllowed: true,
        statelessPreferred: o.mppe?.stateless ?? false,
      },
    });
    ppp.on('authenticated', (r) => log.info({ method: r.method }, 'pptp: PPP authenticated'));
    ppp.on('authFailed', (r) => {
      authFailure = r;
      log.warn({ method: r.method, reason: r.reason }, `pptp: authentication refused: ${r.message}`);
    });
    ppp.on('up', (info) => onUp(info));
    ppp.on('down', (info) => {
      end.ppp = info;
      lcpWait?.cancel();
      lcpWait = undefined;
      hangUp();
    });
    ppp.open();
    // After open(): frames that came before the PPP session existed are fed to it now.
    path.bind(ppp);
  };

  const onUp = (info: PppUpInfo) => {
    if (!settle || phase !== ClientPhase.Connecting) return;
    const v4 = info.ipv4;
    if (!v4) {
      void closeTunnel('no IPv4 address assigned');
      return;
    }
    up = info;
    bringUp(v4.localAddress, v4.peerAddress, info).then(
      () => {
        if (!settle) return;
        setPhase(ClientPhase.Connected, `address ${v4.localAddress}`);
        const mtu = Math.min(info.mtu, PPTP_MAX_MTU);
        const client: PptpClient = {
          ipv4: v4.localAddress,
          gateway: v4.peerAddress,
          dns: v4.dns,
          mtu,
          mppe: info.mppe ? { bits: info.mppe.bits, stateless: info.mppe.stateless } : undefined,
          callIds: { local: call!.localCallId, peer: call!.peerCallId },
          tunName: tun?.name,
          dataplane: dp,
          sessionIndex: path.idx,
          setupMs: clock.now() - started,
          stats: () => ({ ...path.stats }),
          sendIp: (packet) => (ownDp && !tun && phase === ClientPhase.Connected ? dp.submit(abi.RingId.TUN_RX, packet, {}) : false),
          ended,
          close: (reason = 'closed by the user') => closeTunnel(reason),
        };
        connectTimer.cancel();
        log.info(
          { address: v4.localAddress, gateway: v4.peerAddress, mtu, mppe: client.mppe, setupMs: client.setupMs },
          'pptp: connected',
        );
        settle.resolve(client);
        settle = undefined;
      },
      (e: unknown) => {
        log.error({ err: e }, 'pptp: cannot bring the tunnel up locally');
        const s = settle;
        settle = undefined;
        const err = e instanceof VpnError ? e : new VpnError('ERR_INTERNAL', `local set-up failed: ${(e as Error).message}`, { cause: e });
        endResolve({ initiator: 'failure', ...end, error: err });
        closingLocally = true;
        void closeTunnel('local set-up failed');
        s?.reject(err);
      },
    );
  };

  /** Data plane (MPPE keys, address) and TUN device for the assigned address. */
  const bringUp = async (address: string, gateway: string, info: PppUpInfo) => {
    path.up(info, address);
    if (ownDp) dp.wasm.setDefaultSession(path.idx);
    if (!tunOpt) return;
    tun = await openClientTun(dp, {
      protocol: 'pptp',
      name: tunOpt.name ?? DEFAULT_TUN_NAME,
      netns: o.netns,
      address,
      gateway,
      mtu: Math.min(info.mtu, PPTP_MAX_MTU),
      routes: tunOpt.routes ?? [],
      session: path.idx,
      log,
    });
  };

  const closeTunnel = (reason: string): Promise<PptpClientEnd> => {
    if (phase === ClientPhase.Closed || phase === ClientPhase.Closing) return ended;
    closingLocally = true;
    setPhase(ClientPhase.Closing, reason);
    lcpWait = terminatePpp(ppp, reason, clock, () => {
      lcpWait = undefined;
      hangUp();
    });
    return ended;
  };

  socket.on('data', (chunk: Buffer) => control.input(chunk));
  socket.on('error', (e) => log.debug({ err: e.message }, 'pptp: socket error'));
  socket.once('close', () => control.transportClosed());
  control.start();
  return result;
}

/** `vpngw connect pptp://user@host[:port]` (found by src/cli/plugins.ts). */
export async function connect(opts: ClientOptions): Promise<void> {
  if (opts.ca !== undefined || opts.fingerprint !== undefined) {
    throw new VpnError('ERR_USAGE', '--ca and --fingerprint do not apply to pptp:// (PPTP has no certificate; MS-CHAPv2 authenticates both sides)');
  }
  const { host, port } = urlHostPort(opts.url, PPTP_TCP_PORT);
  checkRoutes(opts.routes);
  if (opts.signal.aborted) return;
  const client = await connectPptp({
    host,
    port,
    username: opts.username,
    password: opts.password,
    tun: { name: opts.tun ?? DEFAULT_TUN_NAME, routes: opts.routes ?? [] },
    log: opts.log,
  });
  await holdTunnel(opts, client, {
    extra: `, ${client.mppe ? `MPPE ${client.mppe.bits}-bit ${client.mppe.stateless ? 'stateless' : 'stateful'}` : 'no MPPE'}`,
    // A hang-up (LCP Terminate, Call-Disconnect-Notify) is a goodbye; a keep-alive that went unanswered a dead tunnel.
    peerError: (end) => {
      const why = end.ppp?.reason ?? end.call ?? end.control;
      return why === 'echo-timeout' || why === 'lcp-timeout' ? new VpnError('ERR_PEER_CLOSED', `the tunnel went down: ${why}`) : undefined;
    },
  });
}
