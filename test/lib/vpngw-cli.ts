/**
 * The compiled `vpngw` command as an operator runs it, for end-to-end tests:
 * built into a temporary directory (symlinks to node_modules, native/ and
 * build/, a copy of package.json and bin/vpngw.js, tsc output in dist/), so
 * the repository's dist/ is never touched; started as processes in network
 * namespaces, their output collected.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Netns, ExecResult } from './netns.js';
import { run } from './netns.js';

const pexec = promisify(execFile);
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Why the compiled CLI cannot run here ('' when it can). */
export function cliBuildMissing(): string {
  if (!existsSync(path.join(REPO, 'native/build/Release/vpngw_native.node'))) return 'the native addon is not built (npm ci)';
  if (!existsSync(path.join(REPO, 'build/vpngw.wasm'))) return 'the WASM module is not built (npm run build:wasm)';
  return '';
}

export interface CliBuild {
  dir: string;
  /** bin/vpngw.js in the build directory. */
  bin: string;
  remove(): void;
}

/** Compile the CLI into a fresh temporary directory (about 20 s). */
export async function buildCli(): Promise<CliBuild> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-ops-cli-'));
  try {
    for (const d of ['node_modules', 'native', 'build']) symlinkSync(path.join(REPO, d), path.join(dir, d));
    copyFileSync(path.join(REPO, 'package.json'), path.join(dir, 'package.json'));
    mkdirSync(path.join(dir, 'bin'));
    copyFileSync(path.join(REPO, 'bin/vpngw.js'), path.join(dir, 'bin/vpngw.js'));
    // Type errors elsewhere in a work tree do not stop the emit; the entry must exist.
    await pexec(process.execPath, [path.join(REPO, 'node_modules/typescript/bin/tsc'), '-p', path.join(REPO, 'tsconfig.build.json'), '--outDir', path.join(dir, 'dist')], {
      timeout: 170_000,
    }).catch(() => undefined);
    if (!existsSync(path.join(dir, 'dist/src/cli/main.js'))) throw new Error('tsc emitted no dist/src/cli/main.js');
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { dir, bin: path.join(dir, 'bin/vpngw.js'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A long-running vpngw process and what it wrote. */
export interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  exit: { code: number | null; signal: string | null } | undefined;
  /** Resolves with the exit status. */
  exited: Promise<{ code: number | null; signal: string | null }>;
}

export function track(child: ChildProcess): Proc {
  let resolve!: (e: { code: number | null; signal: string | null }) => void;
  const p: Proc = { child, out: '', err: '', exit: undefined, exited: new Promise((r) => (resolve = r)) };
  child.stdout?.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (p.err += d.toString()));
  child.on('exit', (code, signal) => {
    p.exit = { code, signal };
    resolve(p.exit);
  });
  return p;
}

/** Start `vpngw ARGS` in a namespace (killed by PID at lab cleanup). */
export function spawnVpngw(cli: CliBuild, ns: Netns, args: readonly string[], env: Record<string, string> = {}): Proc {
  return track(ns.spawn([process.execPath, cli.bin, ...args], { cwd: cli.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
}

/** Run `vpngw ARGS` to completion, in a namespace or here; never rejects. */
export function runVpngw(cli: CliBuild, ns: Netns | undefined, args: readonly string[], env: Record<string, string> = {}): Promise<ExecResult> {
  const cmd = [process.execPath, cli.bin, ...args];
  const opts = { cwd: cli.dir, env: { ...process.env, ...env }, timeoutMs: 60_000, allowFail: true };
  return ns ? ns.exec(cmd, opts) : run(cmd[0]!, cmd.slice(1), opts);
}

import { waitUntil } from './wait.js';

export { waitUntil };

/** Wait (bounded) for a started `vpngw serve` to print "vpngw: ready"; throws with its output when it exited instead. */
export async function serveReady(server: Proc, what = 'vpngw serve to be ready', ms = 30_000): Promise<void> {
  await waitUntil(() => /vpngw: ready/.test(server.err) || server.exit !== undefined, ms, what);
  if (server.exit !== undefined) throw new Error(`vpngw serve exited ${JSON.stringify(server.exit)}\nstderr:\n${server.err}\nstdout:\n${server.out.slice(-3000)}`);
}

/** The SSTP certificate's SHA-256 fingerprint as `vpngw serve` printed it; throws when it printed none. */
export function printedFingerprint(stderr: string): string {
  const fp = /SHA-256 fingerprint ([0-9A-F:]{95})/.exec(stderr)?.[1];
  if (!fp) throw new Error(`vpngw serve printed no certificate fingerprint:\n${stderr}`);
  return fp;
}
