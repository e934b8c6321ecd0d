/**
 * The qemu guest harness against a real boot: Debian's kernel under TCG, the
 * host root over 9p, a tap in a namespace. Asserts the things every interop
 * test relies on: the script's output and exit status come back exactly, the
 * guest reaches the host side of the tap, the real clients (pppd, sstpc,
 * pptp) run, the PPP modules load and /dev/ppp appears, and a guest can
 * never outlive its timeout or leave files behind.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { NetLab, reportSkip } from '../lib/netns.js';
import { createGuestLink, GuestError, guestSupport, PPP_MODULES, runGuest, startGuest, type GuestLink } from './guest/guest.js';

const support = await guestSupport();
reportSkip('qemu guest interop harness tests', support);

/** Generous: TCG boot is ~3.5 s idle but the 2 shared cores are often busy. */
const BOOT_BUDGET_MS = 90_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The text between `== name ==` and the next section header. */
function section(output: string, name: string): string {
  const m = new RegExp(`^== ${name} ==\\n([\\s\\S]*?)(?=^== |$(?![\\s\\S]))`, 'm').exec(output);
  if (!m) throw new Error(`section ${name} missing from guest output:\n${output}`);
  return m[1]!;
}

describe.skipIf(!support.ok)('qemu guest harness', () => {
  let lab: NetLab;
  let link: GuestLink;

  beforeAll(async () => {
    lab = new NetLab();
    link = await createGuestLink(lab, { reachRoot: true });
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  it(
    'boots, reaches the host over the tap, runs pppd/sstpc/pptp, loads the PPP modules, and returns output and status',
    async () => {
      const script = String.raw`
echo "== hello =="
printf 'line1\nno-newline-then-marker'
echo
echo "== env =="
echo "GREETING=$GREETING"
echo "ADDRS=$GUEST_ADDR $HOST_ADDR $GUEST_PREFIX"
echo "== file =="
cat /etc/vpngw-test/peer.conf
stat -c '%a %U' /etc/vpngw-test/peer.conf
echo "== whoami =="
id -u
echo "== ip =="
ip -4 -o addr show dev "$GUEST_IF"
echo "== ping =="
ping -c 3 -i 0.3 -W 3 "$HOST_ADDR"; echo "ping-status=$?"
echo "== pppd =="
pppd --version 2>&1; echo "status=$?"
echo "== sstpc =="
sstpc --version 2>&1; echo "status=$?"
echo "== pptp =="
pptp --version 2>&1; echo "status=$?"
echo "== modprobe =="
modprobe -a ppp_async ppp_mppe; echo "modprobe-status=$?"
lsmod | awk '{print $1}' | grep -E '^ppp_(generic|async|mppe)$' | sort
ls -l /dev/ppp
echo "== writable =="
echo guest-write > /etc/ppp/vpngw-guest-probe && cat /etc/ppp/vpngw-guest-probe
echo to-host > "$GUEST_JOB_DIR/from-guest" && echo shared-ok
echo "== root =="
ping -c 1 -W 3 "$ROOT_ADDR" >/dev/null; echo "ping-root=$?"
bash -c 'exec 3<>"/dev/tcp/$ROOT_ADDR/$ROOT_PORT" && cat <&3'
echo "== stderr =="
echo "to-stderr" >&2
exit 42
`;
      // A server in the test process itself (the root namespace), as an in-process gateway would be.
      const peers: string[] = [];
      const server = net.createServer((sock) => {
        peers.push(sock.remoteAddress ?? '?');
        sock.end('hello-from-the-test-process\n');
      });
      await new Promise<void>((res) => server.listen(0, link.rootAddr, res));
      const port = (server.address() as net.AddressInfo).port;
      const r = await runGuest({
        ...link,
        script,
        timeoutMs: BOOT_BUDGET_MS,
        modules: ['ppp_generic'],
        env: { GREETING: `it's "quoted" $NOT_EXPANDED`, ROOT_ADDR: link.rootAddr!, ROOT_PORT: String(port) },
        files: [{ path: '/etc/vpngw-test/peer.conf', content: 'name vpn-user\nremotename vpngw\n', mode: 0o600 }],
      }).finally(() => server.close());
      process.stderr.write(`[guest] boot-to-command ${r.bootMs.toFixed(0)} ms, total ${r.totalMs.toFixed(0)} ms (${r.pvh ? 'PVH vmlinux' : 'bzImage'})\n`);

      expect(r.exitCode).toBe(42);
      expect(r.bootMs).toBeGreaterThan(0);
      expect(r.totalMs).toBeGreaterThan(r.bootMs);
      expect(section(r.output, 'hello')).toBe('line1\nno-newline-then-marker\n');
      expect(section(r.output, 'env')).toBe(`GREETING=it's "quoted" $NOT_EXPANDED\nADDRS=${link.guestAddr} ${link.hostAddr} ${link.prefixLen}\n`);
      expect(section(r.output, 'file')).toBe('name vpn-user\nremotename vpngw\n600 root\n');
      expect(section(r.output, 'whoami')).toBe('0\n');
      expect(section(r.output, 'ip')).toContain(`inet ${link.guestAddr}/${link.prefixLen}`);

      const ping = section(r.output, 'ping');
      expect(ping).toMatch(/3 packets transmitted, 3 received, 0% packet loss/);
      expect(ping).toContain('ping-status=0');

      expect(section(r.output, 'pppd')).toMatch(/^pppd version 2\.\d+\.\d+\nstatus=0\n$/);
      expect(section(r.output, 'sstpc')).toMatch(/^sstp-client version 1\.\d+\.\d+\nstatus=0\n$/);
      expect(section(r.output, 'pptp')).toMatch(/^pptp version 1\.\d+\.\d+\nstatus=0\n$/);

      const mod = section(r.output, 'modprobe');
      expect(mod).toContain('modprobe-status=0');
      expect(mod).toContain('ppp_async\nppp_generic\nppp_mppe\n');
      expect(mod).toMatch(/^crw-{7} 1 root root 108, 0 .* \/dev\/ppp$/m);

      expect(section(r.output, 'writable')).toBe('guest-write\nshared-ok\n');
      // Routed to the test's own namespace, without NAT.
      expect(section(r.output, 'root')).toBe('ping-root=0\nhello-from-the-test-process\n');
      expect(peers).toEqual([link.guestAddr]);
      // The output is the script's own stdout and stderr, nothing else, ending where the script ended.
      expect(section(r.output, 'stderr')).toBe('to-stderr\n');
      expect(r.output.startsWith('== hello ==\n')).toBe(true);
      // The guest wrote only to RAM: the host's /etc/ppp is untouched.
      expect(existsSync('/etc/ppp/vpngw-guest-probe')).toBe(false);
      expect(r.console).toMatch(/vpngw-init: root ready/);
    },
    BOOT_BUDGET_MS + 30_000,
  );

  it(
    'streams output while the script runs, and kill() stops the guest at once',
    async () => {
      const chunks: string[] = [];
      const g = await startGuest({
        ...link,
        script: 'echo ready; sleep 600; echo never',
        timeoutMs: BOOT_BUDGET_MS + 60_000,
        onOutput: (t) => chunks.push(t),
      });
      let err: unknown;
      let t = 0;
      try {
        expect(alive(g.pid)).toBe(true);
        expect(existsSync(g.jobDir)).toBe(true);
        await g.waitForOutput(/ready\n/, BOOT_BUDGET_MS);
        expect(chunks.join('')).toBe('ready\n');
        t = performance.now();
      } finally {
        g.kill('test is done with it');
        err = await g.result.catch((e: unknown) => e);
      }
      expect(err).toBeInstanceOf(GuestError);
      expect((err as GuestError).kind).toBe('aborted');
      expect((err as GuestError).message).toMatch(/test is done with it.*script was running/);
      expect((err as GuestError).details.output).toBe('ready\n');
      expect(performance.now() - t).toBeLessThan(10_000);
      expect(alive(g.pid)).toBe(false);
      expect(existsSync(g.jobDir)).toBe(false);
    },
    BOOT_BUDGET_MS + 60_000,
  );

  it(
    'rejects with setup-failed, naming the module, when a requested module does not exist',
    async () => {
      const err = await runGuest({ ...link, script: 'echo should-not-run', timeoutMs: BOOT_BUDGET_MS, modules: ['no_such_module_vpngw'] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GuestError);
      expect((err as GuestError).kind).toBe('setup-failed');
      expect((err as GuestError).details.reason).toBe('stage2: modprobe no_such_module_vpngw');
      expect((err as GuestError).details.started).toBe(false);
      expect((err as GuestError).details.output).toBe('');
    },
    BOOT_BUDGET_MS + 30_000,
  );

  it(
    'never hangs: the hard timeout kills qemu by PID and removes the job directory',
    async () => {
      const g = await startGuest({ ...link, script: 'sleep 600', timeoutMs: 2_000 });
      const t = performance.now();
      const err = await g.result.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GuestError);
      expect((err as GuestError).kind).toBe('timeout');
      expect((err as GuestError).message).toMatch(/timed out after 2000 ms/);
      expect(performance.now() - t).toBeLessThan(15_000);
      expect(alive(g.pid)).toBe(false);
      expect(existsSync(g.jobDir)).toBe(false);
    },
    60_000,
  );

  it('refuses bad options before starting anything', async () => {
    const base = { ...link, script: 'true', timeoutMs: 1_000 };
    for (const [bad, msg] of [
      [{ guestAddr: '198.18.0.300' }, /guestAddr/],
      [{ tapName: 'a-name-longer-than-15' }, /tapName/],
      [{ modules: ['ppp;reboot'] }, /module name/],
      [{ env: { 'BAD-NAME': 'x' } }, /environment variable/],
      [{ files: [{ path: 'relative/path', content: '' }] }, /absolute/],
    ] as const) {
      const err = await runGuest({ ...base, ...bad }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GuestError);
      expect((err as GuestError).kind).toBe('bad-options');
      expect((err as GuestError).message).toMatch(msg);
    }
  });

  it('exports the PPP module list the clients need', () => {
    expect(PPP_MODULES).toEqual(['ppp_generic', 'ppp_async', 'ppp_mppe']);
  });
});
