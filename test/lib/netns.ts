/**
 * Network namespaces, veth pairs and tap devices for end-to-end tests.
 *
 * Every resource belongs to a {@link NetLab}; `lab.cleanup()` (or
 * {@link withNetLab}) removes all of it, also when the test failed half way.
 * Three layers make sure nothing outlives the test run:
 *
 *   1. `cleanup()` in afterAll / finally: kill spawned processes (by PID),
 *      delete the namespaces (which deletes the veth pairs and taps in them),
 *      delete root-namespace veth ends.
 *   2. A process 'exit' hook does the same synchronously for labs that were
 *      never cleaned up (a test that threw before its afterAll ran).
 *   3. A marker file per namespace under /run/vpngw-test/netns records the
 *      owning PID and PID namespace; the first lab of a later run deletes the
 *      namespaces whose owner is dead (a vitest worker killed by a signal).
 *      Only markers from our own PID namespace are considered, so a run in
 *      another container sharing /run is never touched.
 *
 * Names are unique per test run: namespaces are `vpngw-<tag>-<pid36>-<n>`,
 * interfaces (15 bytes max) `<prefix><pid36><n36><rand>`.
 *
 * Everything goes through `ip` (iproute2) via execFile: no shell, arguments
 * never interpolated. Tests that need the facility call {@link netnsSupport}
 * and skip loudly with {@link reportSkip} when it is missing.
 *
 * Topology helpers only use 198.18.0.0/15 (RFC 2544 benchmarking range) for
 * lab links; {@link NetLab.subnet} hands out /24s from it that are not in use
 * in the root namespace.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// ---------------------------------------------------------------- our choices

/** Where namespace ownership markers live (cleared with /run on reboot, like /run/netns). */
export const MARKER_DIR = '/run/vpngw-test/netns';
/** Default bound on one `ip` / exec invocation. */
const DEFAULT_EXEC_TIMEOUT_MS = 20_000;
/** Grace between SIGTERM and SIGKILL for processes spawned in a namespace. */
const KILL_GRACE_MS = 2_000;
/** Linux IFNAMSIZ - 1. */
const IFNAME_MAX = 15;
/** Lab links are carved from 198.18.0.0/15: 512 /24s. */
const LAB_NET_BASE = (198 << 24) | (18 << 16);
const LAB_SUBNETS = 512;

// ---------------------------------------------------------------- facility

export interface Facility {
  readonly ok: boolean;
  /** Why not, in words a developer can act on; '' when ok. */
  readonly reason: string;
}

let support: Promise<Facility> | undefined;

/**
 * Whether this process can create network namespaces, veth pairs and tap
 * devices: root, `ip` from iproute2, /dev/net/tun, and a real probe (create a
 * namespace with a veth pair and a tap in it, then delete it). Memoized.
 */
export function netnsSupport(): Promise<Facility> {
  return (support ??= probeSupport());
}

async function probeSupport(): Promise<Facility> {
  if (process.platform !== 'linux') return no(`needs Linux (this is ${process.platform})`);
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) return no(`needs root (running as uid ${uid}): network namespaces, veth and tap need CAP_NET_ADMIN/CAP_SYS_ADMIN`);
  const v = await run('ip', ['-V'], { timeoutMs: 5_000 });
  if (v.code !== 0) return no(`iproute2 \`ip\` is not usable (${v.error ?? v.stderr.trim()}); install the iproute2 package`);
  if (!existsSync('/dev/net/tun')) return no('no /dev/net/tun: tap devices cannot be created (load the tun module or run the container with --device /dev/net/tun)');
  const lab = new NetLab();
  try {
    const a = await lab.netns('probe');
    const b = await lab.netns('probe');
    await lab.veth(a, b);
    await a.tap();
    return { ok: true, reason: '' };
  } catch (e) {
    return no(`cannot create namespaces/veth/tap here: ${(e as Error).message}`);
  } finally {
    await lab.cleanup();
  }
}

function no(reason: string): Facility {
  return { ok: false, reason };
}

/**
 * Print a skip notice to stderr that is hard to miss (vitest shows skipped
 * tests only as a count). Call it next to `describe.skipIf(!f.ok)`.
 */
export function reportSkip(what: string, f: Facility): void {
  if (f.ok) return;
  process.stderr.write(`\n*** SKIPPED ${what}: ${f.reason} ***\n\n`);
}

