/*
 * Steering packets to the data-plane worker that owns them, in the kernel,
 * so no packet is ever handed from one worker to another:
 *
 *  - TUN (kernel -> gateway): a multi-queue TUN device has one queue per
 *    worker. An eBPF steering program (TUNSETSTEERINGEBPF) picks the queue
 *    of an IPv4 packet by its destination address, looked up in a hash map
 *    (address -> queue) that the workers fill as sessions come up. Addresses
 *    not in the map fall back to the kernel's spreading (they belong to no
 *    session and are dropped by whichever worker gets them).
 *  - GRE (peer -> gateway): every worker has its own raw GRE socket with a
 *    classic BPF filter that accepts only enhanced-GRE packets whose call id
 *    (the key's low half) is congruent to the worker's index modulo the
 *    worker count; call ids are allocated the same way.
 *
 * The programs are a few instructions written out below; no compiler, no
 * libbpf. Key and value are host-order u32.
 */
#include "common.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_bpf(int cmd, union bpf_attr *attr) {
  return (int)syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

/*
 * tunSteering(tunFd, maxEntries) -> mapFd
 * Create the address -> queue map, load the steering program over it and
 * attach it to the TUN device (any of its queue fds).
 */
napi_value steer_tun(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t tun_fd, max_entries;
  if (argc < 2 || !get_int(env, argv[0], &tun_fd, "tunFd must be a number") || !get_int(env, argv[1], &max_entries, "maxEntries must be a number"))
    return NULL;
  if (max_entries < 1 || max_entries > (1 << 24)) return throw_msg(env, "ERR_USAGE", "maxEntries %lld is out of range", (long long)max_entries);

  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_type = BPF_MAP_TYPE_HASH;
  a.key_size = 4;
  a.value_size = 4;
  a.max_entries = (uint32_t)max_entries;
  int map = sys_bpf(BPF_MAP_CREATE, &a);
  if (map < 0)
    return throw_sys(env, errno == EPERM ? "ERR_PERMISSION" : "ERR_NATIVE", errno, "bpf(BPF_MAP_CREATE)",
                     "cannot create the TUN steering map (needs CAP_BPF/CAP_SYS_ADMIN and a kernel with BPF)");

  struct bpf_insn prog[] = {
      INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0),    /* r6 = skb (LD_ABS needs it) */
      INSN(BPF_LD | BPF_ABS | BPF_B, 0, 0, 0, 0),       /* r0 = pkt[0] */
      INSN(BPF_ALU64 | BPF_RSH | BPF_K, 0, 0, 0, 4),    /* r0 >>= 4: IP version */
      INSN(BPF_JMP | BPF_JNE | BPF_K, 0, 0, 13, 4),     /* not IPv4: queue 0 (insn 17) */
      INSN(BPF_LD | BPF_ABS | BPF_W, 0, 0, 0, 16),      /* r0 = destination (host order) */
      INSN(BPF_STX | BPF_MEM | BPF_W, 10, 0, -4, 0),    /* *(u32 *)(fp - 4) = r0 */
      INSN(BPF_ALU64 | BPF_MOV | BPF_X, 7, 0, 0, 0),    /* r7 = destination */
      INSN(BPF_LD | BPF_DW | BPF_IMM, 1, BPF_PSEUDO_MAP_FD, 0, map), /* r1 = map */
      INSN(0, 0, 0, 0, 0),
      INSN(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0),   /* r2 = fp */
      INSN(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -4),   /* r2 = fp - 4 (the key) */
      INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
      INSN(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2, 0),      /* not found: fallback */
      INSN(BPF_LDX | BPF_MEM | BPF_W, 0, 0, 0, 0),      /* r0 = queue */
      INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
      INSN(BPF_ALU64 | BPF_MOV | BPF_X, 0, 7, 0, 0),    /* fallback: the address (the kernel takes it modulo the queues) */
      INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
      INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0),    /* not IPv4: queue 0 */
      INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
  };
  char log[2048];
  log[0] = 0;
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  a.insns = (uint64_t)(uintptr_t)prog;
  a.insn_cnt = sizeof prog / sizeof prog[0];
  a.license = (uint64_t)(uintptr_t) "GPL";
  a.log_buf = (uint64_t)(uintptr_t)log;
  a.log_size = sizeof log;
  a.log_level = 1;
  int pfd = sys_bpf(BPF_PROG_LOAD, &a);
  if (pfd < 0) {
    int e = errno;
    close(map);
    char *nl = strchr(log, '\n');
    if (nl) *nl = 0;
    return throw_sys(env, e == EPERM ? "ERR_PERMISSION" : "ERR_NATIVE", e, "bpf(BPF_PROG_LOAD)", "cannot load the TUN steering program: %s", log);
  }
  int rc = ioctl((int)tun_fd, TUNSETSTEERINGEBPF, &pfd);
  int e = errno;
  close(pfd); /* the device holds its own reference */
  if (rc < 0) {
    close(map);
    return throw_sys(env, "ERR_NATIVE", e, "ioctl(TUNSETSTEERINGEBPF)", "cannot attach the steering program to the TUN device (is it multi-queue?)");
  }
  napi_create_int32(env, map, &out);
  return out;
}

