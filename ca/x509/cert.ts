/**
 * DER encoding of the certificates the CA issues: X509-SVID leaves on the hot
 * path ({@link LeafEncoder}) and CA certificates ({@link encodeCaTbs}).
 *
 * Signing is not done here: callers get the TBSCertificate bytes, have the
 * KeyManager sign them (IEEE P1363 r||s from the HSM), and hand the signature
 * back to be assembled. That keeps the private key on the other side of the
 * KeyManager interface and makes the encoder pure and easy to cross-check.
 */
import { createHash, randomBytes } from 'node:crypto';
import { AnchorageError, invalid } from '@anchorage/client/errors';
import type { KeyType } from '../keymanager/KeyManager.js';
import {
  DerError,
  TAG,
  bitString,
  boolean,
  bytesEqual,
  childList,
  content,
  encode,
  expect,
  explicit,
  ia5Bytes,
  namedBits,
  octetString,
  oid,
  p1363ToDer,
  readTlv,
  readWhole,
  seq,
  set,
  smallInteger,
  time,
  tlv,
  unsignedInteger,
  utf8String,
  whole,
} from '@anchorage/client/der';
import type { Der, Tlv } from '@anchorage/client/der';
import { rdn } from './name.js';

// ---------------------------------------------------------------------------
// Constants, encoded once at module load.

const OID_EC_PUBLIC_KEY = oid('1.2.840.10045.2.1');
const OID_P256 = oid('1.2.840.10045.3.1.7');
const OID_P384 = oid('1.3.132.0.34');

const OID_BASIC_CONSTRAINTS = oid('2.5.29.19');
const OID_KEY_USAGE = oid('2.5.29.15');
const OID_EXT_KEY_USAGE = oid('2.5.29.37');
const OID_SKI = oid('2.5.29.14');
const OID_AKI = oid('2.5.29.35');
const OID_SAN = oid('2.5.29.17');
const OID_SERVER_AUTH = oid('1.3.6.1.5.5.7.3.1');
const OID_CLIENT_AUTH = oid('1.3.6.1.5.5.7.3.2');
const OID_CN = oid('2.5.4.3');

const TRUE = boolean(true);
/** `[0] EXPLICIT INTEGER 2` — version v3. */
const VERSION_V3 = encode(explicit(0, smallInteger(2)));

/** AlgorithmIdentifier per signer key type; ECDSA has absent parameters (RFC 5758 §3.2). */
const SIG_ALG: Record<KeyType, Buffer> = {
  'ec-p256': encode(seq(oid('1.2.840.10045.4.3.2'))),
  'ec-p384': encode(seq(oid('1.2.840.10045.4.3.3'))),
};
const SIG_LEN: Record<KeyType, number> = { 'ec-p256': 64, 'ec-p384': 96 };

// Key usage bit positions (RFC 5280 §4.2.1.3).
const KU_DIGITAL_SIGNATURE = 0;
const KU_KEY_CERT_SIGN = 5;
const KU_CRL_SIGN = 6;

function extension(extnId: Buffer, critical: boolean, value: Der): Der {
  const v = octetString(value);
  return critical ? seq(extnId, TRUE, v) : seq(extnId, v);
}

/** basicConstraints critical, cA FALSE: DER omits the default, leaving an empty SEQUENCE. */
const EXT_BC_LEAF = encode(extension(OID_BASIC_CONSTRAINTS, true, seq()));
/** keyUsage critical, digitalSignature only (03 02 07 80). */
const EXT_KU_LEAF = encode(extension(OID_KEY_USAGE, true, namedBits([KU_DIGITAL_SIGNATURE])));
/** extKeyUsage serverAuth + clientAuth, non-critical. */
const EXT_EKU_LEAF = encode(extension(OID_EXT_KEY_USAGE, false, seq(OID_SERVER_AUTH, OID_CLIENT_AUTH)));
/** keyUsage critical for CAs: digitalSignature + keyCertSign + cRLSign, as SPIRE issues. */
const EXT_KU_CA = encode(
  extension(OID_KEY_USAGE, true, namedBits([KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, KU_CRL_SIGN])),
);