// ---------------------------------------------------------------- exec

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit status; -1 when the process did not exit normally (signal, spawn failure, timeout). */
  code: number;
  signal: NodeJS.Signals | null;
  /** Set when the command could not be run or was killed for its timeout. */
  error?: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  /** Return the result on non-zero exit instead of throwing {@link CommandError}. */
  allowFail?: boolean;
  /** Bytes written to stdin. */
  input?: string | Uint8Array;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * A command of the test harness failed. Harness failures are not part of the
 * gateway's operator-facing error contract (src/util/errors.ts), so they get
 * their own class carrying what a developer needs to see.
 */
export class CommandError extends Error {
  constructor(
    readonly command: readonly string[],
    readonly result: ExecResult,
  ) {
    const why = result.error ?? (result.signal ? `killed by ${result.signal}` : `exit status ${result.code}`);
    const err = result.stderr.trim();
    super(`${command.join(' ')}: ${why}${err ? `: ${err.slice(-2000)}` : ''}`);
    this.name = 'CommandError';
  }
}

/** Run a program (no shell) and collect its output; never rejects. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args as string[],
      {
        timeout: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 64 << 20,
        encoding: 'utf8',
        env: opts.env,
        cwd: opts.cwd,
      },
      (err, stdout, stderr) => {
        if (!err) return resolve({ stdout, stderr, code: 0, signal: null });
        const e = err as NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals | null; killed?: boolean };
        const code = typeof e.code === 'number' ? e.code : -1;
        const signal = e.signal ?? null;
        let error: string | undefined;
        if (typeof e.code === 'string') error = `cannot run ${cmd}: ${e.code}`;
        else if (e.killed && signal === 'SIGKILL') error = `timed out after ${opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS} ms`;
        resolve({ stdout, stderr, code, signal, ...(error ? { error } : {}) });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Run and throw {@link CommandError} unless it exits 0 (or `allowFail`). */
export async function runOk(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0 && !opts.allowFail) throw new CommandError([cmd, ...args], r);
  return r;
}

/** `ip [-n netns] args...`; resolves to stdout, throws {@link CommandError}. */
export async function ip(args: readonly string[], netns?: string): Promise<string> {
  const full = netns ? ['-n', netns, ...args] : [...args];
  return (await runOk('ip', full)).stdout;
}

// ---------------------------------------------------------------- names

let nameCounter = 0;
const pid36 = process.pid.toString(36);

/**
 * An interface name unique to this test run: `<prefix><pid36><n36><rand>`,
 * at most 15 bytes. Keep prefixes to 2-4 characters.
 */
export function uniqueIfName(prefix: string): string {
  if (!/^[a-z][a-z0-9]{0,3}$/.test(prefix)) throw new Error(`interface name prefix must be 1-4 of [a-z0-9], starting with a letter: ${JSON.stringify(prefix)}`);
  const n = (nameCounter++).toString(36);
  const rand = Math.floor(Math.random() * 36 * 36).toString(36).padStart(2, '0');
  const name = `${prefix}${pid36}${n}${rand}`;
  // prefix <= 4, pid36 <= 5 (pid_max 2^22), rand 2: 4 characters left for the counter.
  if (name.length > IFNAME_MAX) throw new Error(`interface name ${name} exceeds ${IFNAME_MAX} bytes (too many names in one process)`);
  return name;
}

function uniqueNetnsName(tag: string): string {
  if (!/^[a-z0-9][a-z0-9-]{0,15}$/.test(tag)) throw new Error(`namespace tag must be [a-z0-9-], up to 16 characters: ${JSON.stringify(tag)}`);
  return `vpngw-${tag}-${pid36}-${(nameCounter++).toString(36)}`;
}

// ---------------------------------------------------------------- subnets

/** An IPv4 /24 inside 198.18.0.0/15 reserved for one lab link. */
export interface Subnet {
  /** e.g. '198.18.37.0' */
  readonly network: string;
  readonly prefixLen: 24;
  /** The address with host part `n` (1..254): `subnet.host(1)` = '198.18.37.1'. */
  host(n: number): string;
  /** `host(n)/24` */
  cidr(n: number): string;
}

