import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { useSoftHsmToken } from '../../test/helpers/softhsm.js';
import { AnchorageError } from '@anchorage/client/errors';
import { captureLogger, runKeyManagerContract, verifyP1363 } from '../../test/contract/keymanager.js';
import { acquirePkcs11Module, ckr, Pkcs11KeyManager } from './pkcs11/index.js';
import { keyForPreparingRow } from '../root.js';

// One token store per test file: SoftHSM reads SOFTHSM2_CONF at the first
// C_Initialize and only sees tokens that exist by then, so both tokens are
// made before anything loads the module.
const token = useSoftHsmToken('anchorage-test', '1234');
const SECOND_LABEL = 'anchorage-second';
const SECOND_PIN = 'pin-73519-second';
token.addToken(SECOND_LABEL, SECOND_PIN);
afterAll(() => token.cleanup());

const open = (extra: Partial<Parameters<typeof Pkcs11KeyManager.open>[0]> = {}) =>
  Pkcs11KeyManager.open({ module: token.module, tokenLabel: token.label, pin: token.pin, ...extra });

const P = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js');

const uid = (p = 'p11') => `${p}-${randomBytes(5).toString('hex')}`;

runKeyManagerContract('pkcs11 (SoftHSM2)', async () => {
  const km = await open();
  const others: Pkcs11KeyManager[] = [];
  return {
    km,
    reopen: async () => {
      const m = await open();
      others.push(m);
      return m;
    },
    cleanup: async () => {
      await km.close();
      for (const m of others) await m.close();
    },
    // The states a SIGKILL inside C_GenerateKeyPair leaves in SoftHSM2 (see
    // test/fault/server-start-kill.test.ts): the public half alone, the
    // private half alone, the public half beside an unfinished private object.
    interrupt: async (id, state) => {
      if (state > 2) return false;
      const raw = rawSession();
      try {
        const pair = raw.generate(id, id, id);
        if (state === 0 || state === 2) raw.destroy(pair.privateKey);
        if (state === 1) raw.destroy(pair.publicKey);
        if (state === 2) raw.plantUnfinishedPrivate();
      } finally {
        raw.close();
      }
      return true;
    },
  };
});