/* steerSet(mapFd, ipv4HostOrder, queue) / steerDelete(mapFd, ipv4HostOrder) */
napi_value steer_set(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t map, addr, queue;
  if (argc < 3 || !get_int(env, argv[0], &map, "mapFd must be a number") || !get_int(env, argv[1], &addr, "address must be a number") ||
      !get_int(env, argv[2], &queue, "queue must be a number"))
    return NULL;
  uint32_t k = (uint32_t)addr, v = (uint32_t)queue;
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = (uint32_t)map;
  a.key = (uint64_t)(uintptr_t)&k;
  a.value = (uint64_t)(uintptr_t)&v;
  a.flags = BPF_ANY;
  if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) < 0)
    return throw_sys(env, errno == E2BIG ? "ERR_LIMIT" : "ERR_NATIVE", errno, "bpf(BPF_MAP_UPDATE_ELEM)", "cannot steer %u.%u.%u.%u", k >> 24, (k >> 16) & 255, (k >> 8) & 255, k & 255);
  return NULL;
}

napi_value steer_delete(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t map, addr;
  if (argc < 2 || !get_int(env, argv[0], &map, "mapFd must be a number") || !get_int(env, argv[1], &addr, "address must be a number")) return NULL;
  uint32_t k = (uint32_t)addr;
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = (uint32_t)map;
  a.key = (uint64_t)(uintptr_t)&k;
  if (sys_bpf(BPF_MAP_DELETE_ELEM, &a) < 0 && errno != ENOENT)
    return throw_sys(env, "ERR_NATIVE", errno, "bpf(BPF_MAP_DELETE_ELEM)", "cannot remove the steering entry");
  return NULL;
}

/*
 * greCallIdFilter(fd, modulus, remainder): accept on this raw GRE socket only
 * PPTP enhanced GRE (protocol type 0x880b) whose call id % modulus == remainder.
 */
napi_value steer_gre_filter(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd, mod, rem;
  if (argc < 3 || !get_int(env, argv[0], &fd, "fd must be a number") || !get_int(env, argv[1], &mod, "modulus must be a number") ||
      !get_int(env, argv[2], &rem, "remainder must be a number"))
    return NULL;
  if (mod < 1 || mod > 65536 || rem < 0 || rem >= mod) return throw_msg(env, "ERR_USAGE", "call id filter %lld mod %lld is out of range", (long long)rem, (long long)mod);
  struct sock_filter f[] = {
      BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),            /* x = IP header length */
      BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2),             /* a = GRE protocol type */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x880b, 0, 4), /* not PPTP: reject */
      BPF_STMT(BPF_LD | BPF_H | BPF_IND, 6),             /* a = call id (key low half) */
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (uint32_t)mod),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)rem, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0x40000),                /* accept the whole packet */
      BPF_STMT(BPF_RET | BPF_K, 0),                      /* reject */
  };
  struct sock_fprog p = {.len = sizeof f / sizeof f[0], .filter = f};
  if (setsockopt((int)fd, SOL_SOCKET, SO_ATTACH_FILTER, &p, sizeof p) < 0)
    return throw_sys(env, "ERR_NATIVE", errno, "setsockopt(SO_ATTACH_FILTER)", "cannot attach the GRE call-id filter");
  return NULL;
}