const DEFAULT_ORG_RDN = encode(rdn({ type: 'O', value: 'Anchorage' }));
const EMPTY_NAME = Buffer.from([0x30, 0x00]);

// ---------------------------------------------------------------------------
// Input validation

const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DNS_NAME = new RegExp(`^(?:\\*\\.)?(?:${DNS_LABEL}\\.)*${DNS_LABEL}$`);
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+((?:\/[a-zA-Z0-9._-]+)*)$/;

/**
 * Checks a dNSName the way the CA is willing to issue it: lower-case LDH
 * labels, an optional leading `*.` wildcard, no trailing dot, no IP address
 * lookalikes (those belong in iPAddress SANs).
 */
export function checkDnsName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw invalid('x509: dns name must not be empty');
  if (name.length > 253 || !DNS_NAME.test(name)) throw invalid(`x509: invalid dns name ${JSON.stringify(name)}`);
  if (/^[0-9]+$/.test(name.slice(name.lastIndexOf('.') + 1))) {
    throw invalid(`x509: dns name ${JSON.stringify(name)} looks like an ip address`);
  }
}

function checkSpiffeId(id: string, trustDomainOnly: boolean): void {
  if (typeof id !== 'string' || id.length === 0) throw invalid('x509: spiffe id must not be empty');
  const m = id.length <= 2048 ? SPIFFE_ID.exec(id) : null;
  const td = m ? id.slice(9, id.length - m[1]!.length) : '';
  if (m === null || td.length > 255 || /\/\.\.?(?:\/|$)/.test(m[1]!)) {
    throw invalid(`x509: invalid spiffe id ${JSON.stringify(id.slice(0, 100))}`);
  }
  if (trustDomainOnly && m[1] !== '') throw invalid('x509: ca spiffe id must not have a path');
}

function checkValidity(notBefore: Date, notAfter: Date): void {
  if (!(notBefore instanceof Date) || !Number.isFinite(notBefore.getTime())) throw invalid('x509: notBefore is not a valid date');
  if (!(notAfter instanceof Date) || !Number.isFinite(notAfter.getTime())) throw invalid('x509: notAfter is not a valid date');
  // Encoded times have whole seconds; compare what will actually be written.
  if (Math.floor(notAfter.getTime() / 1000) <= Math.floor(notBefore.getTime() / 1000)) {
    throw invalid('x509: notAfter must be after notBefore');
  }
  const y1 = notBefore.getUTCFullYear();
  const y2 = notAfter.getUTCFullYear();
  if (y1 < 0 || y2 > 9999) throw invalid('x509: validity out of the encodable range');
}

/**
 * Encodes the serial as a positive INTEGER: the bytes are read as an unsigned
 * big-endian number (a set top bit gets a 0x00 pad rather than turning the
 * serial negative), and the result must fit RFC 5280's 20-octet limit.
 */
function serialInteger(serial: Uint8Array): Buffer {
  if (!(serial instanceof Uint8Array) || serial.length === 0) throw invalid('x509: serial must not be empty');
  let nonzero = false;
  for (let i = 0; i < serial.length; i++) if (serial[i] !== 0) nonzero = true;
  if (!nonzero) throw invalid('x509: serial must be positive');
  const der = unsignedInteger(serial);
  if (der.length - 2 > 20) throw invalid('x509: serial longer than 20 octets');
  return der;
}

function checkSignatureLength(keyType: KeyType, sig: Uint8Array): void {
  const want = SIG_LEN[keyType];
  if (want === undefined) throw invalid(`x509: unsupported signer key type ${String(keyType)}`);
  if (sig.length !== want) {
    throw invalid(`x509: ${keyType} signature must be ${want} bytes (p1363), got ${sig.length}`);
  }
}

