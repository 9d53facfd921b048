import { createHash, createPublicKey, verify } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { useSoftHsmToken } from '../../../test/helpers/softhsm.js';
import { ckr } from './errors.js';
import { acquirePkcs11Module, type Handle, type Pkcs11Module } from './module.js';
import { openNativeSigner } from './native-sign.js';

const token = useSoftHsmToken('native-sign', '1234');
const P = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');
const P256 = Buffer.from('06082a8648ce3d030107', 'hex');

let mod: Pkcs11Module;
let session: Handle;
let priv: Handle;
let point: Buffer;

beforeAll(() => {
  mod = acquirePkcs11Module(token.module);
  const lib = mod.lib;
  const slot = lib.C_GetSlotList(true).find((x) => lib.C_GetTokenInfo(x).label.trim() === token.label)!;
  session = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  lib.C_Login(session, P.CKU_USER, token.pin);
  const pair = lib.C_GenerateKeyPair(
    session,
    { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [
      { type: P.CKA_TOKEN, value: false },
      { type: P.CKA_VERIFY, value: true },
      { type: P.CKA_EC_PARAMS, value: P256 },
    ],
    [
      { type: P.CKA_TOKEN, value: false },
      { type: P.CKA_PRIVATE, value: true },
      { type: P.CKA_SENSITIVE, value: true },
      { type: P.CKA_EXTRACTABLE, value: false },
      { type: P.CKA_SIGN, value: true },
    ],
  );
  priv = pair.privateKey;
  // CKA_EC_POINT is a DER OCTET STRING (04 41) around the uncompressed point.
  point = lib.C_GetAttributeValue(session, pair.publicKey, [{ type: P.CKA_EC_POINT }])[0]!.value.subarray(2);
});

afterAll(() => {
  try {
    mod.lib.C_CloseSession(session);
  } finally {
    mod.release();
    token.cleanup();
  }
});

const digest = createHash('sha256').update('native-sign test').digest();

function verifiesWithPoint(sig: Buffer): boolean {
  const key = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33, 65).toString('base64url') },
    format: 'jwk',
  });
  return verify(null, Buffer.from('native-sign test'), { key, dsaEncoding: 'ieee-p1363' }, sig);
}

/** The rejection of a promise that must reject. */
async function rejection(p: Promise<unknown>): Promise<Error & { fn?: string }> {
  return p.then(
    () => expect.fail('expected a rejection'),
    (err: Error & { fn?: string }) => err,
  );
}

