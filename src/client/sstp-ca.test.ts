/**
 * The SSTP client's CA-file check of the server certificate (the other way
 * besides a pinned fingerprint, src/client/sstp.ts openTls): the real
 * gateway and SstpService on loopback, the real client (connectSstp,
 * tun: false). The CAs and leaves are made by `openssl` the way an operator
 * makes them (req -x509 for the CA, a CSR signed by `x509 -req` with a
 * subjectAltName extension), so the client is checked against certificates
 * it did not write itself.
 *
 *   CA file signed the leaf, name in subjectAltName (DNS or IP)  -> tunnel up
 *   right CA, name not in the certificate                         -> ERR_TLS naming the host
 *   a CA that did not sign the leaf                               -> ERR_TLS
 *   the gateway's generated self-signed certificate as the CA     -> tunnel up
 *   leaf + intermediate in sstp.certificate, root as the CA       -> tunnel up
 */
import { describe, it, expect, afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Gateway } from '../admin/gateway.js';
import { VpnError } from '../util/errors.js';
import { SstpService } from '../sstp/service.js';
import { connectSstp, type SstpClientOptions } from './sstp.js';
import { startLoopbackSstp } from '../../test/lib/sstp-loopback.js';

const openssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!openssl) process.stderr.write('\n*** SKIPPED the SSTP client CA-file tests with openssl-made certificates: no openssl binary ***\n\n');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vpngw-sstp-ca-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const run = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

interface Pem {
  certFile: string;
  keyFile: string;
}

