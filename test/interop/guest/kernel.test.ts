import { describe, it, expect } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  bzImagePayload,
  canonicalModuleName,
  findKernel,
  hasPvhNote,
  isStaticElf,
  parseModulesBuiltin,
  parseModulesDep,
  pruneCache,
  resolveModuleOrder,
  sniffCompression,
} from './kernel.js';

const DEP = `kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/ppp/ppp_mppe.ko: kernel/lib/crypto/libarc4.ko kernel/drivers/net/ppp/ppp_generic.ko
kernel/drivers/net/ppp/ppp_generic.ko: kernel/drivers/net/slip/slhc.ko
kernel/drivers/net/slip/slhc.ko:
kernel/a.ko: kernel/b.ko
kernel/b.ko: kernel/a.ko
`;
const BUILTIN = 'kernel/lib/crypto/libarc4.ko\nkernel/drivers/virtio/virtio_anchor.ko\n';

describe('modules.dep resolution', () => {
  const dep = parseModulesDep(DEP);
  const builtin = parseModulesBuiltin(BUILTIN);
  const names = (wanted: string[]) => resolveModuleOrder(dep, builtin, wanted).map((m) => m.name);

  it('canonicalizes names like modprobe does', () => {
    expect(canonicalModuleName('kernel/drivers/char/hw_random/virtio-rng.ko.xz')).toBe('virtio_rng');
    expect(canonicalModuleName('9pnet_virtio.ko')).toBe('9pnet_virtio');
    expect(canonicalModuleName('virtio-rng')).toBe('virtio_rng');
  });

  it('orders every module after its dependencies, each once', () => {
    const order = names(['9p', '9pnet_virtio', 'virtio-rng']);
    expect(order).toEqual(['9pnet', 'netfs', 'fscache', '9p', 'virtio_ring', 'virtio', '9pnet_virtio', 'virtio_rng']);
    expect(resolveModuleOrder(dep, builtin, ['virtio_rng'])[2]!.file).toBe('kernel/drivers/char/hw_random/virtio-rng.ko.xz');
  });

  it('leaves out built-in modules', () => {
    expect(names(['ppp_mppe'])).toEqual(['slhc', 'ppp_generic', 'ppp_mppe']);
    expect(names(['libarc4'])).toEqual([]);
  });

  it('names an unknown module and a dependency cycle', () => {
    expect(() => names(['nope'])).toThrow('no module named nope (not in modules.dep, not built in)');
    expect(() => names(['a'])).toThrow('module dependency cycle: a -> b -> a');
  });
});

/** A minimal bzImage header: boot protocol 2.15, setup_sects 2, payload at 0x40 of the pm code. */
function fakeBzImage(payload: Buffer): Buffer {
  const setupSects = 2;
  const pmStart = (setupSects + 1) * 512;
  const img = Buffer.alloc(pmStart + 0x40 + payload.length + 4);
  img[0x1f1] = setupSects;
  img.write('HdrS', 0x202, 'latin1');
  img.writeUInt16LE(0x020f, 0x206);
  img.writeUInt32LE(0x40, 0x248);
  img.writeUInt32LE(payload.length, 0x24c);
  payload.copy(img, pmStart + 0x40);
  return img;
}

describe('bzImage payload', () => {
  it('finds the payload from the setup header and sniffs its compression', () => {
    const xz = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]);
    const p = bzImagePayload(fakeBzImage(xz));
    expect(p?.format).toBe('xz');
    expect(Buffer.compare(p!.data, xz)).toBe(0);
    expect(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(sniffCompression(Buffer.from([0x1f, 0x8b, 8]))).toBe('gzip');
    expect(sniffCompression(Buffer.from([0x5d, 0, 0]))).toBe('unknown');
  });

  it('rejects what is not a bzImage, or whose payload runs past the end', () => {
    expect(bzImagePayload(Buffer.alloc(4096))).toBeUndefined();
    const img = fakeBzImage(Buffer.from('abcd'));
    img.writeUInt32LE(1 << 20, 0x24c);
    expect(bzImagePayload(img)).toBeUndefined();
    const old = fakeBzImage(Buffer.from('abcd'));
    old.writeUInt16LE(0x0207, 0x206);
    expect(bzImagePayload(old)).toBeUndefined();
  });

  const kernel = findKernel();
  it.skipIf(!kernel)('reads the installed Debian kernel (XZ payload)', () => {
    const p = bzImagePayload(readFileSync(kernel!.vmlinuz));
    expect(p).toBeDefined();
    expect(['xz', 'zstd', 'gzip']).toContain(p!.format);
  });
});

