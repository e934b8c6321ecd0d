/**
 * Crypto kernels: WASM RC4 and SHA-1 against node:crypto (OpenSSL) in the
 * same run, at packet sizes 64 / 512 / 1400 octets.
 *
 * - "per packet": one WASM call per packet, data already in linear memory
 *   (where the data plane has it); node:crypto gets one Buffer per packet.
 * - "batch64": one WASM call per 64 packets (the data plane's shape).
 * - "rekey": a new 16-octet RC4 key every packet (stateless MPPE) against
 *   createCipheriv per packet.
 * - "mppe key change": the whole RFC 3078 7.3 change (SHA-1, RC4 of the
 *   interim key, RC4 re-key) against the same steps in node:crypto.
 *
 * node:crypto RC4 needs OpenSSL's legacy provider, which Node loads only at
 * start (--openssl-legacy-provider). When this process lacks it, the suite
 * re-runs itself in a child `node --openssl-legacy-provider` and reports the
 * child's rows, so `npm run bench` works unchanged.
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MPPE_STATE_SIZE, RC4_STATE_SIZE, SHA1_CTX_SIZE } from '../assembly/crypto/sizes.js';
import { createKernelInstance } from '../src/crypto/kernels.js';
import { fmt, sideBySide, type BenchContext, type BenchRow, type BenchSuite } from './lib.js';

const SIZES = [64, 512, 1400] as const;
const BATCH = 64;
const STRIDE = 2048;
/** Targets (ratio of vpngw to node:crypto). */
const RC4_KEPT_TARGET = 0.7;
const RC4_REKEY_TARGET = 1.1;

const CHILD_ENV = 'VPNGW_BENCH_CRYPTO_CHILD';

function legacyAvailable(): boolean {
  try {
    createCipheriv('rc4', Buffer.alloc(16), null);
    return true;
  } catch {
    return false;
  }
}

function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    b[i] = s & 0xff;
  }
  return b;
}

