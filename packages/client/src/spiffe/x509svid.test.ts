import { describe, it, expect, beforeAll } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { AnchorageError } from '../common/errors.js';
import { TrustDomain } from './id.js';
import { X509Bundle } from './bundle.js';
import { parseSpiffeIdFromCert, uriSansOf, verifyX509Svid, type X509BundleSource } from './x509svid.js';
import { KU, makeCert, makeIntermediate, makeLeaf, makeRoot, newKeyPair, type TestCert } from '../../../../test/helpers/pki.js';
// After pki.js, which loads the reflect-metadata polyfill @peculiar/x509 needs.
import { Extension, KeyUsagesExtension } from '@peculiar/x509';

const td = TrustDomain.parse('example.org');
const HOUR = 3600_000;

function thrown(fn: () => unknown): AnchorageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AnchorageError);
    return err as AnchorageError;
  }
  throw new Error('expected an error, got none');
}

/** A source that knows exactly the given bundles, by trust domain. */
function source(...bundles: X509Bundle[]): X509BundleSource {
  return (want) => bundles.find((b) => b.trustDomain.equals(want));
}

let root: TestCert;
let intermediate: TestCert;
let leaf: TestCert;
let bundle: X509Bundle;

beforeAll(async () => {
  root = await makeRoot();
  intermediate = await makeIntermediate(root);
  leaf = await makeLeaf(intermediate);
  bundle = new X509Bundle(td, [root.der]);
});

describe('verifyX509Svid accepts', () => {
  it('leaf → intermediate → root in the bundle', () => {
    const got = verifyX509Svid([leaf.der, intermediate.der], source(bundle));
    expect(got.spiffeId.toString()).toBe('spiffe://example.org/workload');
    expect(got.chain).toHaveLength(2);
    expect(got.chain[0]).toBeInstanceOf(X509Certificate);
    expect(Buffer.compare(got.chain[0]!.raw, Buffer.from(leaf.der))).toBe(0);
    expect(Buffer.compare(got.chain[1]!.raw, Buffer.from(intermediate.der))).toBe(0);
  });

  it('a leaf signed directly by the root', async () => {
    const direct = await makeLeaf(root, 'spiffe://example.org/direct');
    expect(verifyX509Svid([direct.der], source(bundle)).spiffeId.path).toBe('/direct');
  });

  it('a chain that includes the root itself', () => {
    const got = verifyX509Svid([leaf.der, intermediate.der, root.der], source(bundle));
    expect(got.chain).toHaveLength(3);
  });

  it('a chain ending in an intermediate that is itself in the bundle', () => {
    const intBundle = new X509Bundle(td, [intermediate.der]);
    expect(verifyX509Svid([leaf.der, intermediate.der], source(intBundle)).spiffeId.toString()).toBe(
      'spiffe://example.org/workload',
    );
  });

  it('RSA keys and two intermediates', async () => {
    const rsaRoot = await makeRoot('example.org', { keys: await newKeyPair('rsa') });
    const int1 = await makeIntermediate(rsaRoot, 'example.org', { subject: 'CN=int1', keys: await newKeyPair('ec-p384') });
    const int2 = await makeIntermediate(int1, 'example.org', { subject: 'CN=int2' });
    const l = await makeLeaf(int2);
    const got = verifyX509Svid([l.der, int2.der, int1.der], source(new X509Bundle(td, [rsaRoot.der])));
    expect(got.chain).toHaveLength(3);
  });

  it('during root rotation, a leaf under either root', async () => {
    const newRoot = await makeRoot();
    const newLeaf = await makeLeaf(newRoot, 'spiffe://example.org/new');
    const both = new X509Bundle(td, [root.der, newRoot.der]);
    expect(verifyX509Svid([newLeaf.der], source(both)).spiffeId.path).toBe('/new');
    expect(verifyX509Svid([leaf.der, intermediate.der], source(both)).spiffeId.path).toBe('/workload');
  });

  it('a leaf without basicConstraints, and one with keyEncipherment/keyAgreement', async () => {
    const noBc = await makeLeaf(root, 'spiffe://example.org/nobc', { ca: null });
    expect(verifyX509Svid([noBc.der], source(bundle)).spiffeId.path).toBe('/nobc');
    const onlyDs = await makeLeaf(root, 'spiffe://example.org/ds', { keyUsage: KU.digitalSignature });
    expect(verifyX509Svid([onlyDs.der], source(bundle)).spiffeId.path).toBe('/ds');
  });

  it('at the exact edges of the validity period', async () => {
    const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - HOUR);
    const notAfter = new Date(notBefore.getTime() + 2 * HOUR);
    const l = await makeLeaf(root, 'spiffe://example.org/edge', { notBefore, notAfter });
    expect(verifyX509Svid([l.der], source(bundle), notBefore).spiffeId.path).toBe('/edge');
    expect(verifyX509Svid([l.der], source(bundle), notAfter).spiffeId.path).toBe('/edge');
    expect(thrown(() => verifyX509Svid([l.der], source(bundle), new Date(notBefore.getTime() - 1000))).message).toBe(
      'x509svid: leaf is not yet valid',
    );
    expect(thrown(() => verifyX509Svid([l.der], source(bundle), new Date(notAfter.getTime() + 1000))).message).toBe(
      'x509svid: leaf has expired',
    );
  });
});

