/**
 * `vpngw serve` end to end, as an operator runs it: the compiled CLI
 * (bin/vpngw.js -> dist/) spawned with a temporary config, its TUN device
 * created inside a network namespace this test owns, the admin API on a free
 * loopback port. Checks /healthz, /readyz, /metrics, SIGHUP reload (valid and
 * invalid files), and that SIGTERM exits 0 and removes the TUN device.
 *
 * The build goes to a temporary directory (symlinks to node_modules, native/
 * and build/), so the repository's dist/ is never touched.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildCli, type CliBuild } from '../lib/vpngw-cli.js';
import { freePort } from '../lib/wait.js';

const pexec = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const version = (JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version;

function facility(): { ok: boolean; reason?: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (TUN device, ip netns)' };
  if (!existsSync('/dev/net/tun')) return { ok: false, reason: 'no /dev/net/tun' };
  if (!existsSync(path.join(repo, 'native/build/Release/vpngw_native.node'))) return { ok: false, reason: 'native addon not built' };
  if (!existsSync(path.join(repo, 'build/vpngw.wasm'))) return { ok: false, reason: 'WASM module not built' };
  return { ok: true };
}

/** A port the OS says is free now (loopback). */
async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('bin/vpngw.js without a build', () => {
  it('says to run npm ci / npm run build, exit 1', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'vpngw-nobuild-'));
    try {
      mkdirSync(path.join(tmp, 'bin'));
      copyFileSync(path.join(repo, 'bin/vpngw.js'), path.join(tmp, 'bin/vpngw.js'));
      const r = await pexec(process.execPath, [path.join(tmp, 'bin/vpngw.js'), '--version']).catch((e: { code: number; stderr: string }) => e);
      expect((r as { code: number }).code).toBe(1);
      expect((r as { stderr: string }).stderr).toMatch(/^vpngw: ERR_NOT_BUILT: .*dist\/src\/cli\/main\.js is missing: run "npm ci" \(or "npm run build"\)/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

const f = facility();
if (!f.ok) console.error(`\n*** SKIPPED vpngw serve end-to-end test: ${f.reason} ***\n`);

describe.skipIf(!f.ok)('vpngw serve end to end (root)', () => {
  const tag = `${process.pid % 100000}`;
  const ns = `vgt-serve-${tag}-${Math.floor(Math.random() * 1e6)}`;
  const tun = `vgs${tag}`;
  let tmp: string;
  let cli: CliBuild;
  let child: ChildProcess | undefined;
  let out = '';
  let err = '';
  let exit: { code: number | null; signal: string | null } | undefined;
  let adminUrl: string;
  let cfgFile: string;

  const config = (admin: number, sstp: number, extra = '') => `
stateDir: state
dataplane:
  workers: 1
  maxSessionsPerWorker: 64
  tun: {name: ${tun}, netns: ${ns}, mtu: 1400}
  gateway: 198.18.128.1
  prefixLength: 24
users: {demoUser: false}
sstp: {listen: 127.0.0.1, port: ${sstp}}
admin: {port: ${admin}}
log: {level: info}
${extra}`;

  beforeAll(async () => {
    cli = await buildCli();
    tmp = cli.dir;
    await pexec('ip', ['netns', 'add', ns]);
    const [admin, sstp] = [await freePort(), await freePort()];
    adminUrl = `http://127.0.0.1:${admin}`;
    cfgFile = path.join(tmp, 'vpngw.yaml');
    writeFileSync(cfgFile, config(admin, sstp));
  }, 180_000);

  afterAll(async () => {
    if (child && exit === undefined && child.pid) child.kill('SIGKILL');
    await pexec('ip', ['netns', 'del', ns]).catch(() => undefined);
    cli?.remove();
  });

  it('starts, serves health and metrics, reloads on SIGHUP, and exits 0 on SIGTERM', async () => {
    child = spawn(process.execPath, [path.join(tmp, 'bin/vpngw.js'), 'serve', '--config', cfgFile], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code, signal) => (exit = { code, signal }));
    await waitFor(() => /vpngw: ready/.test(err) || exit !== undefined, 30_000, 'ready');
    expect(exit, `stderr:\n${err}\nstdout:\n${out}`).toBeUndefined();
    expect(err).toContain(`vpngw: opening TUN device ${tun}`);
    expect(err).toContain('vpngw: protocols enabled: sstp');
    expect(err).toContain(`admin API on ${adminUrl}`);

    // The TUN device exists in the namespace with the gateway address.
    const addr = await pexec('ip', ['-n', ns, '-o', '-4', 'addr', 'show', 'dev', tun]);
    expect(addr.stdout).toContain('198.18.128.1/24');

    let r = await fetch(`${adminUrl}/healthz`);
    expect([r.status, await r.text()]).toEqual([200, 'ok\n']);
    r = await fetch(`${adminUrl}/readyz`);
    expect(r.status).toBe(200);
    r = await fetch(`${adminUrl}/metrics`);
    expect(r.status).toBe(200);
    const metrics = await r.text();
    expect(metrics).toContain(`vpngw_build_info{version="${version}"} 1`);
    expect(metrics).toMatch(/^vpngw_ring_capacity_slots\{worker="0",ring="tun_rx"\} [1-9]\d*$/m);
    expect(metrics).toContain('vpngw_pool_addresses{pool="default"} 253');
    expect(metrics).toContain('vpngw_dataplane_drops_total{reason="ring_full"} 0');
    expect(metrics).toContain('# TYPE process_cpu_seconds_total counter');
    r = await fetch(`${adminUrl}/sessions`);
    expect(await r.json()).toEqual([]);

    // SIGHUP with a valid change: applied, restart-only changes reported.
    const port = Number(new URL(adminUrl).port);
    writeFileSync(cfgFile, config(port, 1, 'pools: {default: {ranges: ["198.18.128.0/24"]}, extra: {ranges: []}}'));
    // (first an invalid file: pools.extra.ranges is empty, and sstp.port changed)
    child.kill('SIGHUP');
    await waitFor(() => /keeping the running configuration/.test(out), 10_000, 'invalid reload logged');
    expect(out).toMatch(/"path":"pools\.extra\.ranges"/);
    writeFileSync(cfgFile, config(port, 2, '').replace('level: info', 'level: debug'));
    child.kill('SIGHUP');
    await waitFor(() => /reload: configuration applied/.test(out), 10_000, 'reload applied');
    expect(out).toMatch(/reload: sstp\.port needs a restart/);
    expect(out).toMatch(/"applied":\["log\.level"\]/);
    expect((await fetch(`${adminUrl}/healthz`)).status).toBe(200);

    child.kill('SIGTERM');
    await waitFor(() => exit !== undefined, 20_000, 'exit after SIGTERM');
    expect(exit, `stderr:\n${err}`).toEqual({ code: 0, signal: null });
    expect(err).toContain('vpngw: SIGTERM: shutting down');
    expect(err).toContain('vpngw: stopped');
    expect(out).toContain('gateway: running -> stopping (SIGTERM)');
    // The TUN device went away with the process.
    const gone = await pexec('ip', ['-n', ns, 'link', 'show', tun]).then(
      () => false,
      () => true,
    );
    expect(gone).toBe(true);
    // No secret or password appears in the logs (there are none in this config, but the log must be JSON lines).
    for (const line of out.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  }, 90_000);
});