function makeSubnet(index: number): Subnet {
  const base = (LAB_NET_BASE + index * 256) >>> 0;
  const dotted = (a: number) => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');
  return {
    network: dotted(base),
    prefixLen: 24,
    host(n) {
      if (!Number.isInteger(n) || n < 1 || n > 254) throw new Error(`host number out of range 1..254: ${n}`);
      return dotted(base + n);
    },
    cidr(n) {
      return `${this.host(n)}/24`;
    },
  };
}

const subnetsTaken = new Set<number>();

/** /24 indexes (0..511) of 198.18.0.0/15 with an address or route in the root namespace. */
async function subnetsInUse(): Promise<Set<number>> {
  const used = new Set<number>();
  const text = (await run('ip', ['-4', '-o', 'addr', 'show'])).stdout + (await run('ip', ['-4', 'route', 'show', 'table', 'all'])).stdout;
  for (const m of text.matchAll(/\b198\.(18|19)\.(\d{1,3})\.\d{1,3}/g)) used.add((Number(m[1]) - 18) * 256 + Number(m[2]));
  return used;
}

// ---------------------------------------------------------------- namespaces

export interface SpawnInNetnsOptions extends SpawnOptions {
  /** Kill the process (SIGTERM, then SIGKILL) at lab cleanup. Default true. */
  killAtCleanup?: boolean;
  /** The kernel SIGKILLs it if this test process dies first (see {@link dieWithParent}). Default true. */
  dieWithParent?: boolean;
}

let setprivPath: string | null | undefined;

/**
 * A command prefix (`setpriv --pdeathsig KILL`, util-linux) that makes the
 * kernel SIGKILL the command when this process dies, or [] when setpriv is
 * missing. Process 'exit' hooks do not run when a test worker is ended by a
 * signal; this does. The prefix execs, so the PID stays the command's.
 */
export function dieWithParent(): string[] {
  if (setprivPath === undefined) {
    setprivPath = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'].find((p) => existsSync(p)) ?? null;
  }
  return setprivPath ? [setprivPath, '--pdeathsig', 'KILL'] : [];
}

/** A network namespace owned by a {@link NetLab}. */
export class Netns {
  constructor(
    readonly name: string,
    private readonly lab: NetLab,
  ) {}

  /** `ip -n <name> args...` → stdout. */
  ip(...args: string[]): Promise<string> {
    return ip(args, this.name);
  }

  /** Run `cmd[0] cmd[1..]` inside the namespace (`ip netns exec`); throws on failure unless `allowFail`. */
  exec(cmd: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (cmd.length === 0) throw new Error('exec: empty command');
    return runOk('ip', ['netns', 'exec', this.name, ...cmd], opts);
  }

  /**
   * Start a long-running process in the namespace. `ip netns exec` execs the
   * command, so `child.pid` is the command's own PID; the lab kills it by that
   * PID at cleanup.
   */
  spawn(cmd: readonly string[], opts: SpawnInNetnsOptions = {}): ChildProcess {
    if (cmd.length === 0) throw new Error('spawn: empty command');
    const { killAtCleanup = true, dieWithParent: tie = true, ...spawnOpts } = opts;
    const child = spawn('ip', ['netns', 'exec', this.name, ...(tie ? dieWithParent() : []), ...cmd], spawnOpts);
    if (killAtCleanup) this.lab.track(child);
    return child;
  }

  /**
   * Create a tap device in this namespace (persistent, owned by root; a qemu
   * started in the namespace attaches with `-netdev tap,ifname=...`).
   * With `addr` ('198.18.x.y/24') the address is set; the link is brought up.
   */
  async tap(opts: { name?: string; addr?: string; up?: boolean } = {}): Promise<string> {
    const name = opts.name ?? uniqueIfName('tap');
    await this.ip('tuntap', 'add', 'dev', name, 'mode', 'tap');
    if (opts.addr) await this.ip('addr', 'add', opts.addr, 'dev', name);
    if (opts.up ?? true) await this.ip('link', 'set', name, 'up');
    return name;
  }

