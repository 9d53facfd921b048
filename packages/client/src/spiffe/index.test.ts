import { describe, it, expect } from 'vitest';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { SpiffeBundle, SpiffeId, TrustDomain, verifyJwtSvid, verifyX509Svid } from './index.js';
import { makeIntermediate, makeLeaf, makeRoot } from '../../../../test/helpers/pki.js';

describe('spiffe public API', () => {
  it('verifies both SVID kinds against a bundle that went through its document form', async () => {
    const td = TrustDomain.parse('spiffe://example.org');
    const root = await makeRoot();
    const intermediate = await makeIntermediate(root);
    const leaf = await makeLeaf(intermediate, 'spiffe://example.org/ns/prod/sa/web');
    const jwtKeys = await generateKeyPair('ES256', { extractable: true });

    const published = new SpiffeBundle(td, {
      x509Authorities: [root.der],
      jwtAuthorities: [['k1', await exportJWK(jwtKeys.publicKey)]],
      sequence: 3,
      refreshHint: 300,
    });
    const received = SpiffeBundle.parse(td, published.marshal());
    const bundles = new Map([[received.trustDomain.idString(), received]]);

    const x509 = verifyX509Svid([leaf.der, intermediate.der], (t) => bundles.get(t.idString())?.x509);
    expect(x509.spiffeId.equals(SpiffeId.fromSegments(td, 'ns', 'prod', 'sa', 'web'))).toBe(true);

    const jwt = await new SignJWT({ aud: 'db', exp: Math.floor(Date.now() / 1000) + 60 })
      .setSubject(x509.spiffeId.toString())
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
      .sign(jwtKeys.privateKey);
    const verified = await verifyJwtSvid(jwt, (t) => bundles.get(t.idString())?.jwt, ['db']);
    expect(verified.spiffeId.toString()).toBe('spiffe://example.org/ns/prod/sa/web');
    expect(verified.audience).toEqual(['db']);
  });
});
