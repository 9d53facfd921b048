import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseWire, tpmAnswer, tpmPayload, x509popPayload } from '../../common/attestation-wire.js';
import { parseQuote, parseSignature, parseTpm2bPublic } from '../../common/tpm2.js';
import { expectClearError, mutate, mutationArb, outcome, params, testTimeout } from './fuzz.js';

/**
 * The TPM 2.0 structures the tpm node attestor reads from an unauthenticated
 * peer (common/tpm2.ts) and the JSON messages around them
 * (common/attestation-wire.ts): random bytes and mutations of structures a
 * swtpm made (an ECC AK's and an RSA EK's TPM2B_PUBLIC, a quote and its
 * ECDSA signature; public data of a throwaway TPM). Every input is parsed
 * or refused with invalid_argument "tpm2: ..." — never another error, never
 * a hang.
 */

const SEEDS = {
  ak: '00580023000b00050072000000100018000b0003001000206e3728f2651594fd7012908a407db052cbc22658b2c91064bc8c6774ffb96c3400206fd9d2b7ee47ddaca5798aaaebf0c669578957c182d0f1c3f8cf72955c90ed31',
  ek:
    '013a0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa00060080004300100800000000000100e3e03a9410220a74a1ed792048c507a064b30749717e1e0c3cdef30c9e18c07d38aaa41246faade3c04de295f5e75c4be8745d1f11aa1e4fae10e37fb1a1873d8ae05c314050a2a398bf8a41e11e21618815f218c598984e9269730c835ef935b996350bf4163adc78d932f7f2109cdc4d6e12fd6fad6166dcb64978a4a41c988cbac4bc4a6d80bf0cc74db4de436b7d0658b907efdfe2a6c0e22cec0ae5732d1963a6a64eda28ae9bbb4021d3743e59e0705ee5d61ba5419d86a5d68e5cdaea53f4efc8f23f6a1f51d4bb619a1a688923fc99377ee7c55def5500dd630312f63352903be1cfd1997a769dc806ba6014112304d7e3c082225fa72aa60de09a21',
  quote:
    'ff54434780180022000b6bf47607c00cefff86aaf61a83dbeeeafb2a04a7fbbe166a9af07abade507964000400112233000000000000a617000000020000000001201910230016363600000001000b0383000000202ea9ab9198d1638007400cd2c3bef1cc745b864b76011a0e1bc52180ac6452d4',
  sig: '0018000b00200a2f0fdc86d9595c36ea1507b59ec9ae17046a032606853ecb4a11f65e05653e00209e62f60fc2a71ea8179c3e75416c9fafed3aac7c81a217041324285ec5461365',
};

const PARSERS: [keyof typeof SEEDS, (b: Buffer) => unknown][] = [
  ['ak', (b) => parseTpm2bPublic(b, 'AK public area')],
  ['ek', (b) => parseTpm2bPublic(b, 'EK public area')],
  ['quote', (b) => parseQuote(b)],
  ['sig', (b) => parseSignature(b)],
];

describe('tpm2 structures (fuzz)', () => {
  it('the seeds parse: a P-256 AK, an RSA-2048 EK, a quote of sha256:0,1,7 over 00112233, an ECDSA-SHA256 signature', () => {
    const ak = parseTpm2bPublic(Buffer.from(SEEDS.ak, 'hex'), 'ak');
    expect([ak.type, ak.bits, ak.name.toString('hex')]).toEqual(['ecc', 256, '000b4302cf7164968d2c7ddec46a06417e1560388d6a602e79e3f142cdcd6f82cf44']);
    const ek = parseTpm2bPublic(Buffer.from(SEEDS.ek, 'hex'), 'ek');
    expect([ek.type, ek.bits, ek.symKeyBits]).toEqual(['rsa', 2048, 128]);
    const q = parseQuote(Buffer.from(SEEDS.quote, 'hex'));
    expect([q.extraData.toString('hex'), q.selections]).toEqual(['00112233', [{ hashAlg: 0x0b, indices: [0, 1, 7] }]]);
    expect(parseSignature(Buffer.from(SEEDS.sig, 'hex')).sigAlg).toBe(0x18);
  });

  for (const [name, parse] of PARSERS) {
    it(
      `${name}: every mutation parses or is refused with invalid_argument "tpm2: ..."`,
      () => {
        const seed = new Uint8Array(Buffer.from(SEEDS[name], 'hex'));
        fc.assert(
          fc.property(fc.array(mutationArb(), { minLength: 1, maxLength: 4 }), (ms) => {
            const r = outcome(() => parse(Buffer.from(mutate(seed, ms))));
            if (!r.ok) expectClearError(r.err, 'invalid_argument', 'tpm2: ');
          }),
          params(300),
        );
      },
      testTimeout(),
    );
  }

  it(
    'random bytes are refused with invalid_argument by every parser and message schema',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
          const b = Buffer.from(bytes);
          for (const [, parse] of PARSERS) {
            const r = outcome(() => parse(b));
            if (!r.ok) expectClearError(r.err, 'invalid_argument', 'tpm2: ');
          }
          for (const schema of [tpmPayload, tpmAnswer, x509popPayload]) {
            const r = outcome(() => parseWire(schema, b, 'msg'));
            if (!r.ok) expectClearError(r.err, 'invalid_argument', 'msg');
          }
        }),
        params(300),
      );
    },
    testTimeout(),
  );
});
