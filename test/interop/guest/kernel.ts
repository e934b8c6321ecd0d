/**
 * The guest kernel: which one, how to boot it fast under TCG, and which of its
 * modules an initramfs needs.
 *
 * Boot speed. Debian's vmlinuz is a bzImage whose payload is XZ-compressed;
 * under TCG the decompressor alone takes ~2.5 s of a ~6.5 s boot. The kernel
 * is built with CONFIG_PVH, so qemu can load the uncompressed ELF vmlinux
 * directly (PVH entry, the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY), skipping
 * SeaBIOS's real-mode path and the decompressor: boot-to-command drops to
 * ~3.5 s. We extract the payload once per kernel build and cache it; if that
 * fails (unknown compression, no PVH note) we boot the bzImage as is.
 *
 * bzImage layout (Documentation/arch/x86/boot.rst, "The Real-Mode Kernel Header"):
 *
 *   0x1F1  setup_sects (u8)       real-mode setup size in 512-byte sectors, 0 means 4
 *   0x202  header (u32)           "HdrS"
 *   0x206  version (u16)          boot protocol, >= 0x0208 has payload fields
 *   0x248  payload_offset (u32)   from the start of the protected-mode code
 *   0x24C  payload_length (u32)
 *   protected-mode code starts at (setup_sects + 1) * 512
 *
 * The payload is the compressed vmlinux, possibly followed by the 4-byte
 * uncompressed size the kernel's build appends.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

// ------------------------------------------------------------ from the spec

const BZ_SETUP_SECTS = 0x1f1;
const BZ_HDRS_MAGIC_OFF = 0x202;
const BZ_VERSION = 0x206;
const BZ_PAYLOAD_OFFSET = 0x248;
const BZ_PAYLOAD_LENGTH = 0x24c;
const BZ_MIN_VERSION_WITH_PAYLOAD = 0x0208;

/** ELF (System V gABI): e_ident, class 64, program header table fields. */
const ELF_MAGIC = 0x7f454c46; // "\x7fELF"
const ELFCLASS64 = 2;
const PT_INTERP = 3;
const PT_NOTE = 4;
/** xen/include/public/elfnote.h: the 32-bit PVH entry point qemu needs. */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

// ------------------------------------------------------------ kernels

export interface GuestKernel {
  /** `uname -r` of the guest, e.g. 6.1.0-56-amd64. */
  readonly version: string;
  /** The bzImage, e.g. /boot/vmlinuz-6.1.0-56-amd64. */
  readonly vmlinuz: string;
  /** /lib/modules/<version>: shared with the guest over 9p, so modprobe works there. */
  readonly modulesDir: string;
}

/**
 * The newest /boot/vmlinuz-<v> that has /lib/modules/<v>/modules.dep, or the
 * one VPNGW_GUEST_KERNEL names (a vmlinuz path).
 */
