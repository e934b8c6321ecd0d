// The data-plane ABI: memory map, ring geometry, slot layout, session entry,
// statistics and drop reasons. This one file is compiled by AssemblyScript
// (into the WASM data plane) and by TypeScript (loader, native addon glue), so
// it holds only integer constants and enums, no types and no code.
//
// Any change to a value here changes the contract between the WASM module, the
// TypeScript side and the native addon (native/src/abi.h mirrors the ring and
// slot offsets): bump ABI_VERSION with it. The loader refuses a module whose
// abiVersion() differs.

export const ABI_VERSION = 1;

// ---------------------------------------------------------------------------
// Memory map
//
//   0 .. DP_BASE              AssemblyScript static data (constant tables)
//   DP_BASE                   layout header (LAYOUT_HEADER_SIZE), written by TS
//   DP_BASE + header          ring directory, rings, stats, session table,
//                             lookup tables, scratch; offsets in the header
//
// Each data-plane worker owns one shared WebAssembly.Memory laid out like this
// (initial == maximum: the buffer never moves, so the native I/O threads can
// hold a raw pointer into it).

export const WASM_PAGE = 65536;
export const DP_BASE = 0x100000;
export const LAYOUT_MAGIC = 0x56504757; // "VPGW"
export const LAYOUT_HEADER_SIZE = 256;
/** Every region starts on this boundary (a cache line). */
export const REGION_ALIGN = 64;

// Layout header fields (u32, byte offsets from DP_BASE).
export const L_MAGIC = 0;
export const L_ABI = 4;
export const L_TOTAL_BYTES = 8;
export const L_MAX_SESSIONS = 12;
export const L_SESSION_TABLE = 16;
export const L_SESSION_SIZE = 20;
export const L_STATS = 24;
export const L_RING_DIR = 28;
export const L_V4_TABLE = 32;
export const L_V4_TABLE_CAP = 36;
export const L_CALLID_TABLE = 40;
export const L_SCRATCH = 44;
export const L_SCRATCH_SIZE = 48;
export const L_MODE = 52;
export const L_WORKER_ID = 56;
export const L_STREAM_BUF = 60;
export const L_STREAM_BUF_SIZE = 64;
/** Inner address of the gateway itself (the TUN's address), host order. */
export const L_GATEWAY_V4 = 68;

/** Data-plane modes (L_MODE). */
export enum Mode {
  /** Forward between tunnels and the TUN device. */
  FORWARD = 0,
  /** Test responder: answer ICMP echo arriving from the TUN device, drop the rest. */
  RESPONDER = 1,
}

// ---------------------------------------------------------------------------
// Rings
//
// Single-producer single-consumer rings of fixed-size slots. Indices are
// free-running u32 counters; slot = index & (slots - 1). The producer owns
// `head`, the consumer owns `tail`; each publishes its index with an atomic
// store (release) and reads the other's with an atomic load (acquire).
//
//   ring header (RING_HEADER_SIZE bytes)
//     +0    head                 producer index
//     +64   tail                 consumer index
//     +128  slot count (power of two)
//     +132  slot size
//     +136  consumer sleeping    consumer set 1 before it sleeps; a producer
//                                that finds 1 swaps it to 0 and wakes it
//     +140  producer waiting     producer found the ring full and sleeps
//     +144  ring id
//     +192  u64 produced packets   (written by the producer only)
//     +200  u64 produced bytes
//     +208  u64 full events        (producer found no free slot)
//     +216  u64 I/O errors         (native producer/consumer syscalls)
//     +224  u64 consumed packets   (written by the consumer only)
//   slots follow, each SLOT size bytes:
//     +0  u16 len        payload length
//     +2  u16 off        payload offset from the slot start
//     +4  u32 session    session index, or NO_SESSION
//     +8  u32 addr       IPv4 peer address, network byte order as on the wire
//                        (rx: source; tx: destination) for raw sockets
//     +12 u16 aux        ring-specific (control ring: PPP protocol)
//     +14 u16 flags
//     +16 ... headroom, then payload at `off`