describe('native-sign: C_SignInit + C_Sign in one threadpool call', () => {
  it('signs with the module the registry loaded: a 64-byte P1363 signature that verifies against the public point', async () => {
    const sig = await mod.sign(session, priv, P.CKM_ECDSA, digest);
    expect(sig.length).toBe(64);
    expect(verifiesWithPoint(sig)).toBe(true);
    sig[10] ^= 1;
    expect(verifiesWithPoint(sig)).toBe(false);
  });

  it('signs concurrently on several sessions of the same module, each signature valid', async () => {
    const lib = mod.lib;
    const slot = lib.C_GetSessionInfo(session).slotID;
    const others = Array.from({ length: 4 }, () => lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION));
    try {
      // One signature at a time per session (as the manager's pool does), the four sessions at once.
      const perSession = await Promise.all(
        others.map(async (s) => {
          const out: Buffer[] = [];
          for (let i = 0; i < 16; i++) out.push(await mod.sign(s, priv, P.CKM_ECDSA, digest));
          return out;
        }),
      );
      expect(perSession.flat().filter((s) => s.length === 64 && verifiesWithPoint(s)).length).toBe(64);
    } finally {
      for (const s of others) lib.C_CloseSession(s);
    }
  });

  it('refuses a second signature on a session that has one in flight (PKCS#11 allows one operation per session), then signs again', async () => {
    const first = mod.sign(session, priv, P.CKM_ECDSA, digest);
    expect(() => mod.sign(session, priv, P.CKM_ECDSA, digest)).toThrow('p11sign: the session already has a signature in flight');
    expect(verifiesWithPoint(await first)).toBe(true);
    expect(verifiesWithPoint(await mod.sign(session, priv, P.CKM_ECDSA, digest))).toBe(true);
  });

  it('an unknown key handle rejects with the CKR_ name that errors.ts classifies, from C_SignInit, and leaves the session usable', async () => {
    const bogus = Buffer.alloc(priv.length);
    bogus.writeUInt32LE(0x7ffffff0, 0);
    const err = await rejection(mod.sign(session, bogus, P.CKM_ECDSA, digest));
    expect(ckr(err)).toBe('CKR_OBJECT_HANDLE_INVALID');
    expect(err.fn).toBe('C_SignInit');
    expect((await mod.sign(session, priv, P.CKM_ECDSA, digest)).length).toBe(64);
  });

  it('a mechanism the module does not know rejects from C_SignInit with CKR_MECHANISM_INVALID', async () => {
    const err = await rejection(mod.sign(session, priv, 0x7ffffff0, digest));
    expect(ckr(err)).toBe('CKR_MECHANISM_INVALID');
    expect(err.fn).toBe('C_SignInit');
  });

  it('a closed session rejects with CKR_SESSION_HANDLE_INVALID (which the manager answers with a new session)', async () => {
    const lib = mod.lib;
    const s = lib.C_OpenSession(lib.C_GetSessionInfo(session).slotID, P.CKF_SERIAL_SESSION);
    lib.C_CloseSession(s);
    expect(ckr(await rejection(mod.sign(s, priv, P.CKM_ECDSA, digest)))).toBe('CKR_SESSION_HANDLE_INVALID');
  });

  it('refuses malformed arguments with a TypeError, before anything reaches the module', () => {
    const short = Buffer.alloc(4);
    expect(() => mod.sign(short, priv, P.CKM_ECDSA, digest)).toThrow(/session and key must be handles/);
    expect(() => mod.sign(session, short, P.CKM_ECDSA, digest)).toThrow(TypeError);
    expect(() => mod.sign(session, priv, -1, digest)).toThrow(/mechanism must be a CKM_ number/);
    expect(() => mod.sign(session, priv, Number.NaN, digest)).toThrow(/mechanism must be a CKM_ number/);
    expect(() => mod.sign(session, priv, 1.5, digest)).toThrow(/mechanism must be a CKM_ number/);
    expect(() => mod.sign(session, priv, 2 ** 32, digest)).toThrow(/mechanism must be a CKM_ number/);
    expect(() => mod.sign(session, priv, P.CKM_ECDSA, new Uint8Array(0))).toThrow(/data must be a Uint8Array of 1 to 512 bytes/);
    expect(() => mod.sign(session, priv, P.CKM_ECDSA, new Uint8Array(513))).toThrow(/data must be a Uint8Array of 1 to 512 bytes/);
    expect(() => mod.sign(session, priv, P.CKM_ECDSA, 'digest' as unknown as Uint8Array)).toThrow(TypeError);
  });

  it('a signer of its own refuses to close while a signature is in flight, then refuses to sign once closed', async () => {
    const signer = openNativeSigner(token.module);
    const pending = signer.sign(session, priv, P.CKM_ECDSA, digest);
    expect(() => signer.close()).toThrow(/in flight/);
    expect((await pending).length).toBe(64);
    signer.close();
    expect(() => signer.sign(session, priv, P.CKM_ECDSA, digest)).toThrow(/closed/);
    signer.close(); // twice is harmless
  });

  it('a path that is no PKCS#11 module is refused with failed_precondition, naming the path', () => {
    for (const path of ['/nonexistent/libpkcs11.so', '/usr/lib/x86_64-linux-gnu/libc.so.6']) {
      let caught: unknown;
      try {
        openNativeSigner(path);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(AnchorageError);
      expect((caught as AnchorageError).code).toBe('failed_precondition');
      expect((caught as AnchorageError).message).toContain(path);
    }
    expect(() => openNativeSigner('')).toThrow(/cannot open module/);
  });
});
