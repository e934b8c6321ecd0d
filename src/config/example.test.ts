import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkConfig, validate } from './load.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const text = readFileSync(path.join(here, 'example.yaml'), 'utf8');

describe('the commented example config (src/config/example.yaml)', () => {
  it('validates and equals the embedded default (it documents the defaults)', () => {
    const r = checkConfig(text);
    expect(r.ok, JSON.stringify(!r.ok && r.issues)).toBe(true);
    const d = validate({});
    if (!r.ok || !d.ok) throw new Error('unreachable');
    // workers and maxSessions depend on the machine: commented out in the example.
    expect(r.config).toEqual(d.config);
  });
});
