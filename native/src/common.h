/*
 * vpngw native addon: what Node cannot do by itself. Open TUN devices and
 * raw IP sockets, configure interfaces, and run I/O threads that move packets
 * between those file descriptors and SPSC rings in a shared WASM memory.
 * No protocol logic lives here.
 */
#ifndef VPNGW_COMMON_H
#define VPNGW_COMMON_H

#include <node_api.h>
#include <stdint.h>
#include <stdbool.h>

/* Throw a JS Error with .code (stable vpngw code), .errno and .syscall. */
napi_value throw_sys(napi_env env, const char *code, int err, const char *syscall, const char *fmt, ...);
napi_value throw_msg(napi_env env, const char *code, const char *fmt, ...);

/* Argument helpers: return false after throwing a TypeError. */
bool get_string(napi_env env, napi_value v, char *buf, size_t cap, const char *what);
bool get_int(napi_env env, napi_value v, int64_t *out, const char *what);
bool get_prop(napi_env env, napi_value obj, const char *name, napi_value *out); /* false when absent/undefined */

napi_value netdev_open_tun(napi_env env, napi_callback_info info);
napi_value netdev_configure(napi_env env, napi_callback_info info);
napi_value netdev_raw_socket(napi_env env, napi_callback_info info);
napi_value netdev_udp_socket(napi_env env, napi_callback_info info);
napi_value netdev_tcp_listener(napi_env env, napi_callback_info info);
napi_value netdev_tcp_socket(napi_env env, napi_callback_info info);
napi_value netdev_close(napi_env env, napi_callback_info info);
napi_value netdev_ifindex(napi_env env, napi_callback_info info);

napi_value steer_tun(napi_env env, napi_callback_info info);
napi_value steer_set(napi_env env, napi_callback_info info);
napi_value steer_delete(napi_env env, napi_callback_info info);
napi_value steer_gre_filter(napi_env env, napi_callback_info info);

napi_value io_start(napi_env env, napi_callback_info info);
napi_value io_kick(napi_env env, napi_callback_info info);
napi_value io_stop(napi_env env, napi_callback_info info);
napi_value io_cpu_seconds(napi_env env, napi_callback_info info);

#endif
