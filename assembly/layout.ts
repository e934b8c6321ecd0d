// Worker-local view of the memory layout, read once from the header that the
// TypeScript side wrote at DP_BASE (see abi.ts). Hot code reads these globals,
// never the header.
import {
  DP_BASE, LAYOUT_MAGIC, ABI_VERSION, L_MAGIC, L_ABI, L_MAX_SESSIONS, L_SESSION_TABLE, L_SESSION_SIZE,
  L_STATS, L_RING_DIR, L_V4_TABLE, L_V4_TABLE_CAP, L_CALLID_TABLE, L_SCRATCH, L_SCRATCH_SIZE, L_MODE, L_STREAM_BUF,
  L_STREAM_BUF_SIZE, L_TOTAL_BYTES, RING_COUNT, SESSION_SIZE, STAT_COUNT, L_GATEWAY_V4,
} from './abi';

export let maxSessions: u32 = 0;
export let sessionTable: usize = 0;
export let statsBase: usize = 0;
export let ringDir: usize = 0;
export let v4Table: usize = 0;
export let v4Mask: u32 = 0;
export let callIdTable: usize = 0;
export let scratch: usize = 0;
export let scratchSize: u32 = 0;
export let streamBuf: usize = 0;
export let streamBufSize: u32 = 0;
export let mode: u32 = 0;
export let gatewayV4: u32 = 0;

/** Init error codes (returned by init(), mirrored in src/dataplane/wasm.ts). */
export const INIT_OK: i32 = 0;
export const INIT_BAD_MAGIC: i32 = 1;
export const INIT_BAD_ABI: i32 = 2;
export const INIT_BAD_GEOMETRY: i32 = 3;
export const INIT_OUT_OF_MEMORY: i32 = 4;

export function loadLayout(): i32 {
  if (load<u32>(DP_BASE + L_MAGIC) != LAYOUT_MAGIC) return INIT_BAD_MAGIC;
  if (load<u32>(DP_BASE + L_ABI) != <u32>ABI_VERSION) return INIT_BAD_ABI;
  const total = load<u32>(DP_BASE + L_TOTAL_BYTES);
  if (<u64>total > (<u64>memory.size() << 16)) return INIT_OUT_OF_MEMORY;
  if (load<u32>(DP_BASE + L_SESSION_SIZE) != <u32>SESSION_SIZE) return INIT_BAD_GEOMETRY;
  const cap = load<u32>(DP_BASE + L_V4_TABLE_CAP);
  if (cap == 0 || (cap & (cap - 1)) != 0) return INIT_BAD_GEOMETRY;
  maxSessions = load<u32>(DP_BASE + L_MAX_SESSIONS);
  sessionTable = <usize>load<u32>(DP_BASE + L_SESSION_TABLE);
  statsBase = <usize>load<u32>(DP_BASE + L_STATS);
  ringDir = <usize>load<u32>(DP_BASE + L_RING_DIR);
  v4Table = <usize>load<u32>(DP_BASE + L_V4_TABLE);
  v4Mask = cap - 1;
  callIdTable = <usize>load<u32>(DP_BASE + L_CALLID_TABLE);
  scratch = <usize>load<u32>(DP_BASE + L_SCRATCH);
  scratchSize = load<u32>(DP_BASE + L_SCRATCH_SIZE);
  streamBuf = <usize>load<u32>(DP_BASE + L_STREAM_BUF);
  streamBufSize = load<u32>(DP_BASE + L_STREAM_BUF_SIZE);
  mode = load<u32>(DP_BASE + L_MODE);
  gatewayV4 = load<u32>(DP_BASE + L_GATEWAY_V4);
  // Every region must lie inside the declared total.
  if (<u64>statsBase + <u64>STAT_COUNT * 8 > <u64>total) return INIT_BAD_GEOMETRY;
  if (<u64>sessionTable + <u64>maxSessions * <u64>SESSION_SIZE > <u64>total) return INIT_BAD_GEOMETRY;
  if (<u64>v4Table + <u64>cap * 8 > <u64>total) return INIT_BAD_GEOMETRY;
  if (<u64>ringDir + <u64>RING_COUNT * 4 > <u64>total) return INIT_BAD_GEOMETRY;
  if (<u64>scratch + <u64>scratchSize > <u64>total || scratchSize < 4096) return INIT_BAD_GEOMETRY;
  if (<u64>callIdTable + 65536 * 4 > <u64>total) return INIT_BAD_GEOMETRY;
  return INIT_OK;
}
