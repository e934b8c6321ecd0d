/*
 * File descriptors Node cannot open by itself: TUN devices (with interface
 * configuration by ioctl, no netlink), raw IP sockets for GRE (47) and ESP
 * (50), and UDP/TCP sockets with SO_REUSEPORT so several workers can each
 * own a listener on one port. Every fd is non-blocking and close-on-exec.
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
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

static const char *tun_errcode(int err) {
  switch (err) {
    case ENOENT:
    case ENODEV:
    case ENXIO: return "ERR_NO_TUN";
    case EPERM:
    case EACCES: return "ERR_PERMISSION";
    case EBUSY:
    case EEXIST:
    case EINVAL: return "ERR_DEVICE_BUSY";
    default: return "ERR_NATIVE";
  }
}

/* openTun(name: string, multiQueue: boolean) -> { fd, name } */
napi_value netdev_open_tun(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char name[IFNAMSIZ] = {0};
  if (argc < 1 || !get_string(env, argv[0], name, sizeof name, "device name must be a string")) return NULL;
  bool mq = false;
  if (argc > 1) napi_get_value_bool(env, argv[1], &mq);

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ENODEV || e == ENXIO)
      return throw_sys(env, "ERR_NO_TUN", e, "open",
                       "/dev/net/tun is missing: load the tun module (modprobe tun) or pass the device into the container (--device /dev/net/tun)");
    if (e == EPERM || e == EACCES)
      return throw_sys(env, "ERR_PERMISSION", e, "open", "cannot open /dev/net/tun: run as root or grant CAP_NET_ADMIN");
    return throw_sys(env, "ERR_NATIVE", e, "open", "cannot open /dev/net/tun");
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (mq ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name, IFNAMSIZ); /* name is NUL-terminated within IFNAMSIZ */
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    if (e == EPERM || e == EACCES)
      return throw_sys(env, "ERR_PERMISSION", e, "ioctl(TUNSETIFF)",
                       "creating TUN device '%s' needs CAP_NET_ADMIN: run as root or grant the capability", name);
    if (e == EBUSY)
      return throw_sys(env, "ERR_DEVICE_BUSY", e, "ioctl(TUNSETIFF)",
                       "TUN device name '%s' is taken: another process holds it open", name);
    if (e == EINVAL)
      return throw_sys(env, "ERR_DEVICE_BUSY", e, "ioctl(TUNSETIFF)",
                       "device '%s' exists and is not a TUN device of this mode (single/multi-queue)", name);
    return throw_sys(env, tun_errcode(e), e, "ioctl(TUNSETIFF)", "cannot create TUN device '%s'", name);
  }
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, out, "fd", v);
  napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "name", v);
  return out;
}

static bool ifreq_for(napi_env env, napi_value jname, struct ifreq *ifr) {
  memset(ifr, 0, sizeof *ifr);
  return get_string(env, jname, ifr->ifr_name, IFNAMSIZ, "interface name must be a string");
}

static bool ioctl_or_throw(napi_env env, int s, unsigned long req, void *arg, const char *what, const char *name) {
  if (ioctl(s, req, arg) == 0) return true;
  int e = errno;
  const char *code = (e == EPERM || e == EACCES) ? "ERR_PERMISSION" : (e == ENODEV ? "ERR_NO_TUN" : (e == EEXIST ? "ERR_ADDRESS_IN_USE" : "ERR_NATIVE"));
  throw_sys(env, code, e, what, "cannot configure interface '%s'", name);
  return false;
}

/*
 * configureInterface(name, { mtu?, txQueueLen?, ipv4?, prefixLen?, ipv6?, prefixLen6?, up? })
 * Addresses are strings. Applied in that order; the first failure throws.
 */
