/**
 * An SSTP gateway on 127.0.0.1 for unit-level tests: the real Gateway and
 * SstpService (generated, pinned certificate unless the config names one)
 * with an in-memory data plane and no TUN device, so it needs no root. The
 * caller's config pieces go into the sstp and limits sections; the state
 * directory is the caller's (cleaned up by the caller) or a temporary one.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/admin/gateway.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { DataPlane } from '../../src/dataplane/engine.js';
import { systemClock } from '../../src/util/clock.js';
import { silentLogger, type Logger } from '../../src/util/log.js';
import { SstpService } from '../../src/sstp/service.js';
import { freePort } from './wait.js';

export interface LoopbackSstp {
  gateway: Gateway;
  service: SstpService;
  metrics: GatewayMetrics;
  dp: DataPlane;
  port: number;
  /** The state directory (users.yaml is in it). */
  dir: string;
  /** Shut the gateway down, close the data plane, remove a temporary state directory. */
  close(): Promise<void>;
}

export async function startLoopbackSstp(
  o: {
    /** `users.yaml` entries as YAML lines (default: alice and bob, password pw-<name>). */
    users?: string;
    /** Appended inside `sstp: {...}` (start with a comma). */
    sstp?: string;
    /** Inside `limits: {...}`. */
    limits?: string;
    maxSessions?: number;
    log?: Logger;
    /** A state directory of the caller's (kept at close); default a temporary one (removed at close). */
    dir?: string;
  } = {},
): Promise<LoopbackSstp> {
  const dir = o.dir ?? mkdtempSync(path.join(os.tmpdir(), 'vpngw-sstp-loopback-'));
  const maxSessions = o.maxSessions ?? 8;
  writeFileSync(path.join(dir, 'users.yaml'), `users:\n${o.users ?? '  alice: {password: pw-alice}\n  bob: {password: pw-bob}\n'}`);
  const port = await freePort();
  const config = parseConfig(
    `stateDir: state
dataplane: {workers: 1, maxSessionsPerWorker: ${maxSessions}}
users: {file: users.yaml, demoUser: false}
sstp: {listen: 127.0.0.1, port: ${port}${o.sstp ?? ''}}
admin: {enabled: false}
limits: {${o.limits ?? ''}}
`,
    { baseDir: dir },
  );
  const metrics = new GatewayMetrics(undefined, { defaultMetrics: false });
  const dp = new DataPlane({ maxSessions, streamBuffers: true });
  const gateway = new Gateway({ config, log: o.log ?? silentLogger, clock: systemClock, metrics, dataplanes: () => [dp] });
  const service = new SstpService({ certNames: ['127.0.0.1'] });
  await gateway.start([service]);
  return {
    gateway,
    service,
    metrics,
    dp,
    port,
    dir,
    close: async () => {
      await gateway.shutdown('test over', 2_000);
      dp.close();
      if (o.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}
