import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { useSoftHsmToken } from '../../test/helpers/softhsm.js';
import { AnchorageError } from '../../common/errors.js';
import { captureLogger, runKeyManagerContract, verifyP1363 } from './contract.js';
import { acquirePkcs11Module, ckr, Pkcs11KeyManager } from './pkcs11.js';
import { openKeyManager } from './factory.js';
import { silentLogger } from '../../common/log.js';

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

  it('is what the factory opens for type pkcs11', async () => {
    const km = await openKeyManager(
      { type: 'pkcs11', module: token.module, tokenLabel: token.label, pin: token.pin, sessions: 3 },
      silentLogger(),
    );
    expect(km).toBeInstanceOf(Pkcs11KeyManager);
    expect((km as Pkcs11KeyManager).sessions).toBe(3);
    await km.close();
  });
});
