/**
 * Reload (SIGHUP): which changes a running gateway applies, and which need a
 * restart.
 *
 * Reloadable: users, pools (growing only: every address of the old pool is
 * still in the new one; new pools may be added), policies (auth, mppe, dns,
 * nbns, limits) and log.level. Everything else (ports, listen addresses, TUN
 * name and MTU, workers, rings, certificates, admin) is bound at start-up: a
 * change is reported and the running value kept.
 */
import { coveredBy } from './ipv4.js';
import { deepFreeze } from './load.js';
import { crossCheck, poolIntervals, type Config } from './schema.js';

/** Sections (or single fields) applied on reload. */
export const RELOADABLE = ['users', 'pools', 'auth', 'mppe', 'dns', 'nbns', 'limits', 'log.level'] as const;

export interface RestartNeeded {
  path: string;
  reason: string;
}

export interface ReloadPlan {
  /** The config to run with: reloadable parts from the new file, the rest as running. Frozen. */
  config: Readonly<Config>;
  /** Dotted paths whose new value takes effect now. */
  applied: string[];
  /** Changes kept at their running value until a restart. */
  needsRestart: RestartNeeded[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => equal(a[k], b[k]));
  }
  return false;
}

/** Leaf paths whose values differ (arrays compared whole). */
export function diffPaths(a: unknown, b: unknown, prefix = ''): string[] {
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffPaths(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  return equal(a, b) ? [] : [prefix];
}

const isReloadable = (p: string) => RELOADABLE.some((r) => p === r || p.startsWith(`${r}.`));

/**
 * Compare the running config with a newly validated one and build the config
 * to run with. Pools that shrink or disappear keep their running definition
 * (addresses may be leased) and are listed as needing a restart.
 */
export function planReload(running: Readonly<Config>, next: Readonly<Config>): ReloadPlan {
  const applied: string[] = [];
  const needsRestart: RestartNeeded[] = [];
  for (const p of diffPaths(running, next)) {
    if (p.startsWith('pools.') || p === 'pools') continue;
    if (isReloadable(p)) applied.push(p);
    else needsRestart.push({ path: p, reason: 'bound at start-up' });
  }

  const pools: Record<string, Config['pools'][string]> = { ...next.pools };
  for (const [name, old] of Object.entries(running.pools)) {
    const now = next.pools[name];
    if (!now) {
      pools[name] = old;
      needsRestart.push({ path: `pools.${name}`, reason: 'pool removed (its addresses may be leased)' });
    } else if (!equal(old, now)) {
      const grows = coveredBy(poolIntervals(running, old), poolIntervals(running, now));
      if (grows) applied.push(`pools.${name}`);
      else {
        pools[name] = old;
        needsRestart.push({ path: `pools.${name}`, reason: 'pool shrinks or moves (only growing is applied live)' });
      }
    }
  }
  for (const name of Object.keys(next.pools)) if (!(name in running.pools)) applied.push(`pools.${name}`);

  const merged: Config = {
    ...running,
    users: next.users,
    pools,
    auth: next.auth,
    mppe: next.mppe,
    dns: next.dns,
    nbns: next.nbns,
    limits: next.limits,
    log: { ...running.log, level: next.log.level },
  };
  // The mix must still hold together (e.g. a protocol's pool kept running).
  const issues = crossCheck(merged);
  if (issues.length) {
    return {
      config: running,
      applied: [],
      needsRestart: issues.map((i) => ({ path: i.path, reason: `not applied: the reloaded mix would be invalid: ${i.message}` })),
    };
  }
  return { config: deepFreeze(merged), applied: applied.sort(), needsRestart };
}
