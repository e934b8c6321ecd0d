/**
 * Typed access to the native addon (native/, built by node-gyp at install).
 * Errors thrown by the addon carry a stable `code`; they are rethrown as
 * NativeError so callers and operators see one error hierarchy.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { ERROR_CODES, NativeError, VpnError, type ErrorCode } from '../util/errors.js';

export type IoHandle = { readonly __brand: 'IoHandle' };

export interface TunDevice {
  fd: number;
  name: string;
}

/** Run the operation inside this network namespace (name under /var/run/netns, or a path). */
export interface InNamespace {
  netns?: string;
}

export interface SocketOptions extends InNamespace {
  address?: string;
  port?: number;
  reusePort?: boolean;
  rcvbuf?: number;
  sndbuf?: number;
  backlog?: number;
}

export interface InterfaceConfig extends InNamespace {
  mtu?: number;
  txQueueLen?: number;
  ipv4?: string;
  prefixLen?: number;
  ipv6?: string;
  prefixLen6?: number;
  up?: boolean;
}

export interface IoOptions {
  fd: number;
  kind: 'tun' | 'socket';
  /** Byte offset of the ring this thread fills from the fd. */
  rxRing?: number;
  /** Byte offset of the ring this thread drains to the fd. */
  txRing?: number;
  /** Packets per syscall batch (1..256). */
  batch?: number;
}

interface RawAddon {
  abi(): Record<string, number>;
  openTun(name: string, opts: { multiQueue?: boolean } & InNamespace): TunDevice;
  configureInterface(name: string, cfg: InterfaceConfig): void;
  interfaceIndex(name: string, opts?: InNamespace): number;
  rawSocket(protocol: number, opts?: SocketOptions): number;
  udpSocket(opts: SocketOptions): number;
  tcpListener(opts: SocketOptions): number;
  tcpSocket(opts: SocketOptions): number;
  close(fd: number): void;
  tunSteering(tunFd: number, maxEntries: number): number;
  steerSet(mapFd: number, ipv4: number, queue: number): void;
  steerDelete(mapFd: number, ipv4: number): void;
  greCallIdFilter(fd: number, modulus: number, remainder: number): void;
  ioStart(memory: Uint8Array, opts: IoOptions, onWake: () => void): IoHandle;
  ioKick(h: IoHandle): void;
  ioStop(h: IoHandle): void;
  ioCpuSeconds(h: IoHandle): number;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const require_ = createRequire(import.meta.url);

/** The addon path, from src/dataplane (vitest) or dist/src/dataplane (built). */
function addonPath(): string {
  const candidates = [
    path.resolve(here, '../../native/build/Release/vpngw_native.node'),
    path.resolve(here, '../../../native/build/Release/vpngw_native.node'),
  ];
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

let cached: RawAddon | undefined;

function load(): RawAddon {
  if (cached) return cached;
  const p = addonPath();
  try {
    cached = require_(p) as RawAddon;
  } catch (e) {
    throw new VpnError('ERR_NATIVE', `the native addon is not built (${p}): run "npm ci" or "npm run build"`, { cause: e });
  }
  return cached;
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const err = e as { code?: string; message?: string; errno?: number; syscall?: string };
    const code = (ERROR_CODES as readonly string[]).includes(err.code ?? '') ? (err.code as ErrorCode) : 'ERR_NATIVE';
    throw new NativeError(code, err.message ?? String(e), err.errno, err.syscall);
  }
}

export const native = {
  abi: () => load().abi(),
  openTun: (name: string, opts: { multiQueue?: boolean } & InNamespace = {}) => wrap(() => load().openTun(name, opts)),
  configureInterface: (name: string, cfg: InterfaceConfig) => wrap(() => load().configureInterface(name, cfg)),
  interfaceIndex: (name: string, opts: InNamespace = {}) => wrap(() => load().interfaceIndex(name, opts)),
  /** IPv4 raw socket for an IP protocol (47 GRE, 50 ESP); received packets include the IP header. */
  rawSocket: (protocol: number, opts: SocketOptions = {}) => wrap(() => load().rawSocket(protocol, opts)),
  udpSocket: (opts: SocketOptions) => wrap(() => load().udpSocket(opts)),
  /** A bound, listening TCP socket: hand it to net.Server.listen({ fd }). */
  tcpListener: (opts: SocketOptions) => wrap(() => load().tcpListener(opts)),
  /** An unconnected TCP socket (e.g. in another namespace): new net.Socket({ fd }).connect(...). */
  tcpSocket: (opts: SocketOptions = {}) => wrap(() => load().tcpSocket(opts)),
  close: (fd: number) => wrap(() => load().close(fd)),
  /**
   * Attach an eBPF steering program to a multi-queue TUN device: IPv4 packets
   * go to the queue their destination is mapped to (steerSet); returns the
   * map's fd. Unmapped destinations are spread by the kernel.
   */
  tunSteering: (tunFd: number, maxEntries: number) => wrap(() => load().tunSteering(tunFd, maxEntries)),
  /** Map an inner IPv4 address (host-order number) to a TUN queue. */
  steerSet: (mapFd: number, ipv4: number, queue: number) => wrap(() => load().steerSet(mapFd, ipv4, queue)),
  steerDelete: (mapFd: number, ipv4: number) => wrap(() => load().steerDelete(mapFd, ipv4)),
  /** Let a raw GRE socket receive only PPTP GRE whose call id % modulus == remainder. */
  greCallIdFilter: (fd: number, modulus: number, remainder: number) => wrap(() => load().greCallIdFilter(fd, modulus, remainder)),
  ioStart: (memory: Uint8Array, opts: IoOptions, onWake: () => void) => wrap(() => load().ioStart(memory, opts, onWake)),
  ioKick: (h: IoHandle) => load().ioKick(h),
  ioStop: (h: IoHandle) => wrap(() => load().ioStop(h)),
  /** CPU seconds (user + system) the I/O thread has used; NaN once stopped. */
  ioCpuSeconds: (h: IoHandle) => load().ioCpuSeconds(h),
};

/** Is the addon loadable (built for this Node)? */
export function nativeAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}
