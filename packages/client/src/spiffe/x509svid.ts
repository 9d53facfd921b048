import { X509Certificate } from 'node:crypto';
import { childList, content, DerError, expect, oidToString, readWhole, TAG, type Tlv } from '../common/der.js';
import { AnchorageError, errorMessage, invalid } from '../common/errors.js';
import type { X509Bundle } from './bundle.js';
import { SpiffeId, type TrustDomain } from './id.js';

/**
 * X509-SVID verification (X509-SVID.md).
 *
 * Node's X509Certificate verifies signatures and issuer names but does not
 * expose basicConstraints or keyUsage, and OpenSSL's own path validation
 * knows nothing of SPIFFE's leaf rules; so the validity and the extensions
 * are read from the DER with the strict reader of common/der.ts (a few
 * fields, no certificate library: this module is part of the client
 * package, which keeps its dependencies to the Workload API's) and every
 * rule is checked here explicitly.
 */

/** Looks up the X.509 authorities of a trust domain; undefined when not trusted at all. */
export type X509BundleSource = (td: TrustDomain) => X509Bundle | undefined;

/** The outcome of a successful verification. */
export interface VerifiedX509Svid {
  spiffeId: SpiffeId;
  /** The presented chain, leaf first, parsed. */
  chain: X509Certificate[];
}

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

/** keyUsage bits, bit n of the BIT STRING (RFC 5280 §4.2.1.3 order) as 1 << n. */
const KU_DIGITAL_SIGNATURE = 1;
const KU_KEY_CERT_SIGN = 32;
const KU_CRL_SIGN = 64;

/** What verification needs from one certificate, read once. */
interface ParsedCert {
  der: Uint8Array;
  node: X509Certificate;
  /** undefined when basicConstraints is absent. */
  ca: boolean | undefined;
  pathLength: number | undefined;
  /** undefined when keyUsage is absent. */
  keyUsage: number | undefined;
  uris: string[];
  notBefore: Date;
  notAfter: Date;
}

function single<T>(items: T[], label: string, what: string): T | undefined {
  if (items.length > 1) throw invalid(`x509svid: ${label} has more than one ${what} extension`);
  return items[0];
}

/** The TBSCertificate fields verification reads: validity and the extensions (extnID, extnValue's content). */
interface TbsFields {
  notBefore: Date;
  notAfter: Date;
  extensions: { oid: string; value: Uint8Array }[];
}

/** UTCTime (YYMMDDHHMMSSZ, years 1950–2049) or GeneralizedTime (YYYYMMDDHHMMSSZ), as DER requires them. */
function readTime(buf: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(content(buf, t)).toString('latin1');
  const m = t.tag === TAG.UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : t.tag === TAG.GENERALIZED_TIME ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (!m) throw new DerError('bad time');
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const year = t.tag === TAG.UTC_TIME ? (y < 50 ? 2000 + y : 1900 + y) : y;
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) throw new DerError('bad time');
  return date;
}

/**
 * Reads validity and extensions from a certificate OpenSSL has already
 * parsed: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?,
 * serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo,
 * [1]?, [2]?, [3] extensions? }, … }.
 */
function readTbs(der: Uint8Array): TbsFields {
  const cert = readWhole(der, TAG.SEQUENCE, 'certificate');
  const tbs = expect(der, cert.contentStart, cert.end, TAG.SEQUENCE, 'tbsCertificate');
  const fields = childList(der, tbs);
  let i = fields[0]?.tag === 0xa0 ? 1 : 0; // version
  i += 3; // serialNumber, signature, issuer
  const validity = fields[i++];
  if (validity?.tag !== TAG.SEQUENCE) throw new DerError('no validity');
  const times = childList(der, validity);
  if (times.length !== 2) throw new DerError('validity must have two times');
  const extensions: TbsFields['extensions'] = [];
  const exts = fields.slice(i + 2).find((f) => f.tag === 0xa3);
  if (exts) {
    const list = expect(der, exts.contentStart, exts.end, TAG.SEQUENCE, 'extensions');
    if (list.end !== exts.end) throw new DerError('trailing bytes after extensions');
    for (const ext of childList(der, list)) {
      const parts = childList(der, ext);
      const critical = parts.length === 3 ? parts[1]! : undefined;
      const value = parts[parts.length - 1];
      if (parts[0]?.tag !== TAG.OID || value?.tag !== TAG.OCTET_STRING || parts.length < 2 || parts.length > 3) throw new DerError('malformed extension');
      if (critical && (critical.tag !== TAG.BOOLEAN || critical.end - critical.contentStart !== 1)) throw new DerError('malformed extension');
      extensions.push({ oid: oidToString(content(der, parts[0])), value: content(der, value) });
    }
  }
  return { notBefore: readTime(der, times[0]!), notAfter: readTime(der, times[1]!), extensions };
}

/** BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL } */
function readBasicConstraints(v: Uint8Array): { ca: boolean; pathLength: number | undefined } {
  const s = readWhole(v, TAG.SEQUENCE, 'basicConstraints');
  const parts = childList(v, s);
  let ca = false;
  let i = 0;
  if (parts[i]?.tag === TAG.BOOLEAN) {
    const b = content(v, parts[i++]!);
    if (b.length !== 1) throw new DerError('bad boolean');
    ca = b[0] !== 0;
  }
  let pathLength: number | undefined;
  if (parts[i]?.tag === TAG.INTEGER) {
    const n = content(v, parts[i++]!);
    if (n.length === 0 || n.length > 4 || n[0]! & 0x80 || (n.length > 1 && n[0] === 0 && !(n[1]! & 0x80))) throw new DerError('bad pathLenConstraint');
    pathLength = n.reduce((acc, b) => acc * 256 + b, 0);
  }
  if (i !== parts.length) throw new DerError('trailing fields in basicConstraints');
  return { ca, pathLength };
}

/** KeyUsage ::= BIT STRING; bit n (the first byte's high bit is bit 0) becomes 1 << n. */
function readKeyUsage(v: Uint8Array): number {
  const c = content(v, readWhole(v, TAG.BIT_STRING, 'keyUsage'));
  if (c.length < 1 || c[0]! > 7 || (c.length === 1 && c[0] !== 0)) throw new DerError('bad keyUsage');
  let usages = 0;
  for (let bit = 0; bit < (c.length - 1) * 8; bit++) {
    if (c[1 + (bit >> 3)]! & (0x80 >> (bit & 7))) usages |= 2 ** bit;
  }
  return usages;
}

/** GeneralNames ::= SEQUENCE OF GeneralName; uniformResourceIdentifier is [6] IMPLICIT IA5String. */
function readUriSans(v: Uint8Array): string[] {
  const s = readWhole(v, TAG.SEQUENCE, 'subjectAltName');
  const uris: string[] = [];
  for (const name of childList(v, s)) {
    if (name.tag !== 0x86) continue;
    // Whatever the bytes, SpiffeId.parse refuses anything but a SPIFFE ID.
    uris.push(Buffer.from(content(v, name)).toString('latin1'));
  }
  return uris;
}

/**
 * Parses one DER certificate: Node's X509Certificate (OpenSSL) for the
 * signature checks, the DER reader for the fields the rules need. Each
 * extension the rules depend on must appear at most once: with duplicates,
 * two parsers (ours and a peer's TLS stack) could each pick a different one
 * and disagree about what the certificate says.
 */
