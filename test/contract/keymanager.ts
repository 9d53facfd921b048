import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
export { captureLogger } from '../helpers/log.js';
import { KEY_TYPES, type KeyHandle, type KeyManager, type KeyType } from '../../ca/keymanager/KeyManager.js';
import { CURVES } from '../../ca/keymanager/ec.js';

/** What a contract run needs from one implementation. */
export interface KeyManagerContractSetup {
  /** A fresh, open manager. */
  km: KeyManager;
  /** A new manager on the same storage (token, directory), as after a restart. Memory: may throw. */
  reopen: () => Promise<KeyManager>;
  /** Closes what setup opened and removes its storage, if it owns any. */
  cleanup: () => Promise<void>;
  /**
   * Leaves in the storage, for `id`, each state a crash inside
   * generateKey(id) can leave (one call per state; `state` counts from 0,
   * and the function returns false once there are no more). Implementations
   * whose writes are atomic leave it out.
   */
  interrupt?: (id: string, state: number) => Promise<boolean>;
}

/** Checks a P1363 signature the way a relying party would, with node:crypto. */
export function verifyP1363(key: Pick<KeyHandle, 'type' | 'publicKeySpki'>, data: Uint8Array, sig: Uint8Array): boolean {
  const pub = createPublicKey({ key: Buffer.from(key.publicKeySpki), format: 'der', type: 'spki' });
  return verify(CURVES[key.type].hash, data, { key: pub, dsaEncoding: 'ieee-p1363' }, sig);
}

async function expectCode(p: Promise<unknown>, code: AnchorageError['code'], message?: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').toBeInstanceOf(AnchorageError);
  expect((err as AnchorageError).code).toBe(code);
  if (message) expect((err as AnchorageError).message).toMatch(message);
}

/**
 * The behaviour every KeyManager must have (after SPIRE's keymanagertest).
 * Each test gets a fresh manager from `setup`; ids are random per test so
 * implementations whose storage outlives a test (a token) need no wiping.
 */