  /** Write /proc/sys/<key> (dots or slashes) inside the namespace, e.g. `sysctl('net.ipv4.ip_forward', '1')`. */
  async sysctl(key: string, value: string): Promise<void> {
    if (!/^[a-z0-9_.\/-]+$/i.test(key)) throw new Error(`bad sysctl key ${JSON.stringify(key)}`);
    const file = `/proc/sys/${key.replace(/\./g, '/')}`;
    await this.exec(['sh', '-c', 'printf "%s\\n" "$1" > "$2"', 'sysctl', value, file]);
  }

  /** Delete this namespace now (the lab would at cleanup otherwise). */
  destroy(): Promise<void> {
    return this.lab.deleteNetns(this.name);
  }
}

/** The two ends of a veth pair. */
export interface VethPair {
  /** Interface name in `a` (or in the root namespace when `a` was null). */
  readonly a: string;
  readonly b: string;
}

export interface VethOptions {
  /** Addresses with prefix, e.g. '198.18.7.1/24'. */
  aAddr?: string;
  bAddr?: string;
  /** Bring both ends up (default true). */
  up?: boolean;
  aName?: string;
  bName?: string;
}

const liveLabs = new Set<NetLab>();
let exitHookInstalled = false;
let swept = false;

/**
 * Owner of every namespace, device and process a test creates. Create one per
 * test file (beforeAll) and call `cleanup()` in afterAll, or use
 * {@link withNetLab}.
 */
export class NetLab {
  private readonly namespaces = new Set<string>();
  /** Root-namespace veth ends, with the namespace their peer lives in. */
  private readonly rootLinks = new Map<string, string>();
  private readonly children = new Set<ChildProcess>();
  private readonly subnets: number[] = [];
  private cleaning: Promise<void> | undefined;

  constructor() {
    liveLabs.add(this);
    installExitHook();
  }

  /** Create a namespace with `lo` up. */
  async netns(tag = 'ns'): Promise<Netns> {
    if (!swept) {
      swept = true;
      await sweepStaleNamespaces();
    }
    const name = uniqueNetnsName(tag);
    await runOk('ip', ['netns', 'add', name]);
    this.namespaces.add(name);
    writeMarker(name);
    await ip(['link', 'set', 'lo', 'up'], name);
    return new Netns(name, this);
  }

  /**
   * A veth pair between namespace `a` (null = the root namespace of this
   * process) and namespace `b`. The pair is created in one `ip link add`, so
   * it never exists half-placed; deleting either namespace deletes it.
   */
  async veth(a: Netns | null, b: Netns, opts: VethOptions = {}): Promise<VethPair> {
    const aName = opts.aName ?? uniqueIfName('va');
    const bName = opts.bName ?? uniqueIfName('vb');
    const args = ['link', 'add', aName, ...(a ? ['netns', a.name] : []), 'type', 'veth', 'peer', 'name', bName, 'netns', b.name];
    if (!a) this.rootLinks.set(aName, b.name);
    await ip(args);
    const aNs = a?.name;
    if (opts.aAddr) await ip(['addr', 'add', opts.aAddr, 'dev', aName], aNs);
    if (opts.bAddr) await ip(['addr', 'add', opts.bAddr, 'dev', bName], b.name);
    if (opts.up ?? true) {
      await ip(['link', 'set', aName, 'up'], aNs);
      await ip(['link', 'set', bName, 'up'], b.name);
    }
    return { a: aName, b: bName };
  }

  /**
   * A /24 from 198.18.0.0/15 not used by any address or route in the root
   * namespace nor by another lab of this process. Namespaces are private, so
   * this only matters for links that touch the root namespace, but it keeps
   * captures and logs unambiguous.
   */
  async subnet(): Promise<Subnet> {
    const used = await subnetsInUse();
    const start = (process.pid * 37 + this.subnets.length * 7) % LAB_SUBNETS;
    for (let i = 0; i < LAB_SUBNETS; i++) {
      const idx = (start + i) % LAB_SUBNETS;
      if (used.has(idx) || subnetsTaken.has(idx)) continue;
      subnetsTaken.add(idx);
      this.subnets.push(idx);
      return makeSubnet(idx);
    }
    throw new Error('no free /24 left in 198.18.0.0/15');
  }