function checkName(name: Uint8Array, what: string): void {
  try {
    readWhole(name, TAG.SEQUENCE, 'name');
  } catch (err) {
    throw invalid(`x509: ${what} is not a DER Name`, err);
  }
}

// ---------------------------------------------------------------------------
// SubjectPublicKeyInfo

/** The subjectPublicKey BIT STRING contents (minus the unused-bits byte) of a verbatim SPKI. */
function spkiKeyBits(spki: Uint8Array): { bits: Uint8Array; alg: Tlv; algParams: Tlv | undefined } {
  try {
    const top = readWhole(spki, TAG.SEQUENCE, 'spki');
    const alg = expect(spki, top.contentStart, top.end, TAG.SEQUENCE, 'algorithm');
    const algOid = expect(spki, alg.contentStart, alg.end, TAG.OID, 'algorithm oid');
    let algParams: Tlv | undefined;
    if (algOid.end < alg.end) {
      algParams = readTlv(spki, algOid.end, alg.end);
      if (algParams.end !== alg.end) throw new DerError('trailing bytes in algorithm');
    }
    const bs = expect(spki, alg.end, top.end, TAG.BIT_STRING, 'subjectPublicKey');
    if (bs.end !== top.end) throw new DerError('trailing bytes in spki');
    if (bs.end - bs.contentStart < 2 || spki[bs.contentStart] !== 0) throw new DerError('bad public key bit string');
    return { bits: spki.subarray(bs.contentStart + 1, bs.end), alg: algOid, algParams };
  } catch (err) {
    if (err instanceof AnchorageError) throw err;
    throw invalid(`x509: subject public key info is not valid DER (${(err as Error).message})`, err);
  }
}

function sha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest();
}

/**
 * RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value
 * (no tag, length or unused-bits byte). The method SPIRE, Go and OpenSSL use,
 * so AKIs we write match SKIs computed elsewhere.
 */
export function subjectKeyIdentifier(spki: Uint8Array): Buffer {
  return sha1(spkiKeyBits(spki).bits);
}

/** The CA key type an SPKI holds, or undefined if it is neither P-256 nor P-384. */
function ecKeyType(spki: Uint8Array): KeyType | undefined {
  const { alg, algParams } = spkiKeyBits(spki);
  if (!bytesEqual(whole(spki, alg), OID_EC_PUBLIC_KEY) || algParams === undefined) return undefined;
  const p = whole(spki, algParams);
  if (bytesEqual(p, OID_P256)) return 'ec-p256';
  if (bytesEqual(p, OID_P384)) return 'ec-p384';
  return undefined;
}

/**
 * 16 random bytes with the top bit cleared and the next one set: a positive
 * serial with 126 bits of entropy (CA/B asks for 64) whose DER encoding is
 * always exactly 16 octets, so every leaf TBS of a profile has the same size.
 */
export function randomSerial(): Buffer {
  if (serialPool.length - serialAt < 16) {
    // One CSPRNG call per 256 serials: a call per serial cost ≈ 10 µs of the
    // minting thread (5 % of a mint) once other threads shared the RNG. Each
    // pool is fresh and every 16 bytes of it are handed out once.
    serialPool = randomBytes(4096);
    serialAt = 0;
  }
  const b = serialPool.subarray(serialAt, serialAt + 16);
  serialAt += 16;
  b[0] = (b[0]! & 0x3f) | 0x40;
  return b;
}
let serialPool = Buffer.alloc(0);
let serialAt = 0;

// ---------------------------------------------------------------------------
// Reading the issuer certificate

/** What an issued certificate needs from its issuer's certificate. */
export interface IssuerInfo {
  subject: Buffer;
  ski: Buffer;
  spki: Uint8Array;
  notAfter: Date;
}

function parseTime(buf: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(content(buf, t)).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === TAG.UTC_TIME && (m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (t.tag === TAG.GENERALIZED_TIME && (m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    year = Number(m[1]);
  } else {
    throw new DerError('bad time');
  }
  const d = new Date(0);
  d.setUTCFullYear(year, Number(m[2]) - 1, Number(m[3]));
  d.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), 0);
  return d;
}

