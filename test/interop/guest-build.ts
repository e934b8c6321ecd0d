/**
 * Our clients for the qemu guest (sstp-guest-client.ts, pptp-guest-client.ts)
 * and what they import, compiled to JavaScript in a temporary directory that
 * looks like the repository to the code's own path lookups (the native addon,
 * the WASM module, node_modules are symlinks to the repository's). The guest
 * sees the host's root, so it runs `node <dir>/dist/test/interop/<x>-guest-client.js`.
 *
 *   <dir>/package.json            (copy: "type": "module")
 *   <dir>/node_modules -> repo    <dir>/native -> repo    <dir>/build -> repo
 *   <dir>/dist/src/...  <dir>/dist/assembly/abi.js  <dir>/dist/test/interop/<x>-guest-client.js
 *
 * tsc runs with --noCheck: the typecheck of the same files is the project's
 * own (`tsc -p tsconfig.json --noEmit`); this only emits, fast.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const pexec = promisify(execFile);
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface GuestClientBuild {
  dir: string;
  /** The compiled entry point (absolute; the same path in the guest). */
  entry: string;
  /** How long tsc took. */
  ms: number;
  remove(): void;
}

/** What is missing for our client to run (native addon, WASM module), or '' when nothing. */
export function guestClientMissing(): string {
  if (!existsSync(path.join(REPO, 'native/build/Release/vpngw_native.node'))) return 'the native addon is not built (npm ci)';
  if (!existsSync(path.join(REPO, 'build/vpngw.wasm'))) return 'the WASM module is not built (npm run build:wasm)';
  return '';
}

/** Compile `source` (relative to the repository, e.g. test/interop/sstp-guest-client.ts) for the guest. */
export async function buildGuestClient(source: string): Promise<GuestClientBuild> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-guest-client-'));
  try {
    for (const d of ['node_modules', 'native', 'build']) symlinkSync(path.join(REPO, d), path.join(dir, d));
    copyFileSync(path.join(REPO, 'package.json'), path.join(dir, 'package.json'));
    const t0 = performance.now();
    const tsc = path.join(REPO, 'node_modules/typescript/bin/tsc');
    // prettier-ignore
    const args = [
      tsc, '--outDir', path.join(dir, 'dist'), '--rootDir', REPO,
      '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
      '--types', 'node', '--esModuleInterop', '--skipLibCheck', '--noCheck', '--sourceMap', 'false',
      path.join(REPO, source),
    ];
    try {
      await pexec(process.execPath, args, { cwd: REPO, timeout: 170_000, maxBuffer: 16 << 20 });
    } catch (e) {
      const out = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`compiling ${source} for the guest failed: ${out.message}\n${out.stdout ?? ''}${out.stderr ?? ''}`);
    }
    const entry = path.join(dir, 'dist', source.replace(/\.ts$/, '.js'));
    if (!existsSync(entry)) throw new Error(`tsc wrote no ${entry}`);
    return { dir, entry, ms: performance.now() - t0, remove: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
