import { describe, it, expect } from 'vitest';
import { MarkerStream } from './markers.js';

const N = '0123456789abcdef';
const start = `@@VPNGW-START-${N}@@\n`;
const exit = (rc: number) => `@@VPNGW-EXIT-${N} ${rc}@@\n`;

function feed(chunks: (string | Uint8Array)[]) {
  const streamed: string[] = [];
  let starts = 0;
  const m = new MarkerStream(N, { onStart: () => starts++, onOutput: (t) => streamed.push(t) });
  for (const c of chunks) m.push(c);
  return { m, streamed: streamed.join(''), starts };
}

/** Split `s` at every byte position (as the serial port may). */
function everySplit(s: string): Buffer[][] {
  const b = Buffer.from(s, 'utf8');
  const out: Buffer[][] = [];
  for (let i = 0; i <= b.length; i++) out.push([b.subarray(0, i), b.subarray(i)]);
  return out;
}

describe('MarkerStream (ttyS1 protocol)', () => {
  it('returns exactly the script output and status, ignoring noise before the start marker', () => {
    const { m, streamed, starts } = feed([`garbage\r\n${start}hello\nworld${exit(42)}`]);
    expect(m.started).toBe(true);
    expect(starts).toBe(1);
    expect(m.exitCode).toBe(42);
    expect(m.output).toBe('hello\nworld');
    expect(streamed).toBe('hello\nworld');
    expect(m.finished).toBe(true);
  });

  it('gives the same result however the bytes are split, including inside markers and UTF-8 sequences', () => {
    const text = `${start}héllo ✓\n@@not-a-marker@@\n${exit(3)}`;
    for (const parts of everySplit(text)) {
      const { m, streamed } = feed(parts);
      expect([m.exitCode, m.output, streamed]).toEqual([3, 'héllo ✓\n@@not-a-marker@@\n', 'héllo ✓\n@@not-a-marker@@\n']);
    }
  });

  it('splits byte by byte too', () => {
    const bytes = [...Buffer.from(`${start}a\nb\n${exit(0)}`)].map((x) => Uint8Array.of(x));
    const { m, streamed } = feed(bytes);
    expect([m.exitCode, m.output, streamed]).toEqual([0, 'a\nb\n', 'a\nb\n']);
  });

  it('streams a trailing newline at once (waiting for lines must not stall)', () => {
    const { m, streamed } = feed([start, 'ready\n']);
    expect(streamed).toBe('ready\n');
    expect(m.exitCode).toBeUndefined();
  });

  it('holds back only what could be the exit marker, and releases it when it is not', () => {
    const m = new MarkerStream(N);
    m.push(`${start}x@@VPNGW-EX`);
    expect(m.output).toBe('x');
    m.push('TRA');
    expect(m.output).toBe('x@@VPNGW-EXTRA');
  });

  it('treats markers with another nonce, or a malformed status, as output', () => {
    const other = '@@VPNGW-EXIT-ffffffffffffffff 0@@\n';
    const malformed = `@@VPNGW-EXIT-${N} oops@@\n`;
    const { m } = feed([start, other, malformed, `@@VPNGW-START-${N}@@\n`, exit(1)]);
    expect(m.exitCode).toBe(1);
    expect(m.output).toBe(other + malformed + `@@VPNGW-START-${N}@@\n`);
  });

  it('reports a setup failure before the start and ignores everything after it', () => {
    const { m, starts } = feed([`boot noise\n@@VPNGW-SETUP-FAILED-${N} stage2: modprobe x@@\n`, start, 'x', exit(0)]);
    expect(m.setupFailure).toBe('stage2: modprobe x');
    expect(m.started).toBe(false);
    expect(starts).toBe(0);
    expect(m.exitCode).toBeUndefined();
    expect(m.output).toBe('');
  });

  it('stays unstarted on unrelated output, with bounded memory', () => {
    const m = new MarkerStream(N);
    for (let i = 0; i < 1000; i++) m.push('x'.repeat(1000));
    expect(m.started).toBe(false);
    expect((m as unknown as { pending: string }).pending.length).toBeLessThan(2000);
  });

  it('drops output after the exit marker', () => {
    const { m } = feed([start, 'a', exit(7), 'late output']);
    expect([m.exitCode, m.output]).toEqual([7, 'a']);
  });
});
