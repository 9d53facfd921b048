import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkSelector, parseSelector } from '../../ca/entries.js';
import { expectClearError, outcome, params, testTimeout } from './fuzz.js';

/**
 * Selectors (ca/entries.ts): `type:value` from the CLI and the admin API.
 * The reference below is the documented rule (type: 1-64 of [a-z0-9_-];
 * value: 1-1024 characters, no control characters); the parser may be
 * stricter about control-like characters (issue 10 item 12) but never
 * laxer, and must accept plain printable ASCII.
 */

const TYPE = /^[a-z0-9_-]{1,64}$/;
// eslint-disable-next-line no-control-regex
const C0 = /[\u0000-\u001f]/;

/** The lenient reference: what must hold for anything accepted. */
function refLenient(type: string, value: string): boolean {
  return TYPE.test(type) && value.length >= 1 && value.length <= 1024 && !C0.test(value);
}

/** The strict reference: what must be accepted (printable ASCII only). */
function refSurelyValid(type: string, value: string): boolean {
  return TYPE.test(type) && value.length >= 1 && value.length <= 1024 && /^[\x20-\x7e]+$/.test(value);
}

const typeChar = fc.constantFrom(...'abz09_-'.split(''), 'A', ' ', ':', '\u0000', 'é');
const valueUnit = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...'uid:1000/abc-_.=*'.split('')) },
  { weight: 1, arbitrary: fc.constantFrom('\u0000', '\n', '\r', '\u001b', '\u007f', '\u0085', '\u202e', '\u2066', '\ud800', 'é', '😀', ' ') },
);
const typeArb = fc.oneof(
  fc.constantFrom('unix', 'k8s', 'join_token', 'docker-x', ''),
  fc.string({ unit: typeChar, maxLength: 70 }),
);
const valueArb = fc.oneof(
  fc.string({ unit: valueUnit, maxLength: 40 }),
  fc.integer({ min: 1015, max: 1035 }).map((n) => 'v'.repeat(n)),
  fc.string({ unit: 'binary', maxLength: 20 }),
);
const textArb = fc.oneof(
  fc.tuple(typeArb, valueArb).map(([t, v]) => `${t}:${v}`),
  fc.string({ unit: fc.oneof(typeChar, valueUnit), maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

const RUNS = 3000;

describe('fuzz: selectors (ca/entries.ts)', () => {
  it(
    'parseSelector: accepted selectors obey the rules and round-trip; printable ones are accepted; refusals are invalid_argument "entry: "',
    () => {
      fc.assert(
        fc.property(textArb, (text) => {
          const i = text.indexOf(':');
          const type = i === -1 ? text : text.slice(0, i);
          const value = i === -1 ? '' : text.slice(i + 1);
          const got = outcome(() => parseSelector(text));
          if (got.ok) {
            expect(refLenient(type, value), `accepted ${JSON.stringify(text)}`).toBe(true);
            expect(got.value).toEqual({ type, value });
            expect(parseSelector(`${got.value.type}:${got.value.value}`)).toEqual(got.value);
          } else {
            expectClearError(got.err, 'invalid_argument', 'entry: selector ');
            expect(refSurelyValid(type, value), `refused ${JSON.stringify(text)}: ${String(got.err)}`).toBe(false);
          }
        }),
        params(RUNS),
      );
    },
    testTimeout(),
  );

  it(
    'checkSelector agrees with parseSelector on the same parts',
    () => {
      fc.assert(
        fc.property(typeArb, valueArb, (type, value) => {
          const a = outcome(() => checkSelector({ type, value }));
          if (!a.ok) expectClearError(a.err, 'invalid_argument', 'entry: selector ');
          // A type with ":" would be split differently by parseSelector; only compare when it cannot be.
          if (type.includes(':')) return;
          const b = outcome(() => parseSelector(`${type}:${value}`));
          expect(b.ok).toBe(a.ok);
          if (a.ok && b.ok) expect(b.value).toEqual(a.value);
        }),
        params(RUNS),
      );
    },
    testTimeout(),
  );

  // Issue 10 item 12: the message quoted the raw input, so a selector with
  // "\n" or ESC gave a multi-line error or a terminal escape sequence in the
  // CLI's output, and a 1 MB selector a 1 MB message. Fixed: quote() of
  // common/text.ts (JSON-escaped, cut at 64 characters).
  it(
    'refusal messages are one printable line of bounded length, whatever the input',
    () => {
      fc.assert(
        fc.property(textArb, (text) => {
          const got = outcome(() => parseSelector(text));
          if (got.ok) return;
          expectClearError(got.err, 'invalid_argument', 'entry: selector ');
          // eslint-disable-next-line no-control-regex
          expect(got.err.message).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
          expect(got.err.message.length).toBeLessThanOrEqual(300);
        }),
        params(RUNS),
      );
    },
    testTimeout(),
  );

  // Issue 10 item 12 again: DEL, C1 controls, bidi controls and lone
  // surrogates passed a C0-only check, so `entry list` could print them raw.
  // Fixed: checkSelector refuses the control class of common/text.ts and
  // lone surrogates.
  it(
    'accepted selector values carry no control, bidi or lone-surrogate characters',
    () => {
      fc.assert(
        fc.property(typeArb, valueArb, (type, value) => {
          const got = outcome(() => checkSelector({ type, value }));
          if (!got.ok) return;
          expect(got.value.value).not.toMatch(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
          // A lone surrogate cannot be stored or printed as UTF-8 faithfully.
          expect(got.value.value).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
        }),
        params(RUNS),
      );
    },
    testTimeout(),
  );
});
