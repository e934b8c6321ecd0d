/**
 * The real processes, as an operator runs them (root): `vpngw serve` in
 * namespace A with PPTP enabled on a fresh state directory (demo user with a
 * generated password), `vpngw connect pptp://demo@A` in namespace B with the
 * printed password (VPNGW_PASSWORD), ping through the tunnel, then SIGTERM to
 * both: both exit 0, the server logged the call cleared and the control
 * connection closed.
 *
 * The compiled CLI is built into a temporary directory (test/lib/vpngw-cli.ts),
 * so the repository's dist/ is untouched.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { NetLab, netnsSupport, reportSkip, uniqueIfName, type Netns, type Subnet } from './lib/netns.js';
import { buildCli, cliBuildMissing, serveReady, track, waitUntil, type CliBuild } from './lib/vpngw-cli.js';

const facility = await netnsSupport();
const missing = cliBuildMissing();
const f = facility.ok && missing ? { ok: false, reason: missing } : facility;
reportSkip('PPTP vpngw serve / vpngw connect processes', f);

describe.skipIf(!f.ok)('vpngw serve and vpngw connect pptp:// as processes', () => {
  let lab: NetLab;
  let a: Netns;
  let b: Netns;
  let link: Subnet;
  let cli: CliBuild;

  beforeAll(async () => {
    cli = await buildCli();
    expect(existsSync(path.join(cli.dir, 'dist/src/pptp/server.js'))).toBe(true);
    lab = new NetLab();
    a = await lab.netns('pcli-srv');
    b = await lab.netns('pcli-cli');
    do link = await lab.subnet();
    while (link.network === '198.18.128.0');
    await lab.veth(a, b, { aAddr: link.cidr(1), bAddr: link.cidr(2) });
  }, 200_000);

  afterAll(async () => {
    await lab?.cleanup();
    cli?.remove();
  });

  it('serve with PPTP, connect with the demo password, ping, SIGTERM both: exit 0', async () => {
    const tun = uniqueIfName('tpv');
    const cfg = path.join(cli.dir, 'vpngw.yaml');
    writeFileSync(
      cfg,
      `stateDir: state
dataplane: {workers: 1, maxSessionsPerWorker: 64, tun: {name: ${tun}, mtu: 1400}}
sstp: {enabled: false}
pptp: {enabled: true, listen: ${link.host(1)}}
admin: {enabled: true, port: 9477}
log: {level: info}
`,
    );
    const server = track(a.spawn([process.execPath, cli.bin, 'serve', '--config', cfg], { cwd: cli.dir, stdio: ['ignore', 'pipe', 'pipe'] }));
    await serveReady(server);
    expect(server.err).toMatch(/protocols enabled: pptp/);
    const password = /created user "demo" with password (\S+)/.exec(server.err)?.[1];
    expect(password, server.err).toBeDefined();
    expect(server.out).not.toContain(password!);

    const ctun = uniqueIfName('tcl');
    const client = track(
      b.spawn([process.execPath, cli.bin, 'connect', `pptp://demo@${link.host(1)}`, '--tun', ctun], {
        cwd: cli.dir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, VPNGW_PASSWORD: password! },
      }),
    );
    await waitUntil(() => /vpngw: connected: /.test(client.err) || client.exit !== undefined, 30_000, 'the client to connect');
    expect(client.exit, `client stderr:\n${client.err}\nserver stderr:\n${server.err}`).toBeUndefined();
    expect(client.err).toMatch(new RegExp(`connected: address 198\\.18\\.128\\.\\d+ on ${ctun}, gateway 198\\.18\\.128\\.1, MTU 1400, MPPE 128-bit stateful`));

    const ping = await b.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', '198.18.128.1'], { allowFail: true, timeoutMs: 20_000 });
    expect(ping.stdout, ping.stderr).toMatch(/3 packets transmitted, 3 received/);
    const sessions = await a.exec([process.execPath, '-e', "fetch('http://127.0.0.1:9477/sessions').then(async (r) => process.stdout.write(await r.text()))"]);
    expect(JSON.parse(sessions.stdout)).toMatchObject([{ protocol: 'pptp', user: 'demo', state: 'up' }]);
    expect(server.out).toMatch(/"msg":"pptp: session up"/);

    client.child.kill('SIGTERM');
    await waitUntil(() => client.exit !== undefined, 15_000, 'the client to exit');
    expect(client.exit, client.err).toEqual({ code: 0, signal: null });
    expect(client.err).toContain('vpngw: disconnected');
    await waitUntil(() => /"msg":"pptp: control connection closed"/.test(server.out), 10_000, 'the server to log the connection closed');
    expect(server.out).toMatch(/"reason":"peer-terminated"/);

    server.child.kill('SIGTERM');
    await waitUntil(() => server.exit !== undefined, 20_000, 'the server to exit');
    expect(server.exit, server.err).toEqual({ code: 0, signal: null });
    for (const line of server.out.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  }, 120_000);
});
