/**
 * Entry of a data-plane worker thread (started by src/workers/supervisor.ts
 * from the compiled file next to it): see src/workers/runtime.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runWorker, type WorkerInit } from './runtime.js';

if (!parentPort) throw new Error('src/workers/worker.js runs as a worker thread of vpngw serve');
runWorker(workerData as WorkerInit, parentPort);