/** ELF64 little-endian with one PT_NOTE segment holding one note. */
function fakeElf(noteName: string, noteType: number, withInterp = false): Buffer {
  const name = Buffer.from(`${noteName}\0`, 'latin1');
  const nameLen = (name.length + 3) & ~3;
  const note = Buffer.alloc(12 + nameLen + 4);
  note.writeUInt32LE(name.length, 0);
  note.writeUInt32LE(4, 4);
  note.writeUInt32LE(noteType, 8);
  name.copy(note, 12);
  const phnum = withInterp ? 2 : 1;
  const phoff = 64;
  const dataOff = phoff + phnum * 56;
  const b = Buffer.alloc(dataOff + note.length);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2; // ELFCLASS64
  b[5] = 1; // little-endian
  b.writeBigUInt64LE(BigInt(phoff), 0x20);
  b.writeUInt16LE(56, 0x36);
  b.writeUInt16LE(phnum, 0x38);
  b.writeUInt32LE(4, phoff); // PT_NOTE
  b.writeBigUInt64LE(BigInt(dataOff), phoff + 8);
  b.writeBigUInt64LE(BigInt(note.length), phoff + 32);
  if (withInterp) b.writeUInt32LE(3, phoff + 56); // PT_INTERP
  note.copy(b, dataOff);
  return b;
}

describe('ELF checks', () => {
  it('recognizes the PVH entry note (Xen, type 18) and nothing else', () => {
    expect(hasPvhNote(fakeElf('Xen', 18))).toBe(true);
    expect(hasPvhNote(fakeElf('Xen', 17))).toBe(false);
    expect(hasPvhNote(fakeElf('GNU', 18))).toBe(false);
    expect(hasPvhNote(Buffer.from('not an elf at all, clearly not, no sir, not at all; 64 bytes+'))).toBe(false);
  });

  it('tells static from dynamic executables by PT_INTERP', () => {
    expect(isStaticElf(fakeElf('GNU', 1))).toBe(true);
    expect(isStaticElf(fakeElf('GNU', 1, true))).toBe(false);
    expect(isStaticElf(Buffer.alloc(100))).toBe(false);
  });

  // glibc's ldconfig is static-pie on Debian; ls is dynamic.
  it.skipIf(!existsSync('/sbin/ldconfig') || !existsSync('/bin/ls'))('agrees with a real static-pie /sbin/ldconfig and a dynamic /bin/ls', () => {
    expect(isStaticElf(readFileSync('/sbin/ldconfig'))).toBe(true);
    expect(isStaticElf(readFileSync('/bin/ls'))).toBe(false);
  });
});

describe('pruneCache', () => {
  it('deletes superseded entries of the same kind older than a day, and nothing else', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-prune-test-'));
    try {
      const old = (Date.now() - 2 * 24 * 3600_000) / 1000;
      for (const f of ['vmlinux-a', 'vmlinux-b', 'vmlinux-keep', 'initramfs-a']) writeFileSync(path.join(dir, f), 'x');
      mkdirSync(path.join(dir, 'stage-x'));
      for (const f of ['vmlinux-a', 'vmlinux-keep', 'initramfs-a', 'stage-x']) utimesSync(path.join(dir, f), old, old);
      pruneCache(dir, 'vmlinux-', path.join(dir, 'vmlinux-keep'));
      pruneCache(dir, 'stage-', path.join(dir, 'stage-y'));
      expect(readdirSync(dir).sort()).toEqual(['initramfs-a', 'vmlinux-b', 'vmlinux-keep']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
