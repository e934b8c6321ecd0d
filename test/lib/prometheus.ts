/**
 * A real Prometheus server (Debian package `prometheus`) for end-to-end
 * tests: its own temporary config and TSDB directory, listening on
 * 127.0.0.1:<free port>, scraping the given targets every second; queried
 * through its HTTP API (/api/v1/query, /api/v1/targets).
 *
 * The process is started with `setpriv --pdeathsig KILL` (the kernel kills
 * it if the test process dies), stopped by its PID (SIGTERM, then SIGKILL),
 * and its directory is removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { dieWithParent, run, type Facility } from './netns.js';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';
export const PROMTOOL_BIN = '/usr/bin/promtool';
/** Our choices: how long Prometheus may take to become ready, and to stop. */
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

export function prometheusSupport(): Facility {
  if (!existsSync(PROMETHEUS_BIN)) return { ok: false, reason: `${PROMETHEUS_BIN} is missing: install the Debian package prometheus (scripts/apt-packages.txt)` };
  if (!existsSync(PROMTOOL_BIN)) return { ok: false, reason: `${PROMTOOL_BIN} is missing: install the Debian package prometheus` };
  return { ok: true, reason: '' };
}

/** A TCP port the OS says is free on 127.0.0.1 now. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ScrapeTarget {
  /** `host:port` */
  address: string;
  metricsPath?: string;
  /** Sent as `Authorization: Bearer ...` (from a credentials file Prometheus reads). */
  bearerToken?: string;
}

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface PromTarget {
  health: 'up' | 'down' | 'unknown';
  lastError: string;
  scrapeUrl: string;
  labels: Record<string, string>;
}

export interface Prometheus {
  readonly url: string;
  readonly pid: number;
  /** Instant query at the current time. */
  query(expr: string): Promise<PromSample[]>;
  /** Poll `expr` until `pred` holds (every 250 ms, at most `ms`); resolves to the last result. */
  waitFor(expr: string, pred: (r: PromSample[]) => boolean, ms: number, what: string): Promise<PromSample[]>;
  targets(): Promise<PromTarget[]>;
  /** What the process wrote on stderr (its log). */
  output(): string;
  stop(): Promise<void>;
}

/** `promtool check metrics` on an exposition text: exit code and what it printed. */
export async function promtoolCheckMetrics(text: string): Promise<{ code: number; output: string }> {
  const r = await run(PROMTOOL_BIN, ['check', 'metrics'], { input: text, timeoutMs: 20_000 });
  return { code: r.code, output: `${r.stdout}${r.stderr}`.trim() };
}

export async function startPrometheus(opts: { job: string; targets: ScrapeTarget[]; scrapeIntervalS?: number }): Promise<Prometheus> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-prometheus-'));
  const interval = opts.scrapeIntervalS ?? 1;
  const port = await freeLoopbackPort();
  const scrapeConfigs = opts.targets.map((t, i) => {
    let auth = '';
    if (t.bearerToken !== undefined) {
      const f = path.join(dir, `token-${i}`);
      writeFileSync(f, t.bearerToken, { mode: 0o600 });
      auth = `    authorization: {type: Bearer, credentials_file: ${JSON.stringify(f)}}\n`;
    }
    return `  - job_name: ${JSON.stringify(opts.targets.length === 1 ? opts.job : `${opts.job}-${i}`)}
    metrics_path: ${JSON.stringify(t.metricsPath ?? '/metrics')}
    scheme: http
${auth}    static_configs:
      - targets: [${JSON.stringify(t.address)}]
`;
  });
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(
    configFile,
    `global:
  scrape_interval: ${interval}s
  scrape_timeout: ${interval}s
  evaluation_interval: ${interval}s
scrape_configs:
${scrapeConfigs.join('')}`,
  );
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let stderr = '';
  let exited = false;
  try {
    const cmd = [
      ...dieWithParent(),
      PROMETHEUS_BIN,
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ];
    const c = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
    child = c;
    c.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 1 << 20) stderr += d.toString();
    });
    c.once('exit', () => (exited = true));
    const until = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (exited) throw new Error(`prometheus exited during start-up:\n${stderr}`);
      const ok = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (Date.now() > until) throw new Error(`prometheus was not ready within ${READY_TIMEOUT_MS} ms:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (e) {
    if (child?.pid !== undefined && !exited) process.kill(child.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const proc = child!;
  const pid = proc.pid!;

  const api = async (p: string): Promise<unknown> => {
    const r = await fetch(`${url}${p}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await r.json()) as { status: string; data: unknown; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${p}: ${body.error ?? r.status}`);
    return body.data;
  };
  const query = async (expr: string): Promise<PromSample[]> => {
    const data = (await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as {
      resultType: string;
      result: { metric: Record<string, string>; value: [number, string] }[];
    };
    if (data.resultType !== 'vector') throw new Error(`${expr}: expected a vector, got ${data.resultType}`);
    return data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  };

  let stopping: Promise<void> | undefined;
  return {
    url,
    pid,
    query,
    async waitFor(expr, pred, ms, what) {
      const until = Date.now() + ms;
      let last: PromSample[] = [];
      for (;;) {
        last = await query(expr);
        if (pred(last)) return last;
        if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}; ${expr} = ${JSON.stringify(last)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async targets() {
      const data = (await api('/api/v1/targets')) as { activeTargets: PromTarget[] };
      return data.activeTargets;
    },
    output: () => stderr,
    stop() {
      return (stopping ??= new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (exited) return done();
        proc.once('exit', done);
        const timer = setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }, STOP_GRACE_MS);
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          done();
        }
      }));
    },
  };
}