async function measure(ctx: BenchContext): Promise<BenchRow[]> {
  const rounds = ctx.quick ? 2 : 5;
  const ms = ctx.quick ? 60 : 150;
  const w = createKernelInstance(1 << 20);
  const k = w.kernels;
  // Working memory: RC4 state, SHA-1 context, MPPE key state, keys, digests, packets.
  const st = w.base;
  const sha = st + 512;
  const ks = sha + 256;
  const keys = ks + 512;
  const digests = keys + 16 * BATCH;
  const pk = (digests + 20 * BATCH + 63) & ~63;
  if (RC4_STATE_SIZE > 512 || SHA1_CTX_SIZE > 256 || MPPE_STATE_SIZE > 512) throw new Error('bench layout too small');
  const key = pseudoRandom(16, 1);
  const perPacketKeys = pseudoRandom(16 * BATCH, 2);
  w.u8.set(key, keys);
  k.rc4Init(st, keys, 16);
  w.u8.set(perPacketKeys, keys);
  w.u8.set(pseudoRandom(STRIDE * BATCH, 3), pk);

  const rows: BenchRow[] = [];
  const mbs = (opsPerSec: number, len: number) => (opsPerSec * len) / 1e6;
  const add = (name: string, len: number, pair: [number, number], ref: string, target?: number, note?: string) => {
    const row: BenchRow = { name, value: mbs(pair[0], len), unit: 'MB/s', reference: { name: ref, value: mbs(pair[1], len) } };
    if (target !== undefined) row.target = { op: '>=', value: target, of: 'ratio' };
    if (note) row.note = note;
    rows.push(row);
    ctx.log(`${name}: ${fmt(row.value)} MB/s vs ${fmt(row.reference!.value)} MB/s (${(row.value / row.reference!.value).toFixed(2)}x)`);
  };

  for (const len of SIZES) {
    const bufs = Array.from({ length: BATCH }, (_, i) => pseudoRandom(len, 100 + i));

    // RC4, key kept (stateful MPPE).
    const cipher = createCipheriv('rc4', key, null);
    const nodeKept = () => {
      for (let i = 0; i < BATCH; i++) cipher.update(bufs[i]!);
    };
    const wasmKept = () => {
      for (let i = 0; i < BATCH; i++) k.rc4Crypt(st, pk + i * STRIDE, pk + i * STRIDE, len);
    };
    add(`rc4 ${len}B per packet`, len, sideBySide(wasmKept, nodeKept, BATCH, rounds, ms), 'node:crypto update', RC4_KEPT_TARGET);
    const wasmKeptBatch = () => k.rc4CryptBatch(st, pk, STRIDE, len, BATCH);
    add(`rc4 ${len}B batch64`, len, sideBySide(wasmKeptBatch, nodeKept, BATCH, rounds, ms), 'node:crypto update', RC4_KEPT_TARGET);

    // RC4 with a fresh key per packet (stateless MPPE).
    const nodeKeyBufs = Array.from({ length: BATCH }, (_, i) => perPacketKeys.subarray(16 * i, 16 * i + 16));
    const nodeRekey = () => {
      for (let i = 0; i < BATCH; i++) createCipheriv('rc4', nodeKeyBufs[i]!, null).update(bufs[i]!);
    };
    const wasmRekey = () => {
      for (let i = 0; i < BATCH; i++) {
        k.rc4Init(st, keys + 16 * i, 16);
        k.rc4Crypt(st, pk + i * STRIDE, pk + i * STRIDE, len);
      }
    };
    add(`rc4 rekey ${len}B per packet`, len, sideBySide(wasmRekey, nodeRekey, BATCH, rounds, ms), 'node:crypto createCipheriv', RC4_REKEY_TARGET);
    const wasmRekeyBatch = () => k.rc4RekeyBatch(st, keys, 16, pk, STRIDE, len, BATCH);
    add(`rc4 rekey ${len}B batch64`, len, sideBySide(wasmRekeyBatch, nodeRekey, BATCH, rounds, ms), 'node:crypto createCipheriv', RC4_REKEY_TARGET);

    // SHA-1 of each packet.
    const nodeSha = () => {
      for (let i = 0; i < BATCH; i++) createHash('sha1').update(bufs[i]!).digest();
    };
    const wasmSha = () => {
      for (let i = 0; i < BATCH; i++) k.sha1(sha, pk + i * STRIDE, len, digests + 20 * i);
    };
    add(`sha1 ${len}B per packet`, len, sideBySide(wasmSha, nodeSha, BATCH, rounds, ms), 'node:crypto createHash');
    const wasmShaBatch = () => k.sha1Batch(sha, pk, STRIDE, len, BATCH, digests);
    add(`sha1 ${len}B batch64`, len, sideBySide(wasmShaBatch, nodeSha, BATCH, rounds, ms), 'node:crypto createHash');
  }

  // A whole MPPE key change (RFC 3078 7.3), 128-bit.
  const startKey = pseudoRandom(16, 4);
  w.u8.set(startKey, keys);
  if (k.mppeStart(ks, 128, keys, st) !== 0) throw new Error('mppeStart failed');
  const pad1 = Buffer.alloc(40, 0);
  const pad2 = Buffer.alloc(40, 0xf2);
  let current = pseudoRandom(16, 5);
  const nodeChange = () => {
    for (let i = 0; i < BATCH; i++) {
      const interim = createHash('sha1').update(startKey).update(pad1).update(current).update(pad2).digest().subarray(0, 16);
      current = createCipheriv('rc4', interim, null).update(interim);
      createCipheriv('rc4', current, null);
    }
  };
  const wasmChange = () => {
    for (let i = 0; i < BATCH; i++) k.mppeRekey(ks, st);
  };
  const [wc, nc] = sideBySide(wasmChange, nodeChange, BATCH, rounds, ms);
  rows.push({ name: 'mppe key change 128-bit', value: wc, unit: 'changes/s', reference: { name: 'node:crypto sha1 + rc4', value: nc } });
  ctx.log(`mppe key change: ${fmt(wc)}/s vs ${fmt(nc)}/s`);
  return rows;
}

export const suite: BenchSuite = {
  name: 'crypto',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    if (legacyAvailable()) return measure(ctx);
    ctx.log('node:crypto RC4 needs the legacy provider: measuring in a child `node --openssl-legacy-provider`');
    const r = spawnSync(process.execPath, ['--openssl-legacy-provider', '--expose-gc', fileURLToPath(import.meta.url)], {
      env: { ...process.env, [CHILD_ENV]: ctx.quick ? 'quick' : 'full' },
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
    if (r.status !== 0) throw new Error(`crypto bench child failed with status ${r.status}`);
    const lastLine = r.stdout.trim().split('\n').pop() ?? '[]';
    return JSON.parse(lastLine) as BenchRow[];
  },
};

// Child mode: measure here (the legacy provider is loaded) and print the rows as the last stdout line.
if (process.env[CHILD_ENV] && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await measure({ quick: process.env[CHILD_ENV] === 'quick', log: (l) => process.stderr.write(`  ${l}\n`) });
  process.stdout.write(`${JSON.stringify(rows)}\n`);
}