/** A CA (ECDSA P-256): basicConstraints CA:TRUE, keyUsage keyCertSign (RFC 5280 4.2.1.9, 4.2.1.3). */
function makeCa(dir: string, name: string, issuer?: Pem): Pem {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  const caExt = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash'];
  if (!issuer) {
    run(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`, ...caExt.flatMap((e) => ['-addext', e])]);
    return { certFile, keyFile };
  }
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  run(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`]);
  writeFileSync(ext, [...caExt, 'authorityKeyIdentifier=keyid'].join('\n') + '\n');
  run(dir, ['x509', '-req', '-in', csr, '-CA', issuer.certFile, '-CAkey', issuer.keyFile, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', certFile]);
  return { certFile, keyFile };
}

/** A server leaf signed by `ca`, with the given subjectAltName entries (DNS names and IP addresses). */
function makeLeaf(dir: string, name: string, ca: Pem, altNames: readonly string[]): Pem {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  run(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`]);
  const san = altNames.map((n) => (net.isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(
    ext,
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', `subjectAltName=${san}`, 'authorityKeyIdentifier=keyid'].join('\n') + '\n',
  );
  run(dir, ['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', certFile]);
  return { certFile, keyFile };
}

/** Gateway + SstpService on 127.0.0.1 with the given certificate files (none: the generated self-signed one). */
async function startGateway(dir: string, cert?: Pem) {
  const files = cert ? `, certificate: ${JSON.stringify(cert.certFile)}, key: ${JSON.stringify(cert.keyFile)}` : '';
  const { gateway, service, port, close } = await startLoopbackSstp({ dir, users: '  alice: {password: pw-alice}\n', sstp: files, maxSessions: 4 });
  cleanups.push(close);
  const connect = (o: Partial<SstpClientOptions>) =>
    connectSstp({ host: '127.0.0.1', port, username: 'alice', password: 'pw-alice', tun: false, connectTimeoutMs: 10_000, ...o });
  return { gateway, service, port, connect };
}

/** Connect, expect the tunnel up with an address and a listed session, close. */
async function expectUp(t: Awaited<ReturnType<typeof startGateway>>, o: Partial<SstpClientOptions>) {
  const c = await t.connect(o);
  expect(c.ipv4).toBe('198.18.128.2');
  expect(t.gateway.sessions.list()).toMatchObject([{ protocol: 'sstp', user: 'alice', state: 'up' }]);
  await c.close();
}

async function tlsFailure(p: Promise<unknown>): Promise<VpnError> {
  const e = await p.then(
    () => new Error('the tunnel came up'),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(VpnError);
  expect((e as VpnError).code).toBe('ERR_TLS');
  return e as VpnError;
}

describe.skipIf(!openssl)('SSTP client: server certificate checked against a CA file', () => {
  it('a CA that signed the certificate: the tunnel comes up by DNS name (serverName vpn.test) and by IP (127.0.0.1 in subjectAltName)', async () => {
    const dir = tempDir();
    const ca = makeCa(dir, 'Test CA');
    const leaf = makeLeaf(dir, 'vpn.test', ca, ['vpn.test', '127.0.0.1']);
    const t = await startGateway(dir, leaf);
    // The service serves the configured certificate, not a generated one.
    expect(t.service.certificate?.generated).toBe(false);
    expect(t.service.certificate?.subject).toBe('CN=vpn.test');
    const caPem = readFileSync(ca.certFile);
    await expectUp(t, { ca: caPem, serverName: 'vpn.test' });
    await new Promise((r) => setTimeout(r, 50));
    await expectUp(t, { ca: caPem });
  });

  it('the right CA but a host name the certificate does not carry: ERR_TLS naming the host; an IP literal not in subjectAltName likewise', async () => {
    const dir = tempDir();
    const ca = makeCa(dir, 'Test CA');
    // Only a DNS name: connecting by IP must fail too (RFC 6125 6.2.1: an IP is matched against iPAddress entries only).
    const leaf = makeLeaf(dir, 'vpn.test', ca, ['vpn.test']);
    const t = await startGateway(dir, leaf);
    const caPem = readFileSync(ca.certFile);
    const byName = await tlsFailure(t.connect({ ca: caPem, serverName: 'other.test' }));
    expect(byName.message).toMatch(/other\.test/);
    expect(byName.message).toMatch(/altnames/i);
    const byIp = await tlsFailure(t.connect({ ca: caPem }));
    expect(byIp.message).toMatch(/127\.0\.0\.1/);
    expect(byIp.message).toMatch(/cert's list|altnames/i);
    await new Promise((r) => setTimeout(r, 50));
    expect(t.gateway.sessions.size).toBe(0);
    // The same gateway is fine with the right name.
    await expectUp(t, { ca: caPem, serverName: 'vpn.test' });
  });

  it('a CA that did not sign the certificate: ERR_TLS (unable to verify), no session', async () => {
    const dir = tempDir();
    const ca = makeCa(dir, 'Test CA');
    const stranger = makeCa(dir, 'Other CA');
    const leaf = makeLeaf(dir, 'vpn.test', ca, ['vpn.test', '127.0.0.1']);
    const t = await startGateway(dir, leaf);
    const e = await tlsFailure(t.connect({ ca: readFileSync(stranger.certFile), serverName: 'vpn.test' }));
    expect(e.message).toMatch(/unable to (verify|get local issuer)/i);
    await new Promise((r) => setTimeout(r, 50));
    expect(t.gateway.sessions.size).toBe(0);
  });

  it('a chain: sstp.certificate holds leaf + intermediate, the CA file only the root', async () => {
    const dir = tempDir();
    const root = makeCa(dir, 'Root CA');
    const intermediate = makeCa(dir, 'Intermediate CA', root);
    const leaf = makeLeaf(dir, 'vpn.test', intermediate, ['vpn.test']);
    const chainFile = path.join(dir, 'chain.pem');
    writeFileSync(chainFile, readFileSync(leaf.certFile, 'utf8') + readFileSync(intermediate.certFile, 'utf8'));
    const t = await startGateway(dir, { certFile: chainFile, keyFile: leaf.keyFile });
    // The crypto binding hashes the leaf (the first certificate of the file).
    expect(t.service.certificate?.subject).toBe('CN=vpn.test');
    await expectUp(t, { ca: readFileSync(root.certFile), serverName: 'vpn.test' });
    // Without the intermediate on the server the root alone cannot build the chain.
    const bare = await startGateway(tempDir(), leaf);
    await tlsFailure(bare.connect({ ca: readFileSync(root.certFile), serverName: 'vpn.test' }));
  });
});

describe('SSTP client: the generated self-signed certificate as the CA file', () => {
  it('the self-signed certificate is its own trust anchor: the tunnel comes up; another self-signed certificate is refused', async () => {
    const t = await startGateway(tempDir());
    expect(t.service.certificate?.generated).toBe(true);
    const own = t.service.certificate!.certPem;
    await expectUp(t, { ca: own });
    // A second gateway's generated certificate (same names, other key) does not vouch for the first.
    const other = await startGateway(tempDir());
    await tlsFailure(t.connect({ ca: other.service.certificate!.certPem }));
  });
});
