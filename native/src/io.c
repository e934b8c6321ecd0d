/*
 * I/O threads: move packets between a file descriptor and two SPSC rings in
 * a shared WASM memory (layout in abi.h / assembly/abi.ts).
 *
 *   rx: fd -> ring (this thread produces).  TUN: one read() per packet;
 *       sockets: recvmmsg() straight into the ring's slots.
 *   tx: ring -> fd (this thread consumes).  TUN: one write() per packet;
 *       sockets: sendmmsg() straight out of the slots.
 *
 * Packets are copied only by the kernel. The JS side is woken through a
 * thread-safe function (uv_async underneath) only when it announced that it
 * sleeps (R_CONSUMER_SLEEPING), so a busy consumer costs no wake-ups. JS
 * wakes this thread with an eventfd kick after publishing tx work or after
 * freeing rx space the thread was waiting for.
 *
 * Ordering: slot contents are written before the index that publishes them
 * (release), and the sleeping/waiting flags use sequentially consistent
 * operations on both sides so a wake-up can never be lost between "ring is
 * empty" and "I am going to sleep".
 */
#include "common.h"
#include "abi.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256

enum io_kind { IO_TUN = 0, IO_SOCKET = 1 };

typedef struct {
  uint8_t *base;
  size_t size;
  uint32_t rx, tx; /* ring header offsets, 0 = not used */
  int fd;
  int kind;
  int evfd;
  unsigned batch;
  pthread_t thread;
  bool started;
  bool stopped;
  int stop; /* atomic */
  napi_threadsafe_function tsfn;
  napi_ref mem_ref;
  /* sendmmsg / recvmmsg scratch, used by this thread only */
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in names[MAX_BATCH];
} io_t;

#define U32(io, off) ((uint32_t *)((io)->base + (off)))
#define U64(io, off) ((uint64_t *)((io)->base + (off)))

static inline uint8_t *slot_ptr(io_t *io, uint32_t ring, uint32_t index) {
  uint32_t slots = *U32(io, ring + R_SLOTS), ssz = *U32(io, ring + R_SLOT_SIZE);
  return io->base + ring + RING_HEADER_SIZE + (size_t)(index & (slots - 1)) * ssz;
}