function parseCert(der: Uint8Array, label: string): ParsedCert {
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  let node: X509Certificate;
  let tbs: TbsFields;
  try {
    node = new X509Certificate(buf);
    if (Buffer.compare(node.raw, buf) !== 0) throw invalid(`x509svid: ${label} has trailing data after the certificate`);
    tbs = readTbs(der);
  } catch (err) {
    if (err instanceof AnchorageError) throw err;
    throw invalid(`x509svid: ${label} could not be parsed`, err);
  }

  const byOid = (oid: string) => tbs.extensions.filter((e) => e.oid === oid).map((e) => e.value);
  try {
    const bcExt = single(byOid(OID_BASIC_CONSTRAINTS), label, 'basicConstraints');
    const kuExt = single(byOid(OID_KEY_USAGE), label, 'keyUsage');
    const sanExt = single(byOid(OID_SUBJECT_ALT_NAME), label, 'subjectAltName');
    const bc = bcExt ? readBasicConstraints(bcExt) : undefined;
    return {
      der,
      node,
      ca: bc?.ca,
      pathLength: bc?.pathLength,
      keyUsage: kuExt ? readKeyUsage(kuExt) : undefined,
      uris: sanExt ? readUriSans(sanExt) : [],
      notBefore: tbs.notBefore,
      notAfter: tbs.notAfter,
    };
  } catch (err) {
    if (err instanceof AnchorageError) throw err;
    throw invalid(`x509svid: ${label} has a malformed extension`, err);
  }
}

function idFromUris(uris: string[], label: string): SpiffeId {
  if (uris.length === 0) throw invalid(`x509svid: ${label} has no URI SAN`);
  if (uris.length > 1) throw invalid(`x509svid: ${label} has ${uris.length} URI SANs, want exactly one`);
  try {
    return SpiffeId.parse(uris[0]!);
  } catch (err) {
    throw invalid(`x509svid: ${label} URI SAN is not a valid SPIFFE ID: ${errorMessage(err)}`, err);
  }
}

/**
 * The URI SANs of a certificate as Node reports them (`subjectaltname` on a
 * TLS peer certificate, `subjectAltName` on an X509Certificate), without
 * parsing the certificate again. For checks on certificates a TLS stack has
 * already verified.
 */
