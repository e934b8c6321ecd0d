/**
 * npm run bench [-- suite ...] [--quick] [--write]
 *
 * Runs the benchmark suites (all by default), prints one markdown table per
 * suite, and with --write appends them to bench/RESULTS.md under a heading
 * with the date, CPU and Node version.
 */
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { environment, markdownTable, type BenchSuite } from './lib.js';

const suites: Record<string, () => Promise<{ suite: BenchSuite }>> = {
  // Each module exports `suite`. Suites register here as they land.
  ring: () => import('./ring.js'),
  datapath: () => import('./datapath.js'),
  tun: () => import('./tun.js'),
  crypto: () => import('./crypto.js'),
  sstp: () => import('./sstp.js'),
  pptp: () => import('./pptp.js'),
  floor: () => import('./floor.js'),
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const write = args.includes('--write');
  const wanted = args.filter((a) => !a.startsWith('--'));
  const names = wanted.length ? wanted : Object.keys(suites);
  const env = environment();
  const header = `## ${env.date} - ${env.cpu} (${env.cores} cores), Node ${env.node}, Linux ${env.kernel}`;
  const out: string[] = [header, ''];
  console.log(header);
  for (const name of names) {
    const load = suites[name];
    if (!load) {
      console.error(`unknown suite "${name}"; known: ${Object.keys(suites).join(', ')}`);
      process.exitCode = 2;
      continue;
    }
    const { suite } = await load();
    const why = suite.unavailable?.();
    if (why) {
      const line = `### ${name}\n\nSKIPPED: ${why}\n`;
      console.log(line);
      out.push(line);
      continue;
    }
    console.log(`\n### ${name}`);
    const rows = await suite.run({ quick, log: (l) => console.log(`  ${l}`) });
    const table = markdownTable(rows);
    console.log(table);
    out.push(`### ${name}`, '', table, '');
  }
  if (write) {
    const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/RESULTS.md');
    appendFileSync(file, `\n${out.join('\n')}\n`);
    console.log(`\nappended to ${file}`);
  }
}

await main();
