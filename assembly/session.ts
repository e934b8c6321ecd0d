// Session table and the inner-address lookup (IPv4 -> session index).
//
// The lookup is an open-addressing hash with linear probing and
// backward-shift deletion (no tombstones, so probe lengths stay bounded
// however many sessions come and go). Entry: u32 key (host-order address,
// 0 = empty: 0.0.0.0 is never assigned), u32 session index.
import { SESSION_SIZE, SE_STATE, SE_V4, SE_GEN, SE_KIND, SessionState, Tunnel, NO_SESSION } from './abi';
import { greBind, greUnbind } from './gre';
import { sessionTable, maxSessions, v4Table, v4Mask } from './layout';

@inline export function sessionAddr(idx: u32): usize {
  return sessionTable + <usize>idx * <usize>SESSION_SIZE;
}

@inline function hashV4(a: u32): u32 {
  // Fibonacci hashing: pool addresses are consecutive, so mix the bits.
  return (a * 0x9e3779b1) ^ (a >> 16);
}

export function v4Lookup(addr: u32): u32 {
  if (addr == 0) return NO_SESSION;
  let i = hashV4(addr) & v4Mask;
  for (let n: u32 = 0; n <= v4Mask; n++) {
    const e = v4Table + (<usize>i << 3);
    const k = load<u32>(e);
    if (k == 0) return NO_SESSION;
    if (k == addr) return load<u32>(e + 4);
    i = (i + 1) & v4Mask;
  }
  return NO_SESSION;
}

/** Map addr -> idx. Returns false when the address is already mapped or the table is full. */
export function v4Insert(addr: u32, idx: u32): bool {
  if (addr == 0) return false;
  let i = hashV4(addr) & v4Mask;
  for (let n: u32 = 0; n <= v4Mask; n++) {
    const e = v4Table + (<usize>i << 3);
    const k = load<u32>(e);
    if (k == addr) return false;
    if (k == 0) {
      store<u32>(e + 4, idx);
      store<u32>(e, addr);
      return true;
    }
    i = (i + 1) & v4Mask;
  }
  return false;
}

export function v4Remove(addr: u32): bool {
  if (addr == 0) return false;
  let i = hashV4(addr) & v4Mask;
  let n: u32 = 0;
  for (; n <= v4Mask; n++) {
    const k = load<u32>(v4Table + (<usize>i << 3));
    if (k == 0) return false;
    if (k == addr) break;
    i = (i + 1) & v4Mask;
  }
  if (n > v4Mask) return false;
  // Backward-shift: move later members of the cluster into the hole when
  // their home slot is not cyclically between the hole and their position.
  let hole = i;
  let j = (i + 1) & v4Mask;
  for (;;) {
    const e = v4Table + (<usize>j << 3);
    const k = load<u32>(e);
    if (k == 0) break;
    const home = hashV4(k) & v4Mask;
    const dHome = (j - home) & v4Mask;
    const dHole = (j - hole) & v4Mask;
    if (dHome >= dHole) {
      const h = v4Table + (<usize>hole << 3);
      store<u32>(h, k);
      store<u32>(h + 4, load<u32>(e + 4));
      hole = j;
    }
    j = (j + 1) & v4Mask;
  }
  store<u64>(v4Table + (<usize>hole << 3), 0);
  return true;
}

/** Result codes of sessionActivate (mirrored in src/dataplane/engine.ts). */
export const SESS_OK: i32 = 0;
export const SESS_BAD_INDEX: i32 = 1;
export const SESS_ADDRESS_IN_USE: i32 = 2;
export const SESS_NOT_ACTIVE: i32 = 3;

export const SESS_BAD_STATE: i32 = 4;
export const SESS_CALL_ID_IN_USE: i32 = 5;

/**
 * Attach a session's tunnel framing to the data plane (FREE -> ATTACHED):
 * the control plane has written its kind and flags; from now on its stream
 * or packets are parsed here and control frames diverted, but no IP flows.
 */
export function sessionAttach(idx: u32): i32 {
  if (idx >= maxSessions) return SESS_BAD_INDEX;
  const s = sessionAddr(idx);
  if (load<u32>(s + SE_STATE) != SessionState.FREE) return SESS_BAD_STATE;
  if (load<u32>(s + SE_KIND) == Tunnel.PPTP && !greBind(idx, s)) return SESS_CALL_ID_IN_USE;
  store<u32>(s + SE_GEN, load<u32>(s + SE_GEN) + 1);
  store<u32>(s + SE_STATE, SessionState.ATTACHED);
  return SESS_OK;
}

/**
 * Make a session's IP path live (ATTACHED -> ACTIVE): the control plane has
 * written its inner address, MTU and keys; this publishes the address in the
 * lookup. A session may also be activated straight from FREE.
 */
export function sessionActivate(idx: u32): i32 {
  if (idx >= maxSessions) return SESS_BAD_INDEX;
  const s = sessionAddr(idx);
  const state = load<u32>(s + SE_STATE);
  if (state == SessionState.ACTIVE) return SESS_BAD_STATE;
  const v4 = load<u32>(s + SE_V4);
  if (v4 != 0 && !v4Insert(v4, idx)) return SESS_ADDRESS_IN_USE;
  if (state == SessionState.FREE) store<u32>(s + SE_GEN, load<u32>(s + SE_GEN) + 1);
  store<u32>(s + SE_STATE, SessionState.ACTIVE);
  return SESS_OK;
}

/** Take a session out of the data path; its entry is zeroed for reuse (generation kept). */
export function sessionDeactivate(idx: u32): i32 {
  if (idx >= maxSessions) return SESS_BAD_INDEX;
  const s = sessionAddr(idx);
  const state = load<u32>(s + SE_STATE);
  if (state == SessionState.FREE) return SESS_NOT_ACTIVE;
  const v4 = load<u32>(s + SE_V4);
  if (state == SessionState.ACTIVE && v4 != 0) v4Remove(v4);
  if (load<u32>(s + SE_KIND) == Tunnel.PPTP) greUnbind(idx, s);
  const gen = load<u32>(s + SE_GEN);
  memory.fill(s, 0, SESSION_SIZE);
  store<u32>(s + SE_GEN, gen);
  return SESS_OK;
}
