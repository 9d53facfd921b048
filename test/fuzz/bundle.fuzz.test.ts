import { createPublicKey, generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_BUNDLE_BYTES, SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import { makeRoot, newKeyPair } from '../helpers/pki.js';
import { expectClearError, outcome, params, testTimeout } from './fuzz.js';
import { jwkOf } from '../helpers/jwk.js';

/**
 * SPIFFE bundle documents (spiffe/bundle.ts), as fetched from a federation
 * peer or read from an operator's file: random JSON, mutations of a valid
 * document, huge numbers, wrong types, duplicate members, deep nesting.
 * Every document is refused with invalid_argument "bundle: ..." or parsed
 * into a bundle that marshals and re-parses to itself and trusts nothing
 * the document did not carry.
 */

const td = TrustDomain.parse('fuzz.test');
let validDoc: Record<string, unknown>;
let valid: SpiffeBundle;

beforeAll(async () => {
  const roots = [await makeRoot('fuzz.test'), await makeRoot('fuzz.test', { keys: await newKeyPair('ec-p384') })];
  const ec = jwkOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
  const rsa = jwkOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
  valid = new SpiffeBundle(td, {
    x509Authorities: roots.map((r) => r.der),
    jwtAuthorities: [
      ['kid-ec', ec],
      ['kid-rsa', rsa],
    ],
    sequence: 7,
    refreshHint: 300,
  });
  validDoc = JSON.parse(valid.marshal()) as Record<string, unknown>;
}, 60_000);

/** Asserts the outcome of parsing `doc`: a clear refusal, or a bundle that round-trips and adds no authority. */
function checkDoc(doc: string | Uint8Array): SpiffeBundle | undefined {
  const got = outcome(() => SpiffeBundle.parse(td, doc));
  if (!got.ok) {
    expectClearError(got.err, 'invalid_argument', 'bundle: ');
    expect(got.err.message).not.toContain('\n');
    return undefined;
  }
  const b = got.value;
  const again = SpiffeBundle.parse(td, b.marshal());
  expect(again.equals(b)).toBe(true);
  // X.509 authorities cannot be forged by a mutation: each must be one the valid document held.
  for (const der of b.x509.authorities()) expect(valid.x509.has(der)).toBe(true);
  // A JWT authority is the key its own document entry describes, under that entry's kid.
  const text = typeof doc === 'string' ? doc : Buffer.from(doc).toString('utf8');
  const entries = (JSON.parse(text) as { keys: Record<string, unknown>[] }).keys.filter((k) => k?.use === 'jwt-svid');
  for (const [kid, jwk] of b.jwt.keys()) {
    const own = entries.filter((k) => k.kid === kid);
    expect(own.length).toBe(1);
    // The same key, spelled exactly as stored: one key, one encoding.
    expect(createPublicKey({ key: own[0] as JsonWebKey, format: 'jwk' }).equals(createPublicKey({ key: { ...jwk }, format: 'jwk' }))).toBe(true);
    for (const [m, v] of Object.entries(jwk)) expect(own[0]![m], m).toBe(v);
  }
  return b;
}

// Values that break type assumptions: huge and odd numbers, wrong types.
const nastyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom<unknown>(
    null, true, '', 'x509-svid', 'jwt-svid', 'EC', 'RSA', 'OKP', 'oct', -1, -0, 0.5, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308,
    [], {}, [''], ['!!!'], ['AAAA'], { kty: 'EC' }, '__proto__', 'P-256', 'P-521', 'Ed25519',
  ),
);

type Path = (string | number)[];

function paths(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out);
  return out;
}

type Op = { kind: 'replace'; value: unknown } | { kind: 'delete' } | { kind: 'add'; key: string; value: unknown } | { kind: 'dup' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), value: nastyValue }),
  fc.record({ kind: fc.constant('delete' as const) }),
  fc.record({ kind: fc.constant('add' as const), key: fc.constantFrom('use', 'kty', 'kid', 'x5c', 'crv', 'd', 'alg', 'n', 'e', 'x', 'y', 'keys', 'spiffe_sequence', 'zz'), value: nastyValue }),
  fc.record({ kind: fc.constant('dup' as const) }),
);