export function runKeyManagerContract(name: string, setup: () => Promise<KeyManagerContractSetup>): void {
  describe(`KeyManager contract: ${name}`, () => {
    let ctx: KeyManagerContractSetup;
    let km: KeyManager;
    const extra: KeyManager[] = [];
    const uid = () => `contract-${randomBytes(6).toString('hex')}`;

    beforeEach(async () => {
      ctx = await setup();
      km = ctx.km;
    });
    afterEach(async () => {
      for (const m of extra.splice(0)) await m.close();
      await ctx.cleanup();
    });

    for (const type of KEY_TYPES) {
      it(`generates a ${type} key whose signatures verify against publicKeySpki`, async () => {
        const id = uid();
        const key = await km.generateKey(id, type);
        expect(key.id).toBe(id);
        expect(key.type).toBe(type);
        const pub = createPublicKey({ key: Buffer.from(key.publicKeySpki), format: 'der', type: 'spki' });
        expect(pub.asymmetricKeyDetails?.namedCurve).toBe(CURVES[type].nodeCurve);
        const data = new TextEncoder().encode(`to be signed by ${id}`);
        const sig = await key.sign(data);
        expect(sig).toBeInstanceOf(Uint8Array);
        expect(sig.length).toBe(2 * CURVES[type].size);
        expect(verifyP1363(key, data, sig)).toBe(true);
        expect(verifyP1363(key, new TextEncoder().encode('something else'), sig)).toBe(false);
        // an empty message is still a message
        expect(verifyP1363(key, new Uint8Array(0), await key.sign(new Uint8Array(0)))).toBe(true);
      });
    }

    it('gives a different signature on every call (ECDSA is randomized)', async () => {
      const key = await km.generateKey(uid(), 'ec-p256');
      const data = randomBytes(100);
      const a = await key.sign(data);
      const b = await key.sign(data);
      expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
      expect(verifyP1363(key, data, a)).toBe(true);
      expect(verifyP1363(key, data, b)).toBe(true);
    });

    it('rejects a duplicate id with already_exists, whatever the type', async () => {
      const id = uid();
      const key = await km.generateKey(id, 'ec-p256');
      await expectCode(km.generateKey(id, 'ec-p256'), 'already_exists');
      await expectCode(km.generateKey(id, 'ec-p384'), 'already_exists');
      // the original is untouched
      const again = await km.getKey(id);
      expect(again?.type).toBe('ec-p256');
      expect(Buffer.from(again!.publicKeySpki).equals(Buffer.from(key.publicKeySpki))).toBe(true);
    });

    it('lets only one of two concurrent generateKey calls for one id win', async () => {
      const id = uid();
      const results = await Promise.allSettled([km.generateKey(id, 'ec-p256'), km.generateKey(id, 'ec-p256')]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect((failed.reason as AnchorageError).code).toBe('already_exists');
    });

    it('recovers from a crash inside generateKey: the id stays free, generating it again gives one key', async (t) => {
      if (!ctx.interrupt) t.skip();
      for (let state = 0; state < 20; state++) {
        const id = uid();
        if (!(await ctx.interrupt!(id, state))) break;
        // What the crash left is no key: nothing signs with it, nothing lists it.
        expect(await km.getKey(id), `state ${state}`).toBeUndefined();
        expect((await km.listKeys()).map((k) => k.id), `state ${state}`).not.toContain(id);
        const key = await km.generateKey(id, 'ec-p256');
        const data = randomBytes(32);
        expect(verifyP1363(key, data, await key.sign(data)), `state ${state}`).toBe(true);
        expect((await km.listKeys()).filter((k) => k.id === id), `state ${state}`).toHaveLength(1);
        // and a restart finds that one key
        const again = await km.getKey(id);
        expect(Buffer.from(again!.publicKeySpki).equals(Buffer.from(key.publicKeySpki)), `state ${state}`).toBe(true);
      }
    });

    it('rejects malformed ids and key types with invalid_argument', async () => {
      await expectCode(km.generateKey('', 'ec-p256'), 'invalid_argument');
      await expectCode(km.generateKey('x'.repeat(129), 'ec-p256'), 'invalid_argument');
      await expectCode(km.generateKey('a\nb', 'ec-p256'), 'invalid_argument');
      await expectCode(km.generateKey(uid(), 'rsa-2048' as KeyType), 'invalid_argument');
      await expectCode(km.getKey(''), 'invalid_argument');
    });

    it('getKey returns undefined for an unknown id and the same public key for a known one', async () => {
      expect(await km.getKey(uid())).toBeUndefined();
      const id = uid();
      const key = await km.generateKey(id, 'ec-p384');
      const got = await km.getKey(id);
      expect(got).toBeDefined();
      expect(got!.id).toBe(id);
      expect(got!.type).toBe('ec-p384');
      expect(Buffer.from(got!.publicKeySpki).equals(Buffer.from(key.publicKeySpki))).toBe(true);
      const data = randomBytes(32);
      expect(verifyP1363(key, data, await got!.sign(data))).toBe(true);
    });

    it('finds a key again after a restart (a fresh manager on the same storage)', async (t) => {
      if (km.kind === 'memory') t.skip();
      const id256 = uid();
      const id384 = uid();
      const k256 = await km.generateKey(id256, 'ec-p256');
      const k384 = await km.generateKey(id384, 'ec-p384');
      await km.close();
      const km2 = await ctx.reopen();
      extra.push(km2);
      for (const [id, before] of [
        [id256, k256],
        [id384, k384],
      ] as const) {
        const after = await km2.getKey(id);
        expect(after, id).toBeDefined();
        expect(after!.type).toBe(before.type);
        expect(Buffer.from(after!.publicKeySpki).equals(Buffer.from(before.publicKeySpki))).toBe(true);
        const data = randomBytes(64);
        expect(verifyP1363(before, data, await after!.sign(data))).toBe(true);
      }
      expect((await km2.listKeys()).map((k) => k.id)).toEqual(expect.arrayContaining([id256, id384]));
    });

    it('lists the keys it holds, with their types and public keys', async () => {
      const a = await km.generateKey(uid(), 'ec-p256');
      const b = await km.generateKey(uid(), 'ec-p384');
      const listed = await km.listKeys();
      for (const k of [a, b]) {
        const found = listed.find((l) => l.id === k.id);
        expect(found, k.id).toBeDefined();
        expect(found!.type).toBe(k.type);
        expect(Buffer.from(found!.publicKeySpki).equals(Buffer.from(k.publicKeySpki))).toBe(true);
      }
      expect(new Set(listed.map((k) => k.id)).size).toBe(listed.length);
    });

    it('deleteKey destroys the key: getKey is undefined, old handles stop signing, the id is free again', async () => {
      const id = uid();
      const key = await km.generateKey(id, 'ec-p256');
      await km.deleteKey(id);
      expect(await km.getKey(id)).toBeUndefined();
      expect((await km.listKeys()).map((k) => k.id)).not.toContain(id);
      await expectCode(key.sign(randomBytes(8)), 'not_found');
      await km.deleteKey(id); // already gone: no error
      await km.deleteKey(uid()); // never existed: no error
      const fresh = await km.generateKey(id, 'ec-p384');
      expect(fresh.type).toBe('ec-p384');
      expect(Buffer.from(fresh.publicKeySpki).equals(Buffer.from(key.publicKeySpki))).toBe(false);
    });

    it('signs 200 times concurrently, every signature valid', async () => {
      const keys = [await km.generateKey(uid(), 'ec-p256'), await km.generateKey(uid(), 'ec-p384')];
      const jobs = Array.from({ length: 200 }, (_, i) => {
        const key = keys[i % keys.length]!;
        const data = randomBytes(16 + (i % 50));
        return key.sign(data).then((sig) => ({ key, data, sig }));
      });
      const results = await Promise.all(jobs);
      expect(results).toHaveLength(200);
      for (const { key, data, sig } of results) expect(verifyP1363(key, data, sig)).toBe(true);
    });

    it('fails clearly after close', async () => {
      const key = await km.generateKey(uid(), 'ec-p256');
      await km.close();
      await km.close(); // idempotent
      await expectCode(key.sign(randomBytes(8)), 'failed_precondition', /closed/);
      await expectCode(km.generateKey(uid(), 'ec-p256'), 'failed_precondition', /closed/);
      await expectCode(km.getKey(key.id), 'failed_precondition', /closed/);
      await expectCode(km.listKeys(), 'failed_precondition', /closed/);
    });

    it('close waits for signatures already in flight', async () => {
      const key = await km.generateKey(uid(), 'ec-p256');
      const data = randomBytes(8);
      const inFlight = Array.from({ length: 20 }, () => key.sign(data));
      const closing = km.close();
      const settled = await Promise.allSettled(inFlight);
      await closing;
      for (const r of settled) {
        if (r.status === 'fulfilled') expect(verifyP1363(key, data, r.value)).toBe(true);
        else expect((r.reason as AnchorageError).code).toBe('failed_precondition');
      }
    });
  });
}

