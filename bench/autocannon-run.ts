/**
 * autocannon in a child process (started inside the clients' namespace by
 * `ip netns exec`): argv[2] is JSON { urls, connections, durationS }; prints
 * one JSON line with requests/s, latency percentiles (ms) and error counts.
 * Several URLs share the connections round robin (autocannon's own
 * load-balancing), which is how one run spreads over several tunnels.
 */
import { createRequire } from 'node:module';

interface Result {
  requests: { average: number; total: number };
  latency: { p50: number; p90: number; p99: number; average: number; max: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
}

type Autocannon = (opts: { url: string | string[]; connections: number; duration: number; pipelining?: number }, cb: (err: Error | null, r: Result) => void) => unknown;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
const o = JSON.parse(process.argv[2] ?? '{}') as { urls: string[]; connections: number; durationS: number };
autocannon({ url: o.urls.length === 1 ? o.urls[0]! : o.urls, connections: o.connections, duration: o.durationS }, (err, r) => {
  if (err) {
    process.stderr.write(`autocannon: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(
    `${JSON.stringify({
      reqPerSec: r.requests.total / r.duration,
      total: r.requests.total,
      p50: r.latency.p50,
      p90: r.latency.p90,
      p99: r.latency.p99,
      max: r.latency.max,
      errors: r.errors,
      timeouts: r.timeouts,
      non2xx: r.non2xx,
    })}\n`,
  );
  process.exit(0);
});
