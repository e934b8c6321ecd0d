// Crypto kernels exported by the WASM module (re-exported by ../index.ts).
// All take pointers into linear memory and lengths, allocate nothing, and
// keep their state in caller memory laid out as ./sizes.ts describes.
export { rc4Init, rc4Crypt, rc4CryptBatch, rc4RekeyBatch } from './rc4';
export { sha1Init, sha1Update, sha1Final, sha1, sha1Batch } from './sha1';
export { md4Init, md4Update, md4Final, md4 } from './md4';
export { desEncrypt, desEncrypt7, desExpandKey } from './des';
export { mppeStart, mppeSetKeys, mppeRekey } from './mppe';