export const RING_HEADER_SIZE = 256;
export const R_HEAD = 0;
export const R_TAIL = 64;
export const R_SLOTS = 128;
export const R_SLOT_SIZE = 132;
export const R_CONSUMER_SLEEPING = 136;
export const R_PRODUCER_WAITING = 140;
export const R_ID = 144;
export const R_PRODUCED_PKTS = 192;
export const R_PRODUCED_BYTES = 200;
export const R_FULL_EVENTS = 208;
export const R_IO_ERRORS = 216;
export const R_CONSUMED_PKTS = 224;

/** Slot size of the packet rings (TUN, GRE, ESP, CTRL, INJECT). */
export const SLOT_SIZE = 2048;
/**
 * Slot size of the stream rings (STREAM_IN, STREAM_OUT): a whole TLS record's
 * plaintext (16 KiB) fits one slot, and the data plane coalesces several
 * downlink frames for one session into one STREAM_OUT slot (one TLS write).
 */
export const STREAM_SLOT_SIZE = 16512;
export const STREAM_SLOT_MAX_PAYLOAD = 16384;
export const SLOT_HEADER_SIZE = 16;
/** Room in front of a payload written by a device reader, for headers prepended in place. */
export const SLOT_HEADROOM = 112;
/** Where device readers put the payload: header + headroom. */
export const SLOT_PAYLOAD_OFFSET = 128;
/** Largest payload a slot can carry at the default offset. */
export const SLOT_MAX_PAYLOAD = 1920;
export const S_LEN = 0;
export const S_OFF = 2;
export const S_SESSION = 4;
export const S_ADDR = 8;
export const S_AUX = 12;
export const S_FLAGS = 14;

export const NO_SESSION = 0xffffffff;

/** Ring directory: one ring per id, offsets stored as u32 at L_RING_DIR + 4 * id. */
export enum RingId {
  /** TUN device -> data plane (native producer). */
  TUN_RX = 0,
  /** data plane -> TUN device (native consumer). */
  TUN_TX = 1,
  /** raw GRE socket -> data plane. */
  GRE_RX = 2,
  /** data plane -> raw GRE socket (slot addr = destination). */
  GRE_TX = 3,
  /** raw ESP / UDP-encapsulated ESP -> data plane. */
  ESP_RX = 4,
  /** data plane -> ESP socket. */
  ESP_TX = 5,
  /** data plane -> TypeScript: control frames diverted from a data path (bounded; full = counted drop). */
  CTRL = 6,
  /** TypeScript -> data plane: control frames to send through a session's tunnel framing. */
  INJECT = 7,
  /** TypeScript -> data plane: bytes read from a stream transport (SSTP over TLS), slot session = owner. */
  STREAM_IN = 8,
  /** data plane -> TypeScript: framed bytes to write to a stream transport. */
  STREAM_OUT = 9,
}
export const RING_COUNT = 10;

// ---------------------------------------------------------------------------
// Statistics: u64 counters at L_STATS, indexed by Stat. Every counter has one
// writer (the worker's WASM instance); native counters live in ring headers.
// Drops are counted at STAT_DROP_BASE + Drop.

export enum Stat {
  TUN_RX_PKTS = 0,
  TUN_RX_BYTES = 1,
  TUN_TX_PKTS = 2,
  TUN_TX_BYTES = 3,
  CTRL_DIVERTED = 4,
  INJECTED = 5,
  RESPONDER_REPLIES = 6,
  STREAM_IN_BYTES = 7,
  STREAM_OUT_BYTES = 8,
  // per tunnel protocol, uplink (client -> TUN) and downlink (TUN -> client), IP packets and bytes
  SSTP_UP_PKTS = 16,
  SSTP_UP_BYTES = 17,
  SSTP_DOWN_PKTS = 18,
  SSTP_DOWN_BYTES = 19,
  PPTP_UP_PKTS = 20,
  PPTP_UP_BYTES = 21,
  PPTP_DOWN_PKTS = 22,
  PPTP_DOWN_BYTES = 23,
  L2TP_UP_PKTS = 24,
  L2TP_UP_BYTES = 25,
  L2TP_DOWN_PKTS = 26,
  L2TP_DOWN_BYTES = 27,
}
export const STAT_DROP_BASE = 64;
export const STAT_COUNT = 160;