/** Reads the subject Name (verbatim), SKI, SPKI and notAfter of a CA certificate. */
export function readIssuerInfo(cert: Uint8Array): IssuerInfo {
  try {
    const top = readWhole(cert, TAG.SEQUENCE, 'certificate');
    const tbs = expect(cert, top.contentStart, top.end, TAG.SEQUENCE, 'tbsCertificate');
    const f = childList(cert, tbs);
    let i = 0;
    if (f[i]?.tag === 0xa0) i++; // version
    const [serial, , , validity, subject, spki] = f.slice(i, i + 6);
    if (serial?.tag !== TAG.INTEGER || subject?.tag !== TAG.SEQUENCE || spki?.tag !== TAG.SEQUENCE) {
      throw new DerError('unexpected tbsCertificate layout');
    }
    if (validity?.tag !== TAG.SEQUENCE) throw new DerError('bad validity');
    const times = childList(cert, validity);
    if (times.length !== 2) throw new DerError('bad validity');
    const notAfter = parseTime(cert, times[1]!);
    let ski: Buffer | undefined;
    const extsTag = f.find((t) => t.tag === 0xa3);
    if (extsTag !== undefined) {
      const exts = expect(cert, extsTag.contentStart, extsTag.end, TAG.SEQUENCE, 'extensions');
      for (const ext of childList(cert, exts)) {
        const parts = childList(cert, ext);
        if (parts[0]?.tag !== TAG.OID || !bytesEqual(whole(cert, parts[0]), OID_SKI)) continue;
        const value = parts[parts.length - 1]!;
        if (value.tag !== TAG.OCTET_STRING) throw new DerError('bad extension');
        const inner = expect(cert, value.contentStart, value.end, TAG.OCTET_STRING, 'key identifier');
        if (inner.end !== value.end) throw new DerError('bad subject key identifier');
        ski = Buffer.from(content(cert, inner));
      }
    }
    if (ski === undefined || ski.length === 0) throw invalid('x509: issuer certificate has no subject key identifier');
    return { subject: Buffer.from(whole(cert, subject)), ski, spki: whole(cert, spki), notAfter };
  } catch (err) {
    if (err instanceof AnchorageError) throw err;
    throw invalid(`x509: issuer certificate is not valid DER (${(err as Error).message})`, err);
  }
}

// ---------------------------------------------------------------------------
// X509-SVID leaves

/** Inputs for one X509-SVID leaf TBSCertificate. */
export interface LeafParams {
  /** Serial magnitude, big-endian (use {@link randomSerial}). */
  serial: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** The SVID's SPIFFE ID; the leaf's only URI SAN. */
  spiffeId: string;
  /** Extra dNSName SANs, after the URI. */
  dnsNames: readonly string[];
  /** The workload key's SubjectPublicKeyInfo, copied verbatim. */
  spki: Uint8Array;
  /** DER Name; default `O=Anchorage` plus `CN=<first DNS name>` if any. */
  subject?: Uint8Array;
}

/**
 * Encodes X509-SVID leaves for one issuing CA. Everything that depends only
 * on the issuer (its Name, its key identifier for the AKI, the signature
 * algorithm, the fixed extensions) is encoded once here; {@link tbs} only
 * encodes the per-SVID fields and writes the result in a single allocation.
 */
export class LeafEncoder {
  readonly issuerKeyType: KeyType;
  /** The issuer's subject Name, verbatim: our leaves' issuer field. */
  readonly issuerName: Buffer;
  /** The issuer's subjectKeyIdentifier: our leaves' AKI keyIdentifier. */
  readonly issuerSki: Buffer;
  /** Leaves must not outlive their issuer; {@link tbs} refuses to. */
  readonly issuerNotAfter: Date;
  private readonly sigAlg: Buffer;
  /** basicConstraints + keyUsage + extKeyUsage + authorityKeyIdentifier, pre-encoded. */
  private readonly fixedExts: Buffer;

