/**
 * A throwaway Linux guest for real-client interop tests.
 *
 * This host's kernel has no PPP, L2TP or kernel ESP, so the real clients
 * (pppd + sstpc, pppd + pptp, later xl2tpd/strongSwan) run inside qemu (TCG)
 * on Debian's linux-image-amd64, which has those modules. The guest's root is
 * the host's own / over virtio-9p (read-only) under a RAM overlay, so every
 * binary and file of the host is there at the same path, and writes (pppd's
 * /etc/ppp, /run, ...) stay in the guest.
 *
 *   host (test)                               guest (qemu -accel tcg)
 *   ─────────────────────────────────         ───────────────────────────────
 *   netns <netns>: tap <tapName>  ◄─virtio-net─► ethX <guestAddr>/<prefixLen>
 *                  <hostAddr>/<prefixLen>        default route via <hostAddr>
 *   /  ──────────────9p "hostroot" (ro)──────► overlay lower; upper = tmpfs
 *   <job>/share ─────9p "vpngwjob" (rw)──────► same path; stage2.sh, script, files
 *   console.log ◄────ttyS0 (kernel + init)
 *   qemu stdout ◄────ttyS1 (raw): markers + the script's stdout/stderr
 *
 * {@link startGuest} boots it and returns a handle while the script runs (so
 * a test can wait for "connected" and act on the host side); {@link runGuest}
 * waits for the result. Nothing can hang: a hard timeout SIGKILLs qemu by PID,
 * the job directory is removed when qemu is gone, and a process 'exit' hook
 * kills guests still running when the test process ends.
 *
 * See DEVELOPERS.md, "Real-client interop guest", for debugging (an
 * interactive shell: test/interop/guest/shell.ts).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dieWithParent, netnsSupport, run, type Facility, type NetLab, type Netns } from '../../lib/netns.js';
import { buildInitramfs as buildInitramfsFor, busyboxPath, defaultCacheDir, TAG_HOSTROOT, TAG_JOB, MARK_EXIT, MARK_SETUP_FAILED, MARK_START, type InitramfsInfo } from './initramfs.js';
import { findKernel, isStaticElf, prepareBootKernel, type BootKernel, type GuestKernel } from './kernel.js';
import { MarkerStream } from './markers.js';

export { findKernel, type GuestKernel } from './kernel.js';
export type { InitramfsInfo } from './initramfs.js';

// ------------------------------------------------------------ our choices

export const QEMU = process.env.VPNGW_QEMU ?? 'qemu-system-x86_64';
const DEFAULT_MEMORY_MB = 512;
/** After the exit marker the guest powers off in well under a second; past this, kill it. */
const POWEROFF_GRACE_MS = 10_000;
/** Bound on qemu stderr / console kept for error messages. */
const KEEP_STDERR = 64 << 10;
/** PPP kernel modules the clients need: sstpc and pptp both drive pppd over a pty (ppp_async). */
export const PPP_MODULES = ['ppp_generic', 'ppp_async', 'ppp_mppe'] as const;

// ------------------------------------------------------------ types

export interface GuestFile {
  /** Absolute path in the guest, e.g. /etc/ppp/chap-secrets. Parent directories are created. */
  path: string;
  content: string | Uint8Array;
  /** Octal permission bits; default 0o644. */
  mode?: number;
}

