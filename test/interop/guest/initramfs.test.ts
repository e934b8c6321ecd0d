import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findKernel, isStaticElf } from './kernel.js';
import { buildInitramfs, busyboxPath, INITRAMFS_MODULES } from './initramfs.js';
import { shq, stage2Script } from './guest.js';

const kernel = findKernel();
const bb = busyboxPath();
const canBuild = !!kernel && !!bb && isStaticElf(readFileSync(bb));
if (!canBuild) process.stderr.write('\n*** SKIPPED initramfs build test: needs linux-image-amd64 and busybox-static ***\n\n');

describe.skipIf(!canBuild)('buildInitramfs', () => {
  const cache = mkdtempSync(path.join(os.tmpdir(), 'vpngw-initramfs-test-'));
  afterAll(() => rmSync(cache, { recursive: true, force: true }));

  it('packs busybox, /init and the 9p/virtio modules in dependency order, and reuses the cache', async () => {
    const a = await buildInitramfs(kernel!, cache);
    expect(a.built).toBe(true);
    expect(a.path.startsWith(cache)).toBe(true);
    const listing = execFileSync('cpio', ['-t', '--quiet'], { input: readFileSync(a.path) }).toString().split('\n');
    expect(listing).toEqual(expect.arrayContaining(['init', 'bin/busybox', 'newroot', 'lower', 'upper']));
    for (const m of a.modules) expect(listing).toContain(`lib/modules/${m}.ko`);
    // Each requested module is there (or built in), after what it depends on.
    for (const m of INITRAMFS_MODULES.filter((x) => a.modules.includes(x))) {
      const deps = execFileSync('modinfo', ['-k', kernel!.version, '-F', 'depends', m]).toString().trim().split(',').filter(Boolean);
      for (const d of deps) {
        const di = a.modules.indexOf(d.replace(/-/g, '_'));
        if (di >= 0) expect(di).toBeLessThan(a.modules.indexOf(m));
      }
    }
    expect(a.modules).toEqual(expect.arrayContaining(['virtio_pci', '9pnet_virtio', '9p', 'overlay', 'virtio_net']));
    const init = execFileSync('cpio', ['-i', '--to-stdout', '--quiet', 'init'], { input: readFileSync(a.path) }).toString();
    expect(init.startsWith('#!/bin/busybox sh\n')).toBe(true);
    expect(init).toContain(`for m in ${a.modules.join(' ')}; do`);

    const b = await buildInitramfs(kernel!, cache);
    expect(b).toEqual({ ...a, built: false });
  }, 60_000);
});

describe('shell quoting for stage 2', () => {
  it('round-trips hostile strings through a real sh', () => {
    for (const s of ['', 'plain', "it's", '"dq" $HOME `id` $(id) \\n', 'new\nline', "''", '*?[a]', '-n']) {
      expect(execFileSync('sh', ['-c', `printf %s ${shq(s)}`]).toString()).toBe(s);
    }
  });

  it('exports env and places files exactly, and runs #! scripts by their interpreter', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-stage2-test-'));
    try {
      const s = stage2Script(
        '/tmp/job',
        {
          tapName: 't',
          guestAddr: '198.18.1.2',
          hostAddr: '198.18.1.1',
          prefixLen: 24,
          script: '#!/bin/bash\necho hi',
          timeoutMs: 1,
          modules: ['ppp_generic'],
          env: { SECRETISH: "a'b $c" },
          files: [{ path: '/etc/ppp/chap-secrets', content: 'x', mode: 0o600 }],
        },
        'n0nce',
        '52:54:00:00:00:01',
      );
      expect(s).toContain(`export SECRETISH='a'\\''b $c'`);
      expect(s).toContain(`modprobe 'ppp_generic' || fail "modprobe ppp_generic"`);
      expect(s).toContain(`install -D -m 0600 "$JOB/files/0" '/etc/ppp/chap-secrets'`);
      expect(s).toContain(`ip route add default via '198.18.1.1'`);
      expect(s).toContain(`"$JOB/script" > /dev/ttyS1 2>&1`);
      // The export line evaluates to the exact value under a real sh.
      const exportLine = s.split('\n').find((l) => l.startsWith('export SECRETISH='))!;
      writeFileSync(path.join(dir, 't.sh'), `${exportLine}\nprintf %s "$SECRETISH"\n`);
      expect(execFileSync('sh', [path.join(dir, 't.sh')]).toString()).toBe("a'b $c");
      // Without a #! line the script runs under /bin/sh; without defaultRoute no route.
      const s2 = stage2Script('/tmp/job', { tapName: 't', guestAddr: '1.2.3.4', hostAddr: '1.2.3.1', prefixLen: 8, script: 'echo', timeoutMs: 1, defaultRoute: false }, 'n', 'm');
      expect(s2).toContain('/bin/sh "$JOB/script" > /dev/ttyS1 2>&1');
      expect(s2).not.toContain('route add');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