napi_value netdev_configure(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_msg(env, "ERR_USAGE", "configureInterface(name, options)");
  struct ifreq ifr;
  if (!ifreq_for(env, argv[0], &ifr)) return NULL;
  char name[IFNAMSIZ];
  memcpy(name, ifr.ifr_name, IFNAMSIZ);
  napi_value opts = argv[1], v;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_sys(env, "ERR_NATIVE", errno, "socket", "cannot configure '%s'", name);
  int64_t n;
  bool okay = true;

  if (okay && get_prop(env, opts, "mtu", &v)) {
    okay = get_int(env, v, &n, "mtu must be a number");
    if (okay) {
      ifr.ifr_mtu = (int)n;
      okay = ioctl_or_throw(env, s, SIOCSIFMTU, &ifr, "ioctl(SIOCSIFMTU)", name);
    }
  }
  if (okay && get_prop(env, opts, "txQueueLen", &v)) {
    okay = get_int(env, v, &n, "txQueueLen must be a number");
    if (okay) {
      ifr.ifr_qlen = (int)n;
      okay = ioctl_or_throw(env, s, SIOCSIFTXQLEN, &ifr, "ioctl(SIOCSIFTXQLEN)", name);
    }
  }
  if (okay && get_prop(env, opts, "ipv4", &v)) {
    char addr[64];
    okay = get_string(env, v, addr, sizeof addr, "ipv4 must be a string");
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    if (okay && inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
      throw_msg(env, "ERR_USAGE", "'%s' is not an IPv4 address", addr);
      okay = false;
    }
    if (okay) {
      memcpy(&ifr.ifr_addr, &sin, sizeof sin);
      okay = ioctl_or_throw(env, s, SIOCSIFADDR, &ifr, "ioctl(SIOCSIFADDR)", name);
    }
    int64_t plen = 32;
    if (okay && get_prop(env, opts, "prefixLen", &v)) okay = get_int(env, v, &plen, "prefixLen must be a number");
    if (okay && (plen < 0 || plen > 32)) {
      throw_msg(env, "ERR_USAGE", "prefixLen %lld is out of range 0..32", (long long)plen);
      okay = false;
    }
    if (okay) {
      sin.sin_addr.s_addr = plen == 0 ? 0 : htonl(0xffffffffu << (32 - plen));
      memcpy(&ifr.ifr_netmask, &sin, sizeof sin);
      okay = ioctl_or_throw(env, s, SIOCSIFNETMASK, &ifr, "ioctl(SIOCSIFNETMASK)", name);
    }
  }
  if (okay && get_prop(env, opts, "ipv6", &v)) {
    char addr[64];
    struct vpngw_in6_ifreq r6;
    memset(&r6, 0, sizeof r6);
    okay = get_string(env, v, addr, sizeof addr, "ipv6 must be a string");
    if (okay && inet_pton(AF_INET6, addr, &r6.addr) != 1) {
      throw_msg(env, "ERR_USAGE", "'%s' is not an IPv6 address", addr);
      okay = false;
    }
    int64_t plen = 64;
    if (okay && get_prop(env, opts, "prefixLen6", &v)) okay = get_int(env, v, &plen, "prefixLen6 must be a number");
    if (okay && (plen < 0 || plen > 128)) {
      throw_msg(env, "ERR_USAGE", "prefixLen6 %lld is out of range 0..128", (long long)plen);
      okay = false;
    }
    if (okay) okay = ioctl_or_throw(env, s, SIOCGIFINDEX, &ifr, "ioctl(SIOCGIFINDEX)", name);
    if (okay) {
      int s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (s6 < 0) {
        throw_sys(env, "ERR_NATIVE", errno, "socket(AF_INET6)", "IPv6 is unavailable on this host");
        okay = false;
      } else {
        r6.prefixlen = (uint32_t)plen;
        r6.ifindex = ifr.ifr_ifindex;
        okay = ioctl_or_throw(env, s6, SIOCSIFADDR, &r6, "ioctl(SIOCSIFADDR6)", name);
        close(s6);
      }
    }
  }
  if (okay && get_prop(env, opts, "up", &v)) {
    bool up = false;
    napi_get_value_bool(env, v, &up);
    okay = ioctl_or_throw(env, s, SIOCGIFFLAGS, &ifr, "ioctl(SIOCGIFFLAGS)", name);
    if (okay) {
      if (up) ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
      else ifr.ifr_flags &= ~IFF_UP;
      okay = ioctl_or_throw(env, s, SIOCSIFFLAGS, &ifr, "ioctl(SIOCSIFFLAGS)", name);
    }
  }
  close(s);
  return NULL;
}

/* interfaceIndex(name) -> number (0 when absent) */
napi_value netdev_ifindex(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct ifreq ifr;
  if (argc < 1 || !ifreq_for(env, argv[0], &ifr)) return NULL;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int idx = 0;
  if (s >= 0) {
    if (ioctl(s, SIOCGIFINDEX, &ifr) == 0) idx = ifr.ifr_ifindex;
    close(s);
  }
  napi_create_int32(env, idx, &out);
  return out;
}

