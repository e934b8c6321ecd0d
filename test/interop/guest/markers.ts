/**
 * The script-output channel: the guest's second serial port (ttyS1, raw mode)
 * carries, in order,
 *
 *   [@@VPNGW-SETUP-FAILED-<nonce> <where>: <why>@@]    setup failed, nothing else follows
 *   @@VPNGW-START-<nonce>@@\n                          the test script starts now
 *   <the script's stdout and stderr, byte for byte>
 *   @@VPNGW-EXIT-<nonce> <status>@@\n                  the script exited with <status>
 *
 * The exit marker follows the output directly (no separator), so `output`
 * is exactly what the script wrote, and a trailing newline of the output is
 * never held back from the live stream. The nonce is fresh per run, so
 * script output cannot forge a marker by accident.
 */
import { StringDecoder } from 'node:string_decoder';
import { MARK_EXIT, MARK_SETUP_FAILED, MARK_START } from './initramfs.js';

export interface MarkerHandlers {
  /** The start marker arrived: the guest is up and the script is running. */
  onStart?: () => void;
  /** Script output, as it arrives (never includes marker bytes). */
  onOutput?: (text: string) => void;
}

export class MarkerStream {
  started = false;
  exitCode: number | undefined;
  setupFailure: string | undefined;
  output = '';
  private pending = '';
  private readonly decoder = new StringDecoder('utf8');
  private readonly startKey: string;
  private readonly exitKey: string;
  private readonly failKey: string;

  constructor(
    nonce: string,
    private readonly handlers: MarkerHandlers = {},
  ) {
    this.startKey = `${MARK_START}${nonce}@@\n`;
    this.exitKey = `${MARK_EXIT}${nonce} `;
    this.failKey = `${MARK_SETUP_FAILED}${nonce} `;
  }

  get finished(): boolean {
    return this.exitCode !== undefined || this.setupFailure !== undefined;
  }

  push(chunk: Uint8Array | string): void {
    if (this.finished) return;
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.scan();
  }

  private scan(): void {
    if (!this.started) {
      const f = this.pending.indexOf(this.failKey);
      if (f >= 0) {
        const end = this.pending.indexOf('@@', f + this.failKey.length);
        if (end < 0) return;
        this.setupFailure = this.pending.slice(f + this.failKey.length, end);
        this.pending = '';
        return;
      }
      const s = this.pending.indexOf(this.startKey);
      if (s < 0) {
        // Nothing but noise so far; keep only what could begin a marker.
        const keep = Math.max(this.startKey.length, this.failKey.length + 512);
        if (this.pending.length > keep) this.pending = this.pending.slice(-keep);
        return;
      }
      this.started = true;
      this.pending = this.pending.slice(s + this.startKey.length);
      this.handlers.onStart?.();
    }
    for (;;) {
      const e = this.pending.indexOf(this.exitKey);
      if (e < 0) break;
      const rest = this.pending.slice(e + this.exitKey.length);
      const m = /^(\d{1,3})@@/.exec(rest);
      if (m) {
        this.emit(this.pending.slice(0, e));
        this.pending = '';
        this.exitCode = Number(m[1]);
        return;
      }
      if (/^\d{0,3}@?$/.test(rest)) {
        // The marker is arriving; wait for the rest of it.
        this.emit(this.pending.slice(0, e));
        this.pending = this.pending.slice(e);
        return;
      }
      // Not a marker after all: output up to and including its first byte.
      this.emit(this.pending.slice(0, e + 1));
      this.pending = this.pending.slice(e + 1);
    }
    // Hold back a tail that could be the beginning of the exit marker.
    let keep = 0;
    for (let k = Math.min(this.pending.length, this.exitKey.length - 1); k > 0; k--) {
      if (this.pending.endsWith(this.exitKey.slice(0, k))) {
        keep = k;
        break;
      }
    }
    this.emit(this.pending.slice(0, this.pending.length - keep));
    this.pending = this.pending.slice(this.pending.length - keep);
  }

  private emit(text: string): void {
    if (!text) return;
    this.output += text;
    this.handlers.onOutput?.(text);
  }
}