/** Why the data plane dropped a packet. Names are metric label values (lowercased). */
export enum Drop {
  RING_FULL = 0,
  TRUNCATED = 1,
  BAD_IP_VERSION = 2,
  BAD_IP_HEADER = 3,
  NO_SESSION = 4,
  SPOOFED_SOURCE = 5,
  TOO_BIG = 6,
  NOT_ICMP_ECHO = 7,
  BAD_SLOT = 8,
  CTRL_RING_FULL = 9,
  PPP_PROTOCOL = 10,
  PPP_NOT_OPEN = 11,
  SSTP_HEADER = 12,
  SSTP_LENGTH = 13,
  GRE_HEADER = 14,
  GRE_UNKNOWN_CALL = 15,
  GRE_SEQUENCE = 16,
  MPPE_FLAGS = 17,
  MPPE_COHERENCY = 18,
  ESP_UNKNOWN_SPI = 19,
  ESP_REPLAY = 20,
  ESP_AUTH = 21,
  L2TP_HEADER = 22,
  STREAM_OVERFLOW = 23,
  SESSION_DOWN = 24,
  /** IPv6 data (no IPv6 forwarding yet: IPV6CP negotiates link-local only). */
  IPV6_NOT_ROUTED = 25,
  /** A stream-ring slot named a session that is not attached to a stream tunnel. */
  STREAM_NO_SESSION = 26,
  /** GRE from an address other than the session's peer (call id guessing / hijack). */
  GRE_WRONG_PEER = 27,
  /** A cleartext datagram on a session that negotiated MPPE. */
  MPPE_REQUIRED = 28,
  /** MPPE stateful mode: packets discarded while waiting for a flushed packet. */
  MPPE_DISCARD = 29,
  /** INJECT slot for a session whose tunnel cannot carry it. */
  INJECT_INVALID = 30,
  /**
   * Downlink frames dropped by TypeScript (src/sstp/datapath.ts): the
   * session's TLS socket already had its bound of unsent bytes queued.
   */
  STREAM_BACKLOG = 31,
}
export const DROP_COUNT = 32;

// ---------------------------------------------------------------------------
// Session table: L_MAX_SESSIONS entries of SESSION_SIZE bytes. The generic
// part is below; each tunnel protocol owns the bytes from SE_PROTO on.

export const SESSION_SIZE = 2048;
export const SE_STATE = 0; // u32 SessionState
export const SE_KIND = 4; // u32 Tunnel
export const SE_FLAGS = 8; // u32 SessionFlag bits
export const SE_GEN = 12; // u32 generation, bumped on every install
export const SE_V4 = 16; // u32 inner IPv4 address, host order
export const SE_V6 = 20; // 16 bytes inner IPv6 address (interface id in the low 8)
export const SE_MTU = 36; // u32 largest IP packet towards the client
export const SE_UP_PKTS = 40; // u64
export const SE_UP_BYTES = 48; // u64
export const SE_DOWN_PKTS = 56; // u64
export const SE_DOWN_BYTES = 64; // u64
export const SE_DROPS = 72; // u64
export const SE_PROTO = 128;

/**
 *   FREE --sessionAttach--> ATTACHED --sessionActivate--> ACTIVE
 *     ^                         |                            |
 *     +------------------- sessionDeactivate ----------------+
 * ATTACHED: the tunnel framing runs in the data plane (control frames are
 * diverted to TypeScript) but no IP flows; ACTIVE: the inner address is
 * bound and IP packets are forwarded.
 */
export enum SessionState {
  FREE = 0,
  ATTACHED = 1,
  ACTIVE = 2,
}

export enum Tunnel {
  NONE = 0,
  SSTP = 1,
  PPTP = 2,
  L2TP = 3,
}

export enum SessionFlag {
  IPV4 = 1,
  IPV6 = 2,
  MPPE = 4,
  /** PPP protocol-field compression negotiated for frames we send. */
  PFC = 8,
  /** Address-and-control-field compression negotiated for frames we send. */
  ACFC = 16,
  /** Client role: uplink means TUN -> tunnel; the inner address is the destination on downlink. */
  CLIENT = 32,
  /** The stream framing broke (bad SSTP header): further stream input is dropped. */
  STREAM_BROKEN = 64,
}