static bool bind_addr(napi_env env, int fd, napi_value opts, int port, const char *what) {
  napi_value v;
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  char addr[64] = "0.0.0.0";
  if (opts && get_prop(env, opts, "address", &v) && !get_string(env, v, addr, sizeof addr, "address must be a string")) return false;
  if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
    throw_msg(env, "ERR_USAGE", "'%s' is not an IPv4 address", addr);
    return false;
  }
  if (port == 0 && sin.sin_addr.s_addr == 0) return true; /* nothing to bind */
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
    int e = errno;
    throw_sys(env, e == EADDRINUSE ? "ERR_ADDRESS_IN_USE" : (e == EACCES ? "ERR_PERMISSION" : "ERR_NATIVE"), e, "bind",
              "cannot bind %s to %s:%d", what, addr, port);
    return false;
  }
  return true;
}

static void set_bufs(napi_env env, int fd, napi_value opts) {
  napi_value v;
  int64_t n;
  if (!opts) return;
  if (get_prop(env, opts, "rcvbuf", &v) && napi_get_value_int64(env, v, &n) == napi_ok) {
    int x = (int)n;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &x, sizeof x) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &x, sizeof x);
  }
  if (get_prop(env, opts, "sndbuf", &v) && napi_get_value_int64(env, v, &n) == napi_ok) {
    int x = (int)n;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &x, sizeof x) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &x, sizeof x);
  }
}

/* rawSocket(protocol, { address?, rcvbuf?, sndbuf? }) -> fd. IPv4 raw socket; received packets include the IP header. */
napi_value netdev_raw_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t proto;
  if (argc < 1 || !get_int(env, argv[0], &proto, "protocol must be a number")) return NULL;
  if (proto <= 0 || proto > 255) return throw_msg(env, "ERR_USAGE", "IP protocol %lld is out of range 1..255", (long long)proto);
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, (int)proto);
  if (fd < 0) {
    int e = errno;
    if (e == EPERM || e == EACCES)
      return throw_sys(env, "ERR_PERMISSION", e, "socket(SOCK_RAW)", "a raw socket for IP protocol %lld needs CAP_NET_RAW: run as root", (long long)proto);
    return throw_sys(env, "ERR_NATIVE", e, "socket(SOCK_RAW)", "cannot open a raw socket for IP protocol %lld", (long long)proto);
  }
  napi_value opts = argc > 1 ? argv[1] : NULL;
  if (opts) {
    napi_valuetype t;
    napi_typeof(env, opts, &t);
    if (t != napi_object) opts = NULL;
  }
  if (!bind_addr(env, fd, opts, 0, "raw socket")) {
    close(fd);
    return NULL;
  }
  set_bufs(env, fd, opts);
  napi_create_int32(env, fd, &out);
  return out;
}

/* udpSocket({ address?, port, reusePort?, rcvbuf?, sndbuf? }) -> fd */
napi_value netdev_udp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return throw_msg(env, "ERR_USAGE", "udpSocket(options)");
  int64_t port = 0;
  if (get_prop(env, argv[0], "port", &v) && !get_int(env, v, &port, "port must be a number")) return NULL;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_sys(env, "ERR_NATIVE", errno, "socket(SOCK_DGRAM)", "cannot open a UDP socket");
  bool reuse = false;
  if (get_prop(env, argv[0], "reusePort", &v)) napi_get_value_bool(env, v, &reuse);
  int one = 1;
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (!bind_addr(env, fd, argv[0], (int)port, "UDP socket")) {
    close(fd);
    return NULL;
  }
  set_bufs(env, fd, argv[0]);
  napi_create_int32(env, fd, &out);
  return out;
}

/* tcpListener({ address?, port, backlog?, reusePort? }) -> fd, listening; hand it to net.Server.listen({ fd }). */
napi_value netdev_tcp_listener(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return throw_msg(env, "ERR_USAGE", "tcpListener(options)");
  int64_t port = 0, backlog = 511;
  if (get_prop(env, argv[0], "port", &v) && !get_int(env, v, &port, "port must be a number")) return NULL;
  if (get_prop(env, argv[0], "backlog", &v) && !get_int(env, v, &backlog, "backlog must be a number")) return NULL;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_sys(env, "ERR_NATIVE", errno, "socket(SOCK_STREAM)", "cannot open a TCP socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  bool reuse = false;
  if (get_prop(env, argv[0], "reusePort", &v)) napi_get_value_bool(env, v, &reuse);
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (!bind_addr(env, fd, argv[0], (int)port, "TCP listener")) {
    close(fd);
    return NULL;
  }
  if (listen(fd, (int)backlog) < 0) {
    int e = errno;
    close(fd);
    return throw_sys(env, "ERR_NATIVE", e, "listen", "cannot listen on port %lld", (long long)port);
  }
  napi_create_int32(env, fd, &out);
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
