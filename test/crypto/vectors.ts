/**
 * Reading the published vectors in ../shared/vectors (relative to the repo
 * root; see that folder's README). Vectors are never copied into the repo.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const VECTORS_DIR = path.resolve(here, '../../../shared/vectors');

export interface VectorFile<V> {
  file: string;
  vectors: V[];
}

export function loadVectors<V = Record<string, unknown>>(name: string): V[] {
  const f = JSON.parse(readFileSync(path.join(VECTORS_DIR, name), 'utf8')) as VectorFile<V>;
  return f.vectors;
}

/** Deterministic pseudo-random bytes (xorshift32), so a failing case reproduces from its seed. */
export function prng(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      out[i] = s & 0xff;
    }
    return out;
  };
}

/** Sizes that straddle the 64-octet block boundaries of SHA-1/MD4 and the 4-octet RC4 word loop. */
export const BOUNDARY_SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1400, 4097];
