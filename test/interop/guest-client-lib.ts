/**
 * What our clients share when they run as programs inside the qemu guest
 * (guest-client-run.ts, for sstp-guest-client.ts and pptp-guest-client.ts): markers on stdout in the form
 * the interop tests read (`@@ <name> <event> <data>`), pings through a TUN
 * device without blocking the event loop the data plane runs on, and the
 * host's go-ahead files in the shared job directory. No imports beyond node:
 * this file is compiled for the guest with them.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** ICMP payload of the large pings: 1372 + 8 + 20 = 1400, the tunnel MTU. */
export const BIG_PING_PAYLOAD = 1372;

// Our choices: bounds for a slow emulated guest on shared cores, never speed claims.
export const CONNECT_TIMEOUT_MS = 90_000;
const GO_WAIT_MS = 120_000;

export function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is not set`);
  return v;
}

export function mark(name: string, event: string, ...data: unknown[]): void {
  const rest = data.map((d) => (typeof d === 'string' || typeof d === 'number' ? String(d) : JSON.stringify(d))).join(' ');
  process.stdout.write(`@@ ${name} ${event}${rest ? ` ${rest}` : ''}\n`);
}

/** Write a tool's output after a marker, newline-terminated. */
export function echo(output: string): void {
  process.stdout.write(output.endsWith('\n') ? output : `${output}\n`);
}

/** `ping` through the TUN device, without blocking the event loop the data plane runs on. */
export function ping(dev: string, address: string, extra: readonly string[] = ['-c', '3']): Promise<{ status: number; output: string }> {
  return new Promise((resolve) => {
    execFile('ping', [...extra, '-i', '0.3', '-W', '3', '-I', dev, address], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code;
      resolve({ status: err ? (typeof code === 'number' ? code : 1) : 0, output: stdout + stderr });
    });
  });
}

/** The three small and two 1400-octet (DF) pings of every scenario, marked "pinged" and "bigpinged"; true when all answered. */
export async function pingBoth(name: string, dev: string, address: string): Promise<boolean> {
  const p0 = performance.now();
  const p = await ping(dev, address);
  mark(name, 'pinged', p.status, Math.round(performance.now() - p0));
  echo(p.output);
  const big = await ping(dev, address, ['-c', '2', '-s', String(BIG_PING_PAYLOAD), '-M', 'do']);
  mark(name, 'bigpinged', big.status);
  echo(big.output);
  return p.status === 0 && big.status === 0;
}

/** Wait (bounded) until the host creates `<dir>/go-<name>`. */
export async function waitForGo(dir: string, name: string): Promise<boolean> {
  return waitForFile(path.join(dir, `go-${name}`));
}

/** Wait (bounded) until the host creates `<dir>/ready-<name>` (it has prepared the gateway). */
export async function waitForReady(dir: string, name: string): Promise<boolean> {
  return waitForFile(path.join(dir, `ready-${name}`));
}

async function waitForFile(file: string): Promise<boolean> {
  const until = Date.now() + GO_WAIT_MS;
  while (!existsSync(file)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