export interface GuestOptions {
  /** Network namespace holding the tap (qemu runs in it). Omit to use the current namespace. */
  netns?: string;
  /** Existing tap device in `netns`, with `hostAddr` on it and up. */
  tapName: string;
  guestAddr: string;
  hostAddr: string;
  prefixLen: number;
  /**
   * Shell script run as root in the guest (by /bin/sh, or by its #! line).
   * stdin is /dev/null; stdout+stderr come back as `output`. Its exit status
   * is `exitCode`. Its environment has GUEST_IF, GUEST_ADDR, HOST_ADDR,
   * GUEST_PREFIX, GUEST_JOB_DIR (a directory shared read-write with the host,
   * removed after the run) plus `env`.
   */
  script: string;
  /** Hard limit on the whole run, boot included (boot takes ~3.5-8 s). */
  timeoutMs: number;
  /** Kernel modules to modprobe before the script (dependencies follow); a failure rejects with 'setup-failed'. */
  modules?: readonly string[];
  /** Extra environment for the script. */
  env?: Readonly<Record<string, string>>;
  /** Files placed in the guest before the script (the host's own files are visible anyway). */
  files?: readonly GuestFile[];
  /** Add `default via hostAddr` (default true). */
  defaultRoute?: boolean;
  memoryMb?: number;
  /** Live script output. */
  onOutput?: (text: string) => void;
  /** Abort: qemu is killed and the promise rejects with kind 'aborted'. */
  signal?: AbortSignal;
  /** Kernel messages at debug level, the console streamed to stderr. Also VPNGW_GUEST_DEBUG=1. */
  debug?: boolean;
  /**
   * For a human at a terminal: the console is this process's stdin/stdout
   * (qemu -serial mon:stdio) and after the script a login shell runs on it.
   */
  interactive?: boolean;
  kernel?: GuestKernel;
}

export interface GuestResult {
  exitCode: number;
  /** Exactly what the script wrote to stdout and stderr. */
  output: string;
  /** From starting qemu to the script starting (-1 in interactive mode). */
  bootMs: number;
  /** From starting qemu to qemu gone. */
  totalMs: number;
  /** Kernel and init messages (ttyS0). */
  console: string;
  /** true when booted the extracted vmlinux via PVH (fast path). */
  pvh: boolean;
}

export type GuestErrorKind =
  | 'bad-options' // the options are invalid; nothing was started
  | 'unsupported' // no kernel / busybox / qemu here
  | 'timeout' // timeoutMs passed; qemu killed
  | 'aborted' // signal or handle.kill(); qemu killed
  | 'setup-failed' // the guest could not set up (mount, NIC, modprobe, files): see `reason`
  | 'no-status'; // qemu exited without the script's exit status (qemu error, guest crash)

/**
 * A harness failure (not a gateway error: these are not part of the
 * operator-facing codes in src/util/errors.ts). Carries everything needed to
 * see what happened: script output so far, console, qemu's stderr.
 */
export class GuestError extends Error {
  constructor(
    readonly kind: GuestErrorKind,
    message: string,
    readonly details: {
      output?: string;
      console?: string;
      stderr?: string;
      /** Whether the script had started. */
      started?: boolean;
      reason?: string;
    } = {},
  ) {
    super(message);
    this.name = 'GuestError';
  }
}