  /** Called by {@link Netns.spawn}; the process is killed by PID at cleanup. */
  track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  async deleteNetns(name: string): Promise<void> {
    if (!this.namespaces.has(name)) return;
    // The kernel tears a namespace down asynchronously; delete our root-side
    // veth ends now so the root namespace is clean when this resolves.
    for (const [link, peerNs] of this.rootLinks) {
      if (peerNs !== name) continue;
      await run('ip', ['link', 'del', link]);
      this.rootLinks.delete(link);
    }
    const r = await run('ip', ['netns', 'del', name]);
    if (r.code !== 0 && existsSync(path.join('/run/netns', name))) throw new CommandError(['ip', 'netns', 'del', name], r);
    this.namespaces.delete(name);
    removeMarker(name);
  }

  /** Remove everything; idempotent, and safe to call while a previous call runs. */
  cleanup(): Promise<void> {
    return (this.cleaning ??= this.doCleanup().finally(() => {
      this.cleaning = undefined;
    }));
  }

  private async doCleanup(): Promise<void> {
    const problems: string[] = [];
    await Promise.all([...this.children].map((c) => killChild(c)));
    this.children.clear();
    for (const name of [...this.namespaces].reverse()) {
      try {
        await this.deleteNetns(name);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    for (const link of this.rootLinks.keys()) await run('ip', ['link', 'del', link]);
    this.rootLinks.clear();
    for (const idx of this.subnets) subnetsTaken.delete(idx);
    this.subnets.length = 0;
    liveLabs.delete(this);
    if (problems.length) throw new Error(`NetLab cleanup left resources behind:\n  ${problems.join('\n  ')}`);
  }

  /** Synchronous last-resort cleanup for the process 'exit' hook. */
  cleanupSync(): void {
    for (const c of this.children) {
      if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    for (const name of this.namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 5_000 });
      } catch {
        /* best effort at exit */
      }
      removeMarker(name);
    }
    for (const link of this.rootLinks.keys()) {
      try {
        execFileSync('ip', ['link', 'del', link], { stdio: 'ignore', timeout: 5_000 });
      } catch {
        /* usually gone with its peer */
      }
    }
    this.namespaces.clear();
    this.rootLinks.clear();
    liveLabs.delete(this);
  }
}

/** Run `fn` with a fresh lab and always clean it up, also when `fn` throws. */
export async function withNetLab<T>(fn: (lab: NetLab) => Promise<T>): Promise<T> {
  const lab = new NetLab();
  try {
    return await fn(lab);
  } finally {
    await lab.cleanup();
  }
}

function killChild(c: ChildProcess): Promise<void> {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  const pid = c.pid;
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    c.once('exit', done);
    const timer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      // 'exit' follows the SIGKILL; do not wait for it forever.
      setTimeout(resolve, 1_000).unref();
    }, KILL_GRACE_MS);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      done();
    }
  });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const lab of [...liveLabs]) lab.cleanupSync();
  });
}

// ---------------------------------------------------------------- stale sweep

interface Marker {
  pid: number;
  pidns: number;
  created: string;
}

function ownPidNs(): number {
  try {
    return statSync('/proc/self/ns/pid').ino;
  } catch {
    return -1;
  }
}

function writeMarker(name: string): void {
  try {
    mkdirSync(MARKER_DIR, { recursive: true });
    const m: Marker = { pid: process.pid, pidns: ownPidNs(), created: new Date().toISOString() };
    writeFileSync(path.join(MARKER_DIR, name), JSON.stringify(m));
  } catch {
    /* markers are an optimisation for crash recovery */
  }
}

function removeMarker(name: string): void {
  rmSync(path.join(MARKER_DIR, name), { force: true });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Delete namespaces left behind by test processes that died without cleaning
 * up (owner PID gone, same PID namespace as us). Returns the names deleted.
 */
export async function sweepStaleNamespaces(): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(MARKER_DIR);
  } catch {
    return [];
  }
  const me = ownPidNs();
  const deleted: string[] = [];
  for (const name of names) {
    let m: Marker;
    try {
      m = JSON.parse(readFileSync(path.join(MARKER_DIR, name), 'utf8')) as Marker;
    } catch {
      continue;
    }
    if (m.pidns !== me || m.pid === process.pid || pidAlive(m.pid)) continue;
    if (existsSync(path.join('/run/netns', name))) {
      const r = await run('ip', ['netns', 'del', name]);
      if (r.code !== 0) continue;
      deleted.push(name);
    }
    removeMarker(name);
  }
  return deleted;
}
