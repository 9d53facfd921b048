import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DerError,
  bitString,
  childList,
  encode,
  explicit,
  ia5String,
  namedBits,
  oid,
  oidToString,
  p1363ToDer,
  printableString,
  readTlv,
  readWhole,
  seq,
  smallInteger,
  time,
  unsignedInteger,
} from './der.js';
import { encodeName } from '../../../../ca/x509/name.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('der writer', () => {
  it('encodes unsigned integers minimally', () => {
    expect(hex(unsignedInteger(Buffer.from('00', 'hex')))).toBe('020100');
    expect(hex(unsignedInteger(new Uint8Array(0)))).toBe('020100');
    expect(hex(unsignedInteger(Buffer.from('7f', 'hex')))).toBe('02017f');
    expect(hex(unsignedInteger(Buffer.from('80', 'hex')))).toBe('02020080');
    expect(hex(unsignedInteger(Buffer.from('000080', 'hex')))).toBe('02020080');
    expect(hex(unsignedInteger(Buffer.from('00007f', 'hex')))).toBe('02017f');
    expect(hex(smallInteger(2))).toBe('020102');
    expect(hex(smallInteger(256))).toBe('02020100');
  });

  it('encodes OIDs and decodes them back', () => {
    expect(hex(oid('1.2.840.10045.4.3.2'))).toBe('06082a8648ce3d040302');
    expect(hex(oid('2.5.29.19'))).toBe('0603551d13');
    expect(hex(oid('2.999.3'))).toBe('0603883703');
    for (const o of ['1.2.840.113549.1.1.11', '2.5.4.3', '1.3.101.112', '2.999.3', '0.9.2342.19200300.100.1.1']) {
      expect(oidToString(oid(o).subarray(2))).toBe(o);
    }
    expect(() => oid('3.1')).toThrow();
    expect(() => oid('1.40')).toThrow();
    expect(() => oid('1.02')).toThrow();
  });

  it('encodes lengths in short and long form', () => {
    for (const n of [0, 1, 127, 128, 255, 256, 65535, 65536]) {
      const der = encode(seq(Buffer.alloc(n)));
      const t = readWhole(der, 0x30, 'seq');
      expect(t.end - t.contentStart).toBe(n);
    }
    expect(hex(encode(seq(Buffer.alloc(128))).subarray(0, 3))).toBe('308180');
    expect(hex(encode(seq(Buffer.alloc(256))).subarray(0, 4))).toBe('30820100');
  });

  it('encodes named bit lists without trailing zero bits', () => {
    expect(hex(namedBits([0]))).toBe('03020780');
    expect(hex(namedBits([5, 6]))).toBe('03020106');
    expect(hex(namedBits([0, 5, 6]))).toBe('03020186');
    expect(hex(namedBits([8]))).toBe('0303070080');
    expect(hex(bitString(Buffer.from([0xab])))).toBe('030200ab');
  });

  it('chooses UTCTime through 2049 and GeneralizedTime from 2050', () => {
    expect(Buffer.from(time(new Date(Date.UTC(1950, 0, 1)))).toString('latin1')).toBe('\x17\x0d500101000000Z');
    expect(Buffer.from(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59, 999)))).toString('latin1')).toBe('\x17\x0d491231235959Z');
    expect(Buffer.from(time(new Date(Date.UTC(2050, 0, 1)))).toString('latin1')).toBe('\x18\x0f20500101000000Z');
    expect(Buffer.from(time(new Date(Date.UTC(1949, 11, 31)))).toString('latin1')).toBe('\x18\x0f19491231000000Z');
    expect(() => time(new Date(NaN))).toThrow();
  });

  it('checks string repertoires', () => {
    expect(() => printableString('a_b')).toThrow();
    expect(() => ia5String('é')).toThrow();
    expect(hex(encode(explicit(0, smallInteger(2))))).toBe('a003020102');
  });

  it('converts P1363 ECDSA signatures to DER that OpenSSL verifies', () => {
    for (const curve of ['prime256v1', 'secp384r1']) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      const hash = curve === 'prime256v1' ? 'sha256' : 'sha384';
      for (let i = 0; i < 50; i++) {
        const data = Buffer.from(`message ${i}`);
        const p1363 = sign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
        const der = p1363ToDer(p1363);
        expect(verify(hash, data, publicKey, der)).toBe(true);
        expect(verify(hash, data, { key: publicKey, dsaEncoding: 'der' }, der)).toBe(true);
      }
    }
    // High bits set and leading zeros.
    const sig = Buffer.concat([Buffer.from('80'.padEnd(64, '1'), 'hex'), Buffer.from('00'.padEnd(64, '2'), 'hex')]);
    expect(hex(p1363ToDer(sig).subarray(0, 5))).toBe('3044022100');
    expect(() => p1363ToDer(Buffer.alloc(63))).toThrow('x509: ecdsa signature has odd or bad length 63');
  });
});

describe('der reader', () => {
  const good = encode(seq(smallInteger(1), seq(smallInteger(2))));

  it('reads nested values', () => {
    const top = readWhole(good, 0x30, 'seq');
    const kids = childList(good, top);
    expect(kids.map((k) => k.tag)).toEqual([0x02, 0x30]);
  });

  it('rejects malformed input', () => {
    const bad = (h: string) => () => readWhole(Buffer.from(h, 'hex'), 0x30, 'seq');
    expect(bad('')).toThrow(DerError);
    expect(bad('30')).toThrow('truncated header');
    expect(bad('3080')).toThrow('indefinite length');
    expect(bad('308101ff')).toThrow('non-minimal length');
    expect(bad('30820001ff')).toThrow('non-minimal length');
    expect(bad('3085ffffffffff')).toThrow('length too large');
    expect(bad('3002ff')).toThrow('length exceeds input');
    expect(bad('3001ff00')).toThrow('trailing bytes');
    expect(bad('3101ff')).toThrow('expected seq');
    expect(bad('1f0100')).toThrow('high tag number');
    expect(() => childList(Buffer.from('30030201', 'hex'), { tag: 0x30, start: 0, contentStart: 2, end: 4 })).toThrow(DerError);
    expect(() => readTlv(Buffer.from('3003020100', 'hex'), 2, 4)).toThrow('length exceeds input');
  });
});

describe('encodeName', () => {
  it('encodes names openssl-compatibly', () => {
    expect(hex(encodeName([]))).toBe('3000');
    expect(hex(encodeName([{ type: 'C', value: 'US' }]))).toBe('300d310b3009060355040613025553');
    expect(hex(encodeName([{ type: 'CN', value: 'a' }]))).toBe('300c310a300806035504030c0161');
  });

  it('rejects out-of-policy attributes', () => {
    expect(() => encodeName([{ type: 'C', value: 'USA' }])).toThrow('x509: name attribute C longer than 2 characters');
    expect(() => encodeName([{ type: 'C', value: 'us' }])).toThrow('x509: country must be two upper-case letters');
    expect(() => encodeName([{ type: 'CN', value: '' }])).toThrow('x509: name attribute CN must not be empty');
    expect(() => encodeName([{ type: 'CN', value: 'x'.repeat(65) }])).toThrow('x509: name attribute CN longer than 64 characters');
    expect(() => encodeName([{ type: 'serialNumber', value: 'a_b' }])).toThrow('outside PrintableString');
    expect(() => encodeName([{ type: 'DC' as 'CN', value: 'a' }])).toThrow('x509: unsupported name attribute DC');
  });
});
