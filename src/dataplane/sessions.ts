/**
 * The control plane's handle on the data-plane session table: allocate an
 * entry, attach a tunnel's framing (control frames start to be diverted),
 * activate its IP path once PPP is up (inner address bound), read its
 * counters, release it on teardown. Entries are written only here and by the
 * WASM side of the same worker (same thread), so no locking is needed.
 */
import * as abi from '../../assembly/abi.js';
import { VpnError } from '../util/errors.js';
import type { DataPlane } from './engine.js';

/** Result codes of the WASM session exports (assembly/session.ts SESS_*). */
export const SESSION_RESULTS: Record<number, string> = {
  1: 'session index out of range',
  2: 'inner address already bound to another session',
  3: 'session is not active',
  4: 'session is in the wrong state for this step',
  5: 'GRE call id already bound to another session',
};

export interface AttachParams {
  tunnel: abi.Tunnel;
  /** Client role (our own client): the inner address is the destination of downlink packets. */
  client?: boolean;
  /** PPTP: the enhanced GRE call (RFC 2637 4.1). */
  gre?: GreParams;
}

export interface GreParams {
  /** Peer's outer IPv4 address (dotted quad). */
  peer: string;
  /** Our call id: the key of the packets we receive. Unique per data plane. */
  myCallId: number;
  /** The peer's call id: the key of the packets we send. */
  peerCallId: number;
}

export interface MppeParams {
  bits: 40 | 56 | 128;
  stateless: boolean;
  /**
   * Start keys (RFC 3079 3.4 GetAsymmetricStartKey), from this side's point of
   * view: 16 octets at 128 bits, 8 at 40 and 56 (3.1, 3.2; longer keys are cut).
   */
  sendStartKey: Uint8Array;
  recvStartKey: Uint8Array;
}

export interface ActivateParams {
  /** Inner IPv4 address (dotted quad): the client's address on both sides. */
  ipv4: string;
  /** Largest IP packet the tunnel carries towards the peer. */
  mtu: number;
  /** PPP header compression negotiated for frames we send. */
  pfc?: boolean;
  acfc?: boolean;
}

/** A PPTP session's MPPE flags (abi.MppeFlag), as the data plane holds them. */
export interface MppeState {
  on: boolean;
  stateless: boolean;
  /** The peer asked for a flush (CCP Reset-Request); our next packet carries the A bit. */
  sendFlushPending: boolean;
  /** Stateful receive lost sync: packets are discarded until a flushed one arrives (RFC 3078 8.2). */
  receiveDiscarding: boolean;
}

export interface SessionCounters {
  upPackets: bigint;
  upBytes: bigint;
  downPackets: bigint;
  downBytes: bigint;
  drops: bigint;
}

/** The counters of the session entry at byte offset `se` of a data plane's memory (through its DataView `dv`). */
export function readSessionCounters(dv: DataView, se: number): SessionCounters {
  return {
    upPackets: dv.getBigUint64(se + abi.SE_UP_PKTS, true),
    upBytes: dv.getBigUint64(se + abi.SE_UP_BYTES, true),
    downPackets: dv.getBigUint64(se + abi.SE_DOWN_PKTS, true),
    downBytes: dv.getBigUint64(se + abi.SE_DOWN_BYTES, true),
    drops: dv.getBigUint64(se + abi.SE_DROPS, true),
  };
}

