// Counters in the stats block (u64 each). One writer: this worker's instance.
import { STAT_DROP_BASE } from './abi';
import { statsBase } from './layout';

@inline export function count(stat: i32, n: u64 = 1): void {
  const p = statsBase + (<usize>stat << 3);
  store<u64>(p, load<u64>(p) + n);
}

@inline export function drop(reason: i32): void {
  count(STAT_DROP_BASE + reason);
}
