/*
 * File descriptors Node cannot open by itself: TUN devices (with interface
 * configuration by ioctl, no netlink), raw IP sockets for GRE (47) and ESP
 * (50), and UDP/TCP sockets with SO_REUSEPORT so several workers can each
 * own a listener on one port. Every fd is non-blocking and close-on-exec.
 *
 * Every operation can run inside a named network namespace (`netns` option:
 * a name under /var/run/netns, as `ip netns` makes, or an absolute path such
 * as /proc/PID/ns/net). It then runs on a short-lived thread that joined the
 * namespace with setns(2), so the calling thread and the process stay where
 * they are; the fd it returns keeps belonging to that namespace.
 *
 * Shape: the JS thread parses arguments into an `op`, `run_op` executes the
 * syscalls (here or on the namespace thread) and records a failure in
 * `op.e`, and the JS thread turns that into a typed error.
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* linux/ipv6.h's in6_ifreq, declared here because that header clashes with netinet/in.h */
struct vpngw_in6_ifreq {
  struct in6_addr addr;
  uint32_t prefixlen;
  int ifindex;
};

typedef struct op op_t;
typedef int (*op_fn)(op_t *);

struct op {
  op_fn fn;
  /* failure */
  const char *code;
  int err;
  const char *syscall;
  char msg[320];
  /* where */
  char netns[256];
  /* inputs */
  char name[IFNAMSIZ];
  bool mq;
  bool has_mtu, has_qlen, has_v4, has_v6, has_up, up;
  int mtu, qlen, plen, plen6;
  struct in_addr v4;
  struct in6_addr v6;
  int proto, port, backlog, rcvbuf, sndbuf;
  bool reuse;
  struct in_addr bind;
  struct in6_addr bind6;
  int family; /* AF_INET (default) or AF_INET6: the bind address's */
  char bind_text[64];
  /* outputs */
  int fd;
  int ifindex;
  char outname[IFNAMSIZ];
};

static int op_fail(op_t *o, const char *code, int err, const char *syscall, const char *fmt, ...) {
  o->code = code;
  o->err = err;
  o->syscall = syscall;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->msg, sizeof o->msg, fmt, ap);
  va_end(ap);
  return -1;
}

static void *ns_thread(void *p) {
  op_t *o = p;
  char path[300];
  if (o->netns[0] == '/') snprintf(path, sizeof path, "%s", o->netns);
  else snprintf(path, sizeof path, "/var/run/netns/%s", o->netns);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    op_fail(o, e == ENOENT ? "ERR_USAGE" : "ERR_PERMISSION", e, "open", "network namespace '%s' is not available", o->netns);
    return NULL;
  }
  if (setns(fd, CLONE_NEWNET) < 0) {
    int e = errno;
    close(fd);
    op_fail(o, e == EPERM ? "ERR_PERMISSION" : "ERR_NATIVE", e, "setns", "cannot enter network namespace '%s' (needs CAP_SYS_ADMIN)", o->netns);
    return NULL;
  }
  close(fd);
  o->fn(o);
  return NULL;
}

static int run_op(op_t *o) {
  o->code = NULL;
  if (!o->netns[0]) return o->fn(o);
  pthread_t t;
  int e = pthread_create(&t, NULL, ns_thread, o);
  if (e != 0) return op_fail(o, "ERR_NATIVE", e, "pthread_create", "cannot start a thread to enter network namespace '%s'", o->netns);
  pthread_join(t, NULL);
  return o->code ? -1 : 0;
}

static napi_value throw_op(napi_env env, op_t *o) {
  if (o->err) return throw_sys(env, o->code, o->err, o->syscall, "%s", o->msg);
  return throw_msg(env, o->code, "%s", o->msg);
}

/* ---- argument parsing ---------------------------------------------------- */

static bool opt_string(napi_env env, napi_value opts, const char *key, char *buf, size_t cap, bool *present) {
  napi_value v;
  *present = opts && get_prop(env, opts, key, &v);
  if (!*present) return true;
  char what[64];
  snprintf(what, sizeof what, "%s must be a string", key);
  return get_string(env, v, buf, cap, what);
}