export interface GuestHandle {
  /** qemu's PID (the harness kills it by this PID). */
  readonly pid: number;
  /** Temporary directory of this run (removed when qemu is gone). */
  readonly jobDir: string;
  /** Shared read-write with the guest at the same path (GUEST_JOB_DIR). */
  readonly shareDir: string;
  readonly result: Promise<GuestResult>;
  /** Script output so far. */
  output(): string;
  /**
   * Resolve when the output matches `pattern` (the match), reject when
   * `timeoutMs` passes or the guest finishes without a match.
   */
  waitForOutput(pattern: RegExp | string, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Kill qemu now; `result` rejects with kind 'aborted'. */
  kill(reason?: string): void;
}

// ------------------------------------------------------------ support

export interface GuestSupport extends Facility {
  kernel?: GuestKernel;
}

let support: Promise<GuestSupport> | undefined;

/**
 * Whether guests can run here: qemu-system-x86_64, a kernel with modules,
 * static busybox, cpio, and network namespaces with taps (root). Memoized.
 */
export function guestSupport(): Promise<GuestSupport> {
  return (support ??= probeGuestSupport());
}

async function probeGuestSupport(): Promise<GuestSupport> {
  const net = await netnsSupport();
  if (!net.ok) return net;
  const q = await run(QEMU, ['--version'], { timeoutMs: 10_000 });
  if (q.code !== 0) return { ok: false, reason: `${QEMU} not usable (${q.error ?? q.stderr.trim()}); install qemu-system-x86` };
  const kernel = findKernel();
  if (!kernel) return { ok: false, reason: 'no /boot/vmlinuz-<v> with /lib/modules/<v>/modules.dep; install linux-image-amd64' };
  const bb = busyboxPath();
  if (!bb) return { ok: false, reason: 'no busybox; install busybox-static' };
  if (!isStaticElf(readFileSync(bb))) return { ok: false, reason: `${bb} is dynamically linked; install busybox-static` };
  const c = await run('cpio', ['--version'], { timeoutMs: 5_000 });
  if (c.code !== 0) return { ok: false, reason: 'cpio not found; install cpio' };
  return { ok: true, reason: '', kernel };
}

// ------------------------------------------------------------ images

/** Build or reuse the cached initramfs for `kernel` (default: {@link findKernel}). */
export async function buildInitramfs(kernel: GuestKernel | undefined = findKernel(), cacheDir = defaultCacheDir()): Promise<InitramfsInfo> {
  if (!kernel) throw new GuestError('unsupported', 'no guest kernel found (install linux-image-amd64)');
  return buildInitramfsFor(kernel, cacheDir);
}

const prepared = new Map<string, Promise<{ boot: BootKernel; initramfs: InitramfsInfo }>>();

async function prepareImages(kernel: GuestKernel) {
  const cached = prepared.get(kernel.vmlinuz);
  if (cached) {
    const images = await cached.catch(() => undefined);
    // Someone may have cleared the cache directory since: rebuild then.
    if (images && existsSync(images.boot.path) && existsSync(images.initramfs.path)) return images;
    prepared.delete(kernel.vmlinuz);
  }
  let p = prepared.get(kernel.vmlinuz);
  if (!p) {
    const cacheDir = defaultCacheDir();
    mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    p = Promise.all([prepareBootKernel(kernel, cacheDir), buildInitramfsFor(kernel, cacheDir)]).then(([boot, initramfs]) => ({ boot, initramfs }));
    p.catch(() => prepared.delete(kernel.vmlinuz));
    prepared.set(kernel.vmlinuz, p);
  }
  return p;
}

// ------------------------------------------------------------ links

export interface GuestLink {
  ns: Netns;
  netns: string;
  tapName: string;
  hostAddr: string;
  guestAddr: string;
  prefixLen: number;
  /**
   * With `reachRoot`: an address of the test process's own namespace that the
   * guest reaches (routed through `ns`, no NAT: servers see `guestAddr`).
   * A server in the test process listening on it (or on 0.0.0.0) serves the guest.
   */
  rootAddr?: string;
}

export interface GuestLinkOptions {
  tag?: string;
  /**
   * Also route between the guest and the test process's namespace: a veth
   * pair root <-> `ns`, forwarding on in `ns`, a route to the guest's /24 in
   * the root namespace (removed with the veth at cleanup). For gateways that
   * run inside the test process (node:tls for SSTP) rather than in `ns`.
   */
  reachRoot?: boolean;
}

/**
 * A namespace with a tap for one guest: host side `.1`, guest `.2` of a
 * fresh /24 in 198.18.0.0/15. Spread it into {@link GuestOptions}.
 *
 *   guest .2 ──tap── ns: tap .1 [─ veth .2 ══ veth .1 : root namespace]   (reachRoot)
 */
export async function createGuestLink(lab: NetLab, opts: GuestLinkOptions = {}): Promise<GuestLink> {
  const ns = await lab.netns(opts.tag ?? 'guest');
  const net = await lab.subnet();
  const tapName = await ns.tap({ addr: net.cidr(1) });
  const link: GuestLink = { ns, netns: ns.name, tapName, hostAddr: net.host(1), guestAddr: net.host(2), prefixLen: net.prefixLen };
  if (opts.reachRoot) {
    const transit = await lab.subnet();
    const pair = await lab.veth(null, ns, { aAddr: transit.cidr(1), bAddr: transit.cidr(2) });
    await ns.sysctl('net.ipv4.ip_forward', '1');
    await ns.ip('route', 'add', 'default', 'via', transit.host(1));
    await run('ip', ['route', 'add', `${net.network}/${net.prefixLen}`, 'via', transit.host(2), 'dev', pair.a]).then((r) => {
      if (r.code !== 0) throw new Error(`route to the guest subnet in the root namespace: ${r.stderr.trim()}`);
    });
    link.rootAddr = transit.host(1);
  }
  return link;
}

// ------------------------------------------------------------ running

const live = new Map<number, string>(); // qemu pid -> job dir
let exitHook = false;

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const [pid, dir] of live) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** Boot the guest, run the script, power off; resolves with the script's status and output. */
export async function runGuest(opts: GuestOptions): Promise<GuestResult> {
  return (await startGuest(opts)).result;
}

