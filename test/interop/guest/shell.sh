#!/bin/sh
# Boot the interop test guest by hand (see shell.ts and DEVELOPERS.md).
# Compiles the harness with tsc into dist/guest-shell (git-ignored) and runs it.
set -e
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
out=dist/guest-shell
npx tsc --outDir "$out" --rootDir . --module nodenext --moduleResolution nodenext --target es2022 \
  --types node --strict --skipLibCheck --sourceMap false test/interop/guest/shell.ts
exec node "$out/test/interop/guest/shell.js" "$@"