export function uriSansOf(cert: { subjectaltname?: string | undefined; subjectAltName?: string | undefined }): string[] {
  return (cert.subjectaltname ?? cert.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}

/**
 * Reads the SPIFFE ID of an X509-SVID (leaf or signing certificate) from
 * its single URI SAN, without verifying anything else. For use on
 * certificates whose chain has already been verified, e.g. by a TLS stack
 * configured with the trust domain's authorities.
 */
export function parseSpiffeIdFromCert(cert: X509Certificate | Uint8Array): SpiffeId {
  const der = cert instanceof X509Certificate ? new Uint8Array(cert.raw) : cert;
  return idFromUris(parseCert(der, 'certificate').uris, 'certificate');
}

function labelOf(i: number): string {
  return i === 0 ? 'leaf' : `intermediate ${i}`;
}

function checkValidity(c: ParsedCert, label: string, now: Date): void {
  if (now.getTime() < c.notBefore.getTime()) throw invalid(`x509svid: ${label} is not yet valid`);
  if (now.getTime() > c.notAfter.getTime()) throw invalid(`x509svid: ${label} has expired`);
}

/** X509-SVID.md §4.3 and §5: what makes a certificate an acceptable leaf. */
function checkLeaf(leaf: ParsedCert): void {
  if (leaf.ca === true) throw invalid('x509svid: leaf must not be a CA');
  if (leaf.keyUsage === undefined) throw invalid('x509svid: leaf has no key usage extension');
  if (leaf.keyUsage & KU_KEY_CERT_SIGN) throw invalid('x509svid: leaf key usage must not include keyCertSign');
  if (leaf.keyUsage & KU_CRL_SIGN) throw invalid('x509svid: leaf key usage must not include cRLSign');
  if (!(leaf.keyUsage & KU_DIGITAL_SIGNATURE)) throw invalid('x509svid: leaf key usage must include digitalSignature');
}

/**
 * Signing certificates must be CAs allowed to sign certificates, and must
 * respect the path length limit set on them: the number of intermediates
 * between them and the leaf.
 */
function checkSigner(c: ParsedCert, label: string, intermediatesBelow: number): void {
  if (c.ca !== true) throw invalid(`x509svid: ${label} must be a CA`);
  if (c.keyUsage === undefined || !(c.keyUsage & KU_KEY_CERT_SIGN)) {
    throw invalid(`x509svid: ${label} key usage must include keyCertSign`);
  }
  if (c.pathLength !== undefined && intermediatesBelow > c.pathLength) {
    throw invalid(`x509svid: ${label} path length constraint exceeded`);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/**
 * Verifies an X509-SVID chain (DER, leaf first) against the X.509
 * authorities of the leaf's own trust domain.
 *
 * The trust domain is taken from the leaf before any signature is checked
 * and only that trust domain's bundle is consulted, so an authority of one
 * trust domain can never vouch for an identity in another — the rule that
 * keeps federation from turning into one shared root of trust.
 */
export function verifyX509Svid(chain: Uint8Array[], bundleFor: X509BundleSource, now: Date = new Date()): VerifiedX509Svid {
  if (chain.length === 0) throw invalid('x509svid: chain is empty');
  const certs = chain.map((der, i) => parseCert(der, labelOf(i)));
  const leaf = certs[0]!;

  const spiffeId = idFromUris(leaf.uris, 'leaf');
  checkLeaf(leaf);
  for (let i = 1; i < certs.length; i++) checkSigner(certs[i]!, labelOf(i), i - 1);
  certs.forEach((c, i) => checkValidity(c, labelOf(i), now));

  const td = spiffeId.trustDomain;
  const bundle = bundleFor(td);
  if (!bundle) throw invalid(`x509svid: no X.509 bundle for trust domain "${td.name}"`);
  if (!bundle.trustDomain.equals(td)) {
    throw invalid(`x509svid: bundle for trust domain "${bundle.trustDomain.name}" offered for "${td.name}"`);
  }

  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i]!;
    const parent = certs[i + 1]!;
    if (!child.node.checkIssued(parent.node)) {
      throw invalid(`x509svid: ${labelOf(i)} was not issued by ${labelOf(i + 1)}`);
    }
    if (!signedBy(child.node, parent.node)) {
      throw invalid(`x509svid: signature of ${labelOf(i)} does not verify with ${labelOf(i + 1)}`);
    }
  }

  const last = certs[certs.length - 1]!;
  // A chain that ends in one of the authorities is anchored. A lone leaf
  // is never its own anchor: leaves are not CAs.
  const anchoredInChain = certs.length > 1 && bundle.has(last.der);
  if (!anchoredInChain) findAnchor(last, certs.length - 1, bundle, now, labelOf(certs.length - 1));

  return { spiffeId, chain: certs.map((c) => c.node) };
}

/**
 * Finds an authority in the bundle that issued and signed `last`. Among
 * several (as during root rotation) any valid one will do; if only expired
 * or constrained ones match, the first reason is reported, because "not
 * signed by your authorities" would send an operator looking in the wrong
 * place.
 */
function findAnchor(last: ParsedCert, intermediates: number, bundle: X509Bundle, now: Date, label: string): void {
  let reason: string | undefined;
  for (const candidate of bundle.certificates()) {
    // Cheap checks on Node's already-parsed certificate first; the full
    // parse is only for the authority that actually signed.
    if (sameBytes(candidate.raw, last.der) || !signedBy(last.node, candidate)) continue;
    let authority: ParsedCert;
    try {
      authority = parseCert(new Uint8Array(candidate.raw), 'authority');
    } catch {
      continue;
    }
    if (now.getTime() < authority.notBefore.getTime()) {
      reason ??= 'x509svid: the issuing authority is not yet valid';
      continue;
    }
    if (now.getTime() > authority.notAfter.getTime()) {
      reason ??= 'x509svid: the issuing authority has expired';
      continue;
    }
    if (authority.pathLength !== undefined && intermediates > authority.pathLength) {
      reason ??= 'x509svid: the issuing authority path length constraint exceeded';
      continue;
    }
    return;
  }
  throw invalid(
    reason ?? `x509svid: ${label} is not signed by an authority of trust domain "${bundle.trustDomain.name}"`,
  );
}

/** Issuer name (and key identifier, when present) match, and the signature verifies. */
function signedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    // A key of a type that cannot check this signature algorithm.
    return false;
  }
}
