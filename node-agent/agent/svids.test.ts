import { beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate, webcrypto } from 'node:crypto';
import { AnchorageError } from '@anchorage/client/errors';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { KU, makeCert, makeIntermediate, makeLeaf, makeRoot, newKeyPair, type CertOptions, type KeyPair, type TestCert } from '../../test/helpers/pki.js';
// After pki.js, which loads the reflect-metadata polyfill @peculiar/x509 needs.
import { Extension } from '@peculiar/x509';
import { WorkloadCache } from '../cache.js';
import type { CachedEntry } from '../state.js';
import { readLeaf } from './leaf.js';
import { checkWorkloadSvid, verifiedIssuerCache, type SvidCheckContext, type WorkloadKey } from './svids.js';

const TD = 'example.org';
const td = TrustDomain.parse(TD);
const ID = `spiffe://${TD}/workload`;
const HOUR = 3600_000;
const NOW = Date.now();

const entry: CachedEntry = { id: 'e1', spiffeId: ID, selectors: ['unix:uid:1000'], x509SvidTtl: 3600, jwtSvidTtl: 300, dnsNames: [], federatesWith: [], hint: '', revision: 3 };

interface Workload {
  pair: KeyPair;
  key: WorkloadKey;
}

async function workloadKey(): Promise<Workload> {
  const pair = await newKeyPair();
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', pair.publicKey));
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
  return { pair, key: { spki, pkcs8 } };
}

let root: TestCert;
let intermediate: TestCert;
let ours: Workload;
let other: Workload;

beforeAll(async () => {
  root = await makeRoot(TD);
  intermediate = await makeIntermediate(root, TD);
  ours = await workloadKey();
  other = await workloadKey();
});

function context(nowMs = NOW): SvidCheckContext {
  const cache = new WorkloadCache(TD, () => Math.floor(nowMs / 1000), () => Promise.reject(new Error('no jwt here')));
  cache.setOwnBundle(new SpiffeBundle(td, { x509Authorities: [root.der] }));
  return { td, cache, nowMs: () => nowMs, verifiedIssuers: verifiedIssuerCache() };
}

/** A leaf for our key signed by the intermediate, one hour old, valid a day. */
function leaf(opts: CertOptions = {}, issuer: TestCert = intermediate): Promise<TestCert> {
  return makeLeaf(issuer, ID, { keys: ours.pair, notBefore: new Date(NOW - HOUR), notAfter: new Date(NOW + 24 * HOUR), ...opts });
}

function rejection(ctx: SvidCheckContext, chain: Uint8Array[], key: WorkloadKey = ours.key, e: CachedEntry = entry): string {
  try {
    checkWorkloadSvid(ctx, e, key, chain);
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return (err as AnchorageError).message;
  }
  throw new Error('expected the svid to be refused');
}

/** A context whose intermediate has been verified already (by a first, good SVID): later SVIDs take the per-leaf path. */
async function warmContext(nowMs = NOW): Promise<SvidCheckContext> {
  const ctx = context(nowMs);
  checkWorkloadSvid(ctx, entry, ours.key, [(await leaf()).der, intermediate.der]);
  expect(ctx.verifiedIssuers.size).toBe(1);
  return ctx;
}

/** The same certificate with one byte of its signature changed. */
function tamperSignature(der: Uint8Array): Uint8Array {
  const out = Uint8Array.from(der);
  out[out.length - 5]! ^= 0x01;
  return out;
}

