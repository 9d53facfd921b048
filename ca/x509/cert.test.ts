import 'reflect-metadata';
import * as px509 from '@peculiar/x509';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash, generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAnchorageError } from '@anchorage/client/errors';
import { toPem } from '@anchorage/client/pem';
import type { KeyType } from '../keymanager/KeyManager.js';
import { LeafEncoder, assembleCertificate, encodeCaTbs, randomSerial, subjectKeyIdentifier } from './cert.js';
import type { LeafParams } from './cert.js';
import { encodeName } from './name.js';

// ---------------------------------------------------------------------------
// Helpers: software keys standing in for the HSM, and the three cross-checks.

interface TestKey {
  type: KeyType;
  privateKey: KeyObject;
  publicKey: KeyObject;
  spki: Buffer;
}

function newKey(type: KeyType): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: type === 'ec-p256' ? 'prime256v1' : 'secp384r1',
  });
  return { type, privateKey, publicKey, spki: publicKey.export({ format: 'der', type: 'spki' }) };
}

/** Signs like the KeyManager: hash fixed by key type, IEEE P1363 output. */
function p1363Sign(key: TestKey, data: Uint8Array): Buffer {
  return sign(key.type === 'ec-p256' ? 'sha256' : 'sha384', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
}

/** SKI computed independently of cert.ts: SHA-1 of the uncompressed point. */
function expectedSki(spki: Buffer): Buffer {
  const pointLen = spki.length === 91 ? 65 : 97;
  return createHash('sha1').update(spki.subarray(spki.length - pointLen)).digest();
}

interface TestCa {
  key: TestKey;
  der: Buffer;
  subject: Buffer;
  notBefore: Date;
}

const HOUR = 3600_000;
const TD = 'spiffe://example.org';

function makeRoot(type: KeyType, notAfter: Date): TestCa {
  const key = newKey(type);
  const subject = encodeName([
    { type: 'C', value: 'US' },
    { type: 'O', value: 'Anchorage Test' },
    { type: 'CN', value: 'Test Root' },
  ]);
  const notBefore = new Date(Date.now() - HOUR);
  const tbs = encodeCaTbs({
    serial: randomSerial(),
    issuerName: subject,
    subject,
    notBefore,
    notAfter,
    spki: key.spki,
    signerKeyType: type,
    spiffeId: TD,
    pathLen: 1,
  });
  return { key, der: assembleCertificate(tbs, type, p1363Sign(key, tbs)), subject, notBefore };
}

function makeIntermediate(root: TestCa, type: KeyType, notAfter: Date): TestCa {
  const key = newKey(type);
  const subject = encodeName([
    { type: 'O', value: 'Anchorage Test' },
    { type: 'OU', value: 'issuing' },
    { type: 'CN', value: 'Test Intermediate' },
    { type: 'serialNumber', value: '42' },
  ]);
  const notBefore = new Date(Date.now() - HOUR);
  const tbs = encodeCaTbs({
    serial: randomSerial(),
    issuerName: root.subject,
    issuerSki: expectedSki(root.key.spki),
    subject,
    notBefore,
    notAfter,
    spki: key.spki,
    signerKeyType: root.key.type,
    spiffeId: TD,
  });
  return { key, der: assembleCertificate(tbs, root.key.type, p1363Sign(root.key, tbs)), subject, notBefore };
}

function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `openssl x509 -text` on each certificate, then a strict chain verification. */
function opensslVerify(root: Uint8Array, intermediate: Uint8Array, leaf: Uint8Array): string {
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-x509-'));
  try {
    writeFileSync(join(dir, 'root.pem'), toPem('CERTIFICATE', root));
    writeFileSync(join(dir, 'intermediate.pem'), toPem('CERTIFICATE', intermediate));
    writeFileSync(join(dir, 'leaf.pem'), toPem('CERTIFICATE', leaf));
    for (const f of ['root.pem', 'intermediate.pem', 'leaf.pem']) openssl(['x509', '-in', f, '-noout', '-text'], dir);
    return openssl(['verify', '-x509_strict', '-CAfile', 'root.pem', '-untrusted', 'intermediate.pem', 'leaf.pem'], dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const KU = px509.KeyUsageFlags;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

function ext<T extends px509.Extension>(cert: px509.X509Certificate, type: new (raw: ArrayBuffer) => T): T {
  const e = cert.getExtension<T>(type as never);
  expect(e, type.name).not.toBeNull();
  return e!;
}

/** Every CA-profile assertion, through @peculiar/x509. */
function checkCaWithPeculiar(der: Buffer, ca: TestCa, issuerSpki: Buffer, pathLen?: number): void {
  const cert = new px509.X509Certificate(der);
  expect(cert.extensions).toHaveLength(5);
  const bc = ext(cert, px509.BasicConstraintsExtension);
  expect(bc.critical).toBe(true);
  expect(bc.ca).toBe(true);
  expect(bc.pathLength).toBe(pathLen);
  const ku = ext(cert, px509.KeyUsagesExtension);
  expect(ku.critical).toBe(true);
  expect(ku.usages).toBe(KU.digitalSignature | KU.keyCertSign | KU.cRLSign);
  expect(ext(cert, px509.SubjectKeyIdentifierExtension).keyId).toBe(expectedSki(ca.key.spki).toString('hex'));
  expect(ext(cert, px509.AuthorityKeyIdentifierExtension).keyId).toBe(expectedSki(issuerSpki).toString('hex'));
  const san = ext(cert, px509.SubjectAlternativeNameExtension);
  expect(san.critical).toBe(false);
  expect(san.names.items.map((n) => [n.type, n.value])).toEqual([['url', TD]]);
  expect(cert.getExtension(px509.ExtendedKeyUsageExtension)).toBeNull();
}

/** Every X509-SVID-profile assertion, through @peculiar/x509. */
function checkLeafWithPeculiar(
  der: Buffer,
  p: { spiffeId: string; dnsNames: string[]; spki: Buffer; issuerSpki: Buffer; sanCritical: boolean },
): px509.X509Certificate {
  const cert = new px509.X509Certificate(der);
  expect(cert.extensions).toHaveLength(6);
  const bc = ext(cert, px509.BasicConstraintsExtension);
  expect(bc.critical).toBe(true);
  expect(bc.ca).toBe(false);
  expect(bc.pathLength).toBeUndefined();
  const ku = ext(cert, px509.KeyUsagesExtension);
  expect(ku.critical).toBe(true);
  expect(ku.usages).toBe(KU.digitalSignature);
  const eku = ext(cert, px509.ExtendedKeyUsageExtension);
  expect(eku.critical).toBe(false);
  expect(eku.usages).toEqual([SERVER_AUTH, CLIENT_AUTH]);
  const ski = ext(cert, px509.SubjectKeyIdentifierExtension);
  expect(ski.critical).toBe(false);
  expect(ski.keyId).toBe(expectedSki(p.spki).toString('hex'));
  const aki = ext(cert, px509.AuthorityKeyIdentifierExtension);
  expect(aki.critical).toBe(false);
  expect(aki.keyId).toBe(expectedSki(p.issuerSpki).toString('hex'));
  expect(aki.certId).toBeUndefined();
  const san = ext(cert, px509.SubjectAlternativeNameExtension);
  expect(san.critical).toBe(p.sanCritical);
  expect(san.names.items.map((n) => [n.type, n.value])).toEqual([
    ['url', p.spiffeId],
    ...p.dnsNames.map((d) => ['dns', d]),
  ]);
  expect(Buffer.from(cert.publicKey.rawData).equals(p.spki)).toBe(true);
  expect(cert.serialNumber).toMatch(/^[0-9a-f]+$/);
  return cert;
}

/** Node's X509Certificate view: SAN string, issuer, validity, signature, issuance. */
function checkWithNode(der: Buffer, issuerDer: Buffer, issuerKey: TestKey, expected: { san: string; notBefore: Date; notAfter: Date }): X509Certificate {
  const cert = new X509Certificate(der);
  const issuer = new X509Certificate(issuerDer);
  expect(cert.subjectAltName).toBe(expected.san);
  expect(cert.issuer).toBe(issuer.subject);
  expect(new Date(cert.validFrom).getTime()).toBe(Math.floor(expected.notBefore.getTime() / 1000) * 1000);
  expect(new Date(cert.validTo).getTime()).toBe(Math.floor(expected.notAfter.getTime() / 1000) * 1000);
  expect(cert.verify(issuerKey.publicKey)).toBe(true);
  expect(cert.checkIssued(issuer)).toBe(true);
  return cert;
}

function leafParams(over: Partial<LeafParams> = {}): LeafParams {
  const now = Date.now();
  return {
    serial: randomSerial(),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + HOUR),
    spiffeId: `${TD}/ns/default/sa/web`,
    dnsNames: [],
    spki: newKey('ec-p256').spki,
    ...over,
  };
}

// ---------------------------------------------------------------------------

describe.each([
  ['ec-p256', 'ec-p256'],
  ['ec-p384', 'ec-p384'],
  ['ec-p384', 'ec-p256'],
  ['ec-p256', 'ec-p384'],
] as Array<[KeyType, KeyType]>)('chain with %s root and %s intermediate', (rootType, interType) => {
  const root = makeRoot(rootType, new Date(Date.now() + 48 * HOUR));
  const inter = makeIntermediate(root, interType, new Date(Date.now() + 24 * HOUR));
  const encoder = new LeafEncoder({ issuerCertDer: inter.der, issuerKeyType: interType });

  it('encodes a self-signed root that all three parsers accept', () => {
    checkCaWithPeculiar(root.der, root, root.key.spki, 1);
    const cert = new X509Certificate(root.der);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('C=US\nO=Anchorage Test\nCN=Test Root');
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.verify(root.key.publicKey)).toBe(true);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.subjectAltName).toBe(`URI:${TD}`);
    expect(new px509.X509Certificate(root.der).signatureAlgorithm.hash.name).toBe(rootType === 'ec-p256' ? 'SHA-256' : 'SHA-384');
  });

  it('encodes an intermediate signed by the root', () => {
    checkCaWithPeculiar(inter.der, inter, root.key.spki, undefined);
    const cert = checkWithNode(inter.der, root.der, root.key, {
      san: `URI:${TD}`,
      notBefore: inter.notBefore,
      notAfter: new Date(new X509Certificate(inter.der).validTo),
    });
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('O=Anchorage Test\nOU=issuing\nCN=Test Intermediate\nserialNumber=42');
  });

  it('exposes the issuer fields it copied', () => {
    expect(encoder.issuerName.equals(inter.subject)).toBe(true);
    expect(encoder.issuerSki.equals(expectedSki(inter.key.spki))).toBe(true);
    expect(encoder.issuerNotAfter.getTime()).toBe(new Date(new X509Certificate(inter.der).validTo).getTime());
  });

  it('encodes a leaf without DNS names', () => {
    const p = leafParams();
    const tbs = encoder.tbs(p);
    const der = encoder.assemble(tbs, p1363Sign(inter.key, tbs));
    checkLeafWithPeculiar(der, { ...p, spki: p.spki as Buffer, issuerSpki: inter.key.spki, dnsNames: [], sanCritical: false });
    const cert = checkWithNode(der, inter.der, inter.key, { san: `URI:${p.spiffeId}`, ...p });
    expect(cert.ca).toBe(false);
    expect(cert.subject).toBe('O=Anchorage');
    const out = opensslVerify(root.der, inter.der, der);
    expect(out).toContain('leaf.pem: OK');
  });

  it('encodes a leaf with DNS names (first becomes the CN)', () => {
    const dnsNames = ['web.example.org', '*.web.example.org', 'localhost'];
    const p = leafParams({ dnsNames });
    const tbs = encoder.tbs(p);
    const der = encoder.assemble(tbs, p1363Sign(inter.key, tbs));
    checkLeafWithPeculiar(der, { ...p, spki: p.spki as Buffer, issuerSpki: inter.key.spki, dnsNames, sanCritical: false });
    const cert = checkWithNode(der, inter.der, inter.key, {
      san: `URI:${p.spiffeId}, DNS:web.example.org, DNS:*.web.example.org, DNS:localhost`,
      ...p,
    });
    expect(cert.subject).toBe('O=Anchorage\nCN=web.example.org');
    expect(cert.checkHost('a.web.example.org')).toBe('*.web.example.org');
    expect(cert.checkHost('other.example.org')).toBeUndefined();
    expect(opensslVerify(root.der, inter.der, der)).toContain('leaf.pem: OK');
  });
});

describe('LeafEncoder details', () => {
  const root = makeRoot('ec-p256', new Date(Date.UTC(2070, 0, 1)));
  const inter = makeIntermediate(root, 'ec-p256', new Date(Date.UTC(2060, 0, 1)));
  const encoder = new LeafEncoder({ issuerCertDer: inter.der, issuerKeyType: 'ec-p256' });
  const sign256 = (tbs: Buffer) => encoder.assemble(tbs, p1363Sign(inter.key, tbs));

  it('uses GeneralizedTime for validity past 2049 and UTCTime before', () => {
    const notBefore = new Date(Date.UTC(2049, 11, 31, 23, 59, 59, 999));
    const notAfter = new Date(Date.UTC(2050, 0, 1, 0, 0, 1));
    const tbs = encoder.tbs(leafParams({ notBefore, notAfter }));
    expect(tbs.includes(Buffer.from('\x17\x0d491231235959Z', 'latin1'))).toBe(true);
    expect(tbs.includes(Buffer.from('\x18\x0f20500101000001Z', 'latin1'))).toBe(true);
    const der = sign256(tbs);
    const cert = new X509Certificate(der);
    expect(new Date(cert.validFrom).toISOString()).toBe('2049-12-31T23:59:59.000Z');
    expect(new Date(cert.validTo).toISOString()).toBe('2050-01-01T00:00:01.000Z');
    const pc = new px509.X509Certificate(der);
    expect(pc.notAfter.toISOString()).toBe('2050-01-01T00:00:01.000Z');
    // A currently valid chain that crosses 2050 verifies with openssl too.
    const live = sign256(encoder.tbs(leafParams({ notAfter: new Date(Date.UTC(2051, 5, 1)) })));
    expect(opensslVerify(root.der, inter.der, live)).toContain('leaf.pem: OK');
    expect(new X509Certificate(live).verify(inter.key.publicKey)).toBe(true);
  });

  it('randomSerial: 16 octets, positive with the top bit clear and the next set, never repeated across pool refills', () => {
    const seen = new Set<string>();
    // 2,000 serials cross several 256-serial refills of the pool.
    for (let i = 0; i < 2000; i++) {
      const s = randomSerial();
      expect(s.length).toBe(16);
      expect(s[0]! & 0xc0).toBe(0x40);
      seen.add(s.toString('hex'));
    }
    expect(seen.size).toBe(2000);
    // A serial handed out stays as it was when later ones are drawn.
    const first = randomSerial();
    const copy = Buffer.from(first);
    for (let i = 0; i < 600; i++) randomSerial();
    expect(first.equals(copy)).toBe(true);
  });

  it('pads a serial with the high bit set instead of making it negative', () => {
    const serial = Buffer.from('ff00112233445566778899aabbccddee', 'hex');
    const der = sign256(encoder.tbs(leafParams({ serial })));
    expect(new X509Certificate(der).serialNumber.toLowerCase()).toMatch(/^0?0?ff00112233445566778899aabbccddee$/);
    expect(new px509.X509Certificate(der).serialNumber.replace(/^00/, '')).toBe('ff00112233445566778899aabbccddee');
    expect(der.includes(Buffer.from('021100ff00112233', 'hex'))).toBe(true);
  });

  it('strips leading zero bytes from serials and allows 20 octets', () => {
    const der = sign256(encoder.tbs(leafParams({ serial: Buffer.from('0000007f01', 'hex') })));
    expect(new px509.X509Certificate(der).serialNumber).toBe('7f01');
    const twenty = Buffer.alloc(20, 0x11);
    expect(() => encoder.tbs(leafParams({ serial: twenty }))).not.toThrow();
  });

  it('randomSerial is 16 positive bytes with a fixed-length encoding', () => {
    for (let i = 0; i < 100; i++) {
      const s = randomSerial();
      expect(s).toHaveLength(16);
      expect(s[0]! & 0xc0).toBe(0x40);
    }
  });

  it('marks the SAN critical when the subject is empty', () => {
    const p = leafParams({ subject: encodeName([]) });
    const der = sign256(encoder.tbs(p));
    checkLeafWithPeculiar(der, { ...p, spki: p.spki as Buffer, issuerSpki: inter.key.spki, dnsNames: [], sanCritical: true });
    const cert = checkWithNode(der, inter.der, inter.key, { san: `URI:${p.spiffeId}`, ...p });
    expect(cert.subject).toBeUndefined();
    expect(opensslVerify(root.der, inter.der, der)).toContain('leaf.pem: OK');
  });

  it('copies a caller-supplied subject verbatim', () => {
    const subject = encodeName([{ type: 'O', value: 'Acme' }, { type: 'CN', value: 'Ünïcödé' }]);
    const der = sign256(encoder.tbs(leafParams({ subject, dnsNames: ['a.example'] })));
    expect(new X509Certificate(der).subject).toBe('O=Acme\nCN=Ünïcödé');
    expect(der.includes(subject)).toBe(true);
  });

  it('omits the CN when the first DNS name is longer than 64 characters', () => {
    const long = `${'a'.repeat(60)}.example.org`;
    const der = sign256(encoder.tbs(leafParams({ dnsNames: [long] })));
    expect(new X509Certificate(der).subject).toBe('O=Anchorage');
  });

  it('works with a P-384 issuer (ecdsa-with-SHA384) and RSA / Ed25519 leaf keys', () => {
    const r = makeRoot('ec-p384', new Date(Date.now() + 48 * HOUR));
    const i = makeIntermediate(r, 'ec-p384', new Date(Date.now() + 24 * HOUR));
    const enc = new LeafEncoder({ issuerCertDer: i.der, issuerKeyType: 'ec-p384' });
    for (const spki of [
      generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'der', type: 'spki' }),
      generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }),
    ]) {
      const p = leafParams({ spki, dnsNames: ['svc.example'] });
      const tbs = enc.tbs(p);
      const der = enc.assemble(tbs, p1363Sign(i.key, tbs));
      const pc = new px509.X509Certificate(der);
      expect(pc.signatureAlgorithm.hash.name).toBe('SHA-384');
      expect(ext(pc, px509.SubjectKeyIdentifierExtension).keyId).toBe(
        createHash('sha1').update(spki.subarray(spki.length - (spki.length > 100 ? 270 : 32))).digest('hex'),
      );
      checkWithNode(der, i.der, i.key, { san: `URI:${p.spiffeId}, DNS:svc.example`, ...p });
      expect(opensslVerify(r.der, i.der, der)).toContain('leaf.pem: OK');
    }
  });

  it('subjectKeyIdentifier matches the RFC 5280 method 1 value', () => {
    const k = newKey('ec-p384');
    expect(subjectKeyIdentifier(k.spki).equals(expectedSki(k.spki))).toBe(true);
  });

  function rejects(fn: () => unknown, msg: RegExp | string): void {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(isAnchorageError(err, 'invalid_argument'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(msg);
  }

  it('rejects bad DNS names', () => {
    for (const bad of ['', 'Upper.example', 'a..b', '-a.example', 'a-.example', 'a.example.', '*', '*.', 'a.*.example',
      'x*.example', 'under_score.example', 'sp ace', 'ünï.example', '10.0.0.1', `${'a'.repeat(64)}.example`,
      `${'abcdefgh.'.repeat(28)}example`]) {
      rejects(() => encoder.tbs(leafParams({ dnsNames: [bad] })), /^x509: (invalid dns name|dns name)/);
    }
    rejects(() => encoder.tbs(leafParams({ dnsNames: ['a.example', 'a.example'] })), 'x509: duplicate dns name a.example');
  });

  it('rejects bad validity', () => {
    const now = Date.now();
    rejects(() => encoder.tbs(leafParams({ notBefore: new Date(now), notAfter: new Date(now - 1000) })), 'x509: notAfter must be after notBefore');
    rejects(() => encoder.tbs(leafParams({ notBefore: new Date(now), notAfter: new Date(now) })), 'x509: notAfter must be after notBefore');
    rejects(() => encoder.tbs(leafParams({ notBefore: new Date(NaN) })), 'x509: notBefore is not a valid date');
    rejects(
      () => encoder.tbs(leafParams({ notAfter: new Date(Date.UTC(2061, 0, 1)) })),
      'x509: leaf notAfter is after the issuer certificate notAfter',
    );
  });

  it('rejects bad SPIFFE IDs, serials, keys and subjects', () => {
    for (const id of ['', 'https://example.org/a', 'spiffe://', 'spiffe://Example.org/a', 'spiffe://example.org/a/',
      'spiffe://example.org//a', 'spiffe://example.org/a/../b', 'spiffe://example.org/%41', 'spiffe://ex:443/a']) {
      rejects(() => encoder.tbs(leafParams({ spiffeId: id })), /^x509: (invalid spiffe id|spiffe id must not be empty)/);
    }
    rejects(() => encoder.tbs(leafParams({ serial: new Uint8Array(0) })), 'x509: serial must not be empty');
    rejects(() => encoder.tbs(leafParams({ serial: new Uint8Array(4) })), 'x509: serial must be positive');
    rejects(() => encoder.tbs(leafParams({ serial: Buffer.alloc(20, 0x80) })), 'x509: serial longer than 20 octets');
    rejects(() => encoder.tbs(leafParams({ spki: Buffer.from('3003020100', 'hex') })), /^x509: subject public key info is not valid DER/);
    const spki = newKey('ec-p256').spki;
    rejects(() => encoder.tbs(leafParams({ spki: Buffer.concat([spki, Buffer.from([0])]) })), /^x509: subject public key info is not valid DER/);
    rejects(() => encoder.tbs(leafParams({ subject: Buffer.from([0x31, 0x00]) })), /^x509: subject is not a DER Name/);
  });

  it('rejects signatures of the wrong size and a mismatched issuer key type', () => {
    const tbs = encoder.tbs(leafParams());
    rejects(() => encoder.assemble(tbs, Buffer.alloc(96, 1)), 'x509: ec-p256 signature must be 64 bytes (p1363), got 96');
    rejects(() => encoder.assemble(tbs, Buffer.alloc(64, 0)), 'x509: ecdsa signature has a zero component');
    rejects(() => new LeafEncoder({ issuerCertDer: inter.der, issuerKeyType: 'ec-p384' }), 'x509: issuer certificate key is ec-p256, expected ec-p384');
    rejects(() => new LeafEncoder({ issuerCertDer: inter.der.subarray(1), issuerKeyType: 'ec-p256' }), /^x509: issuer certificate is not valid DER/);
  });
});

