/**
 * Our SSTP client (connectSstp) as a program run inside the qemu guest, next
 * to sstpc: the same kernel, the same network path, a TUN device of the
 * guest. Compiled for the guest by guest-build.ts; the program around it
 * (runs, markers, pings, teardown) is guest-client-run.ts.
 *
 * Markers beyond the common ones:
 *   @@ <name> connected <ms> <json: ipv4, gateway, dns, mtu, hashProtocol, setupMs>
 *   @@ <name> closed <ms> <json: initiator, call, ppp, go>
 */
import { connectSstp, type SstpClientEnd } from '../../src/client/sstp.js';
import type { AuthMethod } from '../../src/ppp/auth/types.js';
import { CONNECT_TIMEOUT_MS } from './guest-client-lib.js';
import { runGuestClient, type GuestRunBase } from './guest-client-run.js';

/** The interop gateway's SSTP port (sstp-gateway.ts). */
const SSTP_PORT = 443;

export interface SstpGuestRun extends GuestRunBase {
  method: AuthMethod;
  /** Pinned SHA-256 fingerprint of the server certificate. */
  fingerprint: string;
}

runGuestClient<SstpGuestRun, SstpClientEnd>({
  async connect(r, server, log) {
    const client = await connectSstp({
      host: server,
      port: SSTP_PORT,
      username: r.user,
      password: r.password,
      fingerprint: r.fingerprint,
      methods: [r.method],
      tun: { name: r.tun },
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      log,
    });
    return {
      info: { ipv4: client.ipv4, gateway: client.gateway, dns: client.dns, mtu: client.mtu, hashProtocol: client.hashProtocol, setupMs: Math.round(client.setupMs) },
      ended: client.ended,
      close: (reason) => client.close(reason),
    };
  },
  endInfo: (end) => ({ initiator: end.initiator, call: end.call?.reason ?? null, ppp: end.ppp?.reason ?? null }),
});
