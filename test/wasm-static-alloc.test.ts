/**
 * Static allocation tripwire of the whole data plane: the release module
 * (build/vpngw.wat, from `npm run build:wasm`) must contain no allocator.
 * With the stub runtime, any `new`, string, array or closure in AssemblyScript
 * code pulls in ~lib/rt (`__new`, `__alloc`, ...), which never frees: a
 * per-packet allocation would leak until the memory is exhausted. Nor may the
 * module import anything but its memory (the loader provides nothing else).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CRYPTO_KERNEL_NAMES } from '../src/crypto/kernels.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WAT = path.resolve(here, '../build/vpngw.wat');

const ALLOCATOR = /\$(?:~lib\/rt\/[^\s)]*|[^\s)]*\b(?:__new|__alloc|__renew|__realloc|__pin|__collect))\b/g;

/** Allocator symbols and non-memory imports found in a module's text form. */
function allocationFindings(wat: string): string[] {
  const found = new Set<string>();
  for (const m of wat.matchAll(ALLOCATOR)) found.add(m[0]);
  for (const m of wat.matchAll(/^\s*\(import\s+"([^"]+)"\s+"([^"]+)"\s+\((\w+)/gm)) {
    if (!(m[1] === 'env' && m[2] === 'memory' && m[3] === 'memory')) found.add(`import ${m[1]}.${m[2]} (${m[3]})`);
  }
  return [...found].sort();
}

describe('release WASM module: no allocation', () => {
  it('the tripwire detects an allocator call and a stray import', () => {
    const bad = [
      '(module',
      ' (import "env" "memory" (memory $0 32 65536 shared))',
      ' (import "env" "abort" (func $~lib/builtins/abort (param i32 i32 i32 i32)))',
      ' (func $f (call $~lib/rt/stub/__new (i32.const 8) (i32.const 4)))',
      ')',
    ].join('\n');
    expect(allocationFindings(bad)).toEqual(['$~lib/rt/stub/__new', 'import env.abort (func)']);
    expect(allocationFindings('(module (import "env" "memory" (memory $0 32 65536 shared)) (func $a (call $assembly/x/y)))')).toEqual([]);
  });

  it('build/vpngw.wat has no allocator symbols and imports only its memory', () => {
    expect(existsSync(WAT), `${WAT} is missing: run "npm run build:wasm"`).toBe(true);
    const wat = readFileSync(WAT, 'utf8');
    expect(allocationFindings(wat)).toEqual([]);
    // It is the module the tests run: it exports the crypto kernels.
    for (const name of CRYPTO_KERNEL_NAMES) expect(wat, name).toContain(`(export "${name}" `);
  });
});
