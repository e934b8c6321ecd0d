#include "common.h"
#include "abi.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static napi_value make_error(napi_env env, const char *code, const char *msg) {
  napi_value jmsg, jcode, err;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  napi_create_error(env, jcode, jmsg, &err);
  return err;
}

napi_value throw_sys(napi_env env, const char *code, int err, const char *syscall, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n < sizeof msg && err != 0)
    snprintf(msg + n, sizeof msg - (size_t)n, " (%s: %s)", syscall, strerror(err));
  napi_value e = make_error(env, code, msg), v;
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, e, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "syscall", v);
  napi_throw(env, e);
  return NULL;
}

napi_value throw_msg(napi_env env, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_throw(env, make_error(env, code, msg));
  return NULL;
}

bool get_string(napi_env env, napi_value v, char *buf, size_t cap, const char *what) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_USAGE", what);
    return false;
  }
  if (len >= cap - 1) {
    /* silently truncated names would configure the wrong device */
    size_t full = 0;
    napi_get_value_string_utf8(env, v, NULL, 0, &full);
    if (full >= cap) {
      throw_msg(env, "ERR_USAGE", "%s is too long (%zu bytes, at most %zu)", what, full, cap - 1);
      return false;
    }
  }
  return true;
}

bool get_int(napi_env env, napi_value v, int64_t *out, const char *what) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "ERR_USAGE", what);
    return false;
  }
  return true;
}

bool get_prop(napi_env env, napi_value obj, const char *name, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return false;
  if (napi_get_named_property(env, obj, name, out) != napi_ok) return false;
  napi_valuetype t;
  napi_typeof(env, *out, &t);
  return t != napi_undefined && t != napi_null;
}

static void set_int(napi_env env, napi_value obj, const char *name, int64_t v) {
  napi_value x;
  napi_create_int64(env, v, &x);
  napi_set_named_property(env, obj, name, x);
}

/* The ring/slot geometry this addon was built with, checked against assembly/abi.ts by a test. */
static napi_value abi(napi_env env, napi_callback_info info) {
  napi_value o;
  napi_create_object(env, &o);
  set_int(env, o, "ABI_VERSION", VPNGW_ABI_VERSION);
  set_int(env, o, "RING_HEADER_SIZE", RING_HEADER_SIZE);
  set_int(env, o, "R_HEAD", R_HEAD);
  set_int(env, o, "R_TAIL", R_TAIL);
  set_int(env, o, "R_SLOTS", R_SLOTS);
  set_int(env, o, "R_SLOT_SIZE", R_SLOT_SIZE);
  set_int(env, o, "R_CONSUMER_SLEEPING", R_CONSUMER_SLEEPING);
  set_int(env, o, "R_PRODUCER_WAITING", R_PRODUCER_WAITING);
  set_int(env, o, "R_PRODUCED_PKTS", R_PRODUCED_PKTS);
  set_int(env, o, "R_PRODUCED_BYTES", R_PRODUCED_BYTES);
  set_int(env, o, "R_FULL_EVENTS", R_FULL_EVENTS);
  set_int(env, o, "R_IO_ERRORS", R_IO_ERRORS);
  set_int(env, o, "R_CONSUMED_PKTS", R_CONSUMED_PKTS);
  set_int(env, o, "SLOT_HEADER_SIZE", SLOT_HEADER_SIZE);
  set_int(env, o, "SLOT_PAYLOAD_OFFSET", SLOT_PAYLOAD_OFFSET);
  set_int(env, o, "S_LEN", S_LEN);
  set_int(env, o, "S_OFF", S_OFF);
  set_int(env, o, "S_SESSION", S_SESSION);
  set_int(env, o, "S_ADDR", S_ADDR);
  set_int(env, o, "S_AUX", S_AUX);
  set_int(env, o, "S_FLAGS", S_FLAGS);
  return o;
}

#define EXPORT(name, fn)                                                   \
  do {                                                                     \
    napi_value f;                                                          \
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);       \
    napi_set_named_property(env, exports, name, f);                        \
  } while (0)

NAPI_MODULE_INIT() {
  EXPORT("abi", abi);
  EXPORT("openTun", netdev_open_tun);
  EXPORT("configureInterface", netdev_configure);
  EXPORT("interfaceIndex", netdev_ifindex);
  EXPORT("rawSocket", netdev_raw_socket);
  EXPORT("udpSocket", netdev_udp_socket);
  EXPORT("tcpListener", netdev_tcp_listener);
  EXPORT("tcpSocket", netdev_tcp_socket);
  EXPORT("close", netdev_close);
  EXPORT("tunSteering", steer_tun);
  EXPORT("steerSet", steer_set);
  EXPORT("steerDelete", steer_delete);
  EXPORT("greCallIdFilter", steer_gre_filter);
  EXPORT("ioStart", io_start);
  EXPORT("ioKick", io_kick);
  EXPORT("ioStop", io_stop);
  EXPORT("ioCpuSeconds", io_cpu_seconds);
  return exports;
}
