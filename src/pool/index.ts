export type { AddressAllocator, AllocationRequest, AllocationResult, Lease } from './types.js';
export { Ipv4Pool, MAX_POOL_SIZE, type Ipv4PoolConfig, type LeaseInfo } from './ipv4-pool.js';
export { parseIpv4, formatIpv4, parsePoolEntry, type Ipv4Interval } from './ipv4.js';