describe('encodeCaTbs', () => {
  const key = newKey('ec-p256');
  const subject = encodeName([{ type: 'CN', value: 'r' }]);
  const base = {
    serial: randomSerial(),
    issuerName: subject,
    subject,
    notBefore: new Date(),
    notAfter: new Date(Date.now() + HOUR),
    spki: key.spki,
    signerKeyType: 'ec-p256' as const,
  };

  it('omits the SAN without a SPIFFE ID and encodes pathLen 0', () => {
    const tbs = encodeCaTbs({ ...base, pathLen: 0 });
    const cert = new px509.X509Certificate(assembleCertificate(tbs, 'ec-p256', p1363Sign(key, tbs)));
    expect(cert.extensions).toHaveLength(4);
    expect(ext(cert, px509.BasicConstraintsExtension).pathLength).toBe(0);
    expect(ext(cert, px509.AuthorityKeyIdentifierExtension).keyId).toBe(expectedSki(key.spki).toString('hex'));
  });

  it('rejects a SPIFFE ID with a path, empty names and bad pathLen', () => {
    expect(() => encodeCaTbs({ ...base, spiffeId: 'spiffe://example.org/ca' })).toThrow('x509: ca spiffe id must not have a path');
    expect(() => encodeCaTbs({ ...base, subject: encodeName([]) })).toThrow('x509: ca subject must not be empty');
    expect(() => encodeCaTbs({ ...base, pathLen: -1 })).toThrow('x509: pathLen must be a non-negative integer');
    expect(() => encodeCaTbs({ ...base, notAfter: base.notBefore })).toThrow('x509: notAfter must be after notBefore');
  });
});