/**
 * Boot the guest and return once qemu runs; `handle.result` settles when the
 * guest is gone. Rejects (before starting anything) with 'bad-options' or
 * 'unsupported'.
 */
export async function startGuest(opts: GuestOptions): Promise<GuestHandle> {
  validate(opts);
  const kernel = opts.kernel ?? findKernel();
  if (!kernel) throw new GuestError('unsupported', 'no guest kernel found (install linux-image-amd64)');
  const { boot, initramfs } = await prepareImages(kernel);
  if (opts.signal?.aborted) throw new GuestError('aborted', 'aborted before start');

  const debug = opts.debug ?? process.env.VPNGW_GUEST_DEBUG === '1';
  const jobDir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-guest-'));
  const shareDir = path.join(jobDir, 'share');
  const consoleFile = path.join(jobDir, 'console.log');
  const outputFile = path.join(jobDir, 'output.log');
  const nonce = randomBytes(8).toString('hex');
  const mac = `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
  let child: ChildProcess;
  try {
    if (!/^[\w./-]+$/.test(jobDir)) throw new GuestError('bad-options', `temporary directory path ${jobDir} has characters the kernel command line cannot carry; set TMPDIR`);
    writeJob(shareDir, opts, nonce, mac);
    const cmdline = [
      'console=ttyS0',
      'rdinit=/init',
      'panic=-1',
      debug ? 'loglevel=7' : 'quiet loglevel=4',
      'mitigations=off',
      'tsc=reliable',
      'no_timer_check',
      'random.trust_cpu=on',
      'i8042.noaux i8042.nokbd i8042.nopnp',
      `vpngw.job=${shareDir}`,
      `vpngw.nonce=${nonce}`,
      ...(opts.interactive ? ['vpngw.shell=1'] : []),
    ].join(' ');
    const qemuArgs = [
      ...['-accel', 'tcg', '-M', 'pc', '-cpu', 'max', '-smp', '1', '-m', String(opts.memoryMb ?? DEFAULT_MEMORY_MB)],
      ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
      ...['-kernel', boot.path, '-initrd', initramfs.path, '-append', cmdline],
      ...(opts.interactive
        ? ['-serial', 'mon:stdio', '-chardev', `file,id=out,path=${outputFile}`, '-serial', 'chardev:out']
        : ['-chardev', `file,id=con,path=${consoleFile}`, '-serial', 'chardev:con', '-chardev', 'stdio,id=out,signal=off', '-serial', 'chardev:out']),
      ...['-fsdev', `local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap`, '-device', `virtio-9p-pci,fsdev=fsroot,mount_tag=${TAG_HOSTROOT}`],
      ...['-fsdev', `local,id=fsjob,path=${shareDir},security_model=none,multidevs=remap`, '-device', `virtio-9p-pci,fsdev=fsjob,mount_tag=${TAG_JOB}`],
      ...['-netdev', `tap,id=net0,ifname=${opts.tapName},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=net0,mac=${mac}`],
      ...['-device', 'virtio-rng-pci'],
    ];
    // setpriv --pdeathsig: the kernel kills qemu if this process dies first
    // (vitest ends workers with a signal, which no 'exit' hook sees).
    const qemu = [...dieWithParent(), QEMU, ...qemuArgs];
    const argv = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...qemu] : qemu;
    if (debug) process.stderr.write(`[guest] ${argv.join(' ')}\n`);
    child = spawn(argv[0]!, argv.slice(1), { stdio: opts.interactive ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    rmSync(jobDir, { recursive: true, force: true });
    throw e;
  }
  const t0 = performance.now();
  installExitHook();
  // `ip netns exec` execs qemu, so this is qemu's PID.
  const pid = child.pid ?? -1;
  if (pid > 0) live.set(pid, jobDir);

  let bootMs = -1;
  let stderr = '';
  let killedFor: 'timeout' | 'aborted' | 'poweroff-grace' | undefined;
  let abortReason = '';
  let graceTimer: NodeJS.Timeout | undefined;
  const waiters = new Set<() => void>();
  const debugOut = debug ? linePrefixer('[guest out] ') : undefined;
  const markers = new MarkerStream(nonce, {
    onStart: () => {
      bootMs = performance.now() - t0;
      if (debug) process.stderr.write(`[guest] script started after ${bootMs.toFixed(0)} ms\n`);
    },
    onOutput: (text) => {
      debugOut?.(text);
      opts.onOutput?.(text);
      for (const w of waiters) w();
    },
  });
  const kill = (why: typeof killedFor) => {
    if (killedFor || child.exitCode !== null || child.signalCode !== null) return;
    killedFor = why;
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  };
  child.stdout?.on('data', (b: Buffer) => {
    markers.push(b);
    if (markers.finished && !graceTimer) graceTimer = setTimeout(() => kill('poweroff-grace'), POWEROFF_GRACE_MS);
  });
  child.stderr?.on('data', (b: Buffer) => {
    if (stderr.length < KEEP_STDERR) stderr += b.toString();
    if (debug) process.stderr.write(`[qemu] ${b.toString()}`);
  });
  const tail = debug && !opts.interactive ? tailFile(consoleFile, linePrefixer('[guest console] ')) : undefined;
  const timer = setTimeout(() => kill('timeout'), opts.timeoutMs);
  const onAbort = () => {
    abortReason = String(opts.signal?.reason ?? 'signal');
    kill('aborted');
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  const result = new Promise<GuestResult>((resolve, reject) => {
    let spawnError: Error | undefined;
    child.on('error', (e) => (spawnError = e));
    child.on('close', (code, signal) => {
      const totalMs = performance.now() - t0;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      tail?.stop();
      if (opts.interactive && existsSync(outputFile)) markers.push(readFileSync(outputFile));
      const consoleText = readTail(consoleFile);
      live.delete(pid);
      rmSync(jobDir, { recursive: true, force: true });
      for (const w of waiters) w();
      const details = { output: markers.output, console: consoleText, stderr, started: markers.started };
      const where = markers.started ? `the script was running (output so far ${markers.output.length} bytes)` : 'the script had not started (boot or setup stuck)';
      if (killedFor === 'timeout') return reject(new GuestError('timeout', `guest timed out after ${opts.timeoutMs} ms; ${where}${consoleHint(consoleText)}`, details));
      if (killedFor === 'aborted') return reject(new GuestError('aborted', `guest aborted (${abortReason}); ${where}`, details));
      if (markers.setupFailure !== undefined)
        return reject(new GuestError('setup-failed', `guest setup failed: ${markers.setupFailure}${consoleHint(consoleText)}`, { ...details, reason: markers.setupFailure }));
      if (markers.exitCode !== undefined) {
        if (opts.interactive) bootMs = -1; // output was read after the run: no boot time
        return resolve({ exitCode: markers.exitCode, output: markers.output, bootMs, totalMs, console: consoleText, pvh: boot.pvh });
      }
      const how = spawnError ? `could not start: ${spawnError.message}` : `exited (${signal ?? `status ${code}`})`;
      reject(new GuestError('no-status', `qemu ${how} without the script's exit status; ${where}${stderr ? `\nqemu stderr: ${stderr.trim().slice(-2000)}` : ''}${consoleHint(consoleText)}`, details));
    });
  });
  result.catch(() => undefined); // callers may only use waitForOutput; never an unhandled rejection

  const done = () => child.exitCode !== null || child.signalCode !== null || !live.has(pid);
  return {
    pid,
    jobDir,
    shareDir,
    result,
    output: () => markers.output,
    kill: (reason = 'killed by the test') => {
      abortReason = reason;
      kill('aborted');
    },
    waitForOutput(pattern, timeoutMs) {
      const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = markers.output.match(re);
          if (m) return finish(() => resolve(m));
          if (done() || markers.finished) return finish(() => reject(new Error(`guest finished without output matching ${re}; output:\n${markers.output.slice(-4000)}`)));
        };
        const t = setTimeout(() => finish(() => reject(new Error(`no guest output matching ${re} within ${timeoutMs} ms; output:\n${markers.output.slice(-4000)}`))), timeoutMs);
        const finish = (f: () => void) => {
          clearTimeout(t);
          waiters.delete(check);
          f();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Write to stderr with `prefix` at the start of every line, across chunk boundaries. */
function linePrefixer(prefix: string): (text: string) => void {
  let atLineStart = true;
  return (text) => {
    if (!text) return;
    let out = '';
    for (const line of text.split(/(?<=\n)/)) {
      if (atLineStart) out += prefix;
      out += line;
      atLineStart = line.endsWith('\n');
    }
    process.stderr.write(out);
  };
}

function consoleHint(consoleText: string): string {
  const lines = consoleText.trim().split('\n').slice(-25).join('\n');
  return lines ? `\n--- guest console (last lines) ---\n${lines}` : '';
}

function readTail(file: string, max = KEEP_STDERR): string {
  try {
    const b = readFileSync(file);
    return b.subarray(Math.max(0, b.length - max)).toString('utf8');
  } catch {
    return '';
  }
}

/** Poll a file qemu appends to and pass new text to `write` (debug mode only). */
function tailFile(file: string, write: (s: string) => void): { stop(): void } {
  let pos = 0;
  const buf = Buffer.alloc(64 << 10);
  const poll = () => {
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return;
    }
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, pos);
        if (n <= 0) break;
        pos += n;
        write(buf.subarray(0, n).toString('utf8'));
      }
    } finally {
      closeSync(fd);
    }
  };
  const t = setInterval(poll, 200);
  return {
    stop() {
      clearInterval(t);
      poll();
    },
  };
}