export function ipv4ToInt(a: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  if (!m) throw new VpnError('ERR_USAGE', `'${a}' is not an IPv4 address`);
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) throw new VpnError('ERR_USAGE', `'${a}' is not an IPv4 address`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export class SessionTable {
  private readonly freeList: number[] = [];
  private readonly inUse = new Set<number>();

  constructor(private readonly dp: DataPlane) {
    for (let i = dp.layout.maxSessions - 1; i >= 0; i--) this.freeList.push(i);
  }

  get capacity(): number {
    return this.dp.layout.maxSessions;
  }

  get used(): number {
    return this.inUse.size;
  }

  /** A free entry, or undefined when the table is full (the caller refuses the session, counted). */
  allocate(): number | undefined {
    const idx = this.freeList.pop();
    if (idx !== undefined) this.inUse.add(idx);
    return idx;
  }

  private entry(idx: number): number {
    if (!this.inUse.has(idx)) throw new VpnError('ERR_USAGE', `session entry ${idx} is not allocated`);
    return this.dp.sessionOffset(idx);
  }

  private check(r: number, what: string, idx: number): void {
    if (r !== 0) throw new VpnError('ERR_PROTOCOL', `${what} session ${idx}: ${SESSION_RESULTS[r] ?? `code ${r}`}`);
  }

  attach(idx: number, p: AttachParams): void {
    const se = this.entry(idx);
    const dv = this.dp.dv;
    dv.setUint32(se + abi.SE_KIND, p.tunnel, true);
    dv.setUint32(se + abi.SE_FLAGS, p.client ? abi.SessionFlag.CLIENT : 0, true);
    if (p.tunnel === abi.Tunnel.PPTP) {
      if (!p.gre) throw new VpnError('ERR_USAGE', 'a PPTP session needs its GRE call parameters');
      // Network order, as the native layer writes a slot's address field.
      const a = ipv4ToInt(p.gre.peer);
      dv.setUint32(se + abi.SE_PEER_ADDR, ((a & 0xff) << 24) | ((a >>> 8 & 0xff) << 16) | ((a >>> 16 & 0xff) << 8) | (a >>> 24), true);
      dv.setUint32(se + abi.SE_GRE_MY_CALL, p.gre.myCallId & 0xffff, true);
      dv.setUint32(se + abi.SE_GRE_PEER_CALL, p.gre.peerCallId & 0xffff, true);
    }
    this.check(this.dp.wasm.sessionAttach(idx), 'attach', idx);
  }

  /**
   * PPTP: set the peer's call id (the key of the packets we send) of an
   * attached session. A client attaches at its Outgoing-Call-Request, keyed
   * by its own call id, so the server's first GRE packets are not lost, and
   * learns the server's call id from the reply.
   */
  setGrePeerCall(idx: number, peerCallId: number): void {
    const se = this.entry(idx);
    if (this.dp.dv.getUint32(se + abi.SE_KIND, true) !== abi.Tunnel.PPTP) throw new VpnError('ERR_USAGE', `session ${idx} is not a PPTP session`);
    this.dp.dv.setUint32(se + abi.SE_GRE_PEER_CALL, peerCallId & 0xffff, true);
  }

  /** Start MPPE (after CCP opened): derives both directions' initial keys in the data plane. */
  mppe(idx: number, p: MppeParams): void {
    this.entry(idx);
    const len = p.bits === 128 ? 16 : 8;
    if (p.sendStartKey.length < len || p.recvStartKey.length < len) throw new VpnError('ERR_USAGE', `MPPE start keys at ${p.bits} bits are ${len} octets`);
    // The WASM side reads 16-octet slots and uses the strength's length of each.
    const at = this.dp.layout.scratch + abi.SCRATCH_MPPE_KEYS;
    this.dp.u8.fill(0, at, at + 32);
    this.dp.u8.set(p.sendStartKey.subarray(0, len), at);
    this.dp.u8.set(p.recvStartKey.subarray(0, len), at + 16);
    const r = this.dp.wasm.mppeInit(idx, p.bits, p.stateless ? 1 : 0);
    this.dp.u8.fill(0, at, at + 32);
    if (r !== 0) throw new VpnError('ERR_PROTOCOL', `MPPE setup for session ${idx} failed (code ${r})`);
  }

  /** The peer sent a CCP Reset-Request: the next packet we send is flushed (RFC 3078 8.2). */
  mppeReset(idx: number): void {
    this.entry(idx);
    this.dp.wasm.mppeResetSend(idx);
  }

  /** MPPE flags of a session (the control plane repeats a lost Reset-Request while the receiver discards). */
  mppeState(idx: number): MppeState {
    const f = this.dp.dv.getUint32(this.entry(idx) + abi.SE_MPPE_FLAGS, true);
    return {
      on: (f & abi.MppeFlag.ON) !== 0,
      stateless: (f & abi.MppeFlag.STATELESS) !== 0,
      sendFlushPending: (f & abi.MppeFlag.SEND_FLUSH) !== 0,
      receiveDiscarding: (f & abi.MppeFlag.RECV_DISCARD) !== 0,
    };
  }

  activate(idx: number, p: ActivateParams): void {
    const se = this.entry(idx);
    const dv = this.dp.dv;
    dv.setUint32(se + abi.SE_V4, ipv4ToInt(p.ipv4), true);
    dv.setUint32(se + abi.SE_MTU, p.mtu, true);
    let flags = dv.getUint32(se + abi.SE_FLAGS, true) | abi.SessionFlag.IPV4;
    if (p.pfc) flags |= abi.SessionFlag.PFC;
    if (p.acfc) flags |= abi.SessionFlag.ACFC;
    dv.setUint32(se + abi.SE_FLAGS, flags, true);
    this.check(this.dp.wasm.sessionActivate(idx), 'activate', idx);
  }

  state(idx: number): abi.SessionState {
    return this.dp.dv.getUint32(this.dp.sessionOffset(idx) + abi.SE_STATE, true);
  }

  counters(idx: number): SessionCounters {
    return readSessionCounters(this.dp.dv, this.dp.sessionOffset(idx));
  }

  /** Take the session out of the data path and return its entry. Idempotent. */
  release(idx: number): void {
    if (!this.inUse.has(idx)) return;
    this.dp.wasm.sessionDeactivate(idx); // NOT_ACTIVE for a never-attached entry is fine
    this.inUse.delete(idx);
    this.freeList.push(idx);
  }
}
