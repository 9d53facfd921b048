// The fields of a workload SVID leaf the agent checks, read from its DER with
// the strict reader of @anchorage/client/der instead of a node:crypto
// X509Certificate: building one cost the agent about 150 us per SVID (OpenSSL
// decodes the public key through its provider machinery), more than the
// signature check itself, for fields the agent then read as strings again.
import { verify, type KeyObject } from 'node:crypto';
import { childList, content, DerError, expect, readWhole, TAG, type Tlv } from '@anchorage/client/der';

/** What {@link readLeaf} returns: views into the certificate's bytes, no copies. */
export interface LeafFields {
  /** The TBSCertificate, tag and length included: the signed bytes. */
  tbs: Uint8Array;
  /** The outer signatureAlgorithm AlgorithmIdentifier (tag and length included); the TBS's own is the same bytes. */
  signatureAlgorithm: Uint8Array;
  /** The signatureValue BIT STRING's bits (no unused bits allowed). */
  signature: Uint8Array;
  /** The issuer Name, tag and length included. */
  issuer: Uint8Array;
  /** The SubjectPublicKeyInfo, tag and length included. */
  spki: Uint8Array;
  /** Milliseconds since the epoch. */
  notBefore: number;
  notAfter: number;
  /** basicConstraints cA; undefined when the extension is absent. */
  ca: boolean | undefined;
  /** keyUsage bits, bit n (RFC 5280 order) as 1 << n; undefined when absent. */
  keyUsage: number | undefined;
  /** The URI names of subjectAltName, in order. */
  uris: string[];
}

/** The extensions read, by the content bytes of their OIDs (2.5.29.19, 2.5.29.15, 2.5.29.17). */
const EXT_BASIC_CONSTRAINTS = 0x13;
const EXT_KEY_USAGE = 0x0f;
const EXT_SUBJECT_ALT_NAME = 0x11;
const EXT_NAMES = new Map([
  [EXT_BASIC_CONSTRAINTS, 'basicConstraints'],
  [EXT_KEY_USAGE, 'keyUsage'],
  [EXT_SUBJECT_ALT_NAME, 'subjectAltName'],
]);

/** Which of the three (its last OID byte), or undefined for another extension; throws on an OID that is not well-formed. */
function extensionKind(oid: Uint8Array): number | undefined {
  // Arcs in base 128, high bit on all but each arc's last byte, no leading 0x80.
  if (oid.length === 0 || oid[oid.length - 1]! & 0x80) throw new DerError('bad oid');
  for (let i = 0; i < oid.length; i++) if (oid[i] === 0x80 && (i === 0 || !(oid[i - 1]! & 0x80))) throw new DerError('bad oid');
  return oid.length === 3 && oid[0] === 0x55 && oid[1] === 0x1d && EXT_NAMES.has(oid[2]!) ? oid[2]! : undefined;
}

/** keyUsage bits as {@link LeafFields.keyUsage} holds them. */
export const KU_DIGITAL_SIGNATURE = 1;
export const KU_KEY_CERT_SIGN = 32;
export const KU_CRL_SIGN = 64;

/** Milliseconds since the epoch of a UTCTime (YYMMDDHHMMSSZ, 1950–2049) or GeneralizedTime (YYYYMMDDHHMMSSZ), as DER writes them. */
function readTime(buf: Uint8Array, t: Tlv): number {
  const s = Buffer.from(buf.buffer, buf.byteOffset + t.contentStart, t.end - t.contentStart).toString('latin1');
  const m =
    t.tag === TAG.UTC_TIME
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
      : t.tag === TAG.GENERALIZED_TIME
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
        : null;
  if (!m) throw new DerError('bad time');
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const year = t.tag === TAG.UTC_TIME ? (y < 50 ? 2000 + y : 1900 + y) : y;
  const ms = Date.UTC(year, mo - 1, d, h, mi, se);
  const date = new Date(ms);
  if (mo < 1 || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) throw new DerError('bad time');
  return ms;
}

