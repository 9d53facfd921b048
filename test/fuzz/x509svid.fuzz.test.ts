import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { X509Bundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { makeIntermediate, makeLeaf, makeRoot, type TestCert } from '../helpers/pki.js';
import { verifyX509Svid } from '@anchorage/client/spiffe/x509svid';
import { expectClearError, mutate, mutationArb, outcome, params, testTimeout } from './fuzz.js';

/**
 * X509-SVID chains (packages/client/src/spiffe/x509svid.ts): what a federated peer or a
 * Workload API client presents. Random bytes, mutated certificates and
 * rearranged chains are refused with invalid_argument "x509svid: ...";
 * nothing but the original certificates, in an order that leads to the
 * trust domain's authority, verifies.
 */

const td = TrustDomain.parse('fuzz.test');
let root: TestCert;
let inter: TestCert;
let leaf: TestCert;
let foreignLeaf: TestCert;
let bundle: X509Bundle;
const NOW = new Date();

beforeAll(async () => {
  root = await makeRoot('fuzz.test');
  inter = await makeIntermediate(root, 'fuzz.test');
  leaf = await makeLeaf(inter, 'spiffe://fuzz.test/workload');
  const otherRoot = await makeRoot('fuzz.test');
  foreignLeaf = await makeLeaf(otherRoot, 'spiffe://fuzz.test/impostor');
  bundle = new X509Bundle(td, [root.der]);
  // The fixture chain verifies, or every "refused" below is vacuous.
  expect(verifyX509Svid([leaf.der, inter.der], () => bundle, NOW).spiffeId.toString()).toBe('spiffe://fuzz.test/workload');
}, 60_000);

function originals(): Uint8Array[] {
  return [leaf.der, inter.der, root.der];
}

function isOriginal(der: Uint8Array): boolean {
  return originals().some((o) => Buffer.from(o).equals(Buffer.from(der)));
}

function check(chain: Uint8Array[]): void {
  const got = outcome(() => verifyX509Svid(chain, (t) => (t.equals(td) ? bundle : undefined), NOW));
  if (!got.ok) {
    expectClearError(got.err, 'invalid_argument', 'x509svid: ');
    expect(got.err.message).not.toContain('\n');
    return;
  }
  // Accepted: only the genuine certificates, the genuine leaf first.
  expect(chain.every(isOriginal), 'accepted a changed certificate').toBe(true);
  expect(Buffer.from(chain[0]!).equals(Buffer.from(leaf.der))).toBe(true);
  expect(got.value.spiffeId.toString()).toBe('spiffe://fuzz.test/workload');
}

describe('fuzz: X509-SVID chains (packages/client/src/spiffe/x509svid.ts)', () => {
  it(
    'random bytes as a chain are refused with invalid_argument "x509svid: "',
    () => {
      fc.assert(
        fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 3 }), (chain) => {
          const got = outcome(() => verifyX509Svid(chain, () => bundle, NOW));
          expect(got.ok).toBe(false);
          if (!got.ok) expectClearError(got.err, 'invalid_argument', 'x509svid: ');
        }),
        params(1000),
      );
    },
    testTimeout(),
  );

  it(
    'mutated certificates (bit flips, byte sets, truncation, insertion, deletion) never verify',
    () => {
      fc.assert(
        fc.property(fc.constantFrom(0, 1), fc.array(mutationArb(), { minLength: 1, maxLength: 3 }), (which, muts) => {
          const chain = [leaf.der, inter.der];
          chain[which] = mutate(chain[which]!, muts);
          check(chain);
        }),
        params(800),
      );
    },
    testTimeout(),
  );

  it(
    'rearranged chains (dropped, repeated, reordered, foreign and root certificates) verify only in a valid order',
    () => {
      const pool = () => [leaf.der, inter.der, root.der, foreignLeaf.der];
      fc.assert(
        fc.property(fc.array(fc.nat({ max: 3 }), { maxLength: 5 }), (picks) => {
          const p = pool();
          const chain = picks.map((i) => p[i]!);
          const got = outcome(() => verifyX509Svid(chain, () => bundle, NOW));
          // The valid orders: leaf, intermediate, then optionally the root itself
          // (repeating the self-signed root adds nothing, so it is harmless).
          const valid = /^0,1(,2)*$/.test(picks.join(','));
          expect(got.ok, `chain ${picks.join(',')}`).toBe(valid);
          if (!got.ok) expectClearError(got.err, 'invalid_argument', 'x509svid: ');
        }),
        params(500),
      );
    },
    testTimeout(),
  );
});