  constructor(opts: { issuerCertDer: Uint8Array; issuerKeyType: KeyType }) {
    const sigAlg = SIG_ALG[opts.issuerKeyType];
    if (sigAlg === undefined) throw invalid(`x509: unsupported issuer key type ${String(opts.issuerKeyType)}`);
    const issuer = readIssuerInfo(opts.issuerCertDer);
    const actual = ecKeyType(issuer.spki);
    if (actual !== opts.issuerKeyType) {
      throw invalid(`x509: issuer certificate key is ${actual ?? 'not a supported ec key'}, expected ${opts.issuerKeyType}`);
    }
    this.issuerKeyType = opts.issuerKeyType;
    this.issuerName = issuer.subject;
    this.issuerSki = issuer.ski;
    this.issuerNotAfter = issuer.notAfter;
    this.sigAlg = sigAlg;
    this.fixedExts = Buffer.concat([EXT_BC_LEAF, EXT_KU_LEAF, EXT_EKU_LEAF, akiExtension(issuer.ski)]);
  }

  /** Encodes the TBSCertificate of one X509-SVID; sign it with the issuer key, then {@link assemble}. */
  tbs(p: LeafParams): Buffer {
    checkSpiffeId(p.spiffeId, false);
    checkValidity(p.notBefore, p.notAfter);
    if (p.notAfter.getTime() > this.issuerNotAfter.getTime() + 999) {
      throw invalid('x509: leaf notAfter is after the issuer certificate notAfter');
    }
    const dnsNames = p.dnsNames ?? [];
    for (let i = 0; i < dnsNames.length; i++) {
      checkDnsName(dnsNames[i]!);
      if (dnsNames.indexOf(dnsNames[i]!) !== i) throw invalid(`x509: duplicate dns name ${dnsNames[i]}`);
    }
    const serial = serialInteger(p.serial);
    const ski = sha1(spkiKeyBits(p.spki).bits);

    let subject: Der;
    if (p.subject !== undefined) {
      checkName(p.subject, 'subject');
      subject = p.subject;
    } else if (dnsNames.length > 0 && dnsNames[0]!.length <= 64) {
      subject = seq(DEFAULT_ORG_RDN, set(seq(OID_CN, utf8String(dnsNames[0]!))));
    } else {
      subject = seq(DEFAULT_ORG_RDN);
    }
    const emptySubject = p.subject !== undefined && bytesEqual(p.subject, EMPTY_NAME);

    const names: Der[] = [tlv(0x86, ia5Bytes(p.spiffeId))];
    for (const d of dnsNames) names.push(tlv(0x82, Buffer.from(d, 'latin1')));

    return encode(
      seq(
        VERSION_V3,
        serial,
        this.sigAlg,
        this.issuerName,
        seq(time(p.notBefore), time(p.notAfter)),
        subject,
        p.spki,
        explicit(
          3,
          seq(
            this.fixedExts,
            extension(OID_SKI, false, tlv(TAG.OCTET_STRING, ski)),
            extension(OID_SAN, emptySubject, seq(...names)),
          ),
        ),
      ),
    );
  }

  /** Wraps a TBSCertificate and the issuer's P1363 signature into a Certificate. */
  assemble(tbs: Uint8Array, p1363Signature: Uint8Array): Buffer {
    checkSignatureLength(this.issuerKeyType, p1363Signature);
    return assembleWith(tbs, this.sigAlg, p1363Signature);
  }
}

function akiExtension(keyId: Uint8Array): Buffer {
  // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
  return encode(extension(OID_AKI, false, seq(tlv(0x80, keyId))));
}

