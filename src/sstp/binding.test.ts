import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../util/decode.js';
import {
  CMK_SEED,
  buildCallConnected,
  certificateHash,
  certificateHashes,
  chooseHashProtocol,
  cmkPrfInput,
  compoundMac,
  deriveCmk,
  verifyCallConnected,
  zeroCompoundMac,
  type CertificateHashes,
} from './binding.js';
import { HashProtocol } from './constants.js';

interface BindingVector {
  id: string;
  hash_protocol: number;
  hash: 'sha1' | 'sha256';
  hlak: string;
  cmk_prf_input: string;
  cmk: string;
  nonce: string;
  cert_hash: string;
  call_connected_zeroed_mac: string;
  compound_mac: string;
  call_connected: string;
  client_master_send_key?: string;
  client_master_receive_key?: string;
  client_mppe_send_key?: string;
  client_mppe_recv_key?: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const file = JSON.parse(readFileSync(path.resolve(here, '../../../shared/vectors/sstp_crypto_binding.json'), 'utf8')) as {
  vectors: BindingVector[];
};
const vectors = file.vectors;

/** Certificate hashes where the one for this vector's hash is the vector's, the other a decoy. */
function hashesFor(v: BindingVector): CertificateHashes {
  const own = fromHex(v.cert_hash);
  return v.hash_protocol === HashProtocol.Sha1
    ? { sha1: own, sha256: new Uint8Array(32).fill(0xee) }
    : { sha1: new Uint8Array(20).fill(0xee), sha256: own };
}

describe('SSTP crypto binding against ../shared/vectors/sstp_crypto_binding.json', () => {
  it('covers all six published cases, both hashes', () => {
    expect(vectors.map((v) => v.id)).toEqual([
      'derived-mschapv2-rfc2759-sha256',
      'derived-mschapv2-rfc2759-sha1',
      'derived-zero-hlak-sha256',
      'thirdparty-sstp-client-mschapv2-sha1',
      'thirdparty-sstp-client-mschapv2-sha256',
      'thirdparty-sstp-client-eap-tls-sha256',
    ]);
    expect(new Set(vectors.map((v) => v.hash_protocol))).toEqual(new Set([1, 2]));
  });

  for (const v of vectors) {
    describe(v.id, () => {
      const p = v.hash_protocol;

      it('PRF input is seed | LEN little-endian | 0x01', () => {
        expect(hex(cmkPrfInput(p))).toBe(v.cmk_prf_input);
      });

      it('CMK', () => {
        expect(hex(deriveCmk(fromHex(v.hlak), p))).toBe(v.cmk);
      });

      it('zeroing the MAC field of the final message gives the MAC input', () => {
        expect(hex(zeroCompoundMac(fromHex(v.call_connected)))).toBe(v.call_connected_zeroed_mac);
      });

      it('Compound MAC', () => {
        const mac = compoundMac(fromHex(v.cmk), fromHex(v.call_connected_zeroed_mac), p);
        expect(hex(mac)).toBe(v.compound_mac);
      });

      it('client builds the exact Call Connected message', () => {
        const msg = buildCallConnected({ hashProtocol: p, nonce: fromHex(v.nonce), certHash: fromHex(v.cert_hash), hlak: fromHex(v.hlak) });
        expect(hex(msg)).toBe(v.call_connected);
      });

      it('server verifies it, and rejects each kind of tampering with its reason', () => {
        const expect_ = { nonce: fromHex(v.nonce), offeredHashProtocols: 3, certHashes: hashesFor(v), hlak: fromHex(v.hlak) };
        const good = fromHex(v.call_connected);
        expect(verifyCallConnected(good, expect_)).toEqual({ ok: true, hashProtocol: p });

        const flip = (at: number) => {
          const b = good.slice();
          b[at]! ^= 0x01;
          return b;
        };
        const reason = (b: Uint8Array, e = expect_) => {
          const r = verifyCallConnected(b, e);
          return r.ok ? 'ok' : r.reason;
        };
        expect(reason(flip(20))).toBe('nonce');
        expect(reason(flip(50))).toBe('cert-hash');
        expect(reason(flip(85))).toBe('compound-mac');
        expect(reason(good, { ...expect_, hlak: new Uint8Array(32).fill(1) })).toBe('compound-mac');
        // Only the hash protocol we offered is acceptable.
        expect(reason(good, { ...expect_, offeredHashProtocols: p === 1 ? 2 : 1 })).toBe('hash-protocol');
        const both = good.slice();
        both[15] = 3;
        expect(reason(both)).toBe('hash-protocol');
        expect(reason(good.subarray(0, 111))).toBe('malformed');
        // The certificate of another server.
        expect(reason(good, { ...expect_, certHashes: { sha1: new Uint8Array(20), sha256: new Uint8Array(32) } })).toBe('cert-hash');
      });
    });
  }

  it('a Call Connected bound with a zero HLAK after a key-deriving authentication is refused, and the message says so', () => {
    const zero = vectors.find((v) => v.id === 'derived-zero-hlak-sha256')!;
    const keyed = vectors.find((v) => v.id === 'derived-mschapv2-rfc2759-sha256')!;
    const expect_ = { nonce: fromHex(zero.nonce), offeredHashProtocols: 3, certHashes: hashesFor(zero), hlak: fromHex(keyed.hlak) };
    const r = verifyCallConnected(fromHex(zero.call_connected), expect_);
    expect(r).toEqual({ ok: false, reason: 'compound-mac', message: expect.stringMatching(/it does with a zero HLAK/) });
    // Any other wrong MAC gets the plain message; and a zero HLAK where PPP derived none verifies.
    const other = verifyCallConnected(fromHex(keyed.call_connected), {
      nonce: fromHex(keyed.nonce),
      offeredHashProtocols: 3,
      certHashes: hashesFor(keyed),
      hlak: new Uint8Array(32).fill(1),
    });
    expect(other).toEqual({ ok: false, reason: 'compound-mac', message: 'Compound MAC does not verify' });
    expect(verifyCallConnected(fromHex(zero.call_connected), { ...expect_, hlak: new Uint8Array(32) })).toEqual({ ok: true, hashProtocol: 2 });
  });

  it('MS-CHAPv2 HLAK is client MasterSendKey | client MasterReceiveKey', () => {
    for (const v of vectors) {
      const send = v.client_master_send_key ?? v.client_mppe_send_key;
      const recv = v.client_master_receive_key ?? v.client_mppe_recv_key;
      if (send && recv) expect(send + recv).toBe(v.hlak);
    }
  });

  it('certificate hash of the derived vectors\' stand-in certificate', () => {
    const der = new Uint8Array(Buffer.from('stand-in for the DER encoding of the server certificate', 'ascii'));
    const sha256 = vectors.find((v) => v.id === 'derived-mschapv2-rfc2759-sha256')!;
    const sha1 = vectors.find((v) => v.id === 'derived-mschapv2-rfc2759-sha1')!;
    expect(hex(certificateHash(der, HashProtocol.Sha256))).toBe(sha256.cert_hash);
    expect(hex(certificateHash(der, HashProtocol.Sha1))).toBe(sha1.cert_hash);
    const both = certificateHashes(der);
    expect([hex(both.sha1), hex(both.sha256)]).toEqual([sha1.cert_hash, sha256.cert_hash]);
  });

  it('the seed is the 29 octets without a terminating zero', () => {
    expect(CMK_SEED.length).toBe(29);
    expect(cmkPrfInput(HashProtocol.Sha1).length).toBe(32);
  });

  it('refuses values that are not exactly one hash or a 32-octet HLAK', () => {
    expect(() => deriveCmk(new Uint8Array(16), 2)).toThrow(RangeError);
    expect(() => cmkPrfInput(3)).toThrow(RangeError);
    expect(() => certificateHash(new Uint8Array(1), 0)).toThrow(RangeError);
  });

  it('the client prefers SHA-256 when both sides have it', () => {
    expect(chooseHashProtocol(3, 3)).toBe(HashProtocol.Sha256);
    expect(chooseHashProtocol(1, 3)).toBe(HashProtocol.Sha1);
    expect(chooseHashProtocol(3, 1)).toBe(HashProtocol.Sha1);
    expect(chooseHashProtocol(2, 1)).toBeUndefined();
    expect(chooseHashProtocol(0, 3)).toBeUndefined();
  });
});
