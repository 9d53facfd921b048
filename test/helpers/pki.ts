/**
 * Test-only PKI builder: roots, intermediates and leaves made on the fly
 * with @peculiar/x509, so each test states exactly the property it breaks
 * instead of depending on opaque fixture files.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
  cryptoProvider,
  Extension,
  type X509Certificate as PeculiarCertificate,
} from '@peculiar/x509';

type WebCrypto = Parameters<typeof cryptoProvider.set>[0];
cryptoProvider.set(webcrypto as unknown as WebCrypto);
/** The key type @peculiar/x509 declares (the DOM CryptoKey, which Node's types spell differently). */
type LibKey = Parameters<typeof SubjectKeyIdentifierExtension.create>[0];

/** Key usage bits (RFC 5280 §4.2.1.3) as @peculiar/x509 numbers them. */
export const KU = {
  digitalSignature: 1,
  keyEncipherment: 4,
  keyAgreement: 16,
  keyCertSign: 32,
  cRLSign: 64,
} as const;

export type KeyKind = 'ec-p256' | 'ec-p384' | 'rsa';

export interface KeyPair {
  kind: KeyKind;
  privateKey: webcrypto.CryptoKey;
  publicKey: webcrypto.CryptoKey;
}

export async function newKeyPair(kind: KeyKind = 'ec-p256'): Promise<KeyPair> {
  const alg =
    kind === 'rsa'
      ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
      : { name: 'ECDSA', namedCurve: kind === 'ec-p384' ? 'P-384' : 'P-256' };
  const pair = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  return { kind, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

function signingAlgorithm(kind: KeyKind): { name: string; hash: string } {
  if (kind === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return { name: 'ECDSA', hash: kind === 'ec-p384' ? 'SHA-384' : 'SHA-256' };
}

export interface TestCert {
  cert: PeculiarCertificate;
  der: Uint8Array;
  keys: KeyPair;
}

export interface CertOptions {
  subject?: string;
  /** The issuing CA; omitted means self-signed. */
  issuer?: TestCert;
  /** Key pair for the new certificate; generated when omitted. */
  keys?: KeyPair;
  /** Signs with this key instead of the issuer's (to forge a signature). */
  signWith?: KeyPair;
  /** basicConstraints cA; `null` leaves the extension out. */
  ca?: boolean | null;
  pathLength?: number;
  /** Key usage bits; `null` leaves the extension out. */
  keyUsage?: number | null;
  uris?: string[];
  dns?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** Extensions added after the ones above (duplicates, malformed values). */
  extraExtensions?: Extension[];
}

const HOUR = 3600_000;

export async function makeCert(opts: CertOptions = {}): Promise<TestCert> {
  const keys = opts.keys ?? (await newKeyPair());
  const issuerKeys = opts.signWith ?? opts.issuer?.keys ?? keys;
  const extensions: Extension[] = [];
  if (opts.ca !== null) extensions.push(new BasicConstraintsExtension(opts.ca ?? false, opts.pathLength, true));
  if (opts.keyUsage !== null) extensions.push(new KeyUsagesExtension(opts.keyUsage ?? KU.digitalSignature, true));
  const names = [
    ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  if (names.length > 0) extensions.push(new SubjectAlternativeNameExtension(names, false));
  extensions.push(await SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as LibKey));
  if (opts.issuer) {
    extensions.push(await AuthorityKeyIdentifierExtension.create(opts.issuer.keys.publicKey as unknown as LibKey));
  }
  extensions.push(...(opts.extraExtensions ?? []));
  const subject = opts.subject ?? 'CN=test';
  const cert = await X509CertificateGenerator.create({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex').replace(/^[89a-f]/, '1'),
    subject,
    issuer: opts.issuer ? opts.issuer.cert.subject : subject,
    notBefore: opts.notBefore ?? new Date(Date.now() - HOUR),
    notAfter: opts.notAfter ?? new Date(Date.now() + 24 * HOUR),
    signingAlgorithm: signingAlgorithm(issuerKeys.kind),
    publicKey: keys.publicKey as unknown as LibKey,
    signingKey: issuerKeys.privateKey as unknown as LibKey,
    extensions,
  });
  return { cert, der: new Uint8Array(cert.rawData), keys };
}

/** A self-signed root CA for `td`, as a SPIFFE signing authority would look. */
export function makeRoot(td = 'example.org', opts: CertOptions = {}): Promise<TestCert> {
  return makeCert({
    subject: `CN=root ${td}`,
    ca: true,
    keyUsage: KU.keyCertSign | KU.cRLSign,
    uris: [`spiffe://${td}`],
    ...opts,
  });
}

/** An intermediate CA signed by `issuer`. */
export function makeIntermediate(issuer: TestCert, td = 'example.org', opts: CertOptions = {}): Promise<TestCert> {
  return makeCert({
    subject: `CN=intermediate ${td}`,
    issuer,
    ca: true,
    keyUsage: KU.keyCertSign | KU.cRLSign,
    uris: [`spiffe://${td}`],
    ...opts,
  });
}

/** An X509-SVID leaf for `id` signed by `issuer`. */
export function makeLeaf(issuer: TestCert, id = 'spiffe://example.org/workload', opts: CertOptions = {}): Promise<TestCert> {
  return makeCert({
    subject: 'CN=workload',
    issuer,
    ca: false,
    keyUsage: KU.digitalSignature | KU.keyEncipherment | KU.keyAgreement,
    uris: [id],
    ...opts,
  });
}
