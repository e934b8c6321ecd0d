import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GatewayMetrics } from './registry.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const dashboard = JSON.parse(readFileSync(path.resolve(here, '../../dashboards/vpngw.json'), 'utf8')) as {
  uid: string;
  panels: { id: number; type: string; title: string; targets?: { expr: string }[] }[];
};

/** Metric names in a PromQL expression (identifiers followed by `{`, `[` or `)` that look like metric names). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:vpngw|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
}

describe('Grafana dashboard (dashboards/vpngw.json)', () => {
  it('queries only metrics the registry exposes, and shows every vpngw family', async () => {
    const text = await new GatewayMetrics().text();
    const families = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]!));
    const samples = new Set([...text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)].map((m) => m[1]!));
    const used = new Set<string>();
    for (const p of dashboard.panels) {
      for (const t of p.targets ?? []) {
        for (const name of metricNames(t.expr)) {
          expect(samples.has(name) || families.has(name), `${p.title}: ${name} is not exposed`).toBe(true);
          used.add(name.replace(/_(bucket|count|sum)$/, ''));
        }
      }
    }
    for (const f of families) if (f.startsWith('vpngw_') && f !== 'vpngw_build_info') expect(used.has(f), `${f} has no panel`).toBe(true);
  });

  it('is well formed: unique panel ids, a datasource variable, every query on it', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.uid).toBe('vpngw-overview');
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(JSON.stringify(p)).toContain('${datasource}');
    }
  });
});
