import 'reflect-metadata';
import * as px509 from '@peculiar/x509';
import { execFileSync } from 'node:child_process';
import { ECDH, constants, generateKeyPairSync, sign, webcrypto } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAnchorageError } from '@anchorage/client/errors';
import { toPem } from '@anchorage/client/pem';
import { NULL, bitString, encode, explicit, implicitConstructed, oid, seq, smallInteger } from '@anchorage/client/der';
import type { Der } from '@anchorage/client/der';
import { csrFromPem, parseCsr } from './csr.js';
import { encodeName } from './name.js';

let dir: string;

/** Makes a DER CSR with `openssl req`; `newkey` and extra args as on the command line. */
function opensslCsr(name: string, args: string[]): Buffer {
  const out = join(dir, `${name}.der`);
  execFileSync(
    'openssl',
    ['req', '-new', '-nodes', '-keyout', join(dir, `${name}.key`), '-subj', `/CN=${name}`, '-outform', 'DER', '-out', out, ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return readFileSync(out);
}

const EC = (curve: string) => ['-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${curve}`];

async function rejects(der: Uint8Array, msg: string | RegExp): Promise<void> {
  let err: unknown;
  try {
    await parseCsr(der);
  } catch (e) {
    err = e;
  }
  expect(isAnchorageError(err, 'invalid_argument'), String(err)).toBe(true);
  expect((err as Error).message).toMatch(msg);
}

/** Assembles a CSR by hand, for shapes no tool produces. */
function handCsr(spki: Uint8Array, sigAlg: Der, signFn: (cri: Buffer) => Buffer, version = 0): Buffer {
  const cri = encode(seq(smallInteger(version), encodeName([{ type: 'CN', value: 'hand' }]), spki, implicitConstructed(0)));
  return encode(seq(cri, sigAlg, bitString(signFn(cri))));
}

const ECDSA_SHA256 = encode(seq(oid('1.2.840.10045.4.3.2')));

function expectSameKey(a: KeyObject, b: KeyObject): void {
  expect(a.export({ format: 'jwk' })).toEqual(b.export({ format: 'jwk' }));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-csr-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('parseCsr accepts', () => {
  it.each([
    ['ec-p256', EC('P-256'), 'ec-p256'],
    ['ec-p256-sha384', [...EC('P-256'), '-sha384'], 'ec-p256'],
    ['ec-p256-sha512', [...EC('P-256'), '-sha512'], 'ec-p256'],
    ['ec-p384', [...EC('P-384'), '-sha384'], 'ec-p384'],
    ['rsa-2048', ['-newkey', 'rsa:2048'], 'rsa'],
    ['rsa-3072-sha512', ['-newkey', 'rsa:3072', '-sha512'], 'rsa'],
    ['rsa-pss-default-salt', ['-newkey', 'rsa:2048', '-sigopt', 'rsa_padding_mode:pss'], 'rsa'],
    ['rsa-pss-salt-32', ['-newkey', 'rsa:2048', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'], 'rsa'],
    ['ed25519', ['-newkey', 'ed25519'], 'ed25519'],
    ['with-attributes', [...EC('P-256'), '-addext', 'subjectAltName=DNS:a.example'], 'ec-p256'],
  ])('openssl req %s', async (name, args, keyType) => {
    const der = opensslCsr(name, args as string[]);
    const csr = await parseCsr(der);
    expect(csr.keyType).toBe(keyType);
    const expected = execFileSync('openssl', ['req', '-inform', 'DER', '-in', join(dir, `${name}.der`), '-pubkey', '-noout']);
    expect(toPem('PUBLIC KEY', csr.spki)).toBe(expected.toString());
    expect(Buffer.from(csr.spki).equals(csr.publicKey.export({ format: 'der', type: 'spki' }))).toBe(true);
    // PEM input gives the same result.
    const pem = execFileSync('openssl', ['req', '-inform', 'DER', '-in', join(dir, `${name}.der`)]).toString();
    expect(csrFromPem(`comment\n${pem}`).equals(der)).toBe(true);
  });

  it.each([
    ['ECDSA P-256', { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }, 'ec-p256'],
    ['ECDSA P-384', { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' }, 'ec-p384'],
    ['RSASSA-PKCS1-v1_5', { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, 'rsa'],
    ['RSA-PSS', { name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256', saltLength: 32 }, 'rsa'],
    ['Ed25519', { name: 'Ed25519' }, 'ed25519'],
  ])('@peculiar/x509 %s', async (_name, alg, keyType) => {
    const keys = (await webcrypto.subtle.generateKey(alg as never, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const req = await px509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=peculiar, O=Test',
      keys,
      signingAlgorithm: alg as never,
      extensions: [new px509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://example.org/x' }])],
    });
    const csr = await parseCsr(new Uint8Array(req.rawData));
    expect(csr.keyType).toBe(keyType);
    expect(Buffer.from(csr.spki).equals(Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey)))).toBe(true);
    expect(Buffer.from(csr.spki).equals(Buffer.from(req.publicKey.rawData))).toBe(true);
  });

  it('hand-built CSR with a compressed P-256 point', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const compressed = ECDH.convertKey(spki.subarray(26), 'prime256v1', undefined, undefined, 'compressed') as Buffer;
    const cspki = encode(seq(Buffer.from(spki.subarray(2, 23)), bitString(compressed)));
    const der = handCsr(cspki, ECDSA_SHA256, (cri) => sign('sha256', cri, privateKey));
    const csr = await parseCsr(der);
    expect(csr.keyType).toBe('ec-p256');
    expectSameKey(csr.publicKey, publicKey);
  });

  it('returns a KeyObject that verifies signatures by the CSR key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const der = handCsr(publicKey.export({ format: 'der', type: 'spki' }), encode(seq(oid('1.2.840.10045.4.3.3'))), (cri) =>
      sign('sha384', cri, privateKey),
    );
    const csr = await parseCsr(der);
    expectSameKey(csr.publicKey, publicKey);
    expect(csr.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
  });
});

describe('parseCsr rejects', () => {
  let good: Buffer;
  let goodRsa: Buffer;
  beforeAll(() => {
    good = opensslCsr('good-ec', EC('P-256'));
    goodRsa = opensslCsr('good-rsa', ['-newkey', 'rsa:2048']);
  });

  it('a tampered signature', async () => {
    const bad = Buffer.from(good);
    bad[bad.length - 1]! ^= 0x01;
    await rejects(bad, /^csr: signature does not verify$/);
    const badRsa = Buffer.from(goodRsa);
    badRsa[badRsa.length - 10]! ^= 0x01;
    await rejects(badRsa, /^csr: signature does not verify$/);
  });

  it('a tampered request body', async () => {
    const bad = Buffer.from(good);
    const at = bad.indexOf(Buffer.from('good-ec'));
    bad[at]! = 'G'.charCodeAt(0);
    await rejects(bad, /^csr: signature does not verify$/);
  });

  it('truncated DER, trailing bytes, garbage', async () => {
    await rejects(good.subarray(0, good.length - 1), /^csr: not valid DER \(length exceeds input/);
    await rejects(good.subarray(0, 1), /^csr: not valid DER \(truncated header/);
    await rejects(Buffer.concat([good, Buffer.from([0])]), /^csr: not valid DER \(trailing bytes/);
    await rejects(new Uint8Array(0), /^csr: not valid DER/);
    await rejects(Buffer.from('hello, world'), /^csr: not valid DER/);
    await rejects(Buffer.from('30800000', 'hex'), /^csr: not valid DER \(indefinite length/);
    await rejects(Buffer.from('3081020500', 'hex'), /^csr: not valid DER \(non-minimal length/);
    await rejects(Buffer.from('30030201', 'hex'), /^csr: not valid DER/);
    for (let i = 0; i < 200; i++) {
      const junk = Buffer.from(good);
      junk[(i * 7919) % junk.length]! ^= 1 + (i % 255);
      await expect(parseCsr(junk)).rejects.toThrow(/^csr: /);
    }
    await expect(parseCsr('nope' as unknown as Uint8Array)).rejects.toThrow('csr: not valid DER');
  });

  it('a wrong version', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const der = handCsr(publicKey.export({ format: 'der', type: 'spki' }), ECDSA_SHA256, (cri) => sign('sha256', cri, privateKey), 1);
    await rejects(der, /^csr: unsupported version$/);
  });

  it('unknown and unsupported signature algorithms', async () => {
    await rejects(opensslCsr('rsa-sha1', ['-newkey', 'rsa:2048', '-sha1']), /^csr: unsupported signature algorithm 1\.2\.840\.113549\.1\.1\.5$/);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const s = (cri: Buffer) => sign('sha256', cri, privateKey);
    await rejects(handCsr(spki, encode(seq(oid('1.2.3.4'))), s), /^csr: unsupported signature algorithm 1\.2\.3\.4$/);
    await rejects(handCsr(spki, encode(seq(oid('1.2.840.10045.4.3.2'), NULL)), s), /^csr: signature algorithm must not have parameters$/);
    await rejects(handCsr(spki, encode(seq(oid('1.3.101.112'))), s), /^csr: signature algorithm does not match the ec-p256 key$/);
    await rejects(handCsr(spki, encode(seq(oid('1.2.840.113549.1.1.11'), NULL)), s), /^csr: signature algorithm does not match/);
  });

  it('RSA-PSS that is not simple', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const pss = (cri: Buffer) => sign('sha256', cri, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    const hashAlg = (o: string) => seq(oid(o), NULL);
    const PSS = oid('1.2.840.113549.1.1.10');
    const MGF1 = oid('1.2.840.113549.1.1.8');
    const SHA256 = '2.16.840.1.101.3.4.2.1';
    const good = seq(PSS, seq(explicit(0, hashAlg(SHA256)), explicit(1, seq(MGF1, hashAlg(SHA256))), explicit(2, smallInteger(32))));
    expect((await parseCsr(handCsr(spki, good, pss))).keyType).toBe('rsa');
    await rejects(handCsr(spki, seq(PSS), pss), /^csr: unsupported signature algorithm: rsassa-pss without parameters$/);
    await rejects(handCsr(spki, seq(PSS, seq()), pss), /^csr: unsupported signature algorithm: rsassa-pss needs/);
    const mgfSha1 = seq(PSS, seq(explicit(0, hashAlg(SHA256)), explicit(1, seq(MGF1, hashAlg('1.3.14.3.2.26'))), explicit(2, smallInteger(32))));
    await rejects(handCsr(spki, mgfSha1, pss), /^csr: unsupported signature algorithm: rsassa-pss needs/);
    const wrongSalt = seq(PSS, seq(explicit(0, hashAlg(SHA256)), explicit(1, seq(MGF1, hashAlg(SHA256))), explicit(2, smallInteger(20))));
    await rejects(handCsr(spki, wrongSalt, pss), /^csr: signature does not verify$/);
  });

  it('RSA keys below 2048 bits', async () => {
    await rejects(opensslCsr('rsa-1024', ['-newkey', 'rsa:1024']), /^csr: unsupported key type: rsa 1024 bits is below the 2048-bit minimum$/);
  });

  it('EC curves other than P-256 and P-384', async () => {
    await rejects(opensslCsr('p521', [...EC('P-521'), '-sha512']), /^csr: unsupported key type: ec curve p-521$/);
    await rejects(opensslCsr('k256', EC('secp256k1')), /^csr: unsupported key type: ec curve secp256k1$/);
    await rejects(opensslCsr('ed448', ['-newkey', 'ed448']), /^csr: unsupported key type: ed448$/);
  });

  it('an EC point that is not on the curve', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const spki = Buffer.from(publicKey.export({ format: 'der', type: 'spki' }));
    spki[spki.length - 1]! ^= 1;
    await rejects(handCsr(spki, ECDSA_SHA256, (cri) => sign('sha256', cri, privateKey)), /^csr: invalid public key$/);
    const short = encode(seq(Buffer.from(spki.subarray(2, 23)), bitString(Buffer.concat([Buffer.from([4]), Buffer.alloc(10, 1)]))));
    await rejects(handCsr(short, ECDSA_SHA256, (cri) => sign('sha256', cri, privateKey)), /^csr: invalid public key: malformed ec point$/);
  });
});

describe('csrFromPem', () => {
  it('rejects text without exactly one request', () => {
    expect(() => csrFromPem('nothing here')).toThrow('csr: no "CERTIFICATE REQUEST" pem block found');
    const one = toPem('CERTIFICATE REQUEST', Buffer.from([0x30, 0x00]));
    expect(() => csrFromPem(one + one)).toThrow('csr: more than one certificate request in pem');
    expect(csrFromPem(toPem('NEW CERTIFICATE REQUEST', Buffer.from([0x30, 0x00])))).toEqual(Buffer.from([0x30, 0x00]));
  });
});