function assembleWith(tbs: Uint8Array, sigAlg: Buffer, p1363Signature: Uint8Array): Buffer {
  try {
    readWhole(tbs, TAG.SEQUENCE, 'tbsCertificate');
  } catch (err) {
    throw invalid('x509: tbsCertificate is not valid DER', err);
  }
  return encode(seq(tbs, sigAlg, bitString(p1363ToDer(p1363Signature))));
}

// ---------------------------------------------------------------------------
// CA certificates

/** Inputs for a root or intermediate CA TBSCertificate. */
export interface CaParams {
  serial: Uint8Array;
  /** Issuer's subject Name (DER); for a self-signed root, the same as `subject`. */
  issuerName: Uint8Array;
  /** Issuer's SKI; absent for a self-signed root, whose AKI is then its own SKI. */
  issuerSki?: Uint8Array;
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** The CA's own key, SubjectPublicKeyInfo DER, copied verbatim. */
  spki: Uint8Array;
  /** Key type of the key that will sign this TBS (decides the signature algorithm). */
  signerKeyType: KeyType;
  /** Trust domain SPIFFE ID (`spiffe://example.org`, no path) for the URI SAN, if any. */
  spiffeId?: string;
  /** basicConstraints pathLenConstraint, if any. */
  pathLen?: number;
}

/**
 * Encodes the TBSCertificate of a CA certificate (root or intermediate):
 * basicConstraints critical cA=TRUE, keyUsage critical digitalSignature +
 * keyCertSign + cRLSign (what SPIRE issues), SKI, AKI and an optional URI SAN.
 * Not on the hot path, but shares the leaf encoder's primitives so both kinds
 * of certificate get the same encoding rules.
 */
export function encodeCaTbs(p: CaParams): Buffer {
  const sigAlg = SIG_ALG[p.signerKeyType];
  if (sigAlg === undefined) throw invalid(`x509: unsupported signer key type ${String(p.signerKeyType)}`);
  checkValidity(p.notBefore, p.notAfter);
  checkName(p.issuerName, 'issuer name');
  checkName(p.subject, 'subject');
  if (bytesEqual(p.subject, EMPTY_NAME)) throw invalid('x509: ca subject must not be empty');
  if (bytesEqual(p.issuerName, EMPTY_NAME)) throw invalid('x509: ca issuer name must not be empty');
  if (p.spiffeId !== undefined) checkSpiffeId(p.spiffeId, true);
  if (p.pathLen !== undefined && (!Number.isSafeInteger(p.pathLen) || p.pathLen < 0)) {
    throw invalid('x509: pathLen must be a non-negative integer');
  }
  if (p.issuerSki !== undefined && p.issuerSki.length === 0) throw invalid('x509: issuer ski must not be empty');
  const serial = serialInteger(p.serial);
  const ski = sha1(spkiKeyBits(p.spki).bits);

  const bc = p.pathLen === undefined ? seq(TRUE) : seq(TRUE, smallInteger(p.pathLen));
  const exts: Der[] = [
    extension(OID_BASIC_CONSTRAINTS, true, bc),
    EXT_KU_CA,
    extension(OID_SKI, false, tlv(TAG.OCTET_STRING, ski)),
    akiExtension(p.issuerSki ?? ski),
  ];
  if (p.spiffeId !== undefined) exts.push(extension(OID_SAN, false, seq(tlv(0x86, ia5Bytes(p.spiffeId)))));

  return encode(
    seq(
      VERSION_V3,
      serial,
      sigAlg,
      p.issuerName,
      seq(time(p.notBefore), time(p.notAfter)),
      p.subject,
      p.spki,
      explicit(3, seq(...exts)),
    ),
  );
}

/** Wraps a TBSCertificate and a P1363 signature by a `signerKeyType` key into a Certificate. */
export function assembleCertificate(tbs: Uint8Array, signerKeyType: KeyType, p1363Signature: Uint8Array): Buffer {
  checkSignatureLength(signerKeyType, p1363Signature);
  return assembleWith(tbs, SIG_ALG[signerKeyType], p1363Signature);
}
