import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import {
  BasicConstraintsExtension,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  X509Certificate as PeculiarCertificate,
} from '@peculiar/x509';
import { AnchorageError, errorMessage, invalid } from '../common/errors.js';
import type { X509Bundle } from './bundle.js';
import { SpiffeId, type TrustDomain } from './id.js';

/**
 * X509-SVID verification (X509-SVID.md).
 *
 * Node's X509Certificate verifies signatures and issuer names but does not
 * expose basicConstraints or keyUsage, and OpenSSL's own path validation
 * knows nothing of SPIFFE's leaf rules; so the extensions are read with
 * @peculiar/x509 and every rule is checked here explicitly. Verification is
 * per connection, not per issued SVID, so the slower parser is acceptable.
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

/** keyUsage bits as @peculiar/x509 reports them (RFC 5280 §4.2.1.3 order). */
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

/**
 * Parses one DER certificate with both parsers. Each extension the rules
 * depend on must appear at most once: with duplicates, two parsers could
 * each pick a different one and disagree about what the certificate says.
 */
function parseCert(der: Uint8Array, label: string): ParsedCert {
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  let node: X509Certificate;
  let pec: PeculiarCertificate;
  try {
    node = new X509Certificate(buf);
    pec = new PeculiarCertificate(buf);
  } catch (err) {
    throw invalid(`x509svid: ${label} could not be parsed`, err);
  }
  if (Buffer.compare(node.raw, buf) !== 0) throw invalid(`x509svid: ${label} has trailing data after the certificate`);

  const byOid = (oid: string) => pec.extensions.filter((e) => e.type === oid);
  try {
    const bcExt = single(byOid(OID_BASIC_CONSTRAINTS), label, 'basicConstraints');
    const kuExt = single(byOid(OID_KEY_USAGE), label, 'keyUsage');
    const sanExt = single(byOid(OID_SUBJECT_ALT_NAME), label, 'subjectAltName');
    const bc = bcExt ? new BasicConstraintsExtension(bcExt.rawData) : undefined;
    const ku = kuExt ? new KeyUsagesExtension(kuExt.rawData) : undefined;
    const san = sanExt ? new SubjectAlternativeNameExtension(sanExt.rawData) : undefined;
    return {
      der,
      node,
      ca: bc?.ca,
      pathLength: bc?.pathLength,
      keyUsage: ku?.usages,
      uris: san ? san.names.items.filter((n) => n.type === 'url').map((n) => n.value) : [],
      notBefore: pec.notBefore,
      notAfter: pec.notAfter,
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
