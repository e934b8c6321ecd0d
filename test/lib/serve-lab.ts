/**
 * `vpngw serve` as an operator runs it, with our clients against it (root);
 * what the process tests (ops-admin, ops-signals, workers) share:
 *
 *   ns A: `vpngw serve --config <tmp>/vpngw.yaml` (the compiled CLI)   veth a <S.1/24>
 *   ns B: our clients (LabClients: in-process SSTP and PPTP tunnels),   veth b <S.2/24>
 *         `vpngw connect` processes, an operator's `vpngw` commands
 *
 * The test writes the config (its own sections; the listeners on S.1) and
 * adds its users; the lab builds the CLI, makes the namespaces and the link,
 * starts the processes and ends them (by PID) at close.
 */
import { expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { SessionInfo } from '../../src/admin/types.js';
import { labSubnet } from './gateway-lab.js';
import { NetLab, netnsSupport, reportSkip, type ExecResult, type Facility, type Netns, type Subnet } from './netns.js';
import { LabClients } from './ops-lab.js';
import { buildCli, cliBuildMissing, printedFingerprint, runVpngw, serveReady, spawnVpngw, waitUntil, type CliBuild, type Proc } from './vpngw-cli.js';

/** Can a serve lab run here: network namespaces (root), the native addon and the WASM module. Reports a skip under `what` when not. */
export async function serveLabSupport(what: string): Promise<Facility> {
  const facility = await netnsSupport();
  const missing = facility.ok ? cliBuildMissing() : '';
  const f = facility.ok && missing ? { ok: false, reason: missing } : facility;
  reportSkip(what, f);
  return f;
}

/** The namespaces, the link, the CLI build, the files and the processes of one test; see the file comment. */
export class ServeLab {
  /** The config file the test writes: <tmp>/vpngw.yaml. */
  readonly cfg: string;
  /** Every process started here, in order. */
  readonly procs: Proc[] = [];
  private readonly clients: LabClients[] = [];

  private constructor(
    readonly cli: CliBuild,
    readonly lab: NetLab,
    readonly a: Netns,
    readonly b: Netns,
    /** The A-B link: A is host(1) (where `vpngw serve` listens), B host(2). */
    readonly link: Subnet,
    readonly tmp: string,
  ) {
    this.cfg = path.join(tmp, 'vpngw.yaml');
  }

  /** Build the CLI, make ns A (`<name>-srv`) and B (`<name>-cli`) with their link, and a temporary directory (`<tmpPrefix>XXXXXX`). */
  static async open(name: string, tmpPrefix: string): Promise<ServeLab> {
    const cli = await buildCli();
    const tmp = mkdtempSync(path.join(os.tmpdir(), tmpPrefix));
    const lab = new NetLab();
    try {
      const a = await lab.netns(`${name}-srv`);
      const b = await lab.netns(`${name}-cli`);
      const link = await labSubnet(lab);
      await lab.veth(a, b, { aAddr: link.cidr(1), bAddr: link.cidr(2) });
      return new ServeLab(cli, lab, a, b, link, tmp);
    } catch (e) {
      await lab.cleanup().catch(() => undefined);
      rmSync(tmp, { recursive: true, force: true });
      cli.remove();
      throw e;
    }
  }

  /** `vpngw ARGS` in a namespace, as a process ended at close. */
  spawn(ns: Netns, args: readonly string[], env: Record<string, string> = {}): Proc {
    const p = spawnVpngw(this.cli, ns, args, env);
    this.procs.push(p);
    return p;
  }

  /** `vpngw ARGS` to completion, in a namespace or here. */
  run(ns: Netns | undefined, args: readonly string[], env: Record<string, string> = {}): Promise<ExecResult> {
    return runVpngw(this.cli, ns, args, env);
  }

  /** `vpngw serve --config cfg` in ns A, once it says it is ready. */
  async serve(what?: string): Promise<Proc> {
    const server = this.spawn(this.a, ['serve', '--config', this.cfg]);
    await serveReady(server, what);
    return server;
  }

  /** Our clients in ns B against `server` (its printed certificate fingerprint); closed at close. */
  clientsOf(server: Proc): LabClients {
    const c = new LabClients({ serverAddress: this.link.host(1), sstpPort: 443, pptpPort: 1723, fingerprint: printedFingerprint(server.err), b: this.b });
    this.clients.push(c);
    return c;
  }

  /** `vpngw users add USER --config cfg --password-file F` (F a 0600 file with the password); must succeed; its stdout. */
  async addUser(user: string, password: string): Promise<string> {
    const pw = path.join(this.tmp, `pw-${randomBytes(4).toString('hex')}`);
    writeFileSync(pw, `${password}\n`, { mode: 0o600 });
    const r = await this.run(undefined, ['users', 'add', user, '--config', this.cfg, '--password-file', pw]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  }

  /** `vpngw sessions --config cfg --json` in ns A; must succeed. */
  async sessions(): Promise<SessionInfo[]> {
    const r = await this.run(this.a, ['sessions', '--config', this.cfg, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as SessionInfo[];
  }

  /** `vpngw connect ARGS` processes in ns B, started at once, each waited for (bounded) until it says it is connected. */
  async connect(runs: readonly (readonly string[])[], env: Record<string, string>): Promise<Proc[]> {
    const started = runs.map((args) => this.spawn(this.b, ['connect', ...args], env));
    for (const c of started) {
      await waitUntil(() => /vpngw: connected: /.test(c.err) || c.exit !== undefined, 30_000, 'vpngw connect to connect');
      expect(c.exit, c.err).toBeUndefined();
    }
    return started;
  }

  /**
   * Close the clients, end every process (SIGKILL; or SIGTERM, then wait up
   * to 15 s for them to exit), remove the namespaces, the files and the build.
   */
  async close(stop: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    for (const c of this.clients) await c.close();
    for (const p of this.procs) if (p.exit === undefined) p.child.kill(stop);
    if (stop === 'SIGTERM') await Promise.race([Promise.all(this.procs.map((p) => p.exited)), new Promise((r) => setTimeout(r, 15_000))]);
    await this.lab.cleanup();
    rmSync(this.tmp, { recursive: true, force: true });
    this.cli.remove();
  }
}