static inline void add64(io_t *io, uint32_t off, uint64_t n) {
  /* single writer per counter; readers may see a torn value only on 32-bit hosts */
  __atomic_store_n(U64(io, off), __atomic_load_n(U64(io, off), __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static void wake_js(io_t *io, uint32_t ring) {
  uint32_t *sleeping = U32(io, ring + R_CONSUMER_SLEEPING);
  if (__atomic_load_n(sleeping, __ATOMIC_SEQ_CST)) {
    uint32_t one = 1;
    if (__atomic_compare_exchange_n(sleeping, &one, 0, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
      napi_call_threadsafe_function(io->tsfn, NULL, napi_tsfn_nonblocking);
  }
}

/* fd -> rx ring. Returns packets moved; sets *full when the ring has no room. */
static int rx_batch(io_t *io, bool *full) {
  uint32_t r = io->rx;
  uint32_t head = __atomic_load_n(U32(io, r + R_HEAD), __ATOMIC_RELAXED);
  uint32_t tail = __atomic_load_n(U32(io, r + R_TAIL), __ATOMIC_ACQUIRE);
  uint32_t slots = *U32(io, r + R_SLOTS), ssz = *U32(io, r + R_SLOT_SIZE);
  uint32_t room = slots - (head - tail);
  *full = false;
  if (room == 0) {
    *full = true;
    add64(io, r + R_FULL_EVENTS, 1);
    return 0;
  }
  unsigned want = room < io->batch ? room : io->batch;
  uint64_t bytes = 0;
  int n = 0;
  if (io->kind == IO_TUN) {
    while ((unsigned)n < want) {
      uint8_t *s = slot_ptr(io, r, head);
      ssize_t got = read(io->fd, s + SLOT_PAYLOAD_OFFSET, ssz - SLOT_PAYLOAD_OFFSET);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) add64(io, r + R_IO_ERRORS, 1);
        break;
      }
      *(uint16_t *)(s + S_LEN) = (uint16_t)got;
      *(uint16_t *)(s + S_OFF) = SLOT_PAYLOAD_OFFSET;
      *(uint32_t *)(s + S_SESSION) = NO_SESSION;
      *(uint32_t *)(s + S_ADDR) = 0;
      *(uint16_t *)(s + S_AUX) = 0;
      *(uint16_t *)(s + S_FLAGS) = 0;
      bytes += (uint64_t)got;
      head++;
      n++;
    }
  } else {
    for (unsigned i = 0; i < want; i++) {
      uint8_t *s = slot_ptr(io, r, head + i);
      io->iov[i].iov_base = s + SLOT_PAYLOAD_OFFSET;
      io->iov[i].iov_len = ssz - SLOT_PAYLOAD_OFFSET;
      memset(&io->msgs[i].msg_hdr, 0, sizeof io->msgs[i].msg_hdr);
      io->msgs[i].msg_hdr.msg_iov = &io->iov[i];
      io->msgs[i].msg_hdr.msg_iovlen = 1;
      io->msgs[i].msg_hdr.msg_name = &io->names[i];
      io->msgs[i].msg_hdr.msg_namelen = sizeof io->names[i];
    }
    int got;
    do got = recvmmsg(io->fd, io->msgs, want, MSG_DONTWAIT, NULL);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
      if (errno != EAGAIN) add64(io, r + R_IO_ERRORS, 1);
      got = 0;
    }
    for (int i = 0; i < got; i++) {
      uint8_t *s = slot_ptr(io, r, head);
      uint32_t len = io->msgs[i].msg_len;
      *(uint16_t *)(s + S_LEN) = (uint16_t)len;
      *(uint16_t *)(s + S_OFF) = SLOT_PAYLOAD_OFFSET;
      *(uint32_t *)(s + S_SESSION) = NO_SESSION;
      memcpy(s + S_ADDR, &io->names[i].sin_addr.s_addr, 4);
      *(uint16_t *)(s + S_AUX) = ntohs(io->names[i].sin_port);
      *(uint16_t *)(s + S_FLAGS) = (io->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 1 : 0;
      bytes += len;
      head++;
      n++;
    }
  }
  if (n > 0) {
    add64(io, r + R_PRODUCED_PKTS, (uint64_t)n);
    add64(io, r + R_PRODUCED_BYTES, bytes);
    __atomic_store_n(U32(io, r + R_HEAD), head, __ATOMIC_SEQ_CST);
    wake_js(io, r);
  }
  if ((unsigned)n == room) *full = true;
  return n;
}

/* tx ring -> fd. Returns packets moved; sets *blocked when the fd would block. */
static int tx_batch(io_t *io, bool *blocked) {
  uint32_t r = io->tx;
  uint32_t tail = __atomic_load_n(U32(io, r + R_TAIL), __ATOMIC_RELAXED);
  uint32_t head = __atomic_load_n(U32(io, r + R_HEAD), __ATOMIC_ACQUIRE);
  uint32_t ssz = *U32(io, r + R_SLOT_SIZE);
  uint32_t avail = head - tail;
  *blocked = false;
  if (avail == 0) return 0;
  unsigned want = avail < io->batch ? avail : io->batch;
  int n = 0;
  if (io->kind == IO_TUN) {
    while ((unsigned)n < want) {
      uint8_t *s = slot_ptr(io, r, tail);
      uint32_t off = *(uint16_t *)(s + S_OFF), len = *(uint16_t *)(s + S_LEN);
      if (off < SLOT_HEADER_SIZE || off + len > ssz || len == 0) {
        add64(io, r + R_IO_ERRORS, 1); /* malformed slot from the producer: skip it */
      } else {
        ssize_t w = write(io->fd, s + off, len);
        if (w < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN) {
            *blocked = true;
            break;
          }
          add64(io, r + R_IO_ERRORS, 1); /* e.g. EINVAL for a non-IP payload: drop it */
        }
      }
      tail++;
      n++;
    }
  } else {
    unsigned k = 0;
    for (unsigned i = 0; i < want; i++) {
      uint8_t *s = slot_ptr(io, r, tail + i);
      uint32_t off = *(uint16_t *)(s + S_OFF), len = *(uint16_t *)(s + S_LEN);
      if (off < SLOT_HEADER_SIZE || off + len > ssz) len = 0, off = SLOT_HEADER_SIZE; /* sent as nothing: counted below */
      io->iov[k].iov_base = s + off;
      io->iov[k].iov_len = len;
      memset(&io->names[k], 0, sizeof io->names[k]);
      io->names[k].sin_family = AF_INET;
      memcpy(&io->names[k].sin_addr.s_addr, s + S_ADDR, 4);
      io->names[k].sin_port = htons(*(uint16_t *)(s + S_AUX));
      memset(&io->msgs[k].msg_hdr, 0, sizeof io->msgs[k].msg_hdr);
      io->msgs[k].msg_hdr.msg_iov = &io->iov[k];
      io->msgs[k].msg_hdr.msg_iovlen = 1;
      io->msgs[k].msg_hdr.msg_name = &io->names[k];
      io->msgs[k].msg_hdr.msg_namelen = sizeof io->names[k];
      k++;
    }
    unsigned sent = 0;
    while (sent < k) {
      int w = sendmmsg(io->fd, io->msgs + sent, k - sent, MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == ENOBUFS) {
          *blocked = true;
          break;
        }
        /* the first message failed (bad address, unreachable): drop it, go on */
        add64(io, r + R_IO_ERRORS, 1);
        sent++;
        continue;
      }
      sent += (unsigned)w;
    }
    tail += sent;
    n = (int)sent;
  }
  if (n > 0) {
    add64(io, r + R_CONSUMED_PKTS, (uint64_t)n);
    __atomic_store_n(U32(io, r + R_TAIL), tail, __ATOMIC_SEQ_CST);
  }
  return n;
}

static void *io_main(void *arg) {
  io_t *io = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to the JS main thread */
  bool rx_full = false, tx_blocked = false;
  while (!__atomic_load_n(&io->stop, __ATOMIC_ACQUIRE)) {
    int progress = 0;
    if (io->rx) progress += rx_batch(io, &rx_full);
    if (io->tx) progress += tx_batch(io, &tx_blocked);
    if (progress > 0 && !rx_full) continue;

    /* Announce that we are going to sleep, then look once more. */
    if (io->rx && rx_full) {
      __atomic_store_n(U32(io, io->rx + R_PRODUCER_WAITING), 1, __ATOMIC_SEQ_CST);
      uint32_t head = __atomic_load_n(U32(io, io->rx + R_HEAD), __ATOMIC_RELAXED);
      uint32_t tail = __atomic_load_n(U32(io, io->rx + R_TAIL), __ATOMIC_SEQ_CST);
      if (head - tail < *U32(io, io->rx + R_SLOTS)) {
        __atomic_store_n(U32(io, io->rx + R_PRODUCER_WAITING), 0, __ATOMIC_SEQ_CST);
        rx_full = false;
        continue;
      }
    }
    if (io->tx && !tx_blocked) {
      __atomic_store_n(U32(io, io->tx + R_CONSUMER_SLEEPING), 1, __ATOMIC_SEQ_CST);
      uint32_t head = __atomic_load_n(U32(io, io->tx + R_HEAD), __ATOMIC_SEQ_CST);
      if (head != __atomic_load_n(U32(io, io->tx + R_TAIL), __ATOMIC_RELAXED)) {
        __atomic_store_n(U32(io, io->tx + R_CONSUMER_SLEEPING), 0, __ATOMIC_SEQ_CST);
        continue;
      }
    }
    struct pollfd pfd[2];
    pfd[0].fd = io->fd;
    pfd[0].events = (short)((io->rx && !rx_full ? POLLIN : 0) | (tx_blocked ? POLLOUT : 0));
    pfd[0].revents = 0;
    pfd[1].fd = io->evfd;
    pfd[1].events = POLLIN;
    pfd[1].revents = 0;
    int pr = poll(pfd, 2, 1000);
    if (pr < 0 && errno != EINTR) {
      if (io->rx) add64(io, io->rx + R_IO_ERRORS, 1);
      usleep(1000);
    }
    if (pfd[1].revents & POLLIN) {
      uint64_t v;
      ssize_t ignored = read(io->evfd, &v, sizeof v);
      (void)ignored;
    }
    if (pfd[0].revents & POLLOUT) tx_blocked = false;
    if (pfd[0].revents & (POLLERR | POLLNVAL)) {
      if (io->rx) add64(io, io->rx + R_IO_ERRORS, 1);
      if (pfd[0].revents & POLLNVAL) usleep(10000); /* fd closed under us: wait for stop */
    }
    if (io->tx) __atomic_store_n(U32(io, io->tx + R_CONSUMER_SLEEPING), 0, __ATOMIC_SEQ_CST);
    if (io->rx) __atomic_store_n(U32(io, io->rx + R_PRODUCER_WAITING), 0, __ATOMIC_SEQ_CST);
    rx_full = false;
  }
  return NULL;
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  if (env == NULL || js_cb == NULL) return;
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, js_cb, 0, NULL, NULL);
}