// ------------------------------------------------------------ the job

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

function validate(o: GuestOptions): void {
  const bad = (m: string) => {
    throw new GuestError('bad-options', m);
  };
  if (o.netns !== undefined && !/^[\w.-]+$/.test(o.netns)) bad(`netns ${JSON.stringify(o.netns)}`);
  if (!/^[\w.-]{1,15}$/.test(o.tapName)) bad(`tapName ${JSON.stringify(o.tapName)}`);
  if (!IPV4.test(o.guestAddr)) bad(`guestAddr ${JSON.stringify(o.guestAddr)} is not an IPv4 address`);
  if (!IPV4.test(o.hostAddr)) bad(`hostAddr ${JSON.stringify(o.hostAddr)} is not an IPv4 address`);
  if (!Number.isInteger(o.prefixLen) || o.prefixLen < 1 || o.prefixLen > 32) bad(`prefixLen ${o.prefixLen}`);
  if (!(o.timeoutMs > 0)) bad(`timeoutMs ${o.timeoutMs}`);
  for (const m of o.modules ?? []) if (!/^[\w-]+$/.test(m)) bad(`module name ${JSON.stringify(m)}`);
  for (const k of Object.keys(o.env ?? {})) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) bad(`environment variable name ${JSON.stringify(k)}`);
  for (const f of o.files ?? []) {
    if (!path.isAbsolute(f.path) || /[\n\0]/.test(f.path)) bad(`file path ${JSON.stringify(f.path)} must be absolute`);
    if (f.mode !== undefined && !(Number.isInteger(f.mode) && f.mode >= 0 && f.mode <= 0o7777)) bad(`file mode ${f.mode}`);
  }
}