describe('Pkcs11KeyManager', () => {
  it('exposes the session count (default 4) and honours a configured one', async () => {
    const a = await open();
    const b = await open({ sessions: 2 });
    expect(a.sessions).toBe(4);
    expect(b.sessions).toBe(2);
    expect(a.kind).toBe('pkcs11');
    await a.close();
    await b.close();
  });

  it('generates the private key sensitive and never extractable (pkcs11-tool agrees)', async () => {
    const km = await open();
    const id = uid('tool');
    await km.generateKey(id, 'ec-p256');
    const out = execFileSync(
      'pkcs11-tool',
      ['--module', token.module, '--token-label', token.label, '--login', '--pin', token.pin, '--list-objects'],
      { env: token.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const blocks = out.split(/\n(?=\S)/);
    const priv = blocks.find((b) => b.startsWith('Private Key Object; EC') && b.includes(`label:      ${id}\n`));
    expect(priv, out).toBeDefined();
    expect(priv).toMatch(/Access:\s+sensitive, always sensitive, never extractable/);
    expect(priv).toMatch(/Usage:.*sign/);
    const pub = blocks.find((b) => b.startsWith('Public Key Object; EC') && b.includes(`label:      ${id}\n`));
    expect(pub, out).toBeDefined();
    expect(pub).toMatch(/Usage:.*verify/);
    // What the server reports to `anchorage check` is what pkcs11-tool saw.
    expect(await km.keyProtection(id)).toEqual({ sensitive: true, extractable: false, alwaysSensitive: true, neverExtractable: true });
    expect(await km.keyProtection(uid('absent'))).toBeUndefined();
    await km.close();
  });

  it('reports a key made extractable outside anchorage as such', async () => {
    const km = await open();
    const id = uid('extractable');
    execFileSync(
      'pkcs11-tool',
      ['--module', token.module, '--token-label', token.label, '--login', '--pin', token.pin, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', id, '--extractable'],
      { env: token.env, stdio: 'pipe' },
    );
    expect(await km.keyProtection(id)).toEqual({ sensitive: true, extractable: true, alwaysSensitive: true, neverExtractable: false });
    await expect(km.keyProtection('')).rejects.toThrow();
    await km.close();
  });

  it('will not reveal CKA_VALUE of the private key; CKA_SENSITIVE true, CKA_EXTRACTABLE false', async () => {
    const km = await open();
    const id = uid('attr');
    await km.generateKey(id, 'ec-p384');
    // Our own session on the same module, through the shared registry (a
    // second C_Initialize in this process would fail).
    const mod = acquirePkcs11Module(token.module);
    const lib = mod.lib;
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === token.label)!;
    const s = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    try {
      try {
        lib.C_Login(s, P.CKU_USER, token.pin);
      } catch (err) {
        expect(ckr(err)).toBe('CKR_USER_ALREADY_LOGGED_IN');
      }
      lib.C_FindObjectsInit(s, [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_LABEL, value: Buffer.from(id) },
      ]);
      const found = lib.C_FindObjects(s, 10);
      lib.C_FindObjectsFinal(s);
      expect(found).toHaveLength(1);
      const key = found[0]!;
      let err: unknown;
      try {
        lib.C_GetAttributeValue(s, key, [{ type: P.CKA_VALUE }]);
      } catch (e) {
        err = e;
      }
      expect(ckr(err)).toBe('CKR_ATTRIBUTE_SENSITIVE');
      const attrs = lib.C_GetAttributeValue(s, key, [
        { type: P.CKA_SENSITIVE },
        { type: P.CKA_EXTRACTABLE },
        { type: P.CKA_ALWAYS_SENSITIVE },
        { type: P.CKA_NEVER_EXTRACTABLE },
        { type: P.CKA_TOKEN },
        { type: P.CKA_PRIVATE },
        { type: P.CKA_SIGN },
        { type: P.CKA_ID },
      ]);
      const bools = attrs.slice(0, 7).map((a) => a.value[0] === 1);
      expect(bools).toEqual([true, false, true, true, true, true, true]);
      // CKA_ID is derived from the id, so it is the same on every restart.
      expect(attrs[7]!.value.equals(createHash('sha256').update(id).digest().subarray(0, 20))).toBe(true);
    } finally {
      lib.C_CloseSession(s);
      mod.release();
    }
    // the manager is unaffected by our session and reference coming and going
    const key = await km.getKey(id);
    const data = randomBytes(10);
    expect(verifyP1363(key!, data, await key!.sign(data))).toBe(true);
    await km.close();
  });

  describe('tells the operator what is wrong', () => {
    it('wrong pin: permission_denied with the exact message, no pin in it', async () => {
      const err = await open({ pin: 'wrong-pin-4242' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AnchorageError);
      expect((err as AnchorageError).code).toBe('permission_denied');
      expect((err as AnchorageError).message).toBe(`pkcs11: login to token "${token.label}" failed: incorrect pin`);
      expect(JSON.stringify(err)).not.toContain('wrong-pin-4242');
      // nothing was left half-open: a correct open still works
      const km = await open();
      await km.close();
    });

    it('missing module file', async () => {
      const err = await open({ module: '/nonexistent/libnope.so' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'failed_precondition' });
      expect((err as Error).message).toMatch(/^pkcs11: cannot load module \/nonexistent\/libnope\.so: .*No such file/);
    });

    it('a file that is not a PKCS#11 module', async () => {
      const err = await open({ module: '/etc/hostname' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'failed_precondition' });
      expect((err as Error).message).toMatch(/^pkcs11: cannot load module \/etc\/hostname: /);
    });

    it('unknown token label lists the labels that exist', async () => {
      const err = await open({ tokenLabel: 'no-such-token' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'not_found' });
      expect((err as Error).message).toBe(
        `pkcs11: no token labelled "no-such-token" (tokens: "${SECOND_LABEL}", "${token.label}")`,
      );
    });

    it('bad session counts and empty pins are invalid_argument', async () => {
      await expect(open({ sessions: 0 })).rejects.toMatchObject({ code: 'invalid_argument' });
      await expect(open({ sessions: 1.5 })).rejects.toMatchObject({ code: 'invalid_argument' });
      await expect(open({ pin: '' })).rejects.toMatchObject({ code: 'invalid_argument' });
    });
  });

  it('reopens dropped sessions (and logs in again) and keeps signing', async () => {
    const { logger, records } = captureLogger();
    const km = await open({ sessions: 2, logger });
    const p256 = await km.generateKey(uid('drop'), 'ec-p256');
    const p384 = await km.generateKey(uid('drop'), 'ec-p384');
    expect(km.sessionReopens).toBe(0);
    for (let round = 1; round <= 2; round++) {
      // Every session of the application closed: SoftHSM also logs the
      // token out, so the reopen has to log in again to use the private key.
      km._dropSessionsForTest();
      const jobs = Array.from({ length: 40 }, (_, i) => {
        const key = i % 2 ? p256 : p384;
        const data = randomBytes(20);
        return key.sign(data).then((sig) => verifyP1363(key, data, sig));
      });
      expect(await Promise.all(jobs)).toEqual(Array(40).fill(true));
      expect(km.sessionReopens).toBe(2 * round);
    }
    // key management works on the reopened sessions too
    km._dropSessionsForTest();
    expect((await km.getKey(p256.id))?.id).toBe(p256.id);
    expect(records.some((r) => r.msg === 'pkcs11: session lost; reopening' && r.code === 'CKR_SESSION_HANDLE_INVALID')).toBe(true);
    await km.close();
  });

  it('runs two managers on two tokens of the same module in one process', async () => {
    const a = await open();
    const b = await Pkcs11KeyManager.open({ module: token.module, tokenLabel: SECOND_LABEL, pin: SECOND_PIN, sessions: 2 });
    const id = uid('two');
    const ka = await a.generateKey(id, 'ec-p256');
    const kb = await b.generateKey(id, 'ec-p256'); // same label, other token: no clash
    expect(Buffer.from(ka.publicKeySpki).equals(Buffer.from(kb.publicKeySpki))).toBe(false);
    const data = randomBytes(32);
    const sigs = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? ka : kb).sign(data)));
    sigs.forEach((sig, i) => expect(verifyP1363(i % 2 ? ka : kb, data, sig)).toBe(true));
    await b.deleteKey(id);
    expect(await a.getKey(id)).toBeDefined();
    expect(await b.getKey(id)).toBeUndefined();
    // closing one leaves the module initialized for the other
    await a.close();
    const kb2 = await b.generateKey(uid('two'), 'ec-p384');
    expect(verifyP1363(kb2, data, await kb2.sign(data))).toBe(true);
    await b.close();
    // and after the last one closed, the module can be loaded again
    const c = await open();
    expect((await c.getKey(id))?.id).toBe(id);
    await c.close();
  });

  it('notices a key deleted or replaced behind its back (stale cached handles)', async () => {
    const a = await open();
    const b = await open();
    const id = uid('stale');
    const old = await a.generateKey(id, 'ec-p256');
    await b.deleteKey(id);
    await expect(old.sign(randomBytes(8))).rejects.toMatchObject({ code: 'not_found' });
    const replacement = await b.generateKey(id, 'ec-p256');
    // the old handle must never sign with a different key that took the label
    await expect(old.sign(randomBytes(8))).rejects.toMatchObject({ code: 'not_found' });
    const fresh = await a.getKey(id);
    expect(Buffer.from(fresh!.publicKeySpki).equals(Buffer.from(replacement.publicKeySpki))).toBe(true);
    const data = randomBytes(8);
    expect(verifyP1363(replacement, data, await fresh!.sign(data))).toBe(true);
    await a.close();
    await b.close();
  });

  it('queues signers when every session is busy (one session, 100 signs)', async () => {
    const km = await open({ sessions: 1 });
    const key = await km.generateKey(uid('queue'), 'ec-p256');
    const data = randomBytes(16);
    const sigs = await Promise.all(Array.from({ length: 100 }, () => key.sign(data)));
    for (const sig of sigs) expect(verifyP1363(key, data, sig)).toBe(true);
    await km.close();
  });

  it('never logs the pin', async () => {
    const { logger, records } = captureLogger();
    const km = await Pkcs11KeyManager.open({ module: token.module, tokenLabel: SECOND_LABEL, pin: SECOND_PIN, logger });
    const key = await km.generateKey(uid('log'), 'ec-p256');
    km._dropSessionsForTest();
    await key.sign(randomBytes(4));
    await km.deleteKey(key.id);
    await km.close();
    expect(records.length).toBeGreaterThan(0);
    expect(JSON.stringify(records)).not.toContain(SECOND_PIN);
  });
});