static void io_shutdown(napi_env env, io_t *io) {
  if (io->stopped) return;
  io->stopped = true;
  if (io->started) {
    __atomic_store_n(&io->stop, 1, __ATOMIC_RELEASE);
    uint64_t one = 1;
    ssize_t ignored = write(io->evfd, &one, sizeof one);
    (void)ignored;
    pthread_join(io->thread, NULL);
  }
  if (io->tsfn) napi_release_threadsafe_function(io->tsfn, napi_tsfn_release);
  io->tsfn = NULL;
  if (env && io->mem_ref) napi_delete_reference(env, io->mem_ref);
  io->mem_ref = NULL;
  if (io->evfd >= 0) close(io->evfd);
  io->evfd = -1;
}

static void io_finalize(napi_env env, void *data, void *hint) {
  io_t *io = data;
  io_shutdown(env, io);
  free(io);
}

static bool ring_ok(napi_env env, io_t *io, uint32_t off, const char *which) {
  if (off == 0) return true;
  if ((uint64_t)off + RING_HEADER_SIZE > io->size) {
    throw_msg(env, "ERR_LAYOUT", "%s ring offset %u is outside the memory (%zu bytes)", which, off, io->size);
    return false;
  }
  uint32_t slots = *U32(io, off + R_SLOTS), ssz = *U32(io, off + R_SLOT_SIZE);
  if (slots == 0 || (slots & (slots - 1)) != 0 || ssz < SLOT_PAYLOAD_OFFSET + 64 || ssz > 65535 ||
      (uint64_t)off + RING_HEADER_SIZE + (uint64_t)slots * ssz > io->size) {
    throw_msg(env, "ERR_LAYOUT", "%s ring at %u has a bad geometry (%u slots of %u bytes)", which, off, slots, ssz);
    return false;
  }
  return true;
}