/** Single-quote for sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function writeJob(shareDir: string, o: GuestOptions, nonce: string, mac: string): void {
  mkdirSync(path.join(shareDir, 'files'), { recursive: true });
  writeFileSync(path.join(shareDir, 'script'), o.script, { mode: 0o755 });
  (o.files ?? []).forEach((f, i) => writeFileSync(path.join(shareDir, 'files', String(i)), f.content));
  writeFileSync(path.join(shareDir, 'stage2.sh'), stage2Script(shareDir, o, nonce, mac), { mode: 0o755 });
}

/** Per-run setup inside the guest root (run by /init with chroot, as root, under dash). */
export function stage2Script(shareDir: string, o: GuestOptions, nonce: string, mac: string): string {
  const L: string[] = [];
  L.push('#!/bin/sh', '# vpngw test guest, stage 2. Generated by test/interop/guest/guest.ts.');
  L.push(`N=${shq(nonce)}`, `JOB=${shq(shareDir)}`);
  L.push('exec </dev/null');
  L.push(`fail() { echo "vpngw-stage2: FATAL: $*"; printf '\\n%s%s stage2: %s@@\\n' ${shq(MARK_SETUP_FAILED)} "$N" "$*" > /dev/ttyS1; exit 1; }`);
  L.push('export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb');
  L.push('echo vpngw-guest > /proc/sys/kernel/hostname');
  L.push('ip link set lo up || fail "lo up"');
  L.push('GUEST_IF=');
  L.push(`for d in /sys/class/net/*; do [ "$(cat "$d/address")" = ${shq(mac)} ] && GUEST_IF="\${d##*/}"; done`);
  L.push(`[ -n "$GUEST_IF" ] || fail "no interface with MAC ${mac}: $(ls /sys/class/net)"`);
  L.push(`ip addr add ${shq(`${o.guestAddr}/${o.prefixLen}`)} dev "$GUEST_IF" || fail "address ${o.guestAddr}/${o.prefixLen} on $GUEST_IF"`);
  L.push(`ip link set "$GUEST_IF" up || fail "link up $GUEST_IF"`);
  if (o.defaultRoute ?? true) L.push(`ip route add default via ${shq(o.hostAddr)} || fail "default route via ${o.hostAddr}"`);
  for (const m of o.modules ?? []) L.push(`modprobe ${shq(m)} || fail "modprobe ${m}"`);
  (o.files ?? []).forEach((f, i) => {
    const mode = (f.mode ?? 0o644).toString(8).padStart(4, '0');
    L.push(`install -D -m ${mode} "$JOB/files/${i}" ${shq(f.path)} || fail ${shq(`install ${f.path}`)}`);
  });
  L.push(`export GUEST_IF GUEST_ADDR=${shq(o.guestAddr)} HOST_ADDR=${shq(o.hostAddr)} GUEST_PREFIX=${shq(String(o.prefixLen))} GUEST_JOB_DIR="$JOB"`);
  for (const [k, v] of Object.entries(o.env ?? {})) L.push(`export ${k}=${shq(v)}`);
  L.push('cd /root');
  L.push(`printf '%s%s@@\\n' ${shq(MARK_START)} "$N" > /dev/ttyS1`);
  const runScript = o.script.startsWith('#!') ? '"$JOB/script"' : '/bin/sh "$JOB/script"';
  L.push(`${runScript} > /dev/ttyS1 2>&1`);
  L.push('rc=$?');
  L.push(`printf '%s%s %d@@\\n' ${shq(MARK_EXIT)} "$N" "$rc" > /dev/ttyS1`);
  L.push('exit 0');
  return L.join('\n') + '\n';
}

/** For debugging by hand: is a qemu of ours still running? (by PID, never by name) */
export function liveGuests(): number[] {
  return [...live.keys()];
}

/** Used by shell.ts: turn the terminal back to cooked mode after qemu held it raw. */
export function resetTerminal(): void {
  try {
    if (process.stdin.isTTY) execFileSync('stty', ['sane'], { stdio: 'inherit' });
  } catch {
    /* not a terminal */
  }
}