function readBasicConstraintsCa(v: Uint8Array): boolean {
  const s = readWhole(v, TAG.SEQUENCE, 'basicConstraints');
  const parts = childList(v, s);
  let i = 0;
  let ca = false;
  if (parts[i]?.tag === TAG.BOOLEAN) {
    const b = content(v, parts[i++]!);
    if (b.length !== 1) throw new DerError('bad boolean');
    ca = b[0] !== 0;
  }
  if (parts[i]?.tag === TAG.INTEGER) {
    // pathLenConstraint: of no matter for a leaf, but it must be a well-formed non-negative INTEGER.
    const n = content(v, parts[i++]!);
    if (n.length === 0 || n.length > 4 || n[0]! & 0x80 || (n.length > 1 && n[0] === 0 && !(n[1]! & 0x80))) throw new DerError('bad pathLenConstraint');
  }
  if (i !== parts.length) throw new DerError('trailing fields in basicConstraints');
  return ca;
}

function readKeyUsage(v: Uint8Array): number {
  const c = content(v, readWhole(v, TAG.BIT_STRING, 'keyUsage'));
  if (c.length < 1 || c[0]! > 7 || (c.length === 1 && c[0] !== 0)) throw new DerError('bad keyUsage');
  let usages = 0;
  for (let bit = 0; bit < (c.length - 1) * 8; bit++) if (c[1 + (bit >> 3)]! & (0x80 >> (bit & 7))) usages |= 2 ** bit;
  return usages;
}

function readUris(v: Uint8Array): string[] {
  const uris: string[] = [];
  for (const name of childList(v, readWhole(v, TAG.SEQUENCE, 'subjectAltName'))) {
    if (name.tag === 0x86) uris.push(Buffer.from(v.buffer, v.byteOffset + name.contentStart, name.end - name.contentStart).toString('latin1'));
  }
  return uris;
}

const view = (buf: Uint8Array, t: Tlv): Uint8Array => buf.subarray(t.start, t.end);

/**
 * Reads a leaf certificate: Certificate ::= SEQUENCE { tbsCertificate,
 * signatureAlgorithm, signatureValue BIT STRING }, TBSCertificate ::=
 * SEQUENCE { [0] version (v3), serialNumber, signature, issuer, validity,
 * subject, subjectPublicKeyInfo, [1]?, [2]?, [3] extensions? }. Strict:
 * no trailing bytes at any level, every field of the tag it must have, the
 * two signature algorithms the same bytes (as OpenSSL requires), each of
 * basicConstraints, keyUsage and subjectAltName at most once. Throws
 * DerError on anything else.
 */
