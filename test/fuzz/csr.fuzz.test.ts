import 'reflect-metadata';
import * as px509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCsr } from '../../ca/x509/csr.js';
import { keyAndCsr } from '../helpers/csr.js';
import { expectClearError, mutate, mutationArb, outcomeAsync, params, testTimeout } from './fuzz.js';

/**
 * CSR DER (ca/x509/csr.ts, and through it ca/x509/der.ts and the native
 * ECDSA verifier): random bytes and mutations of valid requests of every
 * accepted key type. Every input is refused with invalid_argument "csr: ..."
 * or accepted; an accepted one must verify under an independent
 * implementation (@peculiar/x509 over WebCrypto) and carry the same key.
 */

interface Seed {
  name: string;
  der: Uint8Array;
}

const seeds: Seed[] = [];

async function peculiarCsr(name: string, alg: Record<string, unknown>): Promise<Seed> {
  const keys = (await webcrypto.subtle.generateKey(alg as never, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const req = await px509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=fuzz, O=Test',
    keys,
    signingAlgorithm: alg as never,
    extensions: [new px509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://example.org/x' }])],
  });
  return { name, der: new Uint8Array(req.rawData) };
}

beforeAll(async () => {
  seeds.push({ name: 'p256-minimal', der: new Uint8Array(keyAndCsr().csr) });
  seeds.push(await peculiarCsr('p384', { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' }));
  seeds.push(await peculiarCsr('rsa-pkcs1', { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }));
  seeds.push(await peculiarCsr('rsa-pss', { name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256', saltLength: 32 }));
  seeds.push(await peculiarCsr('ed25519', { name: 'Ed25519' }));
  // The seeds themselves must parse, or every mutation test is vacuous.
  for (const s of seeds) await parseCsr(s.der);
}, 60_000);

/** One DER TLV as found in the seed: where its length field sits, where its content lies. */
interface TlvPos {
  tag: number;
  lenPos: number;
  lenLen: number;
  contentStart: number;
  end: number;
}

/** Walks every TLV of valid DER (constructed types recursively). */
function walk(der: Uint8Array, start = 0, end = der.length, out: TlvPos[] = []): TlvPos[] {
  let p = start;
  while (p < end) {
    const tag = der[p]!;
    const lenPos = p + 1;
    let len = der[lenPos]!;
    let lenLen = 1;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[lenPos + 1 + i]!;
      lenLen = 1 + n;
    }
    const contentStart = lenPos + lenLen;
    const tlv = { tag, lenPos, lenLen, contentStart, end: contentStart + len };
    out.push(tlv);
    if (tag & 0x20) walk(der, contentStart, tlv.end, out);
    p = tlv.end;
  }
  return out;
}

/** The independent oracle: does @peculiar/x509 read the same key and accept the signature? */
async function oracleAccepts(der: Uint8Array, spki: Uint8Array): Promise<boolean> {
  try {
    const req = new px509.Pkcs10CertificateRequest(Buffer.from(der));
    if (!Buffer.from(req.publicKey.rawData).equals(Buffer.from(spki))) return false;
    return await req.verify();
  } catch {
    return false;
  }
}

async function checkOne(der: Uint8Array): Promise<'accepted' | 'refused'> {
  const got = await outcomeAsync(() => parseCsr(der));
  if (!got.ok) {
    expectClearError(got.err, 'invalid_argument', 'csr: ');
    expect(got.err.message).not.toContain('\n');
    return 'refused';
  }
  expect(await oracleAccepts(der, got.value.spki), `accepted a CSR the oracle refuses: ${Buffer.from(der).toString('hex')}`).toBe(true);
  return 'accepted';
}

const seedIndex = () => fc.nat({ max: 4 });

describe('fuzz: CSR DER (ca/x509/csr.ts)', () => {
  it(
    'random bytes (and random bytes behind a SEQUENCE header) are refused with invalid_argument "csr: "',
    async () => {
      const bytes = fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }).map((b) => Uint8Array.from([0x30, 0x82, b.length >> 8, b.length & 0xff, ...b])),
        fc.uint8Array({ maxLength: 120 }).map((b) => Uint8Array.from([0x30, b.length, ...b])),
      );
      await fc.assert(
        fc.asyncProperty(bytes, async (der) => {
          expect(await checkOne(der)).toBe('refused');
        }),
        params(2000),
      );
    },
    testTimeout(),
  );

  it(
    'mutations of valid CSRs (bit flips, byte sets, truncation, insertion, deletion) are refused clearly or verify independently',
    async () => {
      await fc.assert(
        fc.asyncProperty(seedIndex(), fc.array(mutationArb(), { minLength: 1, maxLength: 4 }), async (i, muts) => {
          await checkOne(mutate(seeds[i]!.der, muts));
        }),
        params(1500),
      );
    },
    testTimeout(),
  );

  it(
    'length-field tampering at every TLV of the valid CSRs is refused with invalid_argument "csr: "',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          seedIndex(),
          fc.nat(),
          fc.oneof(
            fc.record({ set: fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x88, 0x89, 0xff) }),
            fc.record({ delta: fc.integer({ min: -3, max: 3 }).filter((d) => d !== 0) }),
          ),
          async (i, which, tamper) => {
            const der = Buffer.from(seeds[i]!.der);
            const tlvs = walk(der);
            const t = tlvs[which % tlvs.length]!;
            const before = Buffer.from(der);
            // A small delta keeps the form (short/long) and changes the length; a constant overwrites the first length byte.
            if ('delta' in tamper) {
              const last = t.lenPos + t.lenLen - 1;
              const v = der[last]! + tamper.delta;
              if (v < 0 || v > (t.lenLen === 1 ? 0x7f : 0xff)) return;
              der[last] = v;
            } else {
              der[t.lenPos] = tamper.set;
            }
            if (der.equals(before)) return;
            const got = await outcomeAsync(() => parseCsr(der));
            // A changed length either breaks the structure or moves bytes
            // between siblings, which changes what was signed: never accepted.
            expect(got.ok, `accepted tampered length at ${t.lenPos}: ${der.toString('hex')}`).toBe(false);
            if (!got.ok) expectClearError(got.err, 'invalid_argument', 'csr: ');
          },
        ),
        params(1500),
      );
    },
    testTimeout(),
  );

  it(
    'a bit flipped anywhere in the signed content or the signature value is never accepted',
    async () => {
      await fc.assert(
        fc.asyncProperty(seedIndex(), fc.nat(), fc.nat({ max: 7 }), fc.boolean(), async (i, at, bit, inSignature) => {
          const der = Buffer.from(seeds[i]!.der);
          const [top, cri] = walk(der);
          // The signature BIT STRING is the last child of the top SEQUENCE.
          const sig = walk(der).filter((t) => t.end === top!.end && t.tag === 0x03).pop()!;
          const [from, to] = inSignature ? [sig.contentStart + 1, sig.end] : [cri!.contentStart, cri!.end];
          const pos = from + (at % (to - from));
          der[pos] = der[pos]! ^ (1 << bit);
          const got = await outcomeAsync(() => parseCsr(der));
          expect(got.ok, `accepted a CSR with byte ${pos} flipped`).toBe(false);
          if (!got.ok) expectClearError(got.err, 'invalid_argument', 'csr: ');
        }),
        params(1500),
      );
    },
    testTimeout(),
  );

  it(
    'a flipped bit inside the ECDSA r or s integers is refused with exactly "csr: signature does not verify"',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(0, 1), fc.boolean(), fc.nat(), fc.nat({ max: 7 }), async (i, useS, at, bit) => {
          const der = Buffer.from(seeds[i]!.der); // the two ECDSA seeds
          const tlvs = walk(der);
          const top = tlvs[0]!;
          const sig = tlvs.filter((t) => t.end === top.end && t.tag === 0x03).pop()!;
          const ints = walk(der, sig.contentStart + 1, sig.end).filter((t) => t.tag === 0x02);
          const n = useS ? ints[1]! : ints[0]!;
          // Skip the first content byte: flipping it can break minimal encoding or the sign.
          if (n.end - n.contentStart < 2) return;
          const pos = n.contentStart + 1 + (at % (n.end - n.contentStart - 1));
          der[pos] = der[pos]! ^ (1 << bit);
          const got = await outcomeAsync(() => parseCsr(der));
          expect(got.ok).toBe(false);
          if (!got.ok) {
            expectClearError(got.err, 'invalid_argument', 'csr: ');
            expect(got.err.message).toBe('csr: signature does not verify');
          }
        }),
        params(500),
      );
    },
    testTimeout(),
  );

  it('the oracle accepts every seed (so "accepted" checks are not vacuous)', async () => {
    for (const s of seeds) {
      const parsed = await parseCsr(s.der);
      expect(await oracleAccepts(s.der, parsed.spki), s.name).toBe(true);
    }
  });
});
