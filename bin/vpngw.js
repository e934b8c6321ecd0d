#!/usr/bin/env node
// vpngw command line entry: runs the compiled CLI (dist/, built by
// `npm run build:ts`, which `npm ci` runs through the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(
    `vpngw: ERR_NOT_BUILT: ${fileURLToPath(entry)} is missing: run "npm ci" (or "npm run build") in ${fileURLToPath(new URL('..', import.meta.url))}\n`,
  );
  process.exit(1);
}
const { run } = await import(entry.href);
await run();
