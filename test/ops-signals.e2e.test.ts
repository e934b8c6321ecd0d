/**
 * SIGHUP and SIGTERM with live tunnels, against the real `vpngw serve`
 * process (root):
 *
 *   ns A: `vpngw serve` (compiled CLI): SSTP S.1:443, PPTP S.1:1723, admin on
 *         127.0.0.1:9477 (`vpngw sessions` runs in ns A)
 *   ns B: our clients: in-process SSTP and PPTP tunnels, `vpngw connect
 *         sstp://` and `vpngw connect pptp://` processes with TUN devices
 *
 * SIGHUP: a user added with `vpngw users add` logs in only after it; a user
 * deleted with `vpngw users del` cannot log in after it, while their running
 * sessions stay up and carry traffic; an invalid file is refused with every
 * problem logged at its path and the old configuration keeps working; a
 * valid change of a policy (sessions per user) applies to the next login.
 *
 * SIGTERM with every tunnel live: the listeners close first (no connection
 * is accepted after the Draining transition), every client is told (SSTP
 * Call Disconnect; PPTP Call-Disconnect-Notify and Stop-Control-Connection),
 * the `vpngw connect` processes exit 0, and `vpngw serve` exits 0 within its
 * grace period, its TUN device gone. Clients that stopped answering hold the
 * drain only as long as the teardown timers; meanwhile /readyz says 503, and
 * a SIGHUP or a second SIGTERM is ignored. The shutdown times are reported.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { uniqueIfName } from './lib/netns.js';
import { GATEWAY } from './lib/gateway-lab.js';
import { type LabClients, type LabTunnel } from './lib/ops-lab.js';
import { ServeLab, serveLabSupport } from './lib/serve-lab.js';
import { printedFingerprint, waitUntil, type Proc } from './lib/vpngw-cli.js';
import { icmpEcho, ipv4Packet } from './lib/packets.js';
import { isVpnError } from '../src/util/errors.js';
import { SHUTDOWN_GRACE_MS } from '../src/cli/serve.js';
import { TEARDOWN_LCP_WAIT_MS } from '../src/sstp/server-session.js';

const f = await serveLabSupport('SIGHUP and SIGTERM of vpngw serve with live tunnels');

const PASSWORDS = { alice: `alice-${randomBytes(8).toString('base64url')}`, dave: `dave-${randomBytes(8).toString('base64url')}` };

describe.skipIf(!f.ok)('vpngw serve: SIGHUP and SIGTERM with live tunnels', () => {
  let L: ServeLab;
  let tun: string;
  let server: Proc;
  let clients: LabClients;
  /** Tunnels that must survive every reload. */
  const survivors: LabTunnel[] = [];

  const config = (extra: { limits?: string; log?: string } = {}) => `stateDir: state
dataplane: {workers: 2, maxSessionsPerWorker: 64, tun: {name: ${tun}, mtu: 1400}}
users: {demoUser: false}
auth: {sstp: [mschapv2, eap-mschapv2]}
sstp: {listen: ${L.link.host(1)}, port: 443}
pptp: {enabled: true, listen: ${L.link.host(1)}, port: 1723}
limits: ${extra.limits ?? '{maxSessionsPerUser: 8, authFailuresPerSourcePerMinute: 100}'}
log: ${extra.log ?? '{level: info}'}
admin: {port: 9477}
`;
  /** Send SIGHUP and wait until the server logged `count` more lines matching `done` (its stdout is its log). */
  const hup = async (done: RegExp, what: string) => {
    const before = server.out.split('\n').filter((l) => done.test(l)).length;
    server.child.kill('SIGHUP');
    await waitUntil(() => server.out.split('\n').filter((l) => done.test(l)).length > before, 10_000, what);
  };
  const refused = async (p: 'sstp' | 'pptp', user: keyof typeof PASSWORDS) => {
    const e = await clients.open(p, user, PASSWORDS[user]).then(
      (t) => t,
      (x: unknown) => x,
    );
    expect(isVpnError(e) ? e.code : `a tunnel (${String(e)})`, `${user} on ${p}`).toBe('ERR_AUTH_REJECTED');
  };
  /** An echo through each tunnel comes back. */
  const carries = async (ts: LabTunnel[]) => {
    const before = ts.map((t) => t.echoReplies());
    ts.forEach((t, i) => t.sendIp(ipv4Packet(t.ipv4, GATEWAY, 1, icmpEcho(8, t.sessionIndex, 100 + i, new Uint8Array(32)), 64, 7)));
    await waitUntil(() => ts.every((t, i) => t.echoReplies() > before[i]!), 10_000, 'an echo reply through every surviving tunnel');
  };
  /** `vpngw connect` processes as dave, by SSTP and by PPTP, each with a TUN device in ns B. */
  const connectProcesses = () =>
    L.connect(
      [
        [`sstp://dave@${L.link.host(1)}`, '--fingerprint', printedFingerprint(server.err), '--tun', uniqueIfName('tcs')],
        [`pptp://dave@${L.link.host(1)}`, '--tun', uniqueIfName('tcp')],
      ],
      { VPNGW_PASSWORD: PASSWORDS.dave },
    );

  beforeAll(async () => {
    L = await ServeLab.open('sig', 'vpngw-ops-signals-');
    tun = uniqueIfName('tsig');
    writeFileSync(L.cfg, config());
    await L.addUser('alice', PASSWORDS.alice);
    server = await L.serve();
    clients = L.clientsOf(server);
  }, 240_000);

  afterAll(async () => {
    await L?.close();
  }, 60_000);

  it('SIGHUP reloads users (added: in, deleted: out) and policies; an invalid file keeps the old config; sessions survive', async () => {
    survivors.push(await clients.open('sstp', 'alice', PASSWORDS.alice), await clients.open('pptp', 'alice', PASSWORDS.alice));
    const ids = (await L.sessions()).map((s) => s.id).sort();
    expect(ids).toHaveLength(2);

    // A user added on disk is not known until SIGHUP.
    expect(await L.addUser('dave', PASSWORDS.dave)).toBe(`added user dave to ${path.join(L.tmp, 'state/users.yaml')}\n`);
    await refused('sstp', 'dave');
    await hup(/"msg":"users: user store reloaded"/, 'the user store reload');
    expect(server.out).toMatch(/"users":2,"msg":"users: user store reloaded"/);
    const daves = [await clients.open('sstp', 'dave', PASSWORDS.dave), await clients.open('pptp', 'dave', PASSWORDS.dave)];
    await carries([...survivors, ...daves]);

    // A deleted user cannot log in any more; their running sessions stay.
    const del = await L.run(undefined, ['users', 'del', 'alice', '--config', L.cfg]);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toBe('deleted user alice\n');
    await hup(/"users":1,"msg":"users: user store reloaded"/, 'the user store reload without alice');
    await refused('sstp', 'alice');
    await refused('pptp', 'alice');
    const now = await L.sessions();
    expect(now.filter((s) => s.user === 'alice').map((s) => s.id).sort()).toEqual(ids);
    expect(now.every((s) => s.state === 'up')).toBe(true);
    await carries(survivors);

    // An invalid file: every problem logged with its path, the running configuration kept.
    writeFileSync(L.cfg, config({ limits: '{maxSessionsPerUser: lots, authFailuresPerSourcePerMinute: 100}', log: '{level: loud}' }));
    await hup(/keeping the running configuration/, 'the invalid reload to be refused');
    const refusal = server.out.split('\n').filter((l) => /"msg":"reload: /.test(l)).map((l) => JSON.parse(l) as { path?: string; level: string; msg: string });
    expect(refusal.filter((l) => l.level === 'error').map((l) => l.path).filter(Boolean)).toEqual(expect.arrayContaining(['limits.maxSessionsPerUser', 'log.level']));
    expect(server.exit).toBeUndefined();
    daves.push(await clients.open('sstp', 'dave', PASSWORDS.dave));
    await carries([...survivors, ...daves]);

    // A valid policy change applies to the next login: dave has 3 sessions, the limit becomes 3.
    writeFileSync(L.cfg, config({ limits: '{maxSessionsPerUser: 3, authFailuresPerSourcePerMinute: 100}' }));
    await hup(/"msg":"reload: configuration applied"/, 'the reload to apply');
    expect(server.out).toMatch(/"applied":\[[^\]]*"limits[^\]]*\],"needsRestart":0,"msg":"reload: configuration applied"/);
    await refused('pptp', 'dave');
    expect(server.out).toMatch(/"reason":"rate-limited"/);
    survivors.push(...daves);
    expect((await L.sessions()).map((s) => s.user).sort()).toEqual(['alice', 'alice', 'dave', 'dave', 'dave']);
    await carries(survivors);
  }, 120_000);

  it('SIGTERM with live tunnels: stops accepting, tells every client, exits 0 within the grace period', async () => {
    // More tunnels: in-process SSTP and PPTP for dave's successor, and two `vpngw connect` processes (TUN devices in ns B).
    // (and the log level to debug: the protocol servers' loggers follow it)
    const reloadAt = server.out.length;
    writeFileSync(L.cfg, config({ limits: '{maxSessionsPerUser: 32, authFailuresPerSourcePerMinute: 100}', log: '{level: debug}' }));
    await hup(/"msg":"reload: configuration applied"/, 'the limit to grow');
    expect(server.out.slice(reloadAt)).toMatch(/"applied":\["limits\.maxSessionsPerUser","log\.level"\]/);
    const more = await Promise.all([
      ...Array.from({ length: 4 }, () => clients.open('sstp', 'dave', PASSWORDS.dave)),
      ...Array.from({ length: 3 }, () => clients.open('pptp', 'dave', PASSWORDS.dave)),
    ]);
    const connects = await connectProcesses();
    const debugLines = server.out.slice(reloadAt).split('\n').filter((l) => l.includes('"level":"debug"'));
    for (const m of ['sstp: recv', 'PPTP receive', 'LCP: Req-Sent -> Ack-Sent (RCR+)']) expect(debugLines.some((l) => l.includes(`"msg":"${m}"`)), m).toBe(true);
    const tunnels = [...survivors, ...more];
    await carries(tunnels);
    const live = await L.sessions();
    expect(live.filter((s) => s.state === 'up')).toHaveLength(tunnels.length + connects.length);
    const bySstp = live.filter((s) => s.protocol === 'sstp').length;

    const outBefore = server.out.length;
    const t0 = performance.now();
    server.child.kill('SIGTERM');
    // A connection attempt while it shuts down is not served.
    const late = await clients.open('sstp', 'dave', PASSWORDS.dave).then(
      () => 'connected',
      (e: unknown) => (isVpnError(e) ? e.code : String(e)),
    );
    const exit = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('timeout'), SHUTDOWN_GRACE_MS + 10_000))]);
    const ms = performance.now() - t0;
    expect(exit, `stderr:\n${server.err}\nstdout:\n${server.out.slice(outBefore).slice(-4000)}`).toEqual({ code: 0, signal: null });
    expect(ms).toBeLessThan(SHUTDOWN_GRACE_MS + 5_000);
    // Refused at TCP (the listener is closed) or, if it raced the signal, closed by the draining server.
    expect(['ERR_CONNECT', 'ERR_TLS', 'ERR_PEER_CLOSED']).toContain(late);

    // Every in-process client was told by its protocol.
    const ends = await Promise.all(tunnels.map((t) => t.ended));
    tunnels.forEach((t, i) => {
      expect(ends[i], `${t.protocol} ${t.user} ${t.ipv4}`).toEqual({
        initiator: 'peer',
        detail: t.protocol === 'sstp' ? 'call disconnected (peer)' : 'control peer-stop, call peer-disconnect',
      });
    });
    // The processes too, and they exit 0.
    for (const c of connects) {
      expect(await Promise.race([c.exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]), c.err).toEqual({ code: 0, signal: null });
      expect(c.err).toContain('vpngw: the server disconnected');
    }

    // The server's own account: stop accepting first, then the teardowns, then stopped.
    const log = server.out
      .slice(outBefore)
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg: string; reason?: string; initiator?: string });
    const at = (re: RegExp) => log.findIndex((l) => re.test(l.msg));
    const draining = at(/^sstp-service: Listening -> Draining \(graceful stop\)$/);
    expect(at(/^gateway: running -> stopping \(SIGTERM\)$/)).toBeGreaterThanOrEqual(0);
    expect(draining).toBeGreaterThanOrEqual(0);
    expect(at(/^pptp-service: Listening -> Draining \(graceful stop\)$/)).toBeGreaterThanOrEqual(0);
    expect(log.slice(draining).some((l) => l.msg === 'sstp: HTTP request accepted')).toBe(false);
    expect(log.filter((l) => l.msg === 'sstp: call closed').map((l) => [l.reason, l.initiator])).toEqual(Array.from({ length: bySstp }, () => ['disconnected', 'local']));
    expect(at(/^gateway: stopping -> stopped \(SIGTERM\)$/)).toBeGreaterThan(draining);
    expect(log.some((l) => l.msg === 'sessions left after the servers stopped: tearing them down')).toBe(false);
    expect(server.err).toContain(`vpngw: SIGTERM: shutting down (up to ${SHUTDOWN_GRACE_MS / 1000} s)`);
    expect(server.err).toMatch(/vpngw: stopped\n$/);
    const gone = await L.a.exec(['ip', 'link', 'show', tun], { allowFail: true });
    expect(gone.code).not.toBe(0);
    process.stderr.write(
      `\n  vpngw serve SIGTERM with ${live.length} live tunnels (${bySstp} SSTP, ${live.length - bySstp} PPTP, 2 of them vpngw connect processes): ` +
        `every client told, exit 0 after ${(ms / 1000).toFixed(2)} s (grace ${SHUTDOWN_GRACE_MS / 1000} s)\n`,
    );
  }, 120_000);

  it('SIGTERM with clients that stopped answering (SIGSTOP): still exits 0, bounded by the protocol timers and the grace period', async () => {
    // A fresh server on the same state directory (same certificate, same users).
    if (server.exit === undefined) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    // (dave exists when the first test ran; alone, this one adds him)
    const listed = JSON.parse((await L.run(undefined, ['users', 'list', '--config', L.cfg, '--json'])).stdout) as { username: string }[];
    if (!listed.some((u) => u.username === 'dave')) await L.addUser('dave', PASSWORDS.dave);
    const errBefore = server.err;
    server = await L.serve('vpngw serve to be ready again');
    expect(errBefore).toContain(printedFingerprint(server.err));
    const live = [await clients.open('sstp', 'dave', PASSWORDS.dave), await clients.open('pptp', 'dave', PASSWORDS.dave)];
    const stalled = await connectProcesses();
    expect(await L.sessions()).toHaveLength(4);
    for (const c of stalled) process.kill(c.child.pid!, 'SIGSTOP');
    try {
      const t0 = performance.now();
      server.child.kill('SIGTERM');
      // While it drains: a SIGHUP (log rotation, a reload script) and a second SIGTERM (an impatient supervisor) change nothing.
      await new Promise((r) => setTimeout(r, 500));
      server.child.kill('SIGHUP');
      server.child.kill('SIGTERM');
      // Meanwhile the probes say: alive, not ready (a load balancer stops sending clients).
      const probe = async (p: string) =>
        (await L.a.exec([process.execPath, '-e', `fetch('http://127.0.0.1:9477${p}').then(r => console.log(r.status), e => console.log(e.cause?.code ?? e))`])).stdout.trim();
      expect([await probe('/healthz'), await probe('/readyz')]).toEqual(['200', '503']);
      const exit = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('timeout'), SHUTDOWN_GRACE_MS + 10_000))]);
      const ms = performance.now() - t0;
      expect(exit, server.err).toEqual({ code: 0, signal: null });
      expect(server.err).toContain('vpngw: SIGHUP ignored: already shutting down\n');
      expect(server.err).toContain('vpngw: SIGTERM ignored: already shutting down\n');
      // The answering clients were told at once; the stalled ones held the shutdown up to the protocol
      // teardown timers (LCP Terminate wait, then Call Disconnect / Stop-Control-Connection reply), never past the grace period.
      expect(await Promise.all(live.map((t) => t.ended))).toEqual([
        { initiator: 'peer', detail: 'call disconnected (peer)' },
        { initiator: 'peer', detail: 'control peer-stop, call peer-disconnect' },
      ]);
      expect(ms).toBeGreaterThan(TEARDOWN_LCP_WAIT_MS);
      expect(ms).toBeLessThan(SHUTDOWN_GRACE_MS + 2_000);
      process.stderr.write(
        `\n  vpngw serve SIGTERM with 4 live tunnels, 2 of them (SSTP, PPTP vpngw connect processes) stopped by SIGSTOP: exit 0 after ${(ms / 1000).toFixed(2)} s (grace ${SHUTDOWN_GRACE_MS / 1000} s)\n`,
      );
    } finally {
      for (const c of stalled) process.kill(c.child.pid!, 'SIGCONT');
    }
    // Resumed, they find the server gone and end.
    for (const c of stalled) {
      const e = await Promise.race([c.exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
      expect(e, c.err).not.toBe('timeout');
    }
  }, 120_000);
});
