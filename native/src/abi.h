/*
 * Ring and slot geometry shared with the WASM data plane. Mirrors
 * assembly/abi.ts (the source of truth); test/native.e2e.test.ts checks that
 * the two agree through vpngw_native.abi().
 */
#ifndef VPNGW_ABI_H
#define VPNGW_ABI_H

#define VPNGW_ABI_VERSION 1

#define RING_HEADER_SIZE 256
#define R_HEAD 0
#define R_TAIL 64
#define R_SLOTS 128
#define R_SLOT_SIZE 132
#define R_CONSUMER_SLEEPING 136
#define R_PRODUCER_WAITING 140
#define R_ID 144
#define R_PRODUCED_PKTS 192
#define R_PRODUCED_BYTES 200
#define R_FULL_EVENTS 208
#define R_IO_ERRORS 216
#define R_CONSUMED_PKTS 224

#define SLOT_HEADER_SIZE 16
#define SLOT_PAYLOAD_OFFSET 128
#define S_LEN 0
#define S_OFF 2
#define S_SESSION 4
#define S_ADDR 8
#define S_AUX 12
#define S_FLAGS 14

#define NO_SESSION 0xffffffffu

#endif
