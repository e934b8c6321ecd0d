/**
 * Worker threads that run this project's TypeScript sources in tests (the
 * test process is transformed by vitest; a worker thread is not): the
 * worker boots through test/lib/ts-worker-boot.mjs, which installs
 * transpiling module hooks (test/lib/ts-hooks.mjs) and imports `entry`.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

const BOOT = new URL('./ts-worker-boot.mjs', import.meta.url);

export function startTsWorker(entry: URL, options: WorkerOptions & { workerData?: Record<string, unknown> } = {}): Worker {
  return new Worker(BOOT, { ...options, workerData: { ...(options.workerData ?? {}), __entry: entry.href } });
}