export function findKernel(bootDir = '/boot', modulesRoot = '/lib/modules'): GuestKernel | undefined {
  const forced = process.env.VPNGW_GUEST_KERNEL;
  const candidates = forced
    ? [forced]
    : safeReaddir(bootDir)
        .filter((f) => f.startsWith('vmlinuz-'))
        .map((f) => path.join(bootDir, f));
  const kernels: GuestKernel[] = [];
  for (const vmlinuz of candidates) {
    const version = path.basename(vmlinuz).replace(/^vmlinuz-/, '');
    const modulesDir = path.join(modulesRoot, version);
    if (!existsSync(vmlinuz) || !existsSync(path.join(modulesDir, 'modules.dep'))) continue;
    kernels.push({ version, vmlinuz, modulesDir });
  }
  kernels.sort((a, b) => a.version.localeCompare(b.version, 'en', { numeric: true }));
  return kernels.at(-1);
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

// ------------------------------------------------------------ bzImage payload

export type PayloadFormat = 'xz' | 'zstd' | 'gzip' | 'unknown';

export interface BzPayload {
  format: PayloadFormat;
  data: Buffer;
}

/** The compressed vmlinux inside a bzImage, or undefined when `img` is not one. */
export function bzImagePayload(img: Buffer): BzPayload | undefined {
  if (img.length < BZ_PAYLOAD_LENGTH + 4) return undefined;
  if (img.readUInt32LE(BZ_HDRS_MAGIC_OFF) !== 0x53726448) return undefined; // "HdrS"
  if (img.readUInt16LE(BZ_VERSION) < BZ_MIN_VERSION_WITH_PAYLOAD) return undefined;
  const setupSects = img[BZ_SETUP_SECTS] || 4;
  const start = (setupSects + 1) * 512 + img.readUInt32LE(BZ_PAYLOAD_OFFSET);
  const len = img.readUInt32LE(BZ_PAYLOAD_LENGTH);
  if (len === 0 || start + len > img.length) return undefined;
  const data = img.subarray(start, start + len);
  return { format: sniffCompression(data), data };
}

export function sniffCompression(d: Uint8Array): PayloadFormat {
  const at = (i: number) => d[i] ?? -1;
  if (at(0) === 0xfd && at(1) === 0x37 && at(2) === 0x7a && at(3) === 0x58 && at(4) === 0x5a && at(5) === 0x00) return 'xz';
  if (at(0) === 0x28 && at(1) === 0xb5 && at(2) === 0x2f && at(3) === 0xfd) return 'zstd';
  if (at(0) === 0x1f && at(1) === 0x8b) return 'gzip';
  return 'unknown';
}

/** Decompress with the system's xz/zstd (gzip in-process); trailing bytes after the stream are ignored. */
export async function decompress(format: PayloadFormat, data: Uint8Array): Promise<Buffer> {
  switch (format) {
    case 'gzip':
      return gunzipSync(data);
    case 'xz':
      return pipeThrough('xz', ['-dc', '--single-stream'], data);
    case 'zstd':
      // zstd stops at the end of the frame with -d; the size trailer would be
      // read as a second frame, so cut the input at the frame's end instead.
      return pipeThrough('zstd', ['-dcq'], data.subarray(0, data.length - 4));
    case 'unknown':
      throw new Error('unknown compression');
  }
}

function pipeThrough(cmd: string, args: string[], input: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`));
    });
    child.stdin.on('error', () => undefined); // EPIPE when the tool stops reading early
    child.stdin.end(input);
  });
}

// ------------------------------------------------------------ ELF

interface ElfPhdr {
  type: number;
  offset: number;
  filesz: number;
}

function elf64Phdrs(elf: Uint8Array): ElfPhdr[] | undefined {
  const b = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength);
  if (b.length < 64 || b.readUInt32BE(0) !== ELF_MAGIC || b[4] !== ELFCLASS64 || b[5] !== 1) return undefined;
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  if (phentsize < 56 || phoff + phnum * phentsize > b.length) return undefined;
  const out: ElfPhdr[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    out.push({ type: b.readUInt32LE(p), offset: Number(b.readBigUInt64LE(p + 8)), filesz: Number(b.readBigUInt64LE(p + 32)) });
  }
  return out;
}

/** An x86-64 ELF with no PT_INTERP: runs without a dynamic loader (what an initramfs needs). */
export function isStaticElf(elf: Uint8Array): boolean {
  const ph = elf64Phdrs(elf);
  return ph !== undefined && !ph.some((p) => p.type === PT_INTERP);
}

/** Whether qemu can boot this vmlinux with the PVH entry (has a Xen PHYS32_ENTRY note). */
export function hasPvhNote(elf: Uint8Array): boolean {
  const ph = elf64Phdrs(elf);
  if (!ph) return false;
  const b = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength);
  for (const p of ph) {
    if (p.type !== PT_NOTE || p.offset + p.filesz > b.length) continue;
    let o = p.offset;
    const end = p.offset + p.filesz;
    while (o + 12 <= end) {
      const namesz = b.readUInt32LE(o);
      const descsz = b.readUInt32LE(o + 4);
      const type = b.readUInt32LE(o + 8);
      const name = b.subarray(o + 12, o + 12 + namesz).toString('latin1').replace(/\0+$/, '');
      if (name === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) return true;
      o += 12 + align4(namesz) + align4(descsz);
    }
  }
  return false;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

// ------------------------------------------------------------ boot image cache

export interface BootKernel {
  /** What to pass to qemu -kernel. */
  path: string;
  /** true: uncompressed vmlinux booted via PVH; false: the bzImage itself. */
  pvh: boolean;
  /** Why PVH is not used, when it is not. */
  note?: string;
}

/** A short stable key for a file's identity (path, size, mtime). */
export function fileKey(...files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) {
    const st = statSync(f);
    h.update(`${f}\0${st.size}\0${st.mtimeMs}\0`);
  }
  return h.digest('hex').slice(0, 12);
}

/**
 * The image qemu boots: the cached uncompressed vmlinux when the bzImage's
 * payload decompresses to an ELF with a PVH note, else the bzImage.
 */
export async function prepareBootKernel(kernel: GuestKernel, cacheDir: string): Promise<BootKernel> {
  const out = path.join(cacheDir, `vmlinux-${kernel.version}-${fileKey(kernel.vmlinuz)}`);
  if (existsSync(out)) return { path: out, pvh: true };
  const fallback = (note: string): BootKernel => {
    // Remember the verdict so we do not decompress 60 MB on every run.
    writeFileSync(`${out}.nopvh`, note);
    return { path: kernel.vmlinuz, pvh: false, note };
  };
  if (existsSync(`${out}.nopvh`)) return { path: kernel.vmlinuz, pvh: false, note: readFileSync(`${out}.nopvh`, 'utf8') };
  const payload = bzImagePayload(readFileSync(kernel.vmlinuz));
  if (!payload) return fallback(`${kernel.vmlinuz} is not a bzImage with a payload`);
  if (payload.format === 'unknown') return fallback('unknown payload compression');
  let elf: Buffer;
  try {
    elf = await decompress(payload.format, payload.data);
  } catch (e) {
    return { path: kernel.vmlinuz, pvh: false, note: `cannot decompress the ${payload.format} payload: ${(e as Error).message}` };
  }
  if (!hasPvhNote(elf)) return fallback('the kernel has no PVH entry note (CONFIG_PVH off)');
  atomicWrite(out, elf);
  pruneCache(cacheDir, 'vmlinux-', out);
  return { path: out, pvh: true };
}

/** Our choice: cache entries superseded for longer than this are deleted (60+ MB each for vmlinux). */
const PRUNE_AGE_MS = 24 * 3600_000;

/**
 * Delete other `<prefix>*` entries of the cache not touched for a day (an
 * older kernel or busybox); recent ones may still be in use by another run.
 */
export function pruneCache(cacheDir: string, prefix: string, keep: string): void {
  const now = Date.now();
  for (const f of safeReaddir(cacheDir)) {
    const p = path.join(cacheDir, f);
    if (!f.startsWith(prefix) || p === keep) continue;
    try {
      if (now - statSync(p).mtimeMs > PRUNE_AGE_MS) rmSync(p, { force: true, recursive: true });
    } catch {
      /* raced with another run */
    }
  }
}

/** Write via a unique temporary name and rename: concurrent test runs never see half a file. */
export function atomicWrite(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}

// ------------------------------------------------------------ modules

export interface ModuleInfo {
  /** Canonical name (dashes as underscores), e.g. virtio_rng for virtio-rng.ko. */
  name: string;
  /** Path relative to the modules dir, e.g. kernel/fs/9p/9p.ko (maybe .ko.xz). */
  file: string;
  deps: string[];
}

export function canonicalModuleName(fileOrName: string): string {
  return path.basename(fileOrName).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** Parse modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko" per line). */
export function parseModulesDep(text: string): Map<string, ModuleInfo> {
  const mods = new Map<string, ModuleInfo>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const file = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(canonicalModuleName);
    mods.set(canonicalModuleName(file), { name: canonicalModuleName(file), file, deps });
  }
  return mods;
}

/** Names of built-in modules (modules.builtin lists their would-be paths). */
export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(text.split('\n').filter(Boolean).map(canonicalModuleName));
}

/**
 * The modules to insmod, in an order where every module comes after its
 * dependencies; built-in ones are left out. Throws for a name that is neither.
 */
export function resolveModuleOrder(dep: Map<string, ModuleInfo>, builtin: Set<string>, wanted: readonly string[]): ModuleInfo[] {
  const order: ModuleInfo[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (raw: string, chain: string[]) => {
    const name = canonicalModuleName(raw);
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const info = dep.get(name);
    if (!info) {
      if (builtin.has(name)) {
        state.set(name, 'done');
        return;
      }
      throw new Error(`no module named ${name} (not in modules.dep, not built in)`);
    }
    state.set(name, 'visiting');
    for (const d of info.deps) visit(d, [...chain, name]);
    state.set(name, 'done');
    order.push(info);
  };
  for (const w of wanted) visit(w, []);
  return order;
}
