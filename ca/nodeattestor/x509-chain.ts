// Certificate path checks for node attestation: an EK certificate to the
// TPM manufacturers' CAs (tpm), a node certificate to the operator's CA
// bundle (x509pop). Node's X509Certificate verifies signatures and issuer
// names but builds no path and ignores extensions; so extensions are read
// with @peculiar/x509 and the rules are here. Critical extensions we do not
// handle are refused, as RFC 5280 requires; the ones we handle include the
// critical subjectAltName of EK certificates, which holds only a DirName
// (TCG EK Credential Profile), and their EKU 2.23.133.8.1.
import 'reflect-metadata';
import { createHash, X509Certificate } from 'node:crypto';
import { BasicConstraintsExtension, KeyUsagesExtension, X509Certificate as PeculiarCertificate } from '@peculiar/x509';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { AnchorageError, errorMessage, invalid } from '../../common/errors.js';
import { fromPem } from '../../common/pem.js';
import { readConfigFile } from '../../common/safe-file.js';

/** Extensions whose meaning we check or which constrain nothing we rely on. */
const HANDLED_CRITICAL = new Set([
  '2.5.29.15', // keyUsage
  '2.5.29.19', // basicConstraints
  '2.5.29.17', // subjectAltName
  '2.5.29.37', // extKeyUsage
]);
const KU_KEY_CERT_SIGN = 32;
/** Longest path we follow, anchors included. */
const MAX_PATH = 8;

/** One parsed certificate, both views. */
export interface ParsedCertificate {
  node: X509Certificate;
  pec: PeculiarCertificate;
  /** SHA-256 of the DER, hex. */
  fingerprint: string;
}

/** Parses one DER certificate; `label` names it in errors. */
export function parseCertificate(der: Buffer, label: string): ParsedCertificate {
  try {
    const node = new X509Certificate(der);
    if (!node.raw.equals(der)) throw new Error('trailing data');
    return { node, pec: new PeculiarCertificate(der), fingerprint: createHash('sha256').update(der).digest('hex') };
  } catch (err) {
    throw invalid(`${label} is not a DER certificate`, err);
  }
}

function checkCert(c: ParsedCertificate, label: string, nowMs: number, asCa: boolean): void {
  if (nowMs < c.pec.notBefore.getTime()) throw new AnchorageError('permission_denied', `${label} is not valid before ${c.pec.notBefore.toISOString()}`);
  if (nowMs > c.pec.notAfter.getTime()) throw new AnchorageError('permission_denied', `${label} expired at ${c.pec.notAfter.toISOString()}`);
  for (const e of c.pec.extensions) {
    if (e.critical && !HANDLED_CRITICAL.has(e.type)) throw new AnchorageError('permission_denied', `${label} has an unhandled critical extension ${e.type}`);
  }
  const bcExt = c.pec.extensions.find((e) => e.type === '2.5.29.19');
  const isCa = bcExt ? new BasicConstraintsExtension(bcExt.rawData).ca : false;
  if (asCa !== isCa) throw new AnchorageError('permission_denied', asCa ? `${label} is not a CA certificate` : `${label} is a CA certificate, not a leaf`);
  const kuExt = c.pec.extensions.find((e) => e.type === '2.5.29.15');
  if (asCa && kuExt && (new KeyUsagesExtension(kuExt.rawData).usages & KU_KEY_CERT_SIGN) === 0) {
    throw new AnchorageError('permission_denied', `${label} may not sign certificates (keyUsage)`);
  }
}

function issued(issuer: ParsedCertificate, child: ParsedCertificate): boolean {
  return child.node.checkIssued(issuer.node) && child.node.verify(issuer.node.publicKey);
}

/**
 * The path from `leaf` through some of `intermediates` to one of `anchors`,
 * leaf first and anchor last; every certificate in it valid at `nowMs`.
 * Throws `permission_denied` with `untrusted` when no anchor is reached.
 */
export function verifyPath(
  leaf: ParsedCertificate,
  intermediates: readonly ParsedCertificate[],
  anchors: readonly ParsedCertificate[],
  nowMs: number,
  labels: { leaf: string; untrusted: string },
): ParsedCertificate[] {
  checkCert(leaf, labels.leaf, nowMs, false);
  const path = [leaf];
  for (;;) {
    const cur = path[path.length - 1]!;
    const anchor = anchors.find((a) => issued(a, cur));
    if (anchor) {
      checkCert(anchor, `trusted CA ${anchor.node.subject.replace(/\n/g, ', ')}`, nowMs, true);
      path.push(anchor);
      return path;
    }
    const next = intermediates.find((i) => !path.includes(i) && issued(i, cur));
    if (!next || path.length + 1 >= MAX_PATH) throw new AnchorageError('permission_denied', labels.untrusted);
    checkCert(next, `intermediate ${path.length}`, nowMs, true);
    path.push(next);
  }
}

/** Most CA certificates one configured file or directory may hold. */
const MAX_CAS = 1024;

/**
 * The CA certificates (PEM) of config files: `ek_ca_dir`'s *.pem and *.crt,
 * or `ca_bundle_file`. Read once at server start; failures are
 * `failed_precondition` naming the key and the file.
 */
export function loadCaCertificates(files: readonly string[], key: string): ParsedCertificate[] {
  const out: ParsedCertificate[] = [];
  for (const file of files) {
    const text = readConfigFile(file, `node attestor: ${key}`, { maxBytes: 1 << 20 }).toString('utf8');
    let ders: Buffer[];
    try {
      ders = fromPem(text, 'CERTIFICATE', file);
    } catch (err) {
      throw new AnchorageError('failed_precondition', `node attestor: ${key}: ${errorMessage(err)}`);
    }
    for (const [i, der] of ders.entries()) {
      try {
        out.push(parseCertificate(der, `${file} certificate ${i + 1}`));
      } catch (err) {
        throw new AnchorageError('failed_precondition', `node attestor: ${key}: ${errorMessage(err)}`);
      }
      if (out.length > MAX_CAS) throw new AnchorageError('failed_precondition', `node attestor: ${key}: more than ${MAX_CAS} certificates`);
    }
  }
  if (out.length === 0) throw new AnchorageError('failed_precondition', `node attestor: ${key}: no CA certificate found`);
  return out;
}

/** The certificate files of a CA directory (`ek_ca_dir`): regular *.pem and *.crt files, sorted. */
export function caDirFiles(dir: string, key: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new AnchorageError('failed_precondition', `node attestor: ${key}: cannot read ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return names
    .filter((n) => /\.(pem|crt)$/.test(n))
    .sort()
    .map((n) => join(dir, n));
}
