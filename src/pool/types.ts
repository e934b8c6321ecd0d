/**
 * Address assignment contract between the PPP network layer (IPCP, server
 * side) and the address pools (src/pool), later also RADIUS
 * (Framed-IP-Address). An address is never handed to two sessions; a lease
 * is released exactly once, on session teardown.
 */
export interface Lease {
  /** Dotted-quad IPv4 address. */
  readonly address: string;
  /** Return the address to its pool. Idempotent. */
  release(): void;
}

export interface AllocationRequest {
  sessionId: string;
  username: string;
  /** The user's static address, when configured: must be free, else the request fails with 'conflict'. */
  staticIpv4?: string;
}

export type AllocationResult =
  | { ok: true; lease: Lease }
  | { ok: false; reason: AllocationFailureReason; message: string };

export interface AddressAllocator {
  allocate(req: AllocationRequest): AllocationResult;
}

/** Why an allocation was refused: no free address, a static address already held (or the gateway's), a bad static address. */
export const ALLOCATION_FAILURE_REASONS = ['exhausted', 'conflict', 'invalid'] as const;
export type AllocationFailureReason = (typeof ALLOCATION_FAILURE_REASONS)[number];
