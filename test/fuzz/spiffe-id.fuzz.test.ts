import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { expectClearError, outcome, params, testTimeout } from './fuzz.js';

/**
 * SPIFFE IDs and trust domains, differentially: the parser in spiffe/id.ts
 * against a reference written here straight from SPIFFE-ID.md §2, as
 * different from the parser's code as possible (regular expressions instead
 * of character loops). Both must agree on every input; accepted IDs must
 * round-trip unchanged; refused ones get invalid_argument "spiffeid: ...".
 */

// SPIFFE-ID.md §2.1: trust domain = lower-case letters, digits, ".", "-", "_".
const REF_TD = /^[a-z0-9._-]+$/;
// §2.2: path = zero or more "/" segment, segment = [A-Za-z0-9._-]+, but not "." or "..".
const REF_PATH = /^(?:\/[A-Za-z0-9._-]+)*$/;
const REF_ID = /^spiffe:\/\/([^/]*)(.*)$/s;

function refPathOk(path: string): boolean {
  return REF_PATH.test(path) && !path.split('/').some((seg) => seg === '.' || seg === '..');
}

function refTdOk(name: string): boolean {
  return REF_TD.test(name) && name.length <= 255;
}

/** The reference: the parts of a valid ID, or null. */
function refParseId(s: string): { td: string; path: string } | null {
  if (Buffer.byteLength(s, 'utf8') > 2048) return null;
  const m = REF_ID.exec(s);
  if (!m) return null;
  const [, td, path] = m as unknown as [string, string, string];
  return refTdOk(td) && refPathOk(path) ? { td, path } : null;
}

/** TrustDomain.parse takes a bare name or a trust domain ID (`spiffe://td`, no path). */
function refParseTd(s: string): string | null {
  if (s.startsWith('spiffe://') || /^spiffe:/i.test(s) || s.includes(':/')) {
    const id = refParseId(s);
    return id && id.path === '' ? id.td : null;
  }
  return refTdOk(s) ? s : null;
}

const tdChar = fc.constantFrom(...'abcxyz019.-_'.split(''));
const pathChar = fc.constantFrom(...'abzABZ09.-_'.split(''));
const validTd = fc.string({ unit: tdChar, minLength: 1, maxLength: 20 });
const validSegment = fc.string({ unit: pathChar, minLength: 1, maxLength: 12 }).filter((s) => s !== '.' && s !== '..');
const validId = fc
  .tuple(validTd, fc.array(validSegment, { maxLength: 5 }))
  .map(([td, segs]) => `spiffe://${td}${segs.map((s) => `/${s}`).join('')}`);

// Characters the rules care about, plus some they should refuse outright.
const nastyUnit = fc.constantFrom(
  'spiffe://', 'SPIFFE://', 'spiffe:', '/', '//', '.', '..', '%', '%2F', '?', '#', '@', ':', ':443',
  'a', 'Z', '0', '-', '_', ' ', '\u0000', '\n', '\t', 'é', 'İ', 'K' /* Kelvin sign */, '\ud800', '😀', '\u202e',
);
const nastyString = fc.string({ unit: nastyUnit, maxLength: 30 });

/** Character-level mutations of a valid ID. */
const mutatedId = fc
  .tuple(
    validId,
    fc.array(
      fc.tuple(fc.constantFrom('insert', 'delete', 'replace', 'upper'), fc.nat(), fc.oneof(nastyUnit, fc.string({ unit: 'binary', maxLength: 2 }))),
      { minLength: 1, maxLength: 4 },
    ),
  )
  .map(([id, muts]) => {
    let s = id;
    for (const [kind, at0, text] of muts) {
      const at = s.length === 0 ? 0 : at0 % s.length;
      if (kind === 'insert') s = s.slice(0, at) + text + s.slice(at);
      else if (kind === 'delete') s = s.slice(0, at) + s.slice(at + 1);
      else if (kind === 'replace') s = s.slice(0, at) + text + s.slice(at + 1);
      else s = s.slice(0, at) + s.charAt(at).toUpperCase() + s.slice(at + 1);
    }
    return s;
  });

/** IDs around the length limits: trust domains near 255 bytes, IDs near 2048. */
const longId = fc
  .tuple(fc.integer({ min: 250, max: 260 }), fc.integer({ min: 2030, max: 2060 }), fc.boolean())
  .map(([tdLen, total, multibyte]) => {
    const td = 'a'.repeat(tdLen);
    let id = `spiffe://${td}`;
    while (id.length < total) id += '/abcdefgh'.slice(0, Math.min(9, total - id.length) || 1);
    if (id.endsWith('/')) id += 'x';
    // A multi-byte character makes bytes and UTF-16 units differ.
    return multibyte ? `${id.slice(0, -1)}é` : id;
  });