describe('verifyX509Svid rejects', () => {
  const past = () => new Date(Date.now() - 48 * HOUR);
  const cases: Array<[string, () => Promise<{ chain: Uint8Array[]; bundles?: X509BundleSource; now?: Date }>, string]> = [
    ['an empty chain', async () => ({ chain: [] }), 'x509svid: chain is empty'],
    ['a leaf that is not DER', async () => ({ chain: [new Uint8Array([0x30, 0x03, 1, 2, 3])] }), 'x509svid: leaf could not be parsed'],
    [
      'a leaf with trailing bytes',
      async () => ({ chain: [new Uint8Array([...leaf.der, 0])] }),
      'x509svid: leaf has trailing data after the certificate',
    ],
    [
      'an intermediate that is not DER',
      async () => ({ chain: [leaf.der, new Uint8Array([1])] }),
      'x509svid: intermediate 1 could not be parsed',
    ],
    [
      'a leaf with two URI SANs',
      async () => ({ chain: [(await makeLeaf(root, 'spiffe://example.org/a', { uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] })).der] }),
      'x509svid: leaf has 2 URI SANs, want exactly one',
    ],
    [
      'a leaf with no URI SAN (DNS only)',
      async () => ({ chain: [(await makeLeaf(root, '', { uris: [], dns: ['example.org'] })).der] }),
      'x509svid: leaf has no URI SAN',
    ],
    [
      'a leaf with no SAN extension',
      async () => ({ chain: [(await makeLeaf(root, '', { uris: [] })).der] }),
      'x509svid: leaf has no URI SAN',
    ],
    [
      'a leaf whose URI SAN is not a SPIFFE ID',
      async () => ({ chain: [(await makeLeaf(root, 'https://example.org/workload')).der] }),
      'x509svid: leaf URI SAN is not a valid SPIFFE ID: spiffeid: scheme must be "spiffe://" in lower case',
    ],
    [
      'a leaf whose URI SAN has a dot segment',
      async () => ({ chain: [(await makeLeaf(root, 'spiffe://example.org/a/../b')).der] }),
      'x509svid: leaf URI SAN is not a valid SPIFFE ID: spiffeid: path must not contain dot segments',
    ],
    [
      'a leaf that is a CA',
      async () => ({ chain: [(await makeLeaf(root, undefined, { ca: true })).der] }),
      'x509svid: leaf must not be a CA',
    ],
    [
      'a leaf with keyCertSign',
      async () => ({ chain: [(await makeLeaf(root, undefined, { keyUsage: KU.digitalSignature | KU.keyCertSign })).der] }),
      'x509svid: leaf key usage must not include keyCertSign',
    ],
    [
      'a leaf with cRLSign',
      async () => ({ chain: [(await makeLeaf(root, undefined, { keyUsage: KU.digitalSignature | KU.cRLSign })).der] }),
      'x509svid: leaf key usage must not include cRLSign',
    ],
    [
      'a leaf without digitalSignature',
      async () => ({ chain: [(await makeLeaf(root, undefined, { keyUsage: KU.keyEncipherment })).der] }),
      'x509svid: leaf key usage must include digitalSignature',
    ],
    [
      'a leaf without a keyUsage extension',
      async () => ({ chain: [(await makeLeaf(root, undefined, { keyUsage: null })).der] }),
      'x509svid: leaf has no key usage extension',
    ],
    [
      'an expired leaf',
      async () => ({
        chain: [(await makeLeaf(intermediate, undefined, { notBefore: past(), notAfter: new Date(Date.now() - HOUR) })).der, intermediate.der],
      }),
      'x509svid: leaf has expired',
    ],
    [
      'a leaf that is not yet valid',
      async () => ({ chain: [leaf.der, intermediate.der], now: past() }),
      'x509svid: leaf is not yet valid',
    ],
    [
      'an expired intermediate',
      async () => {
        const oldInt = await makeIntermediate(root, 'example.org', { notBefore: past(), notAfter: new Date(Date.now() - HOUR) });
        return { chain: [(await makeLeaf(oldInt)).der, oldInt.der] };
      },
      'x509svid: intermediate 1 has expired',
    ],
    [
      'an intermediate that is not a CA',
      async () => {
        const notCa = await makeIntermediate(root, 'example.org', { ca: false });
        return { chain: [(await makeLeaf(notCa)).der, notCa.der] };
      },
      'x509svid: intermediate 1 must be a CA',
    ],
    [
      'an intermediate without basicConstraints',
      async () => {
        const noBc = await makeIntermediate(root, 'example.org', { ca: null });
        return { chain: [(await makeLeaf(noBc)).der, noBc.der] };
      },
      'x509svid: intermediate 1 must be a CA',
    ],
    [
      'an intermediate without keyCertSign',
      async () => {
        const noSign = await makeIntermediate(root, 'example.org', { keyUsage: KU.cRLSign | KU.digitalSignature });
        return { chain: [(await makeLeaf(noSign)).der, noSign.der] };
      },
      'x509svid: intermediate 1 key usage must include keyCertSign',
    ],
    [
      'an intermediate whose path length forbids the one below it',
      async () => {
        const upper = await makeIntermediate(root, 'example.org', { subject: 'CN=upper', pathLength: 0 });
        const lower = await makeIntermediate(upper, 'example.org', { subject: 'CN=lower' });
        return { chain: [(await makeLeaf(lower)).der, lower.der, upper.der] };
      },
      'x509svid: intermediate 2 path length constraint exceeded',
    ],
    [
      'a root whose path length forbids the intermediate',
      async () => {
        const strictRoot = await makeRoot('example.org', { pathLength: 0 });
        const int = await makeIntermediate(strictRoot);
        return {
          chain: [(await makeLeaf(int)).der, int.der],
          bundles: source(new X509Bundle(td, [strictRoot.der])),
        };
      },
      'x509svid: the issuing authority path length constraint exceeded',
    ],
    [
      'an expired root',
      async () => {
        const oldRoot = await makeRoot('example.org', { notBefore: past(), notAfter: new Date(Date.now() - HOUR) });
        return { chain: [(await makeLeaf(oldRoot)).der], bundles: source(new X509Bundle(td, [oldRoot.der])) };
      },
      'x509svid: the issuing authority has expired',
    ],
    [
      'a chain under a root that is not in the bundle (same name, other key)',
      async () => {
        const rogueRoot = await makeRoot();
        const rogueInt = await makeIntermediate(rogueRoot);
        return { chain: [(await makeLeaf(rogueInt)).der, rogueInt.der] };
      },
      'x509svid: intermediate 1 is not signed by an authority of trust domain "example.org"',
    ],
    [
      'an intermediate re-signed with another key under the real root name',
      async () => {
        const forged = await makeIntermediate(root, 'example.org', { signWith: await newKeyPair() });
        return { chain: [(await makeLeaf(forged)).der, forged.der] };
      },
      'x509svid: intermediate 1 is not signed by an authority of trust domain "example.org"',
    ],
    [
      'a leaf whose signature is by another key',
      async () => ({ chain: [(await makeLeaf(intermediate, undefined, { signWith: await newKeyPair() })).der, intermediate.der] }),
      'x509svid: signature of leaf does not verify with intermediate 1',
    ],
    [
      'a leaf presented with the wrong intermediate',
      async () => {
        const otherInt = await makeIntermediate(root, 'example.org', { subject: 'CN=other intermediate' });
        return { chain: [leaf.der, otherInt.der] };
      },
      'x509svid: leaf was not issued by intermediate 1',
    ],
    [
      'a lone self-signed leaf placed in the bundle',
      async () => {
        const self = await makeCert({ ca: false, keyUsage: KU.digitalSignature, uris: ['spiffe://example.org/self'] });
        return { chain: [self.der], bundles: source(new X509Bundle(td, [self.der])) };
      },
      'x509svid: leaf is not signed by an authority of trust domain "example.org"',
    ],
    [
      'an ID in another trust domain than the bundle',
      async () => ({ chain: [(await makeLeaf(root, 'spiffe://other.org/workload')).der] }),
      'x509svid: no X.509 bundle for trust domain "other.org"',
    ],
    [
      'an ID in another trust domain when the source hands back the wrong bundle',
      async () => ({ chain: [(await makeLeaf(root, 'spiffe://other.org/workload')).der], bundles: () => bundle }),
      'x509svid: bundle for trust domain "example.org" offered for "other.org"',
    ],
    [
      'a missing bundle',
      async () => ({ chain: [leaf.der, intermediate.der], bundles: () => undefined }),
      'x509svid: no X.509 bundle for trust domain "example.org"',
    ],
    [
      'an empty bundle',
      async () => ({ chain: [leaf.der, intermediate.der], bundles: source(new X509Bundle(td)) }),
      'x509svid: intermediate 1 is not signed by an authority of trust domain "example.org"',
    ],
  ];

  it.each(cases)('%s', async (_name, make, message) => {
    const { chain, bundles, now } = await make();
    const err = thrown(() => verifyX509Svid(chain, bundles ?? source(bundle), now));
    expect(err.message).toBe(message);
    expect(err.code).toBe('invalid_argument');
  });
});

