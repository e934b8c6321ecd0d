/**
 * Our PPTP control plane against the real, unmodified pptp-linux client
 * (Debian's `pptp`, the PNS) over a real TCP connection: the client runs in a
 * network namespace, reaches our PptpServerConnection (the PAC) across a veth
 * pair on 198.18.0.0/15, opens the control connection and a call, answers
 * keep-alive probes in both directions, and goes away cleanly when either
 * side hangs up (Call-Disconnect-Notify / Call-Clear-Request, then
 * Stop-Control-Connection).
 *
 * One GRE packet is checked too: a PPP frame written to pptp's stdin (where
 * pppd would write) comes out as enhanced GRE that our reference decoder
 * (src/pptp/gre.ts) reads, keyed with the Call ID our Outgoing-Call-Reply
 * gave. The WASM data plane has its own tests.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync, readSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { systemClock } from '../src/util/clock.js';
import { CallIdAllocator } from '../src/pptp/callid.js';
import { CallState, type PptpCall } from '../src/pptp/call.js';
import { ControlState, PptpServerConnection } from '../src/pptp/control.js';
import { CONTROL_MESSAGE_NAME, ControlDeframer, PPTP_TCP_PORT } from '../src/pptp/codec.js';
import { IPPROTO_GRE, decodeGre, type GrePacket } from '../src/pptp/gre.js';
import { native, nativeAvailable } from '../src/dataplane/native.js';
import { fromHex, hex } from '../src/util/decode.js';
import { NetLab, ip, netnsSupport, reportSkip, type Netns, type Subnet } from './lib/netns.js';

const PPTP = ['/usr/sbin/pptp', '/usr/bin/pptp', '/sbin/pptp'].find((p) => existsSync(p));
const facility = await netnsSupport();
const usable = facility.ok && PPTP !== undefined;
if (PPTP === undefined) reportSkip('pptp-linux interop', { ok: false, reason: 'pptp-linux is not installed (apt-get install pptp-linux)' });
else reportSkip('pptp-linux interop', facility);

const here = path.dirname(fileURLToPath(import.meta.url));
const fcsVectors = JSON.parse(readFileSync(path.resolve(here, '../../shared/vectors/ppp_fcs.json'), 'utf8')) as {
  vectors: { id: string; frame?: string; async_wire_default_accm?: string }[];
};
const lcpFrame = fcsVectors.vectors.find((v) => v.id === 'derived-frame-lcp-configure-request')!;

/** Poll a non-blocking raw GRE socket for one packet from `source`; returns the decoded GRE. */
async function readGre(fd: number, source: string, ms: number): Promise<GrePacket> {
  const buf = new Uint8Array(4096);
  const end = Date.now() + ms;
  for (;;) {
    let n = 0;
    try {
      n = readSync(fd, buf);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
    if (n >= 20 && buf[9] === IPPROTO_GRE && Array.from(buf.subarray(12, 16)).join('.') === source) {
      const r = decodeGre(buf.slice(0, n), (buf[0]! & 0x0f) * 4, n);
      if (!r.ok) throw new Error(`pptp-linux sent GRE our decoder refuses: ${r.kind} ${r.message}`);
      return r.value;
    }
    if (n === 0) {
      if (Date.now() > end) throw new Error(`no GRE packet from ${source} within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Control messages on the wire, printed when a test fails. */
const wire: string[] = [];
const stamp = (): string => (performance.now() / 1000).toFixed(3);

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!usable)('pptp-linux (real client) against PptpServerConnection', () => {
  const lab = new NetLab();
  let ns: Netns;
  let subnet: Subnet;
  let listener: net.Server;
  const connections: PptpServerConnection[] = [];
  const events: string[] = [];
  const calls: PptpCall[] = [];
  const sockets = new Set<net.Socket>();
  /** Our idle time before Echo-Request, for connections accepted from now on. */
  let serverEchoMs = 60_000;

  beforeAll(async () => {
    ns = await lab.netns('pptp');
    subnet = await lab.subnet();
    await lab.veth(null, ns, { aAddr: subnet.cidr(1), bAddr: subnet.cidr(2) });
    listener = net.createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      const inbound = new ControlDeframer();
      const outbound = new ControlDeframer();
      const conn = new PptpServerConnection({
        transport: {
          write: (b) => {
            for (const m of outbound.push(b).messages) wire.push(`${stamp()} out ${CONTROL_MESSAGE_NAME[m.type]}`);
            sock.write(b);
          },
          close: () => void sock.end(),
        },
        clock: systemClock,
        peerAddress: sock.remoteAddress ?? '',
        callIds: new CallIdAllocator(),
        echoIntervalMs: serverEchoMs,
        events: {
          onEstablished: (p) => events.push(`established:${p.hostName}:${p.vendorName}`),
          onCallEstablished: (c) => {
            calls.push(c);
            events.push('call-up');
          },
          onCallCleared: (_c, why) => events.push(`call-cleared:${why}`),
          onClosed: (why) => events.push(`closed:${why}`),
        },
      });
      connections.push(conn);
      sock.on('data', (d) => {
        for (const m of inbound.push(d).messages) wire.push(`${stamp()} in  ${CONTROL_MESSAGE_NAME[m.type]}`);
        conn.input(d);
      });
      sock.on('close', () => {
        wire.push(`${stamp()} tcp closed`);
        conn.transportClosed();
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(PPTP_TCP_PORT, subnet.host(1), () => resolve());
    });
  }, 60_000);

  /** Processes running in our namespace: only what this file started there (pptp and its call manager). */
  async function nsPids(): Promise<number[]> {
    if (!ns) return [];
    // From the root namespace: `ip -n <ns> ...` would run inside it and list itself.
    const out = (await ip(['netns', 'pids', ns.name]).catch(() => '')).trim();
    return out ? out.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number) : [];
  }

  /**
   * pptp-linux keeps one call manager per server address (a detached process
   * behind /var/run/pptp/<address>) and a new pptp joins a live one: let the
   * previous one finish its shutdown (it lingers a few seconds, by design)
   * before the next test starts a client, and end stragglers by PID.
   */
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') process.stderr.write(`control messages seen:\n${wire.join('\n')}\n`);
    wire.length = 0;
    const end = Date.now() + 20_000;
    while ((await nsPids()).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    for (const pid of await nsPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }, 30_000);

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => (listener ? listener.close(() => r()) : r()));
    await lab.cleanup();
  }, 60_000);

  /** Start pptp in the namespace; resolves when its call is up on our side. */
  async function startClient(idleWaitS = 60): Promise<{ child: ChildProcess; exited: () => boolean; conn: PptpServerConnection; call: PptpCall }> {
    const before = calls.length;
    const child = ns.spawn(
      [PPTP!, subnet.host(1), '--nolaunchpppd', '--debug', '--nohostroute', '--idle-wait', String(idleWaitS), '--loglevel', '2'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let exited = false;
    child.on('exit', () => (exited = true));
    child.stdout?.resume();
    child.stderr?.resume();
    await waitFor(() => calls.length === before + 1, 15_000, 'the call to be established');
    return { child, exited: () => exited, conn: connections.at(-1)!, call: calls.at(-1)! };
  }

  it('connects, opens a call, answers our keep-alive probes, and leaves cleanly when we hang up', async () => {
    events.length = 0;
    serverEchoMs = 1_000;
    const { conn, call, exited } = await startClient();
    expect(conn.state).toBe(ControlState.Established);
    expect(conn.peer).toMatchObject({ protocolVersion: 0x0100, hostName: 'local', vendorName: 'cananian', maximumChannels: 65535 });
    expect(call.state).toBe(CallState.Established);
    expect(call.peerCallId).not.toBe(0);
    expect(call.peerReceiveWindow).toBe(3); // pptp-linux's PPTP_WINDOW
    expect(call.connectSpeed).toBe(10_000_000); // echoes its Maximum BPS
    expect(call.peerAddress).toBe(subnet.host(2));

    // We probe after 1 s without control messages; every Echo-Reply must match, or we would close.
    await waitFor(() => conn.counters.echoRequestsSent >= 3, 15_000, 'three answered Echo-Requests');
    expect(conn.state).toBe(ControlState.Established);
    expect(conn.counters.unexpected).toBe(0);

    // We hang up: CDN, then (no call left, [MS-PTPT] 3.2.4) StopCCRQ. pptp-linux's call manager
    // exits as soon as its last call is gone: it may answer the StopCCRQ first or just close.
    call.disconnect();
    await waitFor(() => conn.state === ControlState.Closed, 15_000, 'the control connection to close');
    expect(['local-stop', 'peer-closed']).toContain(conn.closeReason);
    expect(events).toEqual(['established:local:cananian', 'call-up', 'call-cleared:local', `closed:${conn.closeReason}`]);
    await waitFor(exited, 15_000, 'pptp to exit');
  }, 60_000);

  it('answers its keep-alive probes; when it goes away, its Call-Clear-Request and Stop request are answered', async () => {
    events.length = 0;
    serverEchoMs = 60_000;
    // pptp probes after 2 idle seconds. (1 s would race its own 1 s pause before the
    // Outgoing-Call-Request: its timer then finds the call still waiting and clears it.)
    const { child, conn, call, exited } = await startClient(2);
    expect(call.state).toBe(CallState.Established);
    await waitFor(() => conn.counters.echoRequestsReceived >= 2, 15_000, 'two Echo-Requests from pptp');
    expect(conn.state).toBe(ControlState.Established);
    // pppd ending looks like this to pptp: its call manager sends CCRQ, then StopCCRQ (Stop-Local-Shutdown).
    child.kill('SIGTERM');
    await waitFor(() => conn.state === ControlState.Closed, 15_000, 'the control connection to close');
    expect(events[2]).toBe('call-cleared:peer-clear');
    expect(['peer-stop', 'local-stop', 'peer-closed']).toContain(conn.closeReason);
    expect(conn.counters.unexpected).toBe(0);
    await waitFor(exited, 15_000, 'pptp to exit');
  }, 60_000);

  it.skipIf(!nativeAvailable())('its GRE decodes with our reference codec: key = our Call ID, first sequence 1, the PPP frame without HDLC framing', async () => {
    serverEchoMs = 60_000;
    const fd = native.rawSocket(IPPROTO_GRE, { address: subnet.host(1) });
    try {
      const { child, call, exited } = await startClient();
      // What pppd would write to pptp: the async-HDLC frame (RFC 1662) of an LCP Configure-Request.
      child.stdin!.write(fromHex(lcpFrame.async_wire_default_accm!));
      const gre = await readGre(fd, subnet.host(2), 10_000);
      expect(gre.header.callId).toBe(call.localCallId);
      expect(gre.header.sequence).toBe(1);
      expect(gre.header.acknowledgment).toBeUndefined(); // it has received nothing to acknowledge
      expect(hex(gre.payload)).toBe(lcpFrame.frame);
      call.disconnect();
      await waitFor(exited, 15_000, 'pptp to exit');
    } finally {
      native.close(fd);
    }
  }, 60_000);
});