function applyOp(root: unknown, path: Path, op: Op): unknown {
  if (path.length === 0) return op.kind === 'replace' ? op.value : root;
  const parent = path.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], root) as Record<string | number, unknown> | unknown[];
  const key = path[path.length - 1]!;
  const target = (parent as Record<string | number, unknown>)[key];
  switch (op.kind) {
    case 'replace':
      (parent as Record<string | number, unknown>)[key] = op.value;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete (parent as Record<string, unknown>)[key as string];
      break;
    case 'add':
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) (target as Record<string, unknown>)[op.key] = op.value;
      break;
    case 'dup':
      if (Array.isArray(parent)) parent.push(structuredClone(target));
      break;
  }
  return root;
}

const mutatedDoc = fc.array(fc.tuple(fc.nat(), opArb), { minLength: 1, maxLength: 4 }).map((ops) => {
  let doc: unknown = structuredClone(validDoc);
  for (const [i, op] of ops) {
    const ps = paths(doc);
    doc = applyOp(doc, ps[i % ps.length]!, op);
  }
  return JSON.stringify(doc) ?? 'undefined';
});

const USES = new Set(['x509-svid', 'jwt-svid']);

describe('fuzz: SPIFFE bundle documents (spiffe/bundle.ts)', () => {
  it(
    'random JSON, random text and random bytes: refused with invalid_argument "bundle: " or a self-consistent bundle',
    () => {
      const input = fc.oneof(
        fc.json({ maxDepth: 4 }),
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ keys: [v], spiffe_sequence: 1 })),
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ keys: v })),
        fc.string({ unit: 'binary', maxLength: 100 }),
        fc.uint8Array({ maxLength: 100 }),
      );
      fc.assert(fc.property(input, (doc) => void checkDoc(doc)), params(1500));
    },
    testTimeout(),
  );

  it(
    'mutations of a valid document (wrong types, huge numbers, deleted and duplicated members) never add trust',
    () => {
      fc.assert(fc.property(mutatedDoc, (doc) => void checkDoc(doc)), params(800));
    },
    testTimeout(),
  );

  it(
    'keys with an unknown use or an unsupported kty are skipped; the rest is kept exactly',
    () => {
      const unknownUse = fc.oneof(fc.string({ maxLength: 12 }).filter((u) => !USES.has(u)), fc.constantFrom<unknown>(null, 1, ['x509-svid'], { a: 1 }, 'X509-SVID', 'enc', 'sig'));
      const unknownKty = fc.constantFrom('OKP', 'oct', 'ec', 'rsa', 'EC2', '');
      fc.assert(
        fc.property(fc.array(fc.tuple(fc.boolean(), fc.oneof(unknownUse.map((u) => ({ use: u })), unknownKty.map((k) => ({ kty: k })))), { minLength: 4, maxLength: 4 }), (changes) => {
          const doc = structuredClone(validDoc) as { keys: Record<string, unknown>[] };
          const expected = new SpiffeBundle(td, { sequence: 7, refreshHint: 300 });
          doc.keys.forEach((k, i) => {
            const [change, what] = changes[i]!;
            if (change) {
              if ('use' in what && what.use === undefined) delete k.use;
              else Object.assign(k, what);
            } else if (k.use === 'x509-svid') {
              expected.x509.add(Buffer.from((k.x5c as string[])[0]!, 'base64'));
            } else {
              expected.jwt.addKey(k.kid as string, k as never);
            }
          });
          const got = outcome(() => SpiffeBundle.parse(td, JSON.stringify(doc)));
          if (!got.ok) throw new Error(`refused a document whose unknown keys should be skipped: ${String(got.err)}`);
          expect(got.value.equals(expected)).toBe(true);
        }),
        params(500),
      );
    },
    testTimeout(),
  );

  it(
    're-spelled JWK members (padding, whitespace, the standard alphabet, leading zeros) are refused',
    () => {
      const spell = fc.constantFrom(
        (v: string) => `${v}=`,
        (v: string) => `${v}==`,
        (v: string) => ` ${v}`,
        (v: string) => `${v.slice(0, 4)}\n${v.slice(4)}`,
        (v: string) => Buffer.concat([Buffer.alloc(1), Buffer.from(v, 'base64url')]).toString('base64url'),
        (v: string) => Buffer.from(v, 'base64url').toString('base64'),
      );
      fc.assert(
        fc.property(fc.nat({ max: 3 }), fc.constantFrom('x', 'y', 'n', 'e'), spell, (i, m, respell) => {
          const doc = structuredClone(validDoc) as { keys: Record<string, unknown>[] };
          const k = doc.keys[i]!;
          if (typeof k[m] !== 'string') return;
          const v = respell(k[m] as string);
          if (v === k[m]) return; // the standard alphabet changes nothing without "-" or "_"
          k[m] = v;
          const got = outcome(() => SpiffeBundle.parse(td, JSON.stringify(doc)));
          expect(got.ok, `accepted ${m}=${JSON.stringify(v)}`).toBe(false);
          if (!got.ok) expectClearError(got.err, 'invalid_argument', /^bundle: (x509|jwt)-svid key \d .*(member "[xyne]" is not the canonical unpadded base64url encoding|has an invalid RSA public exponent)$/);
        }),
        params(300),
      );
    },
    testTimeout(),
  );

  it(
    'spiffe_sequence and spiffe_refresh_hint: only safe non-negative integers, else a clear refusal',
    () => {
      const num = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(2 ** 53 - 1, 2 ** 53, 2 ** 64, -0, 1e308), fc.jsonValue({ maxDepth: 1 }));
      fc.assert(
        fc.property(fc.constantFrom('spiffe_sequence', 'spiffe_refresh_hint'), num, (field, v) => {
          const text = JSON.stringify({ ...validDoc, [field]: v });
          const got = outcome(() => SpiffeBundle.parse(td, text));
          const parsedBack = (JSON.parse(text) as Record<string, unknown>)[field];
          const ok = parsedBack === undefined || (typeof parsedBack === 'number' && Number.isSafeInteger(parsedBack) && parsedBack >= 0);
          expect(got.ok, `${field}=${text.slice(-40)}`).toBe(ok);
          if (!got.ok) expectClearError(got.err, 'invalid_argument', `bundle: ${field} `);
          else if (parsedBack !== undefined) expect(field === 'spiffe_sequence' ? got.value.sequence : got.value.refreshHint).toBe(parsedBack);
        }),
        params(1000),
      );
    },
    testTimeout(),
  );

  it('deep nesting, duplicate members and documents over the size limit get clear answers', () => {
    const keys = JSON.stringify(validDoc.keys);
    // 300k levels: past any recursive parser's stack, under the 1 MB limit.
    const deep = `{"keys":${keys},"x":${'['.repeat(300_000)}${']'.repeat(300_000)}}`;
    const noCounters = valid.clone();
    noCounters.sequence = undefined;
    noCounters.refreshHint = undefined;
    expect(checkDoc(deep)?.equals(noCounters)).toBe(true);
    const deepKeys = `{"keys":[${'['.repeat(400_000)}${']'.repeat(400_000)}]}`;
    const r = outcome(() => SpiffeBundle.parse(td, deepKeys));
    expect(r.ok).toBe(false);
    if (!r.ok) expect((r.err as Error).message).toBe('bundle: key 0 is not a JSON object');
    // Duplicate members: JSON.parse keeps the last, as Go's encoding/json does.
    const dup = `{"keys":[],"keys":${keys},"spiffe_sequence":1,"spiffe_sequence":7,"spiffe_refresh_hint":300}`;
    expect(checkDoc(dup)?.equals(valid)).toBe(true);
    const big = `{"keys":[],"pad":"${'a'.repeat(DEFAULT_MAX_BUNDLE_BYTES)}"}`;
    const over = outcome(() => SpiffeBundle.parse(td, big));
    expect(over.ok).toBe(false);
    if (!over.ok) expect((over.err as Error).message).toBe(`bundle: document is ${big.length} bytes, more than the limit of ${DEFAULT_MAX_BUNDLE_BYTES}`);
  });
});
