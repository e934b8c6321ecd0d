// vpngw data plane: the WASM module's exports. Batch entry points only: the
// host calls process(budget) once per wake-up, never once per packet.
import { ABI_VERSION, Mode } from './abi';
import { loadLayout, mode, INIT_OK } from './layout';
import { responderRun } from './responder';
import { forwardRun } from './forward';

export { sessionAttach, sessionActivate, sessionDeactivate, v4Lookup } from './session';
export { setDefaultSession } from './forward';
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