describe('checkWorkloadSvid', () => {
  it('accepts an SVID for our key and the entry ID, first with the full chain check, then per leaf with the cached intermediate', async () => {
    const ctx = context();
    for (let i = 0; i < 2; i++) {
      const l = await leaf();
      const chain = [l.der, intermediate.der];
      const held = checkWorkloadSvid(ctx, entry, ours.key, chain);
      const node = new X509Certificate(l.der);
      expect(held).toMatchObject({ entryId: 'e1', revision: 3, key: ours.key.pkcs8, chain });
      expect(held.notBefore).toBe(Math.floor(Date.parse(node.validFrom) / 1000));
      expect(held.notAfter).toBe(Math.floor(Date.parse(node.validTo) / 1000));
      // Half-life from now, ±10 %.
      const nowS = Math.floor(NOW / 1000);
      expect(held.rotateAt).toBeGreaterThanOrEqual(Math.floor(nowS + ((held.notAfter - nowS) / 2) * 0.9));
      expect(held.rotateAt).toBeLessThanOrEqual(Math.floor(nowS + ((held.notAfter - nowS) / 2) * 1.1));
      expect(ctx.verifiedIssuers.keys()).toEqual([Buffer.from(intermediate.der)]);
    }
  });

  it('accepts a leaf signed by an authority itself (no intermediate), each time with the full chain check', async () => {
    const ctx = context();
    for (let i = 0; i < 2; i++) expect(checkWorkloadSvid(ctx, entry, ours.key, [(await leaf({}, root)).der]).entryId).toBe('e1');
    expect(ctx.verifiedIssuers.size).toBe(0);
  });

  it('accepts a leaf from an RSA intermediate (checked through OpenSSL) and refuses one with a forged signature', async () => {
    const rsaInt = await makeIntermediate(root, TD, { keys: await newKeyPair('rsa') });
    const ctx = context();
    checkWorkloadSvid(ctx, entry, ours.key, [(await leaf({}, rsaInt)).der, rsaInt.der]);
    expect(checkWorkloadSvid(ctx, entry, ours.key, [(await leaf({}, rsaInt)).der, rsaInt.der]).entryId).toBe('e1');
    const forged = await leaf({ signWith: await newKeyPair('rsa') }, rsaInt);
    expect(rejection(ctx, [forged.der, rsaInt.der])).toBe('agent: the svid for entry e1 is not signed by its intermediate');
    expect(rejection(ctx, [tamperSignature((await leaf({}, rsaInt)).der), rsaInt.der])).toBe('agent: the svid for entry e1 is not signed by its intermediate');
  });

  describe('refuses', () => {
    it('a tampered signature', async () => {
      const bad = tamperSignature((await leaf()).der);
      expect(rejection(context(), [bad, intermediate.der])).toMatch(/^x509svid: signature of leaf does not verify with intermediate 1$/);
      expect(rejection(await warmContext(), [bad, intermediate.der])).toBe('agent: the svid for entry e1 is not signed by its intermediate');
    });

    it('a leaf signed by another key under the intermediate’s name', async () => {
      const forged = (await leaf({ signWith: await newKeyPair() })).der;
      expect(rejection(context(), [forged, intermediate.der])).toMatch(/^x509svid: signature of leaf does not verify with intermediate 1$/);
      expect(rejection(await warmContext(), [forged, intermediate.der])).toBe('agent: the svid for entry e1 is not signed by its intermediate');
    });

    it('a leaf signed with the intermediate’s key that names another issuer', async () => {
      const renamed = await makeIntermediate(root, TD, { subject: 'CN=another intermediate', keys: intermediate.keys });
      const l = (await leaf({}, renamed)).der;
      expect(rejection(context(), [l, intermediate.der])).toBe('x509svid: leaf was not issued by intermediate 1');
      expect(rejection(await warmContext(), [l, intermediate.der])).toBe('agent: the svid for entry e1 does not name its intermediate as issuer');
    });

    it('an intermediate that does not chain to the bundle', async () => {
      const strangerRoot = await makeRoot(TD);
      const strangerInt = await makeIntermediate(strangerRoot, TD);
      const l = (await leaf({}, strangerInt)).der;
      expect(rejection(await warmContext(), [l, strangerInt.der])).toBe(`x509svid: intermediate 1 is not signed by an authority of trust domain "${TD}"`);
    });

    it('another SPIFFE ID than the entry’s, or more than one', async () => {
      const wrong = (await leaf({ uris: [`spiffe://${TD}/other`] })).der;
      expect(rejection(context(), [wrong, intermediate.der])).toBe(`agent: the server signed URI:spiffe://${TD}/other for entry e1 (${ID})`);
      expect(rejection(await warmContext(), [wrong, intermediate.der])).toBe(`agent: the server signed URI:spiffe://${TD}/other for entry e1 (${ID})`);
      const two = (await leaf({ uris: [ID, `spiffe://${TD}/other`] })).der;
      expect(rejection(context(), [two, intermediate.der])).toBe('x509svid: leaf has 2 URI SANs, want exactly one');
      expect(rejection(await warmContext(), [two, intermediate.der])).toBe(`agent: the server signed URI:${ID}, URI:spiffe://${TD}/other for entry e1 (${ID})`);
      const none = (await leaf({ uris: [], dns: ['example.org'] })).der;
      expect(rejection(await warmContext(), [none, intermediate.der])).toBe(`agent: the server signed no URI SAN for entry e1 (${ID})`);
    });

    it('a key other than ours', async () => {
      const l = (await leaf({ keys: other.pair })).der;
      expect(rejection(context(), [l, intermediate.der])).toBe('agent: the svid for entry e1 is not for our key');
      expect(rejection(await warmContext(), [l, intermediate.der])).toBe('agent: the svid for entry e1 is not for our key');
      // Our own SVID, checked against another key we made.
      expect(rejection(await warmContext(), [(await leaf()).der, intermediate.der], other.key)).toBe('agent: the svid for entry e1 is not for our key');
    });

    it('an expired SVID, and one not yet valid', async () => {
      const expired = (await leaf({ notBefore: new Date(NOW - 3 * HOUR), notAfter: new Date(NOW - HOUR) })).der;
      expect(rejection(context(), [expired, intermediate.der])).toBe('x509svid: leaf has expired');
      expect(rejection(await warmContext(), [expired, intermediate.der])).toBe('agent: the svid for entry e1 has expired');
      const future = (await leaf({ notBefore: new Date(NOW + HOUR), notAfter: new Date(NOW + 3 * HOUR) })).der;
      expect(rejection(context(), [future, intermediate.der])).toBe('x509svid: leaf is not yet valid');
      expect(rejection(await warmContext(), [future, intermediate.der])).toBe('agent: the svid for entry e1 is not yet valid');
      // The same good SVID, checked a day and two hours later.
      const good = (await leaf()).der;
      const later = await warmContext(NOW);
      later.nowMs = () => NOW + 26 * HOUR;
      expect(rejection(later, [good, intermediate.der])).toBe('agent: the svid for entry e1 has expired');
    });

    it('a certificate that is not a leaf by X509-SVID §4.3', async () => {
      const cases: [string, CertOptions][] = [
        ['a CA', { ca: true, keyUsage: KU.digitalSignature }],
        ['keyCertSign', { keyUsage: KU.digitalSignature | KU.keyCertSign }],
        ['cRLSign', { keyUsage: KU.digitalSignature | KU.cRLSign }],
        ['no digitalSignature', { keyUsage: KU.keyEncipherment }],
        ['no keyUsage', { keyUsage: null }],
      ];
      const ctx = await warmContext();
      for (const [, opts] of cases) {
        expect(rejection(ctx, [(await leaf(opts)).der, intermediate.der])).toBe('agent: the svid for entry e1 is not a leaf certificate (X509-SVID §4.3)');
      }
      expect(rejection(context(), [(await leaf({ ca: true, keyUsage: KU.digitalSignature })).der, intermediate.der])).toBe('x509svid: leaf must not be a CA');
    });

    it('bytes that are not one well-formed certificate', async () => {
      const good = (await leaf()).der;
      const ctx = await warmContext();
      const malformed: [string, Uint8Array][] = [
        ['trailing data', Buffer.concat([good, Buffer.from([0])])],
        ['truncated', good.subarray(0, good.length - 1)],
        ['empty', new Uint8Array(0)],
        ['a second SAN extension', (await leaf({ extraExtensions: [new Extension('2.5.29.17', false, new Uint8Array([0x30, 0x03, 0x86, 0x01, 0x61]))] })).der],
        ['a negative pathLenConstraint', (await leaf({ ca: null, extraExtensions: [new Extension('2.5.29.19', true, new Uint8Array([0x30, 0x03, 0x02, 0x01, 0xff]))] })).der],
      ];
      for (const [what, der] of malformed) {
        expect(rejection(ctx, [der, intermediate.der]), what).toMatch(/^agent: the svid for entry e1 is not a well-formed certificate: /);
      }
      expect(rejection(ctx, [], ours.key)).toBe('agent: empty chain for entry e1');
    });
  });
});