/*
 * ioStart(memory: Uint8Array over the shared WASM memory,
 *         { fd, kind: 'tun' | 'socket', rxRing?, txRing?, batch? },
 *         onWake: () => void) -> handle
 */
napi_value io_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], v;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return throw_msg(env, "ERR_USAGE", "ioStart(memory, options, onWake)");
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value ab;
  size_t byte_offset;
  bool is_ta = false;
  napi_is_typedarray(env, argv[0], &is_ta);
  if (!is_ta || napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &byte_offset) != napi_ok ||
      type != napi_uint8_array || byte_offset != 0)
    return throw_msg(env, "ERR_USAGE", "ioStart: memory must be a Uint8Array over the whole WASM memory");

  io_t *io = calloc(1, sizeof *io);
  if (!io) return throw_msg(env, "ERR_NATIVE", "out of memory");
  io->base = data;
  io->size = length;
  io->evfd = -1;
  int64_t n;
  io->batch = 64;
  if (!get_prop(env, argv[1], "fd", &v) || !get_int(env, v, &n, "fd must be a number")) goto fail_usage;
  io->fd = (int)n;
  char kind[16] = "tun";
  if (get_prop(env, argv[1], "kind", &v) && !get_string(env, v, kind, sizeof kind, "kind must be a string")) goto fail;
  if (strcmp(kind, "tun") == 0) io->kind = IO_TUN;
  else if (strcmp(kind, "socket") == 0) io->kind = IO_SOCKET;
  else {
    throw_msg(env, "ERR_USAGE", "ioStart: kind must be 'tun' or 'socket', not '%s'", kind);
    goto fail;
  }
  if (get_prop(env, argv[1], "rxRing", &v)) {
    if (!get_int(env, v, &n, "rxRing must be a number")) goto fail;
    io->rx = (uint32_t)n;
  }
  if (get_prop(env, argv[1], "txRing", &v)) {
    if (!get_int(env, v, &n, "txRing must be a number")) goto fail;
    io->tx = (uint32_t)n;
  }
  if (get_prop(env, argv[1], "batch", &v)) {
    if (!get_int(env, v, &n, "batch must be a number")) goto fail;
    io->batch = n < 1 ? 1 : (n > MAX_BATCH ? MAX_BATCH : (unsigned)n);
  }
  if (!io->rx && !io->tx) {
    throw_msg(env, "ERR_USAGE", "ioStart: give rxRing, txRing or both");
    goto fail;
  }
  if (!ring_ok(env, io, io->rx, "rx") || !ring_ok(env, io, io->tx, "tx")) goto fail;

  io->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (io->evfd < 0) {
    throw_sys(env, "ERR_NATIVE", errno, "eventfd", "cannot create the I/O thread's wake-up fd");
    goto fail;
  }
  napi_create_reference(env, argv[0], 1, &io->mem_ref);
  napi_value name;
  napi_create_string_utf8(env, "vpngw-io", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, io, call_js, &io->tsfn) != napi_ok) {
    throw_msg(env, "ERR_USAGE", "ioStart: onWake must be a function");
    goto fail;
  }
  int err = pthread_create(&io->thread, NULL, io_main, io);
  if (err != 0) {
    throw_sys(env, "ERR_NATIVE", err, "pthread_create", "cannot start the I/O thread");
    goto fail;
  }
  io->started = true;
  /* Named for `top -H` / perf: which thread is which (best effort, 15 chars). */
  pthread_setname_np(io->thread, io->kind == IO_TUN ? "vpngw-io-tun" : "vpngw-io-sock");
  napi_value handle;
  napi_create_external(env, io, io_finalize, NULL, &handle);
  return handle;

