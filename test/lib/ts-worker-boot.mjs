// Entry of a test's worker thread: install the TypeScript hooks, then import
// the TypeScript module named in workerData.__entry.
import { register } from 'node:module';
import { workerData } from 'node:worker_threads';

register(new URL('./ts-hooks.mjs', import.meta.url));
await import(workerData.__entry);
