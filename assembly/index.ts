// vpngw data plane: the WASM module's exports. Batch entry points only: the
// host calls process(budget) once per wake-up, never once per packet.
import { ABI_VERSION, Mode } from './abi';
import { loadLayout, mode, INIT_OK } from './layout';
import { responderRun } from './responder';
import { forwardRun } from './forward';

export { sessionAttach, sessionActivate, sessionDeactivate, v4Lookup } from './session';
export { setDefaultSession } from './forward';
import { mppeInit as mppeInitAt, mppeResetSend as mppeResetSendAt } from './mppe';
import { sessionAddr } from './session';
import { maxSessions } from './layout';

/** Start MPPE on session idx with the start keys the host put in scratch (see abi.ts SCRATCH_MPPE_KEYS). */
export function mppeInit(idx: u32, bits: u32, stateless: bool): i32 {
  if (idx >= maxSessions) return 2;
  return mppeInitAt(sessionAddr(idx), bits, stateless);
}

/** The peer of session idx sent a CCP Reset-Request. */
export function mppeResetSend(idx: u32): void {
  if (idx < maxSessions) mppeResetSendAt(sessionAddr(idx));
}
export * from './crypto/exports';

export function abiVersion(): i32 {
  return ABI_VERSION;
}

/** End of AssemblyScript's static data: the loader checks it is below DP_BASE. */
export function heapBase(): usize {
  return __heap_base;
}

/** Read the layout header written by the host. Returns INIT_* (layout.ts). */
export function init(): i32 {
  const r = loadLayout();
  if (r != INIT_OK) return r;
  return INIT_OK;
}

/** Process up to `budget` packets from the input rings; returns how many were handled. */
export function process(budget: u32): u32 {
  if (mode == <u32>Mode.RESPONDER) return responderRun(budget);
  return forwardRun(budget);
}