fail_usage:
  {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) throw_msg(env, "ERR_USAGE", "ioStart: options.fd is required");
  }
fail:
  io_shutdown(env, io);
  free(io);
  return NULL;
}

static io_t *get_io(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *p = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    throw_msg(env, "ERR_USAGE", "expected an I/O handle from ioStart()");
    return NULL;
  }
  return p;
}

/* ioKick(handle): wake the thread (tx work published, or rx space freed). */
napi_value io_kick(napi_env env, napi_callback_info info) {
  io_t *io = get_io(env, info);
  if (!io || io->stopped) return NULL;
  uint64_t one = 1;
  ssize_t ignored = write(io->evfd, &one, sizeof one);
  (void)ignored;
  return NULL;
}

/*
 * ioCpuSeconds(handle) -> number: CPU time the I/O thread has used so far
 * (user + system, including the kernel work its system calls do), for
 * "packets per second per core" figures. NaN once the thread has stopped.
 */
napi_value io_cpu_seconds(napi_env env, napi_callback_info info) {
  io_t *io = get_io(env, info);
  if (!io) return NULL;
  double secs = NAN;
  clockid_t cid;
  struct timespec ts;
  if (io->started && !io->stopped && pthread_getcpuclockid(io->thread, &cid) == 0 && clock_gettime(cid, &ts) == 0)
    secs = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  napi_value out;
  napi_create_double(env, secs, &out);
  return out;
}

/* ioStop(handle): stop and join the thread; the fd stays open (its owner closes it). */
napi_value io_stop(napi_env env, napi_callback_info info) {
  io_t *io = get_io(env, info);
  if (!io) return NULL;
  io_shutdown(env, io);
  return NULL;
}