const anyInput = fc.oneof(
  { weight: 3, arbitrary: mutatedId },
  { weight: 2, arbitrary: nastyString },
  { weight: 2, arbitrary: validId },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 1, arbitrary: longId },
  { weight: 1, arbitrary: fc.tuple(validTd, fc.string({ unit: 'binary', maxLength: 8 })).map(([td, t]) => `spiffe://${td}/${t}`) },
);

const RUNS = 3000;

describe('fuzz: SPIFFE IDs (spiffe/id.ts)', () => {
  it(
    'SpiffeId.parse agrees with the reference grammar; accepted IDs round-trip, refused ones are invalid_argument "spiffeid: "',
    () => {
      fc.assert(
        fc.property(anyInput, (s) => {
          const ref = refParseId(s);
          const got = outcome(() => SpiffeId.parse(s));
          if (ref === null) {
            expect(got.ok, `accepted ${JSON.stringify(s)}`).toBe(false);
            if (!got.ok) expectClearError(got.err, 'invalid_argument', 'spiffeid: ');
            return;
          }
          if (!got.ok) throw new Error(`refused valid ${JSON.stringify(s)}: ${String(got.err)}`);
          const id = got.value;
          expect(id.toString()).toBe(s);
          expect(id.trustDomain.name).toBe(ref.td);
          expect(id.path).toBe(ref.path);
          expect(SpiffeId.parse(id.toString()).equals(id)).toBe(true);
          // The other constructors agree with parse on the same parts.
          expect(SpiffeId.fromPath(TrustDomain.parse(ref.td), ref.path).equals(id)).toBe(true);
          const segs = ref.path === '' ? [] : ref.path.slice(1).split('/');
          expect(SpiffeId.fromSegments(TrustDomain.parse(ref.td), ...segs).equals(id)).toBe(true);
        }),
        params(RUNS),
      );
    },
    testTimeout(),
  );

  it(
    'TrustDomain.parse agrees with the reference (bare name or spiffe://td); refusals are invalid_argument "spiffeid: "',
    () => {
      const tdInput = fc.oneof(anyInput, validTd, fc.string({ unit: nastyUnit, maxLength: 6 }), fc.integer({ min: 250, max: 260 }).map((n) => 'b'.repeat(n)));
      fc.assert(
        fc.property(tdInput, (s) => {
          const ref = refParseTd(s);
          const got = outcome(() => TrustDomain.parse(s));
          if (ref === null) {
            expect(got.ok, `accepted ${JSON.stringify(s)}`).toBe(false);
            if (!got.ok) expectClearError(got.err, 'invalid_argument', 'spiffeid: ');
            return;
          }
          if (!got.ok) throw new Error(`refused valid ${JSON.stringify(s)}: ${String(got.err)}`);
          expect(got.value.name).toBe(ref);
          expect(TrustDomain.parse(got.value.idString()).equals(got.value)).toBe(true);
          expect(got.value.id().toString()).toBe(`spiffe://${ref}`);
        }),
        params(RUNS),
      );
    },
    testTimeout(),
  );

  it(
    'SpiffeId.fromPath and fromSegments apply the same path and length rules as parse',
    () => {
      const pathInput = fc.oneof(
        fc.array(validSegment, { maxLength: 4 }).map((segs) => segs.map((x) => `/${x}`).join('')),
        fc.string({ unit: nastyUnit, maxLength: 12 }),
        fc.integer({ min: 2000, max: 2060 }).map((n) => `/${'c'.repeat(n)}`),
      );
      fc.assert(
        fc.property(validTd, pathInput, (tdName, path) => {
          const td = TrustDomain.parse(tdName);
          // Not refParseId of the concatenation: "spiffe://a" + "_" would read as trust domain "a_".
          const ref = refPathOk(path) && Buffer.byteLength(`spiffe://${tdName}${path}`) <= 2048 ? path : null;
          const got = outcome(() => SpiffeId.fromPath(td, path));
          if (ref === null) {
            expect(got.ok, `accepted ${JSON.stringify(path)}`).toBe(false);
            if (!got.ok) expectClearError(got.err, 'invalid_argument', 'spiffeid: ');
          } else {
            if (!got.ok) throw new Error(`refused valid path ${JSON.stringify(path)}: ${String(got.err)}`);
            expect(got.value.toString()).toBe(`spiffe://${tdName}${path}`);
          }
        }),
        params(RUNS),
      );
    },
    testTimeout(),
  );

  it('the reference itself is not vacuous: it accepts and refuses some of each generator', () => {
    const sample = fc.sample(anyInput, { seed: 1, numRuns: 500 });
    const accepted = sample.filter((s) => refParseId(s) !== null).length;
    expect(accepted).toBeGreaterThan(50);
    expect(sample.length - accepted).toBeGreaterThan(50);
    expect(refParseId(`spiffe://${'a'.repeat(255)}`)).not.toBeNull();
    expect(refParseId(`spiffe://${'a'.repeat(256)}`)).toBeNull();
    expect(refParseId('spiffe://td/a/../b')).toBeNull();
  });
});