static bool opt_int(napi_env env, napi_value opts, const char *key, int lo, int hi, int *out, bool *present) {
  napi_value v;
  *present = opts && get_prop(env, opts, key, &v);
  if (!*present) return true;
  int64_t n;
  char what[64];
  snprintf(what, sizeof what, "%s must be a number", key);
  if (!get_int(env, v, &n, what)) return false;
  if (n < lo || n > hi) {
    throw_msg(env, "ERR_USAGE", "%s %lld is out of range %d..%d", key, (long long)n, lo, hi);
    return false;
  }
  *out = (int)n;
  return true;
}

static bool opt_bool(napi_env env, napi_value opts, const char *key, bool *out, bool *present) {
  napi_value v;
  *present = opts && get_prop(env, opts, key, &v);
  if (*present) napi_get_value_bool(env, v, out);
  return true;
}

static napi_value object_or_null(napi_env env, napi_value v) {
  napi_valuetype t;
  if (!v || napi_typeof(env, v, &t) != napi_ok || t != napi_object) return NULL;
  return v;
}

static bool parse_netns(napi_env env, napi_value opts, op_t *o) {
  bool present;
  return opt_string(env, opts, "netns", o->netns, sizeof o->netns, &present);
}

static bool parse_bind(napi_env env, napi_value opts, op_t *o) {
  bool present;
  snprintf(o->bind_text, sizeof o->bind_text, "0.0.0.0");
  if (!opt_string(env, opts, "address", o->bind_text, sizeof o->bind_text, &present)) return false;
  o->family = AF_INET;
  if (inet_pton(AF_INET, o->bind_text, &o->bind) != 1) {
    if (inet_pton(AF_INET6, o->bind_text, &o->bind6) != 1) {
      throw_msg(env, "ERR_USAGE", "'%s' is not an IPv4 or IPv6 address", o->bind_text);
      return false;
    }
    o->family = AF_INET6;
  }
  return opt_int(env, opts, "rcvbuf", 0, 1 << 30, &o->rcvbuf, &present) &&
         opt_int(env, opts, "sndbuf", 0, 1 << 30, &o->sndbuf, &present) &&
         opt_bool(env, opts, "reusePort", &o->reuse, &present);
}

/* ---- TUN ----------------------------------------------------------------- */

static int do_open_tun(op_t *o) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ENODEV || e == ENXIO)
      return op_fail(o, "ERR_NO_TUN", e, "open",
                     "/dev/net/tun is missing: load the tun module (modprobe tun) or pass the device into the container (--device /dev/net/tun)");
    if (e == EPERM || e == EACCES)
      return op_fail(o, "ERR_PERMISSION", e, "open", "cannot open /dev/net/tun: run as root or grant CAP_NET_ADMIN");
    return op_fail(o, "ERR_NATIVE", e, "open", "cannot open /dev/net/tun");
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (o->mq ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, o->name, IFNAMSIZ); /* NUL-terminated within IFNAMSIZ by get_string */
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    if (e == EPERM || e == EACCES)
      return op_fail(o, "ERR_PERMISSION", e, "ioctl(TUNSETIFF)",
                     "creating TUN device '%s' needs CAP_NET_ADMIN: run as root or grant the capability", o->name);
    if (e == EBUSY)
      return op_fail(o, "ERR_DEVICE_BUSY", e, "ioctl(TUNSETIFF)", "TUN device name '%s' is taken: another process holds it open", o->name);
    if (e == EINVAL)
      return op_fail(o, "ERR_DEVICE_BUSY", e, "ioctl(TUNSETIFF)",
                     "device '%s' exists and is not a TUN device of this mode (single/multi-queue)", o->name);
    return op_fail(o, "ERR_NATIVE", e, "ioctl(TUNSETIFF)", "cannot create TUN device '%s'", o->name);
  }
  o->fd = fd;
  memcpy(o->outname, ifr.ifr_name, IFNAMSIZ);
  return 0;
}

/* openTun(name, { multiQueue?, netns? }) -> { fd, name } */
napi_value netdev_open_tun(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  op_t o;
  memset(&o, 0, sizeof o);
  o.fn = do_open_tun;
  if (argc < 1 || !get_string(env, argv[0], o.name, sizeof o.name, "device name must be a string")) return NULL;
  napi_value opts = argc > 1 ? object_or_null(env, argv[1]) : NULL;
  bool present;
  if (!opt_bool(env, opts, "multiQueue", &o.mq, &present) || !parse_netns(env, opts, &o)) return NULL;
  if (run_op(&o) < 0) return throw_op(env, &o);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, o.fd, &v);
  napi_set_named_property(env, out, "fd", v);
  napi_create_string_utf8(env, o.outname, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "name", v);
  return out;
}

