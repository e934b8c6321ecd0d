/**
 * Debugging entry point: boot the test guest by hand.
 *
 *   test/interop/guest/shell.sh                         interactive root shell in the guest
 *   test/interop/guest/shell.sh --script 'pppd --version' --batch
 *   test/interop/guest/shell.sh --debug --modules ppp_generic,ppp_async
 *
 * It makes the same namespace + tap as the tests (host .1, guest .2 of a
 * 198.18.x.0/24), prints how to reach the host side, runs the optional
 * script, then (unless --batch) gives a login shell on the console. Ctrl-D
 * or `exit` powers the guest off; Ctrl-A X kills qemu. Everything is
 * removed afterwards.
 */
import { parseArgs } from 'node:util';
import { NetLab } from '../../lib/netns.js';
import { createGuestLink, guestSupport, resetTerminal, startGuest } from './guest.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      script: { type: 'string', default: '' },
      batch: { type: 'boolean', default: false },
      debug: { type: 'boolean', default: false },
      modules: { type: 'string', default: '' },
      'timeout-ms': { type: 'string', default: '' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: shell.sh [--script SH] [--batch] [--debug] [--modules m1,m2] [--timeout-ms N]\n' +
        '  --batch   run the script, print its output and status, no interactive shell\n' +
        '  --debug   kernel messages at debug level, console and qemu command line on stderr\n',
    );
    return 0;
  }
  const support = await guestSupport();
  if (!support.ok) {
    process.stderr.write(`cannot run the guest here: ${support.reason}\n`);
    return 2;
  }
  const lab = new NetLab();
  try {
    const link = await createGuestLink(lab, { tag: 'shell', reachRoot: true });
    process.stderr.write(
      `[shell] host side: namespace ${link.netns}, tap ${link.tapName} ${link.hostAddr}/${link.prefixLen}; guest ${link.guestAddr}\n` +
        `[shell] the guest also reaches this (root) namespace at ${link.rootAddr}\n` +
        `[shell] from another terminal: ip netns exec ${link.netns} bash\n`,
    );
    const interactive = !values.batch;
    const timeoutMs = values['timeout-ms'] ? Number(values['timeout-ms']) : interactive ? 24 * 3600_000 : 300_000;
    const g = await startGuest({
      ...link,
      script: values.script || 'true',
      timeoutMs,
      interactive,
      debug: values.debug,
      modules: values.modules ? values.modules.split(',').filter(Boolean) : [],
      // --debug already echoes the output (prefixed) to stderr.
      onOutput: interactive || values.debug ? undefined : (t) => process.stdout.write(t),
    });
    if (interactive) process.stderr.write(`[shell] qemu pid ${g.pid}; the console is this terminal\n`);
    try {
      const r = await g.result;
      resetTerminal();
      if (interactive && r.output) process.stdout.write(`[shell] script output:\n${r.output}`);
      const boot = r.bootMs >= 0 ? `boot-to-command ${r.bootMs.toFixed(0)} ms, ` : '';
      process.stderr.write(`[shell] exit status ${r.exitCode}; ${boot}total ${r.totalMs.toFixed(0)} ms (${r.pvh ? 'PVH vmlinux' : 'bzImage'})\n`);
      return r.exitCode;
    } catch (e) {
      resetTerminal();
      process.stderr.write(`[shell] ${(e as Error).message}\n`);
      return 1;
    }
  } finally {
    await lab.cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
