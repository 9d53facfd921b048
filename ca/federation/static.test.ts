import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { startTestCa, type TestCa } from '../../test/helpers/test-ca.js';
import { SqliteDataStore } from '../datastore/sqlite/index.js';
import { deleteFederatedBundle, listFederatedBundles, setFederatedBundle, toFederatedBundle } from './static.js';

const own = TrustDomain.parse('own.test');
let dir: string;
let ds: SqliteDataStore;
let fed: TestCa;

async function refused(p: Promise<unknown>): Promise<AnchorageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return err as AnchorageError;
  }
  throw new Error('expected a refusal');
}

/** A self-signed certificate for x509.test made to order; undefined leaves an extension out. */
async function cert(name: string, opts: { ca?: boolean; usages?: number; notBefore?: Date; notAfter?: Date }): Promise<Uint8Array> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const c = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name,
    notBefore: opts.notBefore ?? new Date('2026-01-01T00:00:00Z'),
    notAfter: opts.notAfter ?? new Date('2027-01-01T00:00:00Z'),
    keys,
    signingAlgorithm: alg,
    extensions: [
      ...(opts.ca === undefined ? [] : [new x509.BasicConstraintsExtension(opts.ca, undefined, true)]),
      ...(opts.usages === undefined ? [] : [new x509.KeyUsagesExtension(opts.usages, true)]),
    ],
  });
  return new Uint8Array(c.rawData);
}

const docOf = (...ders: Uint8Array[]) => new SpiffeBundle(TrustDomain.parse('x509.test'), { x509Authorities: ders }).marshal();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-fed-static-'));
  ds = SqliteDataStore.open(join(dir, 'ds.sqlite3'));
  fed = await startTestCa('fed.test', dir);
});

afterAll(async () => {
  await fed?.close();
  await ds?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('static federation', () => {
  it('stores a peer bundle as given and lists it with every key and its expiry', async () => {
    const doc = fed.ca.bundle().marshal();
    const stored = await setFederatedBundle(ds, own, 'fed.test', doc, 1000);
    expect(stored).toMatchObject({ trustDomain: 'fed.test', sequence: fed.ca.bundle().sequence, updatedAt: 1000 });
    const [listed] = (await listFederatedBundles(ds, own)).map((b) => toFederatedBundle(b));
    const root = new X509Certificate(fed.ca.bundle().x509.authorities()[0]!);
    const kid = [...fed.ca.bundle().jwt.keys().keys()][0]!;
    expect(listed).toMatchObject({ trust_domain: 'fed.test', source: 'static', updated_at: 1000 });
    expect(listed!.keys).toEqual([
      { use: 'x509-svid', id: `${root.subject.replace(/\n/g, ', ')} serial ${root.serialNumber}`, not_after: Math.floor(Date.parse(root.validTo) / 1000) },
      { use: 'jwt-svid', id: kid, not_after: 0 },
    ]);
    expect(JSON.parse(listed!.document!)).toEqual(JSON.parse(doc));
  });

  it('refuses bad input with one clear message each', async () => {
    const doc = fed.ca.bundle().marshal();
    const cases: Array<[Promise<unknown>, string, string]> = [
      [setFederatedBundle(ds, own, '', doc, 1), 'invalid_argument', 'federation: trust_domain is required'],
      [setFederatedBundle(ds, own, 'Bad Domain', doc, 1), 'invalid_argument', 'spiffeid: '],
      [setFederatedBundle(ds, own, 'own.test', doc, 1), 'invalid_argument', "federation: own.test is this server's own trust domain"],
      [setFederatedBundle(ds, own, 'x.test', '', 1), 'invalid_argument', 'federation: document is required'],
      [setFederatedBundle(ds, own, 'x.test', '{not json', 1), 'invalid_argument', 'federation: bundle for x.test: '],
      [setFederatedBundle(ds, own, 'x.test', '{"keys":[]}', 1), 'invalid_argument', 'federation: bundle for x.test holds no keys'],
      [deleteFederatedBundle(ds, own, 'missing.test'), 'not_found', 'federation: no bundle for missing.test'],
    ];
    for (const [p, code, message] of cases) {
      const err = await refused(p);
      expect(err.code, message).toBe(code);
      expect(err.message).toContain(message);
    }
    // Nothing was stored by the refusals.
    expect((await listFederatedBundles(ds, own)).map((b) => b.trustDomain)).toEqual(['fed.test']);
  });

  it('refuses a document whose spiffe_sequence goes backwards; delete, then set, goes back on purpose', async () => {
    const newer = JSON.parse(fed.ca.bundle().marshal());
    newer.spiffe_sequence = 50;
    await setFederatedBundle(ds, own, 'seq.test', JSON.stringify(newer), 1);
    const older = { ...newer, spiffe_sequence: 49 };
    const err = await refused(setFederatedBundle(ds, own, 'seq.test', JSON.stringify(older), 2));
    expect(err.code).toBe('failed_precondition');
    expect(err.message).toBe('federation: bundle for seq.test has spiffe_sequence 49, lower than the stored 50; delete the stored one first to go back');
    expect((await ds.getBundle('seq.test'))!.sequence).toBe(50);
    await deleteFederatedBundle(ds, own, 'seq.test');
    expect((await setFederatedBundle(ds, own, 'seq.test', JSON.stringify(older), 3)).sequence).toBe(49);
  });

  it('takes only CA certificates that may sign and have not expired as X.509 authorities; one not valid yet is taken', async () => {
    const SIGN = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
    const good = await cert('O=Good', { ca: true, usages: SIGN });
    const t2027 = Date.parse('2027-01-01T00:00:00Z') / 1000;
    const cases: Array<[Uint8Array, number, string]> = [
      [await cert('O=Leaf', { ca: false, usages: x509.KeyUsageFlags.digitalSignature }), 1, 'x509 authority 2 (O=Leaf serial 01) is not a CA certificate (basicConstraints cA is not true)'],
      [await cert('O=NoBC', { usages: SIGN }), 1, 'x509 authority 2 (O=NoBC serial 01) is not a CA certificate (basicConstraints cA is not true)'],
      [await cert('O=NoKU', { ca: true }), 1, 'x509 authority 2 (O=NoKU serial 01) may not sign certificates (keyUsage lacks keyCertSign)'],
      [await cert('O=CrlOnly', { ca: true, usages: x509.KeyUsageFlags.cRLSign }), 1, 'x509 authority 2 (O=CrlOnly serial 01) may not sign certificates (keyUsage lacks keyCertSign)'],
      // The second certificate expires at the same instant as the first: at that second, both are refused; the first is named.
      [good, t2027, 'x509 authority 1 (O=Good serial 01) expired at 2027-01-01T00:00:00.000Z'],
    ];
    for (const [second, now, message] of cases) {
      const err = await refused(setFederatedBundle(ds, own, 'x509.test', docOf(good, second), now));
      expect(err.code, message).toBe('invalid_argument');
      expect(err.message).toBe(`federation: bundle for x509.test: ${message}`);
    }
    expect(await ds.getBundle('x509.test')).toBeUndefined();
    // One second before it expires, and long before it is valid (a root published ahead of a rotation): taken.
    expect((await setFederatedBundle(ds, own, 'x509.test', docOf(good), t2027 - 1)).trustDomain).toBe('x509.test');
    await deleteFederatedBundle(ds, own, 'x509.test');
    expect((await setFederatedBundle(ds, own, 'x509.test', docOf(good), 1)).trustDomain).toBe('x509.test');
    await deleteFederatedBundle(ds, own, 'x509.test');
  });
});