static int ifioctl(op_t *o, int s, unsigned long req, void *arg, const char *what) {
  if (ioctl(s, req, arg) == 0) return 0;
  int e = errno;
  const char *code = (e == EPERM || e == EACCES) ? "ERR_PERMISSION" : (e == ENODEV ? "ERR_NO_TUN" : (e == EEXIST ? "ERR_ADDRESS_IN_USE" : "ERR_NATIVE"));
  return op_fail(o, code, e, what, "cannot configure interface '%s'", o->name);
}

static int do_configure(op_t *o) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return op_fail(o, "ERR_NATIVE", errno, "socket", "cannot configure '%s'", o->name);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, o->name, IFNAMSIZ);
  int rc = 0;
  if (rc == 0 && o->has_mtu) {
    ifr.ifr_mtu = o->mtu;
    rc = ifioctl(o, s, SIOCSIFMTU, &ifr, "ioctl(SIOCSIFMTU)");
  }
  if (rc == 0 && o->has_qlen) {
    ifr.ifr_qlen = o->qlen;
    rc = ifioctl(o, s, SIOCSIFTXQLEN, &ifr, "ioctl(SIOCSIFTXQLEN)");
  }
  if (rc == 0 && o->has_v4) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr = o->v4;
    memcpy(&ifr.ifr_addr, &sin, sizeof sin);
    rc = ifioctl(o, s, SIOCSIFADDR, &ifr, "ioctl(SIOCSIFADDR)");
    if (rc == 0) {
      sin.sin_addr.s_addr = o->plen == 0 ? 0 : htonl(0xffffffffu << (32 - o->plen));
      memcpy(&ifr.ifr_netmask, &sin, sizeof sin);
      rc = ifioctl(o, s, SIOCSIFNETMASK, &ifr, "ioctl(SIOCSIFNETMASK)");
    }
  }
  if (rc == 0 && o->has_v6) {
    rc = ifioctl(o, s, SIOCGIFINDEX, &ifr, "ioctl(SIOCGIFINDEX)");
    if (rc == 0) {
      int s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (s6 < 0) {
        rc = op_fail(o, "ERR_NATIVE", errno, "socket(AF_INET6)", "IPv6 is unavailable on this host");
      } else {
        struct vpngw_in6_ifreq r6;
        memset(&r6, 0, sizeof r6);
        r6.addr = o->v6;
        r6.prefixlen = (uint32_t)o->plen6;
        r6.ifindex = ifr.ifr_ifindex;
        rc = ifioctl(o, s6, SIOCSIFADDR, &r6, "ioctl(SIOCSIFADDR6)");
        close(s6);
      }
    }
  }
  if (rc == 0 && o->has_up) {
    rc = ifioctl(o, s, SIOCGIFFLAGS, &ifr, "ioctl(SIOCGIFFLAGS)");
    if (rc == 0) {
      if (o->up) ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
      else ifr.ifr_flags &= ~IFF_UP;
      rc = ifioctl(o, s, SIOCSIFFLAGS, &ifr, "ioctl(SIOCSIFFLAGS)");
    }
  }
  close(s);
  return rc;
}

/*
 * configureInterface(name, { mtu?, txQueueLen?, ipv4?, prefixLen?, ipv6?, prefixLen6?, up?, netns? })
 * Addresses are strings. Applied in that order; the first failure throws.
 */
