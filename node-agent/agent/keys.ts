// Workload keys as the agent makes them by the thousand: a P-256 key made on
// libuv's thread pool, and its SPKI, PKCS#8 and CSR written into one buffer
// of their own (the DER prefixes are common/csr-create.ts's). newKeyAndCsr there
// builds the same bytes from a DER tree and Buffer.concat, some ten small allocations a key from Node's shared
// 8 KiB pool: minting 20,000 SVIDs left about 16 MB of those slabs as
// garbage, which the agent's RSS kept after the burst.
import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { P256_PKCS8_POINT as PKCS8_POINT, P256_PKCS8_PREFIX as PKCS8_PREFIX, P256_SPKI_PREFIX as SPKI_PREFIX } from '../../common/csr-create.js';

/** CertificationRequestInfo: SEQUENCE (98 bytes) { version 0, subject (empty Name), …SPKI follows… }. */
const INFO_PREFIX = Buffer.from('3062020100' + '3000', 'hex');
/** …after the SPKI: attributes [0] IMPLICIT SET OF, empty. */
const INFO_SUFFIX = Buffer.from('a000', 'hex');
/** signatureAlgorithm ecdsa-with-SHA256, no parameters (RFC 5758 §3.2). */
const ECDSA_WITH_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');

const SPKI_LEN = SPKI_PREFIX.length + 65; // 91
const PKCS8_LEN = PKCS8_PREFIX.length + 32 + PKCS8_POINT.length + 65; // 138
const INFO_LEN = INFO_PREFIX.length + SPKI_LEN + INFO_SUFFIX.length; // 100

/** A workload key: views of one buffer. */
export interface NewWorkloadKey {
  /** PKCS#10 request (empty subject, no attributes) signed by the key: proof of possession for BatchSignX509SVID. */
  csr: Buffer;
  /** Unencrypted PKCS#8 DER, what the Workload API hands out. */
  pkcs8: Buffer;
  /** SubjectPublicKeyInfo DER, what the certificate must carry. */
  spki: Buffer;
}

/** Where each part sits in a key's buffer: spki | pkcs8 | CSR (header, info, algorithm, signature of at most 72 bytes). */
const PKCS8_AT = SPKI_LEN;
const CSR_AT = PKCS8_AT + PKCS8_LEN;
const INFO_AT = CSR_AT + 3;
const SIG_AT = INFO_AT + INFO_LEN + ECDSA_WITH_SHA256.length + 3;
const MAX_SIG = 72;

/** Writes a base64url JWK member of exactly 32 bytes at `at`. */
function write32(out: Buffer, at: number, b64url: string | undefined): void {
  if (b64url?.length !== 43 || out.write(b64url, at, 32, 'base64url') !== 32) throw new Error('agent: not a P-256 private key');
}

/**
 * The SPKI, PKCS#8 and CSR of a P-256 private key, in one buffer. The key's
 * numbers are read from its JWK export (its DER export goes through
 * OpenSSL's encoder lookup, several times slower); the CSR is signed with
 * the key.
 */
export function workloadKeyOf(privateKey: KeyObject): NewWorkloadKey {
  const jwk = privateKey.export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new Error('agent: not a P-256 private key');
  const out = Buffer.allocUnsafeSlow(SIG_AT + MAX_SIG);
  // SubjectPublicKeyInfo: prefix, 04 || x || y.
  SPKI_PREFIX.copy(out, 0);
  out[SPKI_PREFIX.length] = 4;
  write32(out, SPKI_PREFIX.length + 1, jwk.x);
  write32(out, SPKI_PREFIX.length + 33, jwk.y);
  // PKCS#8: prefix, d, [1] the point again.
  let o = PKCS8_AT + PKCS8_PREFIX.copy(out, PKCS8_AT);
  write32(out, o, jwk.d);
  o += 32;
  o += PKCS8_POINT.copy(out, o);
  o += out.copy(out, o, SPKI_PREFIX.length, SPKI_LEN);
  // CertificationRequestInfo, signed by the key.
  o = INFO_AT + INFO_PREFIX.copy(out, INFO_AT);
  o += out.copy(out, o, 0, SPKI_LEN);
  o += INFO_SUFFIX.copy(out, o);
  const sig = sign('sha256', out.subarray(INFO_AT, o), privateKey); // DER ECDSA-Sig-Value
  if (sig.length > MAX_SIG || sig.length < 13) throw new Error('agent: unexpected signature length');
  // CertificationRequest ::= SEQUENCE { info, signatureAlgorithm, signature BIT STRING (no unused bits) };
  // its length (115 + the signature's) always takes one byte after 0x81.
  o += ECDSA_WITH_SHA256.copy(out, o);
  out[o++] = 0x03;
  out[o++] = sig.length + 1;
  out[o++] = 0;
  o += sig.copy(out, o);
  out[CSR_AT] = 0x30;
  out[CSR_AT + 1] = 0x81;
  out[CSR_AT + 2] = o - INFO_AT;
  return { spki: out.subarray(0, SPKI_LEN), pkcs8: out.subarray(PKCS8_AT, CSR_AT), csr: out.subarray(CSR_AT, o) };
}

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * A new P-256 workload key, made on libuv's thread pool (the agent makes
 * hundreds at a time while its main thread checks the SVIDs of the last
 * batch and answers the Workload API), with its CSR.
 */
export async function newWorkloadKey(): Promise<NewWorkloadKey> {
  const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return workloadKeyOf(privateKey);
}
