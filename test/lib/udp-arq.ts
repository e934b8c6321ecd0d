/**
 * A bulk transfer over UDP with its own fixed-interval retransmission (a
 * sliding window, selective acknowledgements), run as two node processes in
 * network namespaces. Unlike TCP, whose retransmission timer doubles after
 * every loss, it keeps a lossy path busy at a steady rate: what it measures
 * is whether the tunnel keeps delivering (e.g. stateful MPPE staying in sync
 * through its Reset-Requests), not TCP's back-off.
 *
 * Datagram: u32 chunk index, then the chunk (CHUNK octets; the last may be
 * shorter). Acknowledgement: u32 chunk index. The data is derived from a
 * seed (chunk i = SHA-256(seed | i) repeated), so both sides and the test
 * agree on its SHA-256 without shipping it around.
 */
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import type { Netns } from './netns.js';

export const CHUNK = 1024;

/** The program both processes run (`node -e`): argv = role, address, port, size, seed. */
const PROGRAM = `
const dgram = require('node:dgram');
const { createHash } = require('node:crypto');
const [role, address, port, sizeArg, seed] = process.argv.slice(1);
const size = Number(sizeArg), CHUNK = ${CHUNK}, chunks = Math.ceil(size / CHUNK);
const chunk = (i) => {
  const h = createHash('sha256').update(seed + ':' + i).digest();
  const b = Buffer.alloc(Math.min(CHUNK, size - i * CHUNK));
  for (let o = 0; o < b.length; o += h.length) h.copy(b, o);
  return b;
};
const sock = dgram.createSocket('udp4');
const t0 = Date.now();
if (role === 'recv') {
  const got = new Array(chunks);
  let have = 0;
  sock.on('message', (m, from) => {
    const i = m.readUInt32BE(0);
    if (i < chunks && !got[i]) { got[i] = m.subarray(4); have++; }
    const a = Buffer.alloc(4); a.writeUInt32BE(i); sock.send(a, from.port, from.address);
    if (have === chunks && !sock.done) {
      sock.done = true;
      const h = createHash('sha256'); for (const c of got) h.update(c);
      process.stdout.write(JSON.stringify({ sha256: h.digest('hex'), bytes: got.reduce((n, c) => n + c.length, 0), ms: Date.now() - t0 }) + '\\n');
      setTimeout(() => process.exit(0), 3000); // keep acknowledging stragglers
    }
  });
  sock.bind(Number(port), address);
} else {
  const WINDOW = 32, RTO = 25;
  const acked = new Uint8Array(chunks), sentAt = new Float64Array(chunks);
  let base = 0, next = 0, sent = 0, retransmits = 0;
  const send = (i) => { const c = chunk(i), d = Buffer.alloc(4 + c.length); d.writeUInt32BE(i); c.copy(d, 4); sock.send(d, Number(port), address); sentAt[i] = Date.now(); sent++; };
  const pump = () => {
    while (base < chunks && acked[base]) base++;
    if (base >= chunks) { process.stdout.write(JSON.stringify({ ms: Date.now() - t0, sent, retransmits }) + '\\n'); sock.close(); return; }
    const now = Date.now();
    for (let i = base; i < Math.min(next, base + WINDOW); i++) if (!acked[i] && now - sentAt[i] >= RTO) { send(i); retransmits++; }
    while (next < chunks && next < base + WINDOW) send(next++);
  };
  sock.on('message', (m) => { const i = m.readUInt32BE(0); if (i < chunks) acked[i] = 1; });
  sock.bind(0, () => { pump(); setInterval(pump, 5); });
}
`;

/** SHA-256 of the data a transfer of `size` octets with `seed` carries. */
export function expectedSha256(size: number, seed: string): string {
  const h = createHash('sha256');
  for (let i = 0; i * CHUNK < size; i++) {
    const d = createHash('sha256').update(`${seed}:${i}`).digest();
    const b = Buffer.alloc(Math.min(CHUNK, size - i * CHUNK));
    for (let o = 0; o < b.length; o += d.length) d.copy(b, o);
    h.update(b);
  }
  return h.digest('hex');
}

function outputOf(child: ChildProcess, what: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what}: no result within ${timeoutMs} ms (stderr: ${err.slice(-500)})`));
    }, timeoutMs);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
      }
    });
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => {
      if (!out.includes('{')) {
        clearTimeout(timer);
        reject(new Error(`${what} exited (${code}) without a result: ${err.slice(-500)}`));
      }
    });
  });
}

export interface ArqResult {
  ms: number;
  sha256: string;
  bytes: number;
  sent: number;
  retransmits: number;
}

/** Send `size` octets from namespace `from` to `to` at `address`:`port`; resolves when the receiver has all of it. */
export async function udpTransfer(from: Netns, to: Netns, address: string, port: number, size: number, seed: string, timeoutMs: number): Promise<ArqResult> {
  const recv = to.spawn([process.execPath, '-e', PROGRAM, 'recv', address, String(port), String(size), seed], { stdio: ['ignore', 'pipe', 'pipe'] });
  const got = outputOf(recv, 'the UDP receiver', timeoutMs);
  await new Promise((r) => setTimeout(r, 300)); // bound before the first datagram
  const send = from.spawn([process.execPath, '-e', PROGRAM, 'send', address, String(port), String(size), seed], { stdio: ['ignore', 'pipe', 'pipe'] });
  const done = outputOf(send, 'the UDP sender', timeoutMs);
  const [r, s] = await Promise.all([got, done]);
  recv.kill('SIGTERM');
  return { ms: s.ms as number, sha256: r.sha256 as string, bytes: r.bytes as number, sent: s.sent as number, retransmits: s.retransmits as number };
}