napi_value netdev_configure(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_msg(env, "ERR_USAGE", "configureInterface(name, options)");
  op_t o;
  memset(&o, 0, sizeof o);
  o.fn = do_configure;
  if (!get_string(env, argv[0], o.name, sizeof o.name, "interface name must be a string")) return NULL;
  napi_value opts = object_or_null(env, argv[1]);
  if (!opts) return throw_msg(env, "ERR_USAGE", "configureInterface: options must be an object");
  char a4[64], a6[64];
  bool present;
  o.plen = 32;
  o.plen6 = 64;
  if (!parse_netns(env, opts, &o) || !opt_int(env, opts, "mtu", 68, 65535, &o.mtu, &o.has_mtu) ||
      !opt_int(env, opts, "txQueueLen", 0, 1 << 20, &o.qlen, &o.has_qlen) ||
      !opt_string(env, opts, "ipv4", a4, sizeof a4, &o.has_v4) || !opt_int(env, opts, "prefixLen", 0, 32, &o.plen, &present) ||
      !opt_string(env, opts, "ipv6", a6, sizeof a6, &o.has_v6) || !opt_int(env, opts, "prefixLen6", 0, 128, &o.plen6, &present) ||
      !opt_bool(env, opts, "up", &o.up, &o.has_up))
    return NULL;
  if (o.has_v4 && inet_pton(AF_INET, a4, &o.v4) != 1) return throw_msg(env, "ERR_USAGE", "'%s' is not an IPv4 address", a4);
  if (o.has_v6 && inet_pton(AF_INET6, a6, &o.v6) != 1) return throw_msg(env, "ERR_USAGE", "'%s' is not an IPv6 address", a6);
  if (run_op(&o) < 0) return throw_op(env, &o);
  return NULL;
}

static int do_ifindex(op_t *o) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, o->name, IFNAMSIZ);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  o->ifindex = 0;
  if (s >= 0) {
    if (ioctl(s, SIOCGIFINDEX, &ifr) == 0) o->ifindex = ifr.ifr_ifindex;
    close(s);
  }
  return 0;
}

/* interfaceIndex(name, { netns? }) -> number (0 when absent) */
napi_value netdev_ifindex(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  op_t o;
  memset(&o, 0, sizeof o);
  o.fn = do_ifindex;
  if (argc < 1 || !get_string(env, argv[0], o.name, sizeof o.name, "interface name must be a string")) return NULL;
  if (!parse_netns(env, argc > 1 ? object_or_null(env, argv[1]) : NULL, &o)) return NULL;
  if (run_op(&o) < 0) return throw_op(env, &o);
  napi_create_int32(env, o.ifindex, &out);
  return out;
}

/* ---- sockets ------------------------------------------------------------- */

static int finish_socket(op_t *o, int fd, const char *what) {
  int one = 1;
  if (o->reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (o->rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &o->rcvbuf, sizeof o->rcvbuf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof o->rcvbuf);
  if (o->sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &o->sndbuf, sizeof o->sndbuf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sndbuf, sizeof o->sndbuf);
  int bound = 0;
  if (o->family == AF_INET6) {
    /* '::' takes IPv4 too (v4-mapped), as node:net does; IPV6_V6ONLY stays the system default. */
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((uint16_t)o->port);
    sin6.sin6_addr = o->bind6;
    bound = bind(fd, (struct sockaddr *)&sin6, sizeof sin6);
  } else if (o->port != 0 || o->bind.s_addr != 0) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)o->port);
    sin.sin_addr = o->bind;
    bound = bind(fd, (struct sockaddr *)&sin, sizeof sin);
  }
  if (bound < 0) {
    int e = errno;
    close(fd);
    return op_fail(o, e == EADDRINUSE ? "ERR_ADDRESS_IN_USE" : (e == EACCES ? "ERR_PERMISSION" : "ERR_NATIVE"), e, "bind",
                   "cannot bind %s to %s:%d", what, o->bind_text, o->port);
  }
  o->fd = fd;
  return 0;
}

static int do_raw_socket(op_t *o) {
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, o->proto);
  if (fd < 0) {
    int e = errno;
    if (e == EPERM || e == EACCES)
      return op_fail(o, "ERR_PERMISSION", e, "socket(SOCK_RAW)", "a raw socket for IP protocol %d needs CAP_NET_RAW: run as root", o->proto);
    return op_fail(o, "ERR_NATIVE", e, "socket(SOCK_RAW)", "cannot open a raw socket for IP protocol %d", o->proto);
  }
  return finish_socket(o, fd, "raw socket");
}

/* rawSocket(protocol, { address?, rcvbuf?, sndbuf?, netns? }) -> fd. IPv4; received packets include the IP header. */
napi_value netdev_raw_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  op_t o;
  memset(&o, 0, sizeof o);
  o.fn = do_raw_socket;
  int64_t proto;
  if (argc < 1 || !get_int(env, argv[0], &proto, "protocol must be a number")) return NULL;
  if (proto <= 0 || proto > 255) return throw_msg(env, "ERR_USAGE", "IP protocol %lld is out of range 1..255", (long long)proto);
  o.proto = (int)proto;
  napi_value opts = argc > 1 ? object_or_null(env, argv[1]) : NULL;
  if (!parse_netns(env, opts, &o) || !parse_bind(env, opts, &o)) return NULL;
  if (o.family == AF_INET6) return throw_msg(env, "ERR_USAGE", "raw sockets are IPv4 (GRE and ESP over IPv4): '%s' is IPv6", o.bind_text);
  o.reuse = false;
  if (run_op(&o) < 0) return throw_op(env, &o);
  napi_create_int32(env, o.fd, &out);
  return out;
}

