/**
 * src/crypto/wasm-crypto.ts from several threads at once: each worker thread
 * gets its own WASM instance and scratch memory, so concurrent callers
 * never see each other's data.
 *
 * Worker threads run JavaScript, so the module and what it imports are
 * transpiled (TypeScript's transpileModule, no type check) into a temporary
 * tree that mirrors the repository layout, with build/ linked in.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { hex } from '../../src/util/decode.js';
import { md4, mppeChangeKey, rc4, sha1 } from '../../src/crypto/wasm-crypto.js';
import { prng } from './vectors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'vpngw-crypto-threads-'));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Transpile `rel` and every relative module it imports into tmp; returns the entry's URL. */
function transpileTree(rel: string): string {
  const seen = new Set<string>();
  const todo = [rel];
  while (todo.length) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const src = readFileSync(path.join(root, file), 'utf8');
    for (const m of src.matchAll(/from\s+'(\.{1,2}\/[^']+)\.js'/g)) {
      todo.push(path.relative(root, path.resolve(path.dirname(path.join(root, file)), `${m[1]}.ts`)));
    }
    const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const out = path.join(tmp, file.replace(/\.ts$/, '.js'));
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, js);
  }
  return pathToFileURL(path.join(tmp, rel.replace(/\.ts$/, '.js'))).href;
}

writeFileSync(path.join(tmp, 'package.json'), '{"type":"module"}');
symlinkSync(path.join(root, 'build'), path.join(tmp, 'build'));
const entry = transpileTree('src/crypto/wasm-crypto.ts');

/** Worker body: many interleaved calls, reporting digests of everything it computed. */
const WORKER = `
import { parentPort, workerData } from 'node:worker_threads';
const c = await import(workerData.entry);
const hex = (b) => Buffer.from(b).toString('hex');
const out = [];
for (let i = 0; i < workerData.rounds; i++) {
  const data = new Uint8Array(workerData.size).map((_, k) => (k * 31 + i * 7 + workerData.seed) & 255);
  const key = data.subarray(0, 16);
  out.push(hex(c.sha1(data)), hex(c.md4(data)), hex(c.rc4(key, data).subarray(-16)), hex(c.mppeChangeKey(key, data.subarray(16, 32), 128)));
}
parentPort.postMessage(out);
`;

function expected(seed: number, rounds: number, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const data = new Uint8Array(size).map((_, k) => (k * 31 + i * 7 + seed) & 255);
    const key = data.subarray(0, 16);
    out.push(hex(sha1(data)), hex(md4(data)), hex(rc4(key, data).subarray(-16)), hex(mppeChangeKey(key, data.subarray(16, 32), 128)));
  }
  return out;
}

describe('wasm-crypto in worker threads', () => {
  it('four threads computing at once each get the single-thread results', async () => {
    const rounds = 200;
    const size = 1500;
    const seeds = [1, 2, 3, 4];
    const workers = seeds.map(
      (seed) => new Worker(new URL(`data:text/javascript,${encodeURIComponent(WORKER)}`), { workerData: { entry, seed, rounds, size } }),
    );
    try {
      const results = await Promise.all(
        workers.map((w) => new Promise<string[]>((resolve, reject) => {
          w.once('message', resolve);
          w.once('error', reject);
        })),
      );
      seeds.forEach((seed, i) => expect(results[i], `thread ${seed}`).toEqual(expected(seed, rounds, size)));
      // The threads did not all compute the same thing (the comparison above means something).
      expect(new Set(results.map((r) => r[0])).size).toBe(seeds.length);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });

  it('results do not depend on earlier calls in the same thread (no state leaks between calls)', () => {
    const m = prng(99)(777);
    const first = hex(sha1(m));
    rc4(prng(1)(16), prng(2)(70_000));
    md4(prng(3)(70_000));
    expect(hex(sha1(m))).toBe(first);
  });
});