// ---------------------------------------------------------------------------
// Issue 10, item 8: what a SIGKILL inside C_GenerateKeyPair leaves behind.
// The states are planted with pkcs11js directly, exactly as SoftHSM2 leaves
// them (see test/fault/server-start-kill.test.ts for the real kills).
// ---------------------------------------------------------------------------

const ckaId = (id: string) => createHash('sha256').update(id, 'utf8').digest().subarray(0, 20);
const P256 = Buffer.from('06082a8648ce3d030107', 'hex');

/** A raw logged-in session on the test token, beside the managers under test. */
function rawSession() {
  const mod = acquirePkcs11Module(token.module);
  const lib = mod.lib;
  const slot = lib.C_GetSlotList(true).find((x) => lib.C_GetTokenInfo(x).label.trim() === token.label)!;
  const s = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  try {
    lib.C_Login(s, P.CKU_USER, token.pin);
  } catch (err) {
    if (ckr(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw err;
  }
  const find = (template: Parameters<typeof lib.C_FindObjectsInit>[1]) => {
    lib.C_FindObjectsInit(s, template);
    const out = lib.C_FindObjects(s, 1000);
    lib.C_FindObjectsFinal(s);
    return out;
  };
  /** Private and public key objects under a label, as "private"/"public". */
  const classesOf = (label: string) =>
    find([{ type: P.CKA_LABEL, value: Buffer.from(label) }])
      .map((h) => lib.C_GetAttributeValue(s, h, [{ type: P.CKA_CLASS }])[0]!.value.readUInt32LE(0))
      .map((c) => (c === P.CKO_PRIVATE_KEY ? 'private' : c === P.CKO_PUBLIC_KEY ? 'public' : String(c)))
      .sort();
  const unlabelledKeys = () =>
    [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY].flatMap((c) =>
      find([
        { type: P.CKA_CLASS, value: c },
        { type: P.CKA_LABEL, value: Buffer.alloc(0) },
      ]),
    ).length;
  /** A whole pair generated the way a caller other than the manager might: labels chosen per half. */
  const generate = (pubLabel: string, privLabel: string, id: string) =>
    lib.C_GenerateKeyPair(
      s,
      { mechanism: P.CKM_EC_KEY_PAIR_GEN },
      [
        { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
        { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_VERIFY, value: true },
        { type: P.CKA_EC_PARAMS, value: P256 },
        { type: P.CKA_LABEL, value: Buffer.from(pubLabel) },
        { type: P.CKA_ID, value: ckaId(id) },
      ],
      [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
        { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_PRIVATE, value: true },
        { type: P.CKA_SENSITIVE, value: true },
        { type: P.CKA_SIGN, value: true },
        { type: P.CKA_LABEL, value: Buffer.from(privLabel) },
        { type: P.CKA_ID, value: ckaId(id) },
      ],
    );
  /** An unfinished private key: what SoftHSM2 writes before the template (empty label, id, curve). */
  const plantUnfinishedPrivate = () =>
    lib.C_CreateObject(s, [
      { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_PRIVATE, value: true },
      { type: P.CKA_EC_PARAMS, value: Buffer.alloc(0) },
      { type: P.CKA_VALUE, value: Buffer.alloc(0) },
    ]);
  const destroy = (h: Buffer) => lib.C_DestroyObject(s, h);
  const close = () => {
    lib.C_CloseSession(s);
    mod.release();
  };
  return { lib, s, find, classesOf, unlabelledKeys, generate, plantUnfinishedPrivate, destroy, close };
}

describe('recovers what an interrupted key generation left (issue 10, item 8)', () => {
  it('a labelled public key alone: getKey is undefined, generateKey replaces it, one pair remains', async () => {
    const raw = rawSession();
    const { logger, records } = captureLogger();
    const km = await open({ logger });
    const id = uid('lonepub');
    const pair = raw.generate(id, id, id);
    raw.destroy(pair.privateKey); // killed between the two halves
    expect(raw.classesOf(id)).toEqual(['public']);
    expect(await km.getKey(id)).toBeUndefined();
    // today's main: already_exists "label … is already used by 1 other object(s)", forever
    const key = await km.generateKey(id, 'ec-p256');
    const data = randomBytes(16);
    expect(verifyP1363(key, data, await key.sign(data))).toBe(true);
    expect(raw.classesOf(id)).toEqual(['private', 'public']);
    expect(records.some((r) => r.msg === 'pkcs11: destroyed the remains of an interrupted key generation' && r.id === id)).toBe(true);
    await km.close();
    raw.close();
  });

  it('a labelled private key alone: getKey is undefined, generateKey replaces it', async () => {
    const raw = rawSession();
    const km = await open();
    const id = uid('lonepriv');
    const pair = raw.generate(id, id, id);
    raw.destroy(pair.publicKey);
    expect(await km.getKey(id)).toBeUndefined();
    await km.generateKey(id, 'ec-p384');
    expect(raw.classesOf(id)).toEqual(['private', 'public']);
    await km.close();
    raw.close();
  });

  it('a private key with an empty label whose CKA_ID matches a labelled public key gets its label back', async () => {
    const raw = rawSession();
    const km = await open();
    const id = uid('nolabel');
    raw.generate(id, '', id);
    expect(raw.classesOf(id)).toEqual(['public']);
    const key = await km.getKey(id);
    expect(key).toBeDefined();
    const data = randomBytes(16);
    expect(verifyP1363(key!, data, await key!.sign(data))).toBe(true);
    expect(raw.classesOf(id)).toEqual(['private', 'public']);
    // and generateKey refuses it as an existing key, not as a stray label
    await expect(km.generateKey(id, 'ec-p256')).rejects.toMatchObject({
      code: 'already_exists',
      message: `pkcs11: key "${id}" already exists on token "${token.label}"`,
    });
    await km.close();
    raw.close();
  });

  it('unfinished unlabelled key objects are destroyed when a manager opens', async () => {
    const raw = rawSession();
    raw.plantUnfinishedPrivate();
    raw.plantUnfinishedPrivate();
    expect(raw.unlabelledKeys()).toBeGreaterThanOrEqual(2);
    const { logger, records } = captureLogger();
    const km = await open({ logger });
    expect(raw.unlabelledKeys()).toBe(0);
    const rec = records.find((r) => r.msg === 'pkcs11: destroyed unlabelled, unfinished key objects of interrupted key generations');
    expect(rec?.objects).toEqual(['private (unfinished) (unlabelled)', 'private (unfinished) (unlabelled)']);
    await km.close();
    raw.close();
  });

  it('two whole pairs under one label are refused as ambiguous; deleteKey clears them all', async () => {
    const raw = rawSession();
    const km = await open();
    const id = uid('dup');
    raw.generate(id, id, id);
    raw.generate(id, id, id);
    await expect(km.getKey(id)).rejects.toMatchObject({
      code: 'failed_precondition',
      message: `pkcs11: key "${id}" on token "${token.label}" is ambiguous: 2 private keys have that label`,
    });
    await km.deleteKey(id);
    expect(raw.classesOf(id)).toEqual([]);
    await km.generateKey(id, 'ec-p256');
    expect(raw.classesOf(id)).toEqual(['private', 'public']);
    await km.close();
    raw.close();
  });

  it('a CA journal row still preparing whose label has two whole pairs: both cleared, one key made', async () => {
    const raw = rawSession();
    const { logger, records } = captureLogger();
    const km = await open({ logger });
    const id = uid('prep');
    raw.generate(id, id, id);
    raw.generate(id, id, id);
    const row = { id: 'x509-test', kind: 'x509' as const, status: 'preparing' as const, keyId: id, notBefore: 0, notAfter: 0, createdAt: 0 };
    const key = await keyForPreparingRow(km, row, 'ec-p256', logger);
    expect(raw.classesOf(id)).toEqual(['private', 'public']);
    const data = randomBytes(8);
    expect(verifyP1363(key, data, await key.sign(data))).toBe(true);
    expect(records.some((r) => r.msg === 'ca: clearing an unusable key of a journal row that was still being prepared' && r.label === id)).toBe(true);
    await km.close();
    raw.close();
  });

  it('a label used by a non-key object is still refused', async () => {
    const raw = rawSession();
    const km = await open();
    const id = uid('data');
    const h = raw.lib.C_CreateObject(raw.s, [
      { type: P.CKA_CLASS, value: P.CKO_DATA },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_LABEL, value: Buffer.from(id) },
      { type: P.CKA_VALUE, value: Buffer.from('x') },
    ]);
    await expect(km.generateKey(id, 'ec-p256')).rejects.toMatchObject({
      code: 'already_exists',
      message: `pkcs11: label "${id}" is already used by 1 other object(s) on token "${token.label}"`,
    });
    raw.destroy(h);
    await km.close();
    raw.close();
  });
});

// ---------------------------------------------------------------------------
// Issue 10, item 9: the token goes away and comes back. SoftHSM2 keeps the
// token in a directory; with it renamed away, a running process gets
// CKR_OBJECT_HANDLE_INVALID on sign, empty finds and CKR_GENERAL_ERROR from
// C_GetTokenInfo, and sees the token again only after C_Finalize/C_Initialize.
// ---------------------------------------------------------------------------

describe('recovers from a token outage without a restart (issue 10, item 9)', () => {
  it('sign fails fast with unavailable while the token is away, and works again once it is back', async () => {
    const { logger, records } = captureLogger();
    const km = await open({ logger });
    const key = await km.generateKey(uid('outage'), 'ec-p256');
    const data = randomBytes(32);
    expect(verifyP1363(key, data, await key.sign(data))).toBe(true);
    const restore = token.takeAway();
    try {
      const unavailable = new RegExp(`^pkcs11: token "${token.label}" is unavailable: .+; retrying$`);
      const first = await key.sign(data).catch((e: unknown) => e);
      expect(first).toBeInstanceOf(AnchorageError);
      expect((first as AnchorageError).code).toBe('unavailable');
      expect((first as AnchorageError).message).toBe(
        `pkcs11: token "${token.label}" is unavailable: key "${key.id}" cannot be found (CKR_OBJECT_HANDLE_INVALID) and the token answers CKR_GENERAL_ERROR; retrying`,
      );
      // many requests during the outage: each fails, the log says so once
      for (let i = 0; i < 20; i++) {
        const err = await key.sign(data).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'unavailable', message: expect.stringMatching(unavailable) });
        await new Promise((r) => setTimeout(r, 25));
      }
      await expect(km.getKey(key.id)).rejects.toMatchObject({ code: 'unavailable' });
      expect(km.unavailableReason).toBeDefined();
      restore();
      // back: the same manager and the same handle sign again, within seconds
      const deadline = Date.now() + 15_000;
      let sig: Uint8Array | undefined;
      while (!sig && Date.now() < deadline) {
        sig = await key.sign(data).catch(() => undefined);
        if (!sig) await new Promise((r) => setTimeout(r, 100));
      }
      expect(sig, 'signing did not come back within 15 s').toBeDefined();
      expect(verifyP1363(key, data, sig!)).toBe(true);
      expect(km.recoveries).toBe(1);
      expect(km.unavailableReason).toBeUndefined();
      const down = records.filter((r) => typeof r.msg === 'string' && (r.msg as string).startsWith(`pkcs11: token "${token.label}" is unavailable:`));
      expect(down).toHaveLength(1);
      expect(records.filter((r) => r.msg === `pkcs11: token "${token.label}" is available again`)).toHaveLength(1);
      // key management works too, and a fresh manager sees the same key
      expect(Buffer.from((await km.getKey(key.id))!.publicKeySpki).equals(Buffer.from(key.publicKeySpki))).toBe(true);
      const k2 = await km.generateKey(uid('after'), 'ec-p384');
      expect(verifyP1363(k2, data, await k2.sign(data))).toBe(true);
    } finally {
      restore();
      await km.close();
    }
  });

  it('two managers on two tokens of the module, signatures in flight when the token goes: both recover', async () => {
    const a = await open({ sessions: 2 });
    const b = await Pkcs11KeyManager.open({ module: token.module, tokenLabel: SECOND_LABEL, pin: SECOND_PIN, sessions: 3 });
    try {
      const ka = await a.generateKey(uid('two-out'), 'ec-p256');
      const kb = await b.generateKey(uid('two-out'), 'ec-p384');
      const data = randomBytes(32);
      // 200 signatures racing the outage (the token goes while they are
      // queued and in flight): each one either signs validly or fails with
      // unavailable; none hangs, none gets another error.
      const pending = Promise.allSettled(Array.from({ length: 200 }, (_, i) => (i % 2 ? ka : kb).sign(data)));
      await new Promise((r) => setTimeout(r, 3));
      const restore = token.takeAway();
      try {
        const results = await pending;
        expect(results.some((r) => r.status === 'rejected')).toBe(true);
        for (const [i, r] of results.entries()) {
          if (r.status === 'fulfilled') expect(verifyP1363(i % 2 ? ka : kb, data, r.value)).toBe(true);
          else expect(r.reason).toMatchObject({ code: 'unavailable' });
        }
        await expect(ka.sign(data)).rejects.toMatchObject({ code: 'unavailable' });
        await expect(kb.sign(data)).rejects.toMatchObject({ code: 'unavailable' });
      } finally {
        restore();
      }
      const deadline = Date.now() + 15_000;
      for (const k of [ka, kb]) {
        let sig: Uint8Array | undefined;
        while (!sig && Date.now() < deadline) {
          sig = await k.sign(data).catch(() => undefined);
          if (!sig) await new Promise((r) => setTimeout(r, 100));
        }
        expect(sig, `${k.id} did not sign again within 15 s`).toBeDefined();
        expect(verifyP1363(k, data, sig!)).toBe(true);
      }
      // and concurrently, on every session of both pools
      const sigs = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? ka : kb).sign(data)));
      sigs.forEach((sig, i) => expect(verifyP1363(i % 2 ? ka : kb, data, sig)).toBe(true));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('stops retrying when the token refuses the pin after an outage (retries would lock it)', async () => {
    const { logger, records } = captureLogger();
    const km = await open({ logger });
    const key = await km.generateKey(uid('pin'), 'ec-p256');
    const changePin = (from: string, to: string) =>
      execFileSync(
        'pkcs11-tool',
        ['--module', token.module, '--token-label', token.label, '--login', '--pin', from, '--change-pin', '--new-pin', to],
        { env: token.env, stdio: 'pipe' },
      );
    changePin(token.pin, '98765');
    try {
      const restore = token.takeAway();
      await expect(key.sign(randomBytes(8))).rejects.toMatchObject({ code: 'unavailable' });
      restore();
      // recovery finds the token back, logs in with the old pin, and stops
      const deadline = Date.now() + 15_000;
      let last: unknown;
      while (Date.now() < deadline) {
        last = await key.sign(randomBytes(8)).catch((e: unknown) => e);
        if ((last as Error).message?.endsWith('not retrying (fix the pin and restart)')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(last).toMatchObject({
        code: 'unavailable',
        message: `pkcs11: token "${token.label}" is unavailable: login to token "${token.label}" failed: incorrect pin; not retrying (fix the pin and restart)`,
      });
      await new Promise((r) => setTimeout(r, 2500)); // longer than the longest backoff
      const refusals = records.filter((r) => r.msg === `pkcs11: token "${token.label}" refused the login; not retrying (fix the pin and restart)`);
      expect(refusals).toHaveLength(1);
      expect(km.recoveries).toBe(0);
    } finally {
      changePin('98765', token.pin);
      await km.close();
    }
    // the pin still works (it was not locked by retries)
    const again = await open();
    await again.close();
  });

  it('a key deleted on a healthy token is still not_found, not an outage', async () => {
    const a = await open();
    const b = await open();
    const id = uid('gone');
    const key = await a.generateKey(id, 'ec-p256');
    await b.deleteKey(id);
    await expect(key.sign(randomBytes(8))).rejects.toMatchObject({
      code: 'not_found',
      message: `pkcs11: key "${id}" is no longer on token "${token.label}"`,
    });
    expect(a.unavailableReason).toBeUndefined();
    await a.close();
    await b.close();
  });
});
