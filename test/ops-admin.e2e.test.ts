/**
 * The admin API and `vpngw sessions` against real sessions (root):
 *
 *   ns A: `vpngw serve` (compiled CLI): SSTP S.1:443, PPTP S.1:1723, admin
 *         API on the lab address S.1:9477 (not loopback: a bearer token)
 *   ns B: our clients (in-process SSTP and PPTP tunnels, and one
 *         `vpngw connect sstp://` process with a TUN device), and the
 *         `vpngw sessions` / `vpngw users` commands
 *
 * Checked: users added with `vpngw users add` log in; `vpngw sessions list`
 * (table and --json, URL and token from the config or from --url and
 * --token-file) shows every live session with its user, peer, inner address
 * and bytes; without the token the API refuses (401) except the probes;
 * `vpngw sessions kill ID` tears one session down with its protocol's
 * teardown (the `vpngw connect` process is told by SSTP Call Disconnect and
 * exits 0; a PPTP client by Call-Disconnect-Notify and
 * Stop-Control-Connection); `kill --user U` ends every session of U and
 * nothing else; an unknown id is an error. No password or token reaches the
 * server's log.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { uniqueIfName } from './lib/netns.js';
import { GATEWAY } from './lib/gateway-lab.js';
import { type LabClients, type LabTunnel } from './lib/ops-lab.js';
import { ServeLab, serveLabSupport } from './lib/serve-lab.js';
import { printedFingerprint, waitUntil, type Proc } from './lib/vpngw-cli.js';
import { findSecrets } from './lib/secrets.js';
import { icmpEcho, ipv4Packet } from './lib/packets.js';
import type { SessionInfo } from '../src/admin/types.js';

const f = await serveLabSupport('admin API and vpngw sessions against real sessions');

const TOKEN = `ops-admin-${randomBytes(16).toString('base64url')}`;
const PASSWORDS = { alice: `alice-${randomBytes(8).toString('base64url')}`, bob: `bob-${randomBytes(8).toString('base64url')}`, carol: `carol-${randomBytes(8).toString('base64url')}` };

describe.skipIf(!f.ok)('admin API and vpngw sessions against real sessions of a vpngw serve process', () => {
  let L: ServeLab;
  let server: Proc;
  let clients: LabClients;
  let adminUrl: string;
  let gwTun: string;

  /** `vpngw ARGS` in ns B (where an operator's workstation would be). */
  const vpngw = (args: string[], env: Record<string, string> = {}) => L.run(L.b, args, env);

  beforeAll(async () => {
    L = await ServeLab.open('adm', 'vpngw-ops-admin-');
    gwTun = uniqueIfName('tadm');
    const { link, cfg, tmp } = L;
    adminUrl = `http://${link.host(1)}:9477`;
    writeFileSync(
      cfg,
      `stateDir: state
dataplane: {workers: 2, maxSessionsPerWorker: 64, tun: {name: ${gwTun}, mtu: 1400, txQueueLen: 3000}}
users: {demoUser: false}
auth: {sstp: [mschapv2, eap-mschapv2]}
sstp: {listen: ${link.host(1)}, port: 443}
pptp: {enabled: true, listen: ${link.host(1)}, port: 1723}
limits: {maxSessionsPerUser: 8, authFailuresPerSourcePerMinute: 100}
log: {level: debug}
admin: {listen: ${link.host(1)}, port: 9477, token: ${JSON.stringify(TOKEN)}}
`,
    );
    // The users, as an operator adds them (password from a file, never an argument).
    for (const [u, pw] of Object.entries(PASSWORDS)) {
      expect(await L.addUser(u, pw)).toBe(`added user ${u} to ${path.join(tmp, 'state/users.yaml')}\n`);
    }
    expect((await L.run(undefined, ['config', 'check', cfg])).stdout).toBe(`${cfg}: ok\n`);
    // The same listener without a token is refused before anything starts.
    const open = path.join(tmp, 'no-token.yaml');
    writeFileSync(open, readFileSync(cfg, 'utf8').replace(/, token: "[^"]+"/, ''));
    const bad = await L.run(undefined, ['config', 'check', open]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`admin.token: expected a bearer token: admin.listen ${link.host(1)} is not a loopback address`);

    server = await L.serve();
    expect(server.err).toContain(`admin API on ${adminUrl}`);
    // The gateway's TUN device as configured: its MTU and its queue towards the readers (dataplane.tun.txQueueLen).
    expect(await L.a.ip('link', 'show', gwTun)).toMatch(/mtu 1400 .*qlen 3000/);
    clients = L.clientsOf(server);
  }, 240_000);

  afterAll(async () => {
    await L?.close('SIGTERM');
  }, 60_000);

  it('lists, kills by id and kills by user, with the protocol teardowns; the token is required off loopback', async () => {
    // Sessions: alice x2 (SSTP, PPTP), bob (SSTP), carol (PPTP), and bob again from a `vpngw connect` process with a TUN device.
    const tunnels: Record<string, LabTunnel> = {
      alice1: await clients.open('sstp', 'alice', PASSWORDS.alice),
      alice2: await clients.open('pptp', 'alice', PASSWORDS.alice),
      bob1: await clients.open('sstp', 'bob', PASSWORDS.bob),
      carol1: await clients.open('pptp', 'carol', PASSWORDS.carol),
    };
    const fp = printedFingerprint(server.err);
    const ctun = uniqueIfName('tcla');
    const connect = (await L.connect([[`sstp://bob@${L.link.host(1)}`, '--fingerprint', fp, '--tun', ctun]], { VPNGW_PASSWORD: PASSWORDS.bob }))[0]!;
    const connectAddr = /connected: address (\S+) on/.exec(connect.err)![1]!;

    // Traffic, so the byte counts are not zero: 5 pings from the process's TUN, 4 echoes on each in-process tunnel.
    const ping = await L.b.exec(['ping', '-c', '5', '-i', '0.2', '-W', '2', '-s', '472', '-I', ctun, GATEWAY], { allowFail: true, timeoutMs: 20_000 });
    expect(ping.stdout, ping.stderr).toMatch(/5 packets transmitted, 5 received/);
    for (const t of Object.values(tunnels)) {
      for (let seq = 1; seq <= 4; seq++) t.sendIp(ipv4Packet(t.ipv4, GATEWAY, 1, icmpEcho(8, t.sessionIndex, seq, new Uint8Array(100)), 64, seq));
    }
    await waitUntil(() => Object.values(tunnels).every((t) => t.echoReplies() >= 4), 10_000, 'echo replies on every tunnel');

    // Without the token: refused (401), except the probes.
    const status = async (p: string) =>
      Number((await L.b.exec([process.execPath, '-e', `fetch(${JSON.stringify(adminUrl + p)}).then(r => console.log(r.status), e => console.log(e.cause?.code ?? e))`])).stdout.trim());
    expect(await status('/healthz')).toBe(200);
    expect(await status('/readyz')).toBe(200);
    expect(await status('/sessions')).toBe(401);
    expect(await status('/metrics')).toBe(401);
    const noToken = await vpngw(['sessions', 'list', '--url', adminUrl]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toBe('vpngw: ERR_ADMIN: the admin API refused the bearer token (set admin.token in the config or VPNGW_ADMIN_TOKEN)\n');
    const wrongToken = await vpngw(['sessions', 'list', '--url', adminUrl], { VPNGW_ADMIN_TOKEN: 'x'.repeat(20) });
    expect(wrongToken.code).toBe(1);

    // `vpngw sessions list --json` with URL and token from the config file.
    const listed = await vpngw(['sessions', 'list', '--config', L.cfg, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const sessions = JSON.parse(listed.stdout) as SessionInfo[];
    const want = [
      ...Object.values(tunnels).map((t) => ({ protocol: t.protocol, user: t.user, innerAddress: t.ipv4 })),
      { protocol: 'sstp', user: 'bob', innerAddress: connectAddr },
    ];
    expect(sessions.map((s) => ({ protocol: s.protocol, user: s.user, innerAddress: s.innerAddress })).sort(byAddr)).toEqual(want.sort(byAddr));
    const peer = new RegExp(`^${L.link.host(2).replace(/\./g, '\\.')}:\\d+$`);
    for (const s of sessions) {
      expect(s.state).toBe('up');
      expect(s.peer).toMatch(peer);
      expect(s.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Date.parse(s.since)).toBeGreaterThan(Date.now() - 120_000);
      // 4 echoes of 128 octets each way, or 5 pings of 500 (plus whatever the kernel of ns B sent on its own).
      const min = s.innerAddress === connectAddr ? 5 * 500 : 4 * 128;
      expect(s.bytesIn, `${s.user} ${s.protocol} in`).toBeGreaterThanOrEqual(min);
      expect(s.bytesOut, `${s.user} ${s.protocol} out`).toBeGreaterThanOrEqual(min);
    }
    const connectSession = sessions.find((s) => s.innerAddress === connectAddr)!;

    // The table, with --url and --token-file.
    const tokenFile = path.join(L.tmp, 'admin.token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const table = await vpngw(['sessions', '--url', adminUrl, '--token-file', tokenFile]);
    expect(table.code, table.stderr).toBe(0);
    const rows = table.stdout.trimEnd().split('\n');
    // vpngw serve runs worker threads: the table names each session's worker.
    expect(rows[0]).toMatch(/^ID\s+PROTOCOL\s+USER\s+PEER\s+INNER\s+STATE\s+WORKER\s+SINCE\s+BYTES IN\s+BYTES OUT$/);
    expect(rows).toHaveLength(1 + sessions.length);
    for (const s of sessions) {
      const row = rows.find((r) => r.startsWith(s.id));
      expect(row, s.id).toBeDefined();
      const cols = row!.split(/\s+/);
      expect(cols.slice(0, 7)).toEqual([s.id, s.protocol, s.user, s.peer, s.innerAddress, 'up', String(s.worker)]);
      expect(Number(cols[8])).toBeGreaterThanOrEqual(s.bytesIn);
      expect(Number(cols[9])).toBeGreaterThanOrEqual(s.bytesOut);
    }

    // kill ID: the `vpngw connect` process is told (SSTP Call Disconnect) and exits 0.
    let r = await vpngw(['sessions', 'kill', connectSession.id, '--config', L.cfg]);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, `disconnected session ${connectSession.id}\n`, '']);
    const ex = await Promise.race([connect.exited, new Promise((res) => setTimeout(() => res('timeout'), 15_000))]);
    expect(ex, connect.err).toEqual({ code: 0, signal: null });
    expect(connect.err).toContain('vpngw: the server disconnected');
    expect(connect.err).toContain('vpngw: disconnected');
    await waitUntil(() => /"msg":"sstp: call closed"/.test(server.out) && server.out.includes(connectSession.id), 5_000, 'the server to log the call closed');
    const closed = server.out.split('\n').filter((l) => l.includes(connectSession.id) && l.includes('"msg":"sstp: call closed"'));
    expect(closed.map((l) => JSON.parse(l) as Record<string, unknown>)).toMatchObject([{ reason: 'disconnected', initiator: 'local', user: 'bob' }]);

    // kill ID of a PPTP session: the client is told by Call-Disconnect-Notify and Stop-Control-Connection.
    const carol = sessions.find((s) => s.user === 'carol')!;
    r = await vpngw(['sessions', 'kill', carol.id, '--url', adminUrl, '--token-file', tokenFile, '--json']);
    expect([r.code, JSON.parse(r.stdout) as unknown]).toEqual([0, { id: carol.id, killed: true }]);
    expect(await tunnels.carol1!.ended).toEqual({ initiator: 'peer', detail: 'control peer-stop, call peer-disconnect' });

    // kill --user alice: both of alice's sessions (SSTP and PPTP), nothing else.
    r = await vpngw(['sessions', 'kill', '--user', 'alice', '--config', L.cfg]);
    expect([r.code, r.stdout]).toEqual([0, 'disconnected 2 sessions of alice\n']);
    expect(await tunnels.alice1!.ended).toEqual({ initiator: 'peer', detail: 'call disconnected (peer)' });
    expect(await tunnels.alice2!.ended).toEqual({ initiator: 'peer', detail: 'control peer-stop, call peer-disconnect' });
    const left = JSON.parse((await vpngw(['sessions', '--config', L.cfg, '--json'])).stdout) as SessionInfo[];
    expect(left.map((s) => [s.user, s.protocol, s.innerAddress])).toEqual([['bob', 'sstp', tunnels.bob1!.ipv4]]);
    // The survivor still carries traffic.
    const before = tunnels.bob1!.echoReplies();
    tunnels.bob1!.sendIp(ipv4Packet(tunnels.bob1!.ipv4, GATEWAY, 1, icmpEcho(8, tunnels.bob1!.sessionIndex, 9, new Uint8Array(8)), 64, 9));
    await waitUntil(() => tunnels.bob1!.echoReplies() > before, 5_000, "an echo reply on bob's tunnel");

    // Unknown ids and users.
    r = await vpngw(['sessions', 'kill', '00000000-0000-0000-0000-000000000000', '--config', L.cfg]);
    expect([r.code, r.stderr]).toEqual([1, 'vpngw: ERR_ADMIN: no session 00000000-0000-0000-0000-000000000000\n']);
    r = await vpngw(['sessions', 'kill', '--user', 'nobody', '--config', L.cfg]);
    expect([r.code, r.stdout]).toEqual([0, 'disconnected 0 sessions of nobody\n']);

    // The server logged the refusals and the disconnects, never a password or the token.
    expect(server.out).toContain('"msg":"admin: request without a valid bearer token"');
    expect(server.out).toContain('"msg":"admin: disconnecting every session of a user"');
    const hits = findSecrets(server.out.split('\n'), [
      ...Object.entries(PASSWORDS).map(([u, pw]) => ({ name: `${u}'s password`, value: pw })),
      { name: 'the admin token', value: TOKEN },
    ]);
    expect(hits.map((h) => `${h.secret}: ${h.excerpt}`)).toEqual([]);
  }, 120_000);
});

const byAddr = (x: { innerAddress: string | null }, y: { innerAddress: string | null }) => String(x.innerAddress).localeCompare(String(y.innerAddress));
