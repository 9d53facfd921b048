import fc from 'fast-check';
import { expect } from 'vitest';
import { AnchorageError, type ErrorCode } from '@anchorage/client/errors';

/**
 * Shared settings of the fuzz suite. Every property runs with a fixed seed
 * so CI is reproducible; FUZZ_SEED picks another one and FUZZ_RUNS scales
 * the number of runs (see test/fuzz/README.md).
 */

function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  // A typo must not silently fall back to the default and look like a pass.
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`fuzz: ${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

/** The seed every property starts from. */
export const FUZZ_SEED = envInt('FUZZ_SEED', 20261205, -0x80000000);

/** Multiplier applied to each property's default number of runs. */
export const FUZZ_RUNS = envInt('FUZZ_RUNS', 1, 1);

/** Wall-clock budget of one property at FUZZ_RUNS=1 (36 properties over 2 workers stay under ~90 s even when every one hits it). */
export const DEFAULT_TIME_LIMIT_MS = 5_000;

/**
 * fast-check parameters for one property: `runs` is the CI default, scaled
 * by FUZZ_RUNS. The time limit stops generating new inputs (it does not
 * fail the property: speed is not what is tested here) so a slow machine
 * cannot push the suite past its budget; `timeout` fails any single async
 * run that hangs.
 */
export function params<T>(runs: number, timeLimitMs = DEFAULT_TIME_LIMIT_MS): fc.Parameters<T> {
  return {
    seed: FUZZ_SEED,
    numRuns: runs * FUZZ_RUNS,
    interruptAfterTimeLimit: timeLimitMs * FUZZ_RUNS,
    timeout: 5_000,
  };
}

/** Vitest timeout for a property given its own time limit: room for shrinking a failure. */
export function testTimeout(timeLimitMs = DEFAULT_TIME_LIMIT_MS): number {
  return timeLimitMs * FUZZ_RUNS + 30_000;
}

/**
 * Asserts that `err` is the project's clear error: an AnchorageError with
 * `code` whose message starts with `prefix` and is one line.
 */
export function expectClearError(err: unknown, code: ErrorCode, prefix: string | RegExp): asserts err is AnchorageError {
  if (!(err instanceof AnchorageError)) {
    throw new Error(`expected an AnchorageError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
  expect(err.code).toBe(code);
  if (typeof prefix === 'string') expect(err.message.startsWith(prefix), `message ${JSON.stringify(err.message)} lacks prefix ${prefix}`).toBe(true);
  else expect(err.message).toMatch(prefix);
}

/** Runs `fn`; returns its value or the error it threw. */
export function outcome<T>(fn: () => T): { ok: true; value: T } | { ok: false; err: unknown } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    return { ok: false, err };
  }
}

/** The same for async functions. */
export async function outcomeAsync<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; err: unknown }> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, err };
  }
}

/** Byte-level mutations of a valid input: what a fuzzer would do to a sample. */
export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number };

export function mutationArb(): fc.Arbitrary<Mutation> {
  const at = fc.nat({ max: 0xffff });
  return fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at, bit: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at, value: fc.constantFrom(0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff) }),
    fc.record({ kind: fc.constant('truncate' as const), at }),
    fc.record({ kind: fc.constant('insert' as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
    fc.record({ kind: fc.constant('delete' as const), at, count: fc.integer({ min: 1, max: 8 }) }),
  );
}

/** Applies mutations in order; positions wrap around the current length. */
export function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = Buffer.from(input);
  for (const m of mutations) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.kind) {
      case 'flip':
        b[at] = b[at]! ^ (1 << m.bit);
        break;
      case 'set':
        b[at] = m.value;
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
    }
  }
  return new Uint8Array(b);
}
