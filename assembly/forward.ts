// Forwarding between the TUN device and tunnel sessions (Mode.FORWARD).
// Downlink: a packet from the TUN device is classified by destination
// address to its session and handed to that session's tunnel encapsulation.
// Tunnel protocols (SSTP, PPTP, L2TP) register here as they land.
import { RingId, Drop, Stat, SE_KIND, SE_STATE, SessionState, NO_SESSION } from './abi';
import { ringAddr, ringReady, ringPeek, ringRelease, slotLen, slotData, slotValid } from './ring';
import { ipv4HeaderLen, be32 } from './ip';
import { count, drop } from './stats';
import { v4Lookup, sessionAddr } from './session';

function downlink(budget: u32): u32 {
  const rx = ringAddr(RingId.TUN_RX);
  if (rx == 0) return 0;
  let done: u32 = 0;
  while (done < budget && ringReady(rx) > 0) {
    const s = ringPeek(rx);
    done++;
    if (!slotValid(rx, s)) { drop(Drop.BAD_SLOT); ringRelease(rx); continue; }
    const p = slotData(s);
    const len = slotLen(s);
    count(Stat.TUN_RX_PKTS);
    count(Stat.TUN_RX_BYTES, len);
    if (len == 0) { drop(Drop.TRUNCATED); ringRelease(rx); continue; }
    const version = <u32>load<u8>(p) >> 4;
    let idx: u32 = NO_SESSION;
    if (version == 4) {
      if (ipv4HeaderLen(p, len) == 0) { drop(Drop.BAD_IP_HEADER); ringRelease(rx); continue; }
      idx = v4Lookup(be32(p + 16));
    } else if (version != 6) {
      drop(Drop.BAD_IP_VERSION); ringRelease(rx); continue;
    }
    if (idx == NO_SESSION) { drop(Drop.NO_SESSION); ringRelease(rx); continue; }
    const se = sessionAddr(idx);
    if (load<u32>(se + SE_STATE) != SessionState.ACTIVE) { drop(Drop.SESSION_DOWN); ringRelease(rx); continue; }
    // No tunnel encapsulation is registered for this kind yet.
    drop(Drop.SESSION_DOWN);
    ringRelease(rx);
    load<u32>(se + SE_KIND);
  }
  return done;
}

export function forwardRun(budget: u32): u32 {
  return downlink(budget);
}
