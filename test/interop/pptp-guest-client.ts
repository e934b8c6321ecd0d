/**
 * Our PPTP client (connectPptp) as a program run inside the qemu guest, after
 * pptp-linux + pppd: the same kernel, the same network path, its own raw GRE
 * socket and a TUN device of the guest. Compiled for the guest by
 * guest-build.ts; the program around it (runs, markers, pings, teardown) is
 * guest-client-run.ts.
 *
 * Markers beyond the common ones:
 *   @@ <name> connected <ms> <json: ipv4, gateway, dns, mtu, mppe, setupMs>
 *   @@ <name> closed <ms> <json: initiator, control, call, ppp, go>
 */
import { connectPptp, type PptpClientEnd } from '../../src/client/pptp.js';
import { CONNECT_TIMEOUT_MS } from './guest-client-lib.js';
import { runGuestClient, type GuestRunBase } from './guest-client-run.js';

export interface PptpGuestRun extends GuestRunBase {
  /** Ask for stateless MPPE (connectPptp's mppe.stateless; default stateful). */
  stateless?: boolean;
}

runGuestClient<PptpGuestRun, PptpClientEnd>({
  async connect(r, server, log) {
    const client = await connectPptp({
      host: server,
      username: r.user,
      password: r.password,
      tun: { name: r.tun },
      mppe: { stateless: r.stateless ?? false },
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      log,
    });
    return {
      info: { ipv4: client.ipv4, gateway: client.gateway, dns: client.dns, mtu: client.mtu, mppe: client.mppe ?? null, setupMs: Math.round(client.setupMs) },
      ended: client.ended,
      close: (reason) => client.close(reason),
    };
  },
  endInfo: (end) => ({ initiator: end.initiator, control: end.control ?? null, call: end.call ?? null, ppp: end.ppp?.reason ?? null }),
});