export function readLeaf(der: Uint8Array): LeafFields {
  const cert = readWhole(der, TAG.SEQUENCE, 'certificate');
  const top = childList(der, cert);
  if (top.length !== 3) throw new DerError('a certificate has three fields');
  const [tbsT, algT, sigT] = top as [Tlv, Tlv, Tlv];
  if (tbsT.tag !== TAG.SEQUENCE || algT.tag !== TAG.SEQUENCE || sigT.tag !== TAG.BIT_STRING) throw new DerError('malformed certificate');
  const sigBits = content(der, sigT);
  if (sigBits.length < 2 || sigBits[0] !== 0) throw new DerError('bad signature bit string');

  const f = childList(der, tbsT);
  const version = f[0];
  if (version?.tag !== 0xa0) throw new DerError('not a v3 certificate');
  const v = expect(der, version.contentStart, version.end, TAG.INTEGER, 'version');
  if (v.end !== version.end || v.end - v.contentStart !== 1 || der[v.contentStart] !== 2) throw new DerError('not a v3 certificate');
  const [serial, alg, issuer, validity, subject, spki] = f.slice(1, 7);
  if (serial?.tag !== TAG.INTEGER || serial.end === serial.contentStart) throw new DerError('bad serial number');
  if (alg?.tag !== TAG.SEQUENCE || issuer?.tag !== TAG.SEQUENCE || validity?.tag !== TAG.SEQUENCE || subject?.tag !== TAG.SEQUENCE || spki?.tag !== TAG.SEQUENCE) {
    throw new DerError('malformed tbsCertificate');
  }
  if (Buffer.compare(view(der, alg), view(der, algT)) !== 0) throw new DerError('the signature algorithms of the certificate and its tbsCertificate differ');
  const times = childList(der, validity);
  if (times.length !== 2) throw new DerError('validity must have two times');

  // Then [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions, each at most once and in that order.
  let i = 7;
  if (f[i]?.tag === 0x81 || f[i]?.tag === 0xa1) i++;
  if (f[i]?.tag === 0x82 || f[i]?.tag === 0xa2) i++;
  const exts = f[i]?.tag === 0xa3 ? f[i++] : undefined;
  if (i !== f.length) throw new DerError('unexpected fields in tbsCertificate');

  let ca: boolean | undefined;
  let keyUsage: number | undefined;
  let uris: string[] = [];
  if (exts) {
    const list = expect(der, exts.contentStart, exts.end, TAG.SEQUENCE, 'extensions');
    if (list.end !== exts.end) throw new DerError('trailing bytes after extensions');
    const seen = new Set<number>();
    for (const ext of childList(der, list)) {
      if (ext.tag !== TAG.SEQUENCE) throw new DerError('malformed extension');
      const parts = childList(der, ext);
      const value = parts[parts.length - 1];
      if (parts.length < 2 || parts.length > 3 || parts[0]!.tag !== TAG.OID || value?.tag !== TAG.OCTET_STRING) throw new DerError('malformed extension');
      if (parts.length === 3 && (parts[1]!.tag !== TAG.BOOLEAN || parts[1]!.end - parts[1]!.contentStart !== 1)) throw new DerError('malformed extension');
      const kind = extensionKind(content(der, parts[0]!));
      if (kind === undefined) continue;
      // Two of one kind: two parsers (ours, a workload's TLS stack) could each read another one.
      if (seen.has(kind)) throw new DerError(`more than one ${EXT_NAMES.get(kind)!} extension`);
      seen.add(kind);
      const body = content(der, value);
      if (kind === EXT_BASIC_CONSTRAINTS) ca = readBasicConstraintsCa(body);
      else if (kind === EXT_KEY_USAGE) keyUsage = readKeyUsage(body);
      else uris = readUris(body);
    }
  }
  return {
    tbs: view(der, tbsT),
    signatureAlgorithm: view(der, algT),
    signature: sigBits.subarray(1),
    issuer: view(der, issuer),
    spki: view(der, spki),
    notBefore: readTime(der, times[0]!),
    notAfter: readTime(der, times[1]!),
    ca,
    keyUsage,
    uris,
  };
}

/** AlgorithmIdentifier DER (no parameters, RFC 5758 §3.2) of the ECDSA signatures, by the hash they use. */
const ECDSA_ALGORITHMS = new Map<string, string>([
  ['300a06082a8648ce3d040302', 'sha256'],
  ['300a06082a8648ce3d040303', 'sha384'],
  ['300a06082a8648ce3d040304', 'sha512'],
]);

/**
 * The hash of an ECDSA signature algorithm (`sha256` …); undefined for any
 * other algorithm, which the caller checks with OpenSSL's own certificate
 * verification instead.
 */
export function ecdsaHashOf(signatureAlgorithm: Uint8Array): string | undefined {
  return ECDSA_ALGORITHMS.get(Buffer.from(signatureAlgorithm.buffer, signatureAlgorithm.byteOffset, signatureAlgorithm.byteLength).toString('hex'));
}

/**
 * Whether an ECDSA signature (DER ECDSA-Sig-Value, as X.509 carries it) over
 * the leaf's TBSCertificate verifies with `issuerKey`. OpenSSL rejects a
 * signature that is not canonical DER. False, not an exception, when the key
 * cannot check it (another key type).
 */
export function ecdsaLeafSignatureValid(leaf: LeafFields, hash: string, issuerKey: KeyObject): boolean {
  if (issuerKey.asymmetricKeyType !== 'ec') return false;
  try {
    return verify(hash, leaf.tbs, { key: issuerKey, dsaEncoding: 'der' }, leaf.signature);
  } catch {
    return false;
  }
}
