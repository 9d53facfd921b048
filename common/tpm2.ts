// TPM 2.0 wire structures that node attestation reads (TPM 2.0 Library,
// Part 2): TPM2B_PUBLIC (the EK and the AK), TPMS_ATTEST (a quote) and
// TPMT_SIGNATURE. Both sides use them: the server judges the agent's
// evidence with them; the agent computes the ID it expects from its EK.
// Everything here parses untrusted bytes: every read is bounds-checked and a
// structure must be consumed exactly.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { invalid } from './errors.js';

export const TPM_ALG = { RSA: 0x0001, SHA1: 0x0004, HMAC: 0x0005, AES: 0x0006, KEYEDHASH: 0x0008, SHA256: 0x000b, SHA384: 0x000c, SHA512: 0x000d, NULL: 0x0010, RSASSA: 0x0014, RSAPSS: 0x0016, ECDSA: 0x0018, ECC: 0x0023, CFB: 0x0043 } as const;

/** Hash algorithms we accept, by TPM_ALG_ID, with their node:crypto names and sizes. */
export const TPM_HASHES: ReadonlyMap<number, { name: string; size: number }> = new Map([
  [TPM_ALG.SHA1, { name: 'sha1', size: 20 }],
  [TPM_ALG.SHA256, { name: 'sha256', size: 32 }],
  [TPM_ALG.SHA384, { name: 'sha384', size: 48 }],
  [TPM_ALG.SHA512, { name: 'sha512', size: 64 }],
]);

/** PCR bank names (as in tpm2-tools and config) to TPM_ALG_ID. */
export const PCR_BANKS: Readonly<Record<string, number>> = { sha1: TPM_ALG.SHA1, sha256: TPM_ALG.SHA256, sha384: TPM_ALG.SHA384, sha512: TPM_ALG.SHA512 };

/** TPMA_OBJECT bits (Part 2, 8.3). */
export const TPMA = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

const TPM_GENERATED_VALUE = 0xff544347;
const TPM_ST_ATTEST_QUOTE = 0x8018;
/** TPM_ECC_CURVE to node:crypto JWK curve names. */
const CURVES: ReadonlyMap<number, { crv: string; size: number }> = new Map([
  [0x0003, { crv: 'P-256', size: 32 }],
  [0x0004, { crv: 'P-384', size: 48 }],
  [0x0005, { crv: 'P-521', size: 66 }],
]);

/** A bounds-checked big-endian reader over one structure. */
export class TpmReader {
  #off = 0;
  constructor(
    readonly buf: Buffer,
    readonly what: string,
  ) {}

