import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeRoot, type TestCert } from '../helpers/pki.js';
import { parseJwtBundlesResponse, parseX509BundlesResponse } from '@anchorage/client/parse';
import { expectClearError, mutate, mutationArb, outcome, params, testTimeout } from './fuzz.js';
import { jwkOf } from '../helpers/jwk.js';

/**
 * The Workload API client library (packages/client/src/parse.ts) reading
 * bundle responses: concatenated DER from the agent, JWKS documents.
 * Anything that does not hang together is AnchorageError('internal')
 * "workloadapi: malformed ...", never another error.
 */

let roots: TestCert[];
let jwks: string;

beforeAll(async () => {
  roots = [await makeRoot('fuzz.test'), await makeRoot('fuzz.test')];
  const jwk = jwkOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
  jwks = JSON.stringify({ keys: [{ ...jwk, kid: 'k1', use: 'jwt-svid' }] });
});

const tdKey = fc.oneof(fc.constant('spiffe://fuzz.test'), fc.constant('fuzz.test'), fc.string({ maxLength: 20 }), fc.constant(''));

describe('fuzz: Workload API client responses (packages/client/src/parse.ts)', () => {
  it(
    'X509BundlesResponse: random and mutated DER is refused as "workloadapi: malformed X509BundlesResponse"',
    () => {
      const bytes = fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.array(mutationArb(), { minLength: 1, maxLength: 3 }).map((m) => mutate(Buffer.concat([roots[0]!.der, roots[1]!.der]), m)),
        fc.constant(new Uint8Array(0)),
      );
      fc.assert(
        fc.property(tdKey, bytes, (key, b) => {
          const got = outcome(() => parseX509BundlesResponse({ bundles: { [key]: Buffer.from(b) }, crl: [] }));
          if (!got.ok) {
            expectClearError(got.err, 'internal', 'workloadapi: malformed X509BundlesResponse: ');
            return;
          }
          // Accepted: whole DER certificates only, as many as were sent at most. A
          // changed certificate may be accepted: trust anchors' self-signatures
          // are not checked (as in go-spiffe), the agent is trusted for them.
          for (const bundle of got.value) {
            expect(bundle.authorities().reduce((n, d) => n + d.length, 0)).toBeLessThanOrEqual(b.length);
          }
        }),
        params(800),
      );
    },
    testTimeout(),
  );

  it(
    'JWTBundlesResponse: random and mutated JWKS is refused as "workloadapi: malformed JWTBundlesResponse"',
    () => {
      const doc = fc.oneof(
        fc.json({ maxDepth: 3 }).map((s) => Buffer.from(s)),
        fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)),
        fc.array(mutationArb(), { minLength: 1, maxLength: 3 }).map((m) => Buffer.from(mutate(Buffer.from(jwks), m))),
      );
      fc.assert(
        fc.property(tdKey, doc, (key, d) => {
          const got = outcome(() => parseJwtBundlesResponse({ bundles: { [key]: d } }));
          if (!got.ok) expectClearError(got.err, 'internal', 'workloadapi: malformed JWTBundlesResponse: ');
        }),
        params(800),
      );
    },
    testTimeout(),
  );
});
