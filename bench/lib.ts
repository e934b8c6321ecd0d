/**
 * Benchmark helpers. Speed targets live here, not in tests: each suite
 * measures vpngw and its reference (node:crypto, a raw socket, a peer
 * server) side by side in one run and reports the ratio, because these
 * machines are shared and noisy.
 */
import os from 'node:os';
import { readFileSync } from 'node:fs';

export interface BenchRow {
  /** What was measured, e.g. "rc4 1400B batch64". */
  name: string;
  value: number;
  unit: string;
  /** Reference measured in the same run, same unit. */
  reference?: { name: string; value: number };
  /** The target as a ratio (value / reference) or absolute value, with its comparison. */
  target?: { op: '>=' | '<='; value: number; of: 'ratio' | 'value' };
  note?: string;
}

export interface BenchContext {
  quick: boolean;
  log(line: string): void;
}

export interface BenchSuite {
  name: string;
  /** Requirements (root, /dev/net/tun, ...): return a reason to skip, or undefined. */
  unavailable?(): string | undefined;
  run(ctx: BenchContext): Promise<BenchRow[]>;
}

/**
 * Call fn repeatedly for at least `ms` milliseconds (after a warm-up) and
 * return operations per second, where each call performs `opsPerCall` ops.
 */
export function rate(fn: () => void, opsPerCall: number, ms = 400): number {
  const warm = performance.now() + Math.min(100, ms / 4);
  while (performance.now() < warm) fn();
  let calls = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 8; i++) fn();
    calls += 8;
    t = performance.now();
  }
  return (calls * opsPerCall) / ((t - t0) / 1000);
}

/** Run a and b alternately in `rounds` short rounds and take each one's best, so drift hits both. */
export function sideBySide(a: () => void, b: () => void, opsPerCall: number, rounds = 5, ms = 150): [number, number] {
  let ra = 0;
  let rb = 0;
  for (let i = 0; i < rounds; i++) {
    ra = Math.max(ra, rate(a, opsPerCall, ms));
    rb = Math.max(rb, rate(b, opsPerCall, ms));
  }
  return [ra, rb];
}

export function environment(): { date: string; cpu: string; cores: number; node: string; kernel: string } {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1]!.trim();
  } catch {
    /* keep os.cpus() */
  }
  return { date: new Date().toISOString().slice(0, 10), cpu, cores: os.cpus().length, node: process.version, kernel: os.release() };
}

export function fmt(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(n < 10 ? 2 : 0);
}

export function verdict(r: BenchRow): string {
  if (!r.target) return '';
  const v = r.target.of === 'ratio' ? (r.reference ? r.value / r.reference.value : NaN) : r.value;
  const pass = r.target.op === '>=' ? v >= r.target.value : v <= r.target.value;
  return `${pass ? 'met' : 'MISSED'} (${r.target.of === 'ratio' ? 'ratio ' : ''}${r.target.op} ${r.target.value})`;
}

export function markdownTable(rows: BenchRow[]): string {
  const lines = ['| measurement | vpngw | reference | ratio | target |', '|---|---|---|---|---|'];
  for (const r of rows) {
    const ref = r.reference ? `${fmt(r.reference.value)} ${r.unit} (${r.reference.name})` : '';
    const ratio = r.reference ? (r.value / r.reference.value).toFixed(2) : '';
    lines.push(`| ${r.name} | ${fmt(r.value)} ${r.unit} | ${ref} | ${ratio} | ${verdict(r)}${r.note ? ` ${r.note}` : ''} |`);
  }
  return lines.join('\n');
}