static int do_udp_socket(op_t *o) {
  int fd = socket(o->family == AF_INET6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return op_fail(o, "ERR_NATIVE", errno, "socket(SOCK_DGRAM)", "cannot open a UDP socket");
  return finish_socket(o, fd, "UDP socket");
}

/* udpSocket({ address?, port, reusePort?, rcvbuf?, sndbuf?, netns? }) -> fd */
napi_value netdev_udp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  op_t o;
  memset(&o, 0, sizeof o);
  o.fn = do_udp_socket;
  napi_value opts = argc > 0 ? object_or_null(env, argv[0]) : NULL;
  if (!opts) return throw_msg(env, "ERR_USAGE", "udpSocket(options)");
  bool present;
  if (!parse_netns(env, opts, &o) || !parse_bind(env, opts, &o) || !opt_int(env, opts, "port", 0, 65535, &o.port, &present)) return NULL;
  if (run_op(&o) < 0) return throw_op(env, &o);
  napi_create_int32(env, o.fd, &out);
  return out;
}

static int do_tcp_listener(op_t *o) {
  int fd = socket(o->family == AF_INET6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return op_fail(o, "ERR_NATIVE", errno, "socket(SOCK_STREAM)", "cannot open a TCP socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (finish_socket(o, fd, "TCP listener") < 0) return -1;
  if (listen(fd, o->backlog) < 0) {
    int e = errno;
    close(fd);
    return op_fail(o, "ERR_NATIVE", e, "listen", "cannot listen on port %d", o->port);
  }
  return 0;
}

/* tcpListener({ address?, port, backlog?, reusePort?, netns? }) -> fd, listening; hand it to net.Server.listen({ fd }). */
napi_value netdev_tcp_listener(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  op_t o;
  memset(&o, 0, sizeof o);
  o.fn = do_tcp_listener;
  o.backlog = 511;
  napi_value opts = argc > 0 ? object_or_null(env, argv[0]) : NULL;
  if (!opts) return throw_msg(env, "ERR_USAGE", "tcpListener(options)");
  bool present;
  if (!parse_netns(env, opts, &o) || !parse_bind(env, opts, &o) || !opt_int(env, opts, "port", 0, 65535, &o.port, &present) ||
      !opt_int(env, opts, "backlog", 1, 65535, &o.backlog, &present))
    return NULL;
  if (run_op(&o) < 0) return throw_op(env, &o);
  napi_create_int32(env, o.fd, &out);
  return out;
}

static int do_tcp_socket(op_t *o) {
  int fd = socket(o->family == AF_INET6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return op_fail(o, "ERR_NATIVE", errno, "socket(SOCK_STREAM)", "cannot open a TCP socket");
  return finish_socket(o, fd, "TCP socket");
}

/*
 * tcpSocket({ address?, port?, netns? }) -> fd: an unconnected TCP socket, so a client in
 * another namespace can be driven by node:net (new net.Socket({ fd }).connect(...)).
 */
napi_value netdev_tcp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  op_t o;
  memset(&o, 0, sizeof o);
  o.fn = do_tcp_socket;
  napi_value opts = argc > 0 ? object_or_null(env, argv[0]) : NULL;
  bool present;
  if (!parse_netns(env, opts, &o) || !parse_bind(env, opts, &o) || !opt_int(env, opts, "port", 0, 65535, &o.port, &present)) return NULL;
  if (run_op(&o) < 0) return throw_op(env, &o);
  napi_create_int32(env, o.fd, &out);
  return out;
}

napi_value netdev_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd;
  if (argc < 1 || !get_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  if (fd >= 0 && close((int)fd) < 0 && errno != EINTR) return throw_sys(env, "ERR_NATIVE", errno, "close", "cannot close fd %lld", (long long)fd);
  return NULL;
}
