/**
 * Writes made in one turn of the event loop leave as one write to the
 * socket: the first write of a turn corks the socket, and a nextTick uncorks
 * it, so the turn's writes reach the socket's handle together (node:tls
 * makes one TLS record of them, node:net one writev system call).
 *
 * Why: a tunnel's control plane answers one message with several (an LCP
 * Configure-Ack and our own Configure-Request; EAP Success and the first
 * NCP requests), and on TLS each separate write costs a record, its MAC and
 * a system call: the larger part of a tunnel set-up's write cost on both
 * ends. Order is kept: every write of the turn, control or data, goes through
 * the same cork.
 */
import type net from 'node:net';

export interface CoalescingWriter {
  /** Write (nothing once the socket cannot take it); `done` as socket.write's callback. */
  write(bytes: Uint8Array, done?: () => void): void;
  /** Hand what this turn wrote to the socket now (before a destroy() that would drop it). */
  flush(): void;
}

export function coalescingWriter(socket: net.Socket): CoalescingWriter {
  let corked = false;
  const flush = () => {
    if (!corked) return;
    corked = false;
    socket.uncork();
  };
  return {
    write(bytes, done) {
      if (socket.destroyed || !socket.writable) return;
      if (!corked) {
        corked = true;
        socket.cork();
        process.nextTick(flush);
      }
      socket.write(bytes, done);
    },
    flush,
  };
}