// The fields are read from the DER by this module's own reader (no certificate library).
describe('verifyX509Svid reads the DER exactly', () => {
  it.each([
    ['a second keyUsage extension', () => [new KeyUsagesExtension(KU.keyCertSign, true)], { ca: false }, 'x509svid: leaf has more than one keyUsage extension'],
    ['a second basicConstraints extension', () => [new Extension('2.5.29.19', true, new Uint8Array([0x30, 0x03, 0x01, 0x01, 0xff]))], { ca: false }, 'x509svid: leaf has more than one basicConstraints extension'],
    ['basicConstraints that is not a SEQUENCE', () => [new Extension('2.5.29.19', true, new Uint8Array([0x05, 0x00]))], { ca: null }, 'x509svid: leaf has a malformed extension'],
    ['basicConstraints with a trailing field', () => [new Extension('2.5.29.19', true, new Uint8Array([0x30, 0x05, 0x02, 0x01, 0x00, 0x05, 0x00]))], { ca: null }, 'x509svid: leaf has a malformed extension'],
    ['a negative pathLenConstraint', () => [new Extension('2.5.29.19', true, new Uint8Array([0x30, 0x03, 0x02, 0x01, 0xff]))], { ca: null }, 'x509svid: leaf has a malformed extension'],
    ['keyUsage that is not a BIT STRING', () => [new Extension('2.5.29.15', true, new Uint8Array([0x04, 0x01, 0x80]))], { keyUsage: null }, 'x509svid: leaf has a malformed extension'],
  ] as const)('refuses a leaf with %s', async (_name, extra, opts, message) => {
    const bad = await makeLeaf(intermediate, 'spiffe://example.org/workload', { ...opts, extraExtensions: extra() });
    expect(thrown(() => verifyX509Svid([bad.der, intermediate.der], source(bundle))).message).toBe(message);
  });

  it('reads keyUsage bit by bit: digitalSignature alone, then with keyCertSign (bit 5)', async () => {
    const alone = await makeLeaf(intermediate, 'spiffe://example.org/workload', { keyUsage: KU.digitalSignature | KU.keyAgreement });
    expect(verifyX509Svid([alone.der, intermediate.der], source(bundle)).spiffeId.toString()).toBe('spiffe://example.org/workload');
    const signer = await makeLeaf(intermediate, 'spiffe://example.org/workload', { keyUsage: KU.digitalSignature | KU.keyCertSign });
    expect(thrown(() => verifyX509Svid([signer.der, intermediate.der], source(bundle))).message).toBe('x509svid: leaf key usage must not include keyCertSign');
  });

  it('reads GeneralizedTime (years from 2050) to the second', async () => {
    const notAfter = new Date('2060-03-01T12:34:56Z');
    const far = { notBefore: new Date('2049-12-31T23:59:59Z'), notAfter };
    const r = await makeRoot('example.org', far);
    const l = await makeLeaf(r, 'spiffe://example.org/workload', far);
    const b = source(new X509Bundle(td, [r.der]));
    expect(verifyX509Svid([l.der], b, notAfter).spiffeId.toString()).toBe('spiffe://example.org/workload');
    expect(thrown(() => verifyX509Svid([l.der], b, new Date(notAfter.getTime() + 1000))).message).toBe('x509svid: leaf has expired');
    expect(thrown(() => verifyX509Svid([l.der], b, new Date('2049-12-31T23:59:58Z'))).message).toBe('x509svid: leaf is not yet valid');
  });
});