/** SSTP session fields (from SE_PROTO). */
export const SE_STREAM_PARTIAL = 128; // u32 bytes of an incomplete SSTP packet held in the stream buffer

/** PPTP session fields (from SE_PROTO): enhanced GRE (RFC 2637 4.1) and MPPE (RFC 3078). */
export const SE_PEER_ADDR = 128; // u32 peer's outer IPv4 address, network order as in a slot's addr field
export const SE_GRE_MY_CALL = 132; // u32 (low 16 bits) our call id: the key of packets we receive
export const SE_GRE_PEER_CALL = 136; // u32 (low 16 bits) the peer's call id: the key of packets we send
export const SE_GRE_SEND_SEQ = 140; // u32 sequence number of the next data packet we send
export const SE_GRE_RECV_SEQ = 144; // u32 highest sequence number received
export const SE_GRE_FLAGS = 148; // u32 GreFlag bits
export const SE_GRE_PEER_ACK = 152; // u32 highest of our sequence numbers the peer acknowledged
export const SE_MPPE_FLAGS = 156; // u32 MppeFlag bits
export const SE_MPPE_SEND_CCOUNT = 160; // u32 coherency count of the last packet sent (starts at 4095)
export const SE_MPPE_RECV_CCOUNT = 164; // u32 coherency count of the last packet accepted (starts at 4095)
export const SE_MPPE_SANITY = 168; // u32 recent malformed MPPE packets (decays on good ones)
/** MPPE key state (crypto/sizes.ts MPPE_STATE_SIZE = 224) and RC4 state (RC4_STATE_SIZE = 264) per direction. */
export const SE_MPPE_SEND_KEYS = 256;
export const SE_MPPE_SEND_RC4 = 480;
export const SE_MPPE_RECV_KEYS = 768;
export const SE_MPPE_RECV_RC4 = 992;
/** Where the control plane puts the two 16-octet MPPE start keys (send, then receive) before mppeInit(). */
export const SCRATCH_MPPE_KEYS = 0;

export enum GreFlag {
  /** At least one sequenced packet was received (SE_GRE_RECV_SEQ is meaningful). */
  RECEIVED = 1,
  /** A received sequence number has not been acknowledged yet. */
  ACK_PENDING = 2,
}

export enum MppeFlag {
  /** MPPE negotiated: only encrypted datagrams are accepted, all are sent encrypted. */
  ON = 1,
  /** Stateless ("H") mode: a key change before every packet. */
  STATELESS = 2,
  /** The peer sent a CCP Reset-Request: the next packet we send is flushed (rekeyed, A bit). */
  SEND_FLUSH = 4,
  /** Stateful receive lost sync: discard until a flushed packet arrives. */
  RECV_DISCARD = 8,
}

/** What a CTRL ring slot carries (slot aux). */
export enum CtrlKind {
  /** A PPP frame that is not forwarded data (LCP, auth, NCPs, CCP), as received (with ff 03 if present). */
  PPP_FRAME = 1,
  /** A whole SSTP control packet (header included). */
  SSTP_CONTROL = 2,
  /** The session's stream framing broke; payload is empty. The session must be torn down. */
  STREAM_ERROR = 3,
  /** Stateful MPPE lost sync on receive: send a CCP Reset-Request (RFC 3078 8.2). Payload empty. */
  MPPE_RESET_NEEDED = 4,
  /** Too many malformed MPPE packets: take the link down (RFC 3078 has the sender terminate on bogons). */
  MPPE_SANITY = 5,
}

/** Per-session stream reassembly buffer (SSTP: one record up to 4095 bytes, plus a partial next). */
export const STREAM_BUF_SIZE = 8192;

// ---------------------------------------------------------------------------
// Scratch: per-worker working memory for crypto kernels called from the
// control plane (MS-CHAP DES/MD4, key derivation). Offsets within scratch.
export const SCRATCH_SIZE = 65536;