describe('readLeaf', () => {
  it('reads what OpenSSL reads', async () => {
    const l = await makeCert({ issuer: intermediate, keys: ours.pair, ca: false, uris: [ID], dns: ['a.example.org'], keyUsage: KU.digitalSignature | KU.keyAgreement });
    const node = new X509Certificate(l.der);
    const f = readLeaf(l.der);
    expect(f.notBefore).toBe(Date.parse(node.validFrom));
    expect(f.notAfter).toBe(Date.parse(node.validTo));
    expect(f.uris).toEqual([ID]);
    expect(f.ca).toBe(false);
    expect(f.keyUsage).toBe(KU.digitalSignature | KU.keyAgreement);
    expect(Buffer.from(f.spki)).toEqual(node.publicKey.export({ type: 'spki', format: 'der' }));
  });

  it('refuses a certificate whose two signature algorithms differ', async () => {
    const der = Buffer.from((await leaf()).der);
    // ecdsa-with-SHA256 (…04 03 02) as the outer algorithm only: it is the last occurrence.
    const alg = Buffer.from('06082a8648ce3d040302', 'hex');
    const at = der.lastIndexOf(alg);
    expect(at).toBeGreaterThan(der.indexOf(alg));
    der[at + alg.length - 1] = 0x03;
    expect(() => readLeaf(der)).toThrow('the signature algorithms of the certificate and its tbsCertificate differ');
  });

  it('never throws anything but a DerError on damaged input', async () => {
    const good = (await leaf()).der;
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const d = Uint8Array.from(good);
      for (let k = 1 + rand(3); k > 0; k--) d[rand(d.length)] = rand(256);
      try {
        readLeaf(d.subarray(0, d.length - (i % 7 === 0 ? rand(d.length) : 0)));
      } catch (err) {
        expect((err as Error).name).toBe('DerError');
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });
});