  #take(n: number): Buffer {
    if (this.#off + n > this.buf.length) throw invalid(`tpm2: ${this.what} is truncated`);
    const b = this.buf.subarray(this.#off, this.#off + n);
    this.#off += n;
    return b;
  }
  u8(): number {
    return this.#take(1).readUInt8(0);
  }
  u16(): number {
    return this.#take(2).readUInt16BE(0);
  }
  u32(): number {
    return this.#take(4).readUInt32BE(0);
  }
  u64(): bigint {
    return this.#take(8).readBigUInt64BE(0);
  }
  bytes(n: number): Buffer {
    return this.#take(n);
  }
  /** A TPM2B: a 16-bit size, then that many bytes. */
  sized(max = 0xffff): Buffer {
    const n = this.u16();
    if (n > max) throw invalid(`tpm2: ${this.what} has a field of ${n} bytes (at most ${max})`);
    return this.#take(n);
  }
  /** Everything was read: trailing bytes are an error, not ignored. */
  end(): void {
    if (this.#off !== this.buf.length) throw invalid(`tpm2: ${this.what} has ${this.buf.length - this.#off} trailing bytes`);
  }
}

/** A TPM2B: 16-bit size, then the bytes. */
export function tpm2b(b: Buffer): Buffer {
  const out = Buffer.alloc(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

/** A public area (TPMT_PUBLIC) of an RSA or ECC key, with what attestation needs from it. */
export interface TpmPublic {
  type: 'rsa' | 'ecc';
  nameAlg: number;
  attributes: number;
  /** The policy digest that authorizes using the key (empty: none). */
  authPolicy: Buffer;
  /** TPMT_SYM_DEF_OBJECT of a storage key (the EK): AES key bits, or 0 when NULL. */
  symKeyBits: number;
  symMode: number;
  /** The signing scheme's hash for a signing key, or NULL. */
  schemeAlg: number;
  schemeHash: number;
  /** RSA: modulus bits; ECC: curve size in bits. */
  bits: number;
  key: KeyObject;
  /** TPM name: nameAlg || H_nameAlg(TPMT_PUBLIC). */
  name: Buffer;
  /** DER SubjectPublicKeyInfo of the key. */
  spki: Buffer;
}

/** Parses a TPM2B_PUBLIC (as tpm2_createek/tpm2_createak -u write it). */
export function parseTpm2bPublic(buf: Buffer, what: string): TpmPublic {
  const outer = new TpmReader(buf, what);
  const area = outer.sized();
  outer.end();
  const r = new TpmReader(area, what);
  const type = r.u16();
  const nameAlg = r.u16();
  const hash = TPM_HASHES.get(nameAlg);
  if (!hash || nameAlg === TPM_ALG.SHA1) throw invalid(`tpm2: ${what} has name algorithm 0x${nameAlg.toString(16)} (need sha256, sha384 or sha512)`);
  const attributes = r.u32();
  const authPolicy = r.sized(64);
  let symKeyBits = 0;
  let symMode: number = TPM_ALG.NULL;
  const symAlg = r.u16();
  if (symAlg !== TPM_ALG.NULL) {
    if (symAlg !== TPM_ALG.AES) throw invalid(`tpm2: ${what} has symmetric algorithm 0x${symAlg.toString(16)} (only AES)`);
    symKeyBits = r.u16();
    symMode = r.u16();
  }
  const schemeAlg = r.u16();
  const schemeHash = schemeAlg === TPM_ALG.NULL ? TPM_ALG.NULL : r.u16();
  let key: KeyObject;
  let bits: number;
  if (type === TPM_ALG.RSA) {
    bits = r.u16();
    const exponent = r.u32() || 65537;
    const n = r.sized(512);
    r.end();
    if (n.length * 8 !== bits || bits < 2048) throw invalid(`tpm2: ${what} is an RSA key of ${n.length * 8} bits (need at least 2048, as declared)`);
    const e = Buffer.alloc(4);
    e.writeUInt32BE(exponent, 0);
    key = createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: e.subarray(e.findIndex((x) => x !== 0)).toString('base64url') }, format: 'jwk' });
  } else if (type === TPM_ALG.ECC) {
    const curveId = r.u16();
    const kdf = r.u16();
    if (kdf !== TPM_ALG.NULL) r.u16();
    const x = r.sized(66);
    const y = r.sized(66);
    r.end();
    const curve = CURVES.get(curveId);
    if (!curve) throw invalid(`tpm2: ${what} is on ECC curve 0x${curveId.toString(16)} (need P-256, P-384 or P-521)`);
    const pad = (v: Buffer) => Buffer.concat([Buffer.alloc(Math.max(0, curve.size - v.length)), v]);
    bits = curve.size * 8;
    try {
      key = createPublicKey({ key: { kty: 'EC', crv: curve.crv, x: pad(x).toString('base64url'), y: pad(y).toString('base64url') }, format: 'jwk' });
    } catch (err) {
      throw invalid(`tpm2: ${what} is not a point on ${curve.crv}`, err);
    }
  } else {
    throw invalid(`tpm2: ${what} is of type 0x${type.toString(16)} (need RSA or ECC)`);
  }
  const nameHead = Buffer.alloc(2);
  nameHead.writeUInt16BE(nameAlg, 0);
  const name = Buffer.concat([nameHead, createHash(hash.name).update(area).digest()]);
  const spki = key.export({ type: 'spki', format: 'der' });
  return { type: type === TPM_ALG.RSA ? 'rsa' : 'ecc', nameAlg, attributes, authPolicy, symKeyBits, symMode, schemeAlg, schemeHash, bits, key, name, spki };
}

/** One bank of a TPML_PCR_SELECTION: hash algorithm and PCR indices, ascending. */
export interface PcrSelection {
  hashAlg: number;
  indices: number[];
}

/** The parts of a quote's TPMS_ATTEST attestation checks. */
export interface TpmQuote {
  extraData: Buffer;
  selections: PcrSelection[];
  pcrDigest: Buffer;
}

/** Parses a TPMS_ATTEST (tpm2_quote -m) that must be a quote made by a TPM. */
export function parseQuote(buf: Buffer): TpmQuote {
  const r = new TpmReader(buf, 'quote');
  if (r.u32() !== TPM_GENERATED_VALUE) throw invalid('tpm2: quote does not start with TPM_GENERATED_VALUE');
  const tag = r.u16();
  if (tag !== TPM_ST_ATTEST_QUOTE) throw invalid(`tpm2: attestation is of type 0x${tag.toString(16)}, not a quote`);
  r.sized(66); // qualifiedSigner
  const extraData = r.sized(64);
  r.bytes(17); // clockInfo: clock, resetCount, restartCount, safe
  r.u64(); // firmwareVersion
  const count = r.u32();
  if (count > 8) throw invalid(`tpm2: quote selects ${count} PCR banks`);
  const selections: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16();
    const size = r.u8();
    if (size > 8) throw invalid(`tpm2: quote has a PCR selection of ${size} bytes`);
    const mask = r.bytes(size);
    const indices: number[] = [];
    mask.forEach((byte, j) => {
      for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) indices.push(j * 8 + bit);
    });
    selections.push({ hashAlg, indices });
  }
  const pcrDigest = r.sized(64);
  r.end();
  return { extraData, selections, pcrDigest };
}

/** Parses a TPMT_SIGNATURE (tpm2_quote -s) into the hash and a signature node:crypto verifies (DER for ECDSA). */
export function parseSignature(buf: Buffer): { sigAlg: number; hashAlg: number; signature: Buffer } {
  const r = new TpmReader(buf, 'signature');
  const sigAlg = r.u16();
  const hashAlg = r.u16();
  let signature: Buffer;
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) {
    signature = r.sized(512);
  } else if (sigAlg === TPM_ALG.ECDSA) {
    const rr = r.sized(66);
    const s = r.sized(66);
    signature = ecdsaDer(rr, s);
  } else {
    throw invalid(`tpm2: signature algorithm 0x${sigAlg.toString(16)} is not RSASSA, RSAPSS or ECDSA`);
  }
  r.end();
  return { sigAlg, hashAlg, signature };
}

/** r and s as a DER ECDSA-Sig-Value. */
function ecdsaDer(r: Buffer, s: Buffer): Buffer {
  const int = (v: Buffer) => {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    let t = v.subarray(i);
    if (t.length === 0) t = Buffer.alloc(1);
    if (t[0]! & 0x80) t = Buffer.concat([Buffer.alloc(1), t]);
    return Buffer.concat([Buffer.from([0x02, t.length]), t]);
  };
  const body = Buffer.concat([int(r), int(s)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}
