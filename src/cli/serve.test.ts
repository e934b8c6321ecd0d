import { describe, it, expect } from 'vitest';
import { handleSignals } from './serve.js';
import { FakeSignals } from './testing.js';
import type { SignalName } from './io.js';

const SIGNALS: SignalName[] = ['SIGHUP', 'SIGTERM', 'SIGINT'];

function setup() {
  const signals = new FakeSignals();
  const calls: string[] = [];
  const h = handleSignals({ signals }, { reload: () => calls.push('reload'), ignored: (sig) => calls.push(`ignored ${sig}`) });
  let stoppedBy: SignalName | undefined;
  void h.stopped.then((s) => (stoppedBy = s));
  const tick = () => new Promise((r) => setImmediate(r));
  return { signals, calls, h, tick, stoppedBy: () => stoppedBy };
}

describe('handleSignals (vpngw serve)', () => {
  it('serving: SIGHUP reloads as often as it comes; the first SIGTERM stops', async () => {
    const { signals, calls, tick, stoppedBy } = setup();
    signals.raise('SIGHUP');
    signals.raise('SIGHUP');
    await tick();
    expect(calls).toEqual(['reload', 'reload']);
    expect(stoppedBy()).toBeUndefined();
    signals.raise('SIGTERM');
    await tick();
    expect(stoppedBy()).toBe('SIGTERM');
  });

  it('SIGINT stops too', async () => {
    const { signals, tick, stoppedBy } = setup();
    signals.raise('SIGINT');
    await tick();
    expect(stoppedBy()).toBe('SIGINT');
  });

  it('stopping: every further signal is reported and ignored, and a handler stays installed (no default action kills the drain)', async () => {
    const { signals, calls, h, tick, stoppedBy } = setup();
    signals.raise('SIGTERM');
    signals.raise('SIGHUP');
    signals.raise('SIGTERM');
    signals.raise('SIGINT');
    await tick();
    expect(stoppedBy()).toBe('SIGTERM');
    expect(calls).toEqual(['ignored SIGHUP', 'ignored SIGTERM', 'ignored SIGINT']);
    for (const s of SIGNALS) expect(signals.listenerCount(s), s).toBe(1);
    h.dispose();
    for (const s of SIGNALS) expect(signals.listenerCount(s), s).toBe(0);
    signals.raise('SIGHUP');
    expect(calls).toHaveLength(3);
  });
});
