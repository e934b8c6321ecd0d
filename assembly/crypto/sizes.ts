// Sizes and field offsets of the caller-provided state the crypto kernels
// work in. Like ../abi.ts this file holds only integer constants, so it is
// compiled both by AssemblyScript (the kernels) and by TypeScript (the
// control-plane wrapper, tests, and whoever lays out session entries).
//
// Every kernel keeps its state in memory the caller hands it; no kernel owns
// a buffer, so two sessions (or two threads over two memories) never share
// state.

// ---------------------------------------------------------------------------
// RC4 state: the 256-octet permutation S, then the two indices.
//
//   +0    S[0..255]   one octet each
//   +256  u32 i
//   +260  u32 j
export const RC4_S = 0;
export const RC4_I = 256;
export const RC4_J = 260;
export const RC4_STATE_SIZE = 264;

// ---------------------------------------------------------------------------
// SHA-1 context (FIPS 180-4 section 6.1), streaming.
//
//   +0    H0..H4      u32 each, native byte order
//   +20   u32         octets waiting in the block buffer (0..63)
//   +24   u64         total message length in octets
//   +32   block buffer (64 octets)
export const SHA1_H = 0;
export const SHA1_BUFLEN = 20;
export const SHA1_TOTAL = 24;
export const SHA1_BUF = 32;
export const SHA1_CTX_SIZE = 96;
export const SHA1_DIGEST_SIZE = 20;
export const SHA1_BLOCK_SIZE = 64;

// ---------------------------------------------------------------------------
// MD4 context (RFC 1320 section 3), streaming.
//
//   +0    A, B, C, D  u32 each
//   +16   u32         octets waiting in the block buffer
//   +24   u64         total message length in octets
//   +32   block buffer (64 octets)
export const MD4_H = 0;
export const MD4_BUFLEN = 16;
export const MD4_TOTAL = 24;
export const MD4_BUF = 32;
export const MD4_CTX_SIZE = 96;
export const MD4_DIGEST_SIZE = 16;

// ---------------------------------------------------------------------------
// DES (FIPS 46-3): one 8-octet block, key of 8 octets (parity bits ignored)
// or of 7 octets expanded as RFC 2759 section 8.6 / 9.3 does.
export const DES_BLOCK_SIZE = 8;
export const DES_KEY7_SIZE = 7;
export const DES_KEY8_SIZE = 8;

// ---------------------------------------------------------------------------
// MPPE key state (RFC 3078 section 7.3, RFC 3079 section 3): one direction
// of one session.
//
//   +0    u32 key length in octets (8 for 40/56-bit, 16 for 128-bit)
//   +4    u32 key strength in bits (40, 56, 128)
//   +8    start key (MasterSendKey or MasterReceiveKey truncated), 16 octets
//   +24   current session key (reduced, as used by RC4), 16 octets
//   +40   interim key (GetNewKeyFromSHA output, a full SHA-1 digest), 20 octets
//   +64   SHA-1 context (SHA1_CTX_SIZE)
export const MPPE_KEY_LEN = 0;
export const MPPE_BITS = 4;
export const MPPE_START_KEY = 8;
export const MPPE_SESSION_KEY = 24;
export const MPPE_INTERIM = 40;
export const MPPE_SHA1 = 64;
export const MPPE_STATE_SIZE = 160;