describe('parseSpiffeIdFromCert', () => {
  it('reads the ID from a Node certificate or DER, leaf or CA', () => {
    expect(parseSpiffeIdFromCert(new X509Certificate(Buffer.from(leaf.der))).toString()).toBe('spiffe://example.org/workload');
    expect(parseSpiffeIdFromCert(leaf.der).toString()).toBe('spiffe://example.org/workload');
    const rootId = parseSpiffeIdFromCert(root.der);
    expect(rootId.toString()).toBe('spiffe://example.org');
    expect(rootId.isTrustDomainId()).toBe(true);
  });

  it.each([
    [{ uris: [] as string[] }, 'x509svid: certificate has no URI SAN'],
    [{ uris: ['spiffe://example.org/a', 'spiffe://example.org/b', 'spiffe://example.org/c'] }, 'x509svid: certificate has 3 URI SANs, want exactly one'],
    [{ uris: ['spiffe://Example.org/a'] }, 'x509svid: certificate URI SAN is not a valid SPIFFE ID: spiffeid: trust domain contains an invalid character "E"'],
  ])('rejects %j', async (opts, message) => {
    const cert = await makeCert(opts);
    expect(thrown(() => parseSpiffeIdFromCert(cert.der)).message).toBe(message);
  });
});

describe('uriSansOf', () => {
  it('lists the URI SANs from either of Node\'s spellings, and nothing else', () => {
    expect(uriSansOf({ subjectaltname: 'DNS:a.example, URI:spiffe://td/x, IP Address:127.0.0.1, URI:spiffe://td/y' })).toEqual(['spiffe://td/x', 'spiffe://td/y']);
    expect(uriSansOf({ subjectAltName: 'URI:spiffe://td/z' })).toEqual(['spiffe://td/z']);
    expect(uriSansOf({ subjectaltname: 'DNS:only.example' })).toEqual([]);
    expect(uriSansOf({})).toEqual([]);
  });
});
