/**
 * README's first command, as an operator runs it (root): package.json's
 * `start` script (`vpngw serve` on the embedded default configuration, no
 * config file) in namespace A, on a fresh /var/lib/vpngw (a tmpfs over /var/lib
 * in a private mount namespace of that process only): it generates the
 * certificate and the demo user with a printed password, runs SSTP on port
 * 443, the TUN device vpngw0 with 198.18.128.1/24 and the admin API on
 * 127.0.0.1:9477. Then `vpngw connect sstp://demo@A` in namespace B with the
 * printed fingerprint and password (VPNGW_PASSWORD), ping through the tunnel,
 * the admin API lists the session, SIGTERM to both: both exit 0.
 *
 * The compiled CLI is built into a temporary directory (test/lib/vpngw-cli.ts),
 * so the repository's dist/ is untouched.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { NetLab, netnsSupport, reportSkip, uniqueIfName, type Netns, type Subnet } from './lib/netns.js';
import { REPO, buildCli, cliBuildMissing, printedFingerprint, serveReady, track, waitUntil, type CliBuild, type Proc } from './lib/vpngw-cli.js';

const facility = await netnsSupport();
const missing = cliBuildMissing();
const f = facility.ok && missing ? { ok: false, reason: missing } : facility;
reportSkip('SSTP: npm start (embedded default) / vpngw connect processes', f);

/** package.json's start script, which this test runs as README's `npm start` does. */
const START = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;

describe.skipIf(!f.ok)('npm start (vpngw serve on the embedded default) and vpngw connect sstp:// as processes', () => {
  let lab: NetLab;
  let a: Netns;
  let b: Netns;
  let link: Subnet;
  let cli: CliBuild;
  const procs: Proc[] = [];

  beforeAll(async () => {
    cli = await buildCli();
    lab = new NetLab();
    a = await lab.netns('cli-srv');
    b = await lab.netns('cli-cli');
    // The default pool is 198.18.128.0/24: the link must be elsewhere.
    do link = await lab.subnet();
    while (link.network === '198.18.128.0');
    await lab.veth(a, b, { aAddr: link.cidr(1), bAddr: link.cidr(2) });
  }, 200_000);

  afterAll(async () => {
    await lab?.cleanup();
    cli?.remove();
  });

  it('npm start on a fresh state dir, connect with the printed fingerprint and demo password, ping, SIGTERM both: exit 0', async () => {
    expect(START).toBe('node bin/vpngw.js serve');
    // The start script's command, run in its own mount namespace where /var/lib is a fresh tmpfs
    // (exec keeps one PID from ip netns exec to node, so the lab's cleanup can end it).
    const server = track(
      a.spawn(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs vpngw-test /var/lib && exec "$@"', 'sh', process.execPath, cli.bin, 'serve'], {
        cwd: cli.dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    procs.push(server);
    await serveReady(server);
    const fp = printedFingerprint(server.err);
    const password = /created user "demo" with password (\S+)/.exec(server.err)?.[1];
    expect(password, server.err).toBeDefined();
    expect(server.err).toContain('/var/lib/vpngw/sstp-cert.pem');
    // The password is shown once on stderr, never in the log.
    expect(server.out).not.toContain(password!);
    // The default data plane: vpngw0 with the gateway address.
    expect((await a.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'vpngw0'])).stdout).toMatch(/inet 198\.18\.128\.1\/24/);

    const ctun = uniqueIfName('tcl');
    const client = track(
      b.spawn([process.execPath, cli.bin, 'connect', `sstp://demo@${link.host(1)}`, '--fingerprint', fp, '--tun', ctun], {
        cwd: cli.dir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, VPNGW_PASSWORD: password! },
      }),
    );
    procs.push(client);
    await waitUntil(() => /vpngw: connected: /.test(client.err) || client.exit !== undefined, 30_000, 'the client to connect');
    expect(client.exit, `client stderr:\n${client.err}\nserver stderr:\n${server.err}`).toBeUndefined();
    expect(client.err).toMatch(new RegExp(`connected: address 198\\.18\\.128\\.\\d+ on ${ctun}, gateway 198\\.18\\.128\\.1, MTU 1400`));

    const ping = await b.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', '198.18.128.1'], { allowFail: true, timeoutMs: 20_000 });
    expect(ping.stdout, ping.stderr).toMatch(/3 packets transmitted, 3 received/);
    // The default admin API (127.0.0.1:9477 in the gateway's namespace) lists the session.
    const sessions = await a.exec([process.execPath, '-e', "fetch('http://127.0.0.1:9477/sessions').then(async (r) => process.stdout.write(await r.text()))"]);
    expect(JSON.parse(sessions.stdout)).toMatchObject([{ protocol: 'sstp', user: 'demo', state: 'up' }]);

    client.child.kill('SIGTERM');
    await waitUntil(() => client.exit !== undefined, 15_000, 'the client to exit');
    expect(client.exit, client.err).toEqual({ code: 0, signal: null });
    expect(client.err).toContain('vpngw: disconnected');
    await waitUntil(() => /"msg":"sstp: call closed"/.test(server.out), 10_000, 'the server to log the call closed');
    expect(server.out).toMatch(/"reason":"disconnected","initiator":"peer"/);

    server.child.kill('SIGTERM');
    await waitUntil(() => server.exit !== undefined, 20_000, 'the server to exit');
    expect(server.exit, server.err).toEqual({ code: 0, signal: null });
    for (const line of server.out.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  }, 120_000);
});
