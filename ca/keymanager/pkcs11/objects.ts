/**
 * The key objects on the token, as this manager makes and finds them: the
 * generation templates (label and CKA_ID in both halves, so a generation is
 * atomic), finding a pair by label or by the CKA_ID derived from the id, and
 * recognizing and cleaning up what an interrupted generation leaves behind
 * (unfinished objects, an unlabelled half, one half alone). Everything here
 * runs synchronously on a session the caller holds.
 */
import { createHash } from 'node:crypto';
import type { PKCS11, Template } from 'pkcs11js';
import { AnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../../../common/log.js';
import type { KeyProtection, KeyType } from '../KeyManager.js';
import { CURVES, keyTypeFromEcParams, spkiFromEcPoint } from '../ec.js';
import { ckr, HANDLE_INVALID } from './errors.js';
import { P, type Handle } from './module.js';

/** Stable CKA_ID bytes for an id, so other PKCS#11 tools can pair the two halves of a key the usual way. */
function ckaIdFor(id: string): Buffer {
  return createHash('sha256').update(id, 'utf8').digest().subarray(0, 20);
}

function attrUlong(v: Buffer | undefined): number {
  if (!v || v.length === 0) return -1;
  return v.length >= 8 ? Number(v.readBigUInt64LE(0)) : v.readUInt32LE(0);
}

/** What loadKey reads from the token about one key. */
export interface FoundKey {
  type: KeyType;
  spki: Buffer;
  priv: Handle;
  pub: Handle;
}

/** One key object found for an id, as inspect sees it. */
export interface KeyObject {
  h: Handle;
  cls: 'private' | 'public';
  /** Empty label, found through the CKA_ID derived from the id. */
  unlabelled: boolean;
  /**
   * False for an object SoftHSM2 (and others) create before they write the
   * template and the key: no curve (private) or no point (public). Such an
   * object holds no key and can never be used; it is what a SIGKILL in the
   * middle of C_GenerateKeyPair leaves behind.
   */
  finished: boolean;
  params: Buffer;
  point?: Buffer;
}

/** Everything on the token that belongs to one id. */
export interface Inspection {
  privs: KeyObject[];
  pubs: KeyObject[];
  /** Unfinished key objects: never usable, always safe to destroy. */
  remnants: KeyObject[];
  /** Objects of other classes (certificates, data) that carry the label. */
  others: number;
}

/** The two generation templates for key `id`: sensitive, never-extractable private half; label and CKA_ID in both. */
export function generationTemplates(id: string, type: KeyType): { publicTemplate: Template; privateTemplate: Template } {
  const label = Buffer.from(id, 'utf8');
  const curve = CURVES[type];
  const ckaId = ckaIdFor(id);
  const publicTemplate: Template = [
    { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
    { type: P.CKA_TOKEN, value: true },
    { type: P.CKA_PRIVATE, value: false },
    { type: P.CKA_VERIFY, value: true },
    { type: P.CKA_EC_PARAMS, value: curve.oidDer },
    { type: P.CKA_LABEL, value: label },
    { type: P.CKA_ID, value: ckaId },
  ];
  const privateTemplate: Template = [
    { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
    { type: P.CKA_TOKEN, value: true },
    { type: P.CKA_PRIVATE, value: true },
    { type: P.CKA_SENSITIVE, value: true },
    { type: P.CKA_EXTRACTABLE, value: false },
    { type: P.CKA_SIGN, value: true },
    { type: P.CKA_DERIVE, value: false },
    { type: P.CKA_LABEL, value: label },
    { type: P.CKA_ID, value: ckaId },
  ];
  return { publicTemplate, privateTemplate };
}

/** Finds, describes, repairs and destroys this manager's key objects on one token. */
export class KeyObjects {
  readonly tokenLabel: string;
  readonly #lib: PKCS11;
  readonly #logger: Logger;

  constructor(lib: PKCS11, tokenLabel: string, logger: Logger) {
    this.#lib = lib;
    this.tokenLabel = tokenLabel;
    this.#logger = logger;
  }

  /** Reads one attribute; undefined if the token will not give it (absent, sensitive). */
  #attr(s: Handle, h: Handle, type: number): Buffer | undefined {
    try {
      return this.#lib.C_GetAttributeValue(s, h, [{ type }])[0]?.value;
    } catch (err) {
      const code = ckr(err);
      if (code === 'CKR_ATTRIBUTE_TYPE_INVALID' || code === 'CKR_ATTRIBUTE_SENSITIVE') return undefined;
      throw err;
    }
  }

  /** Describes an EC key object; undefined for anything else (another key type, a certificate). */
  #describe(s: Handle, h: Handle, unlabelled: boolean): KeyObject | undefined {
    const cls = attrUlong(this.#attr(s, h, P.CKA_CLASS));
    if (cls !== P.CKO_PRIVATE_KEY && cls !== P.CKO_PUBLIC_KEY) return undefined;
    // An object killed while its default attributes were being written may
    // not even have a key type yet; one that names another type is not ours.
    const keyType = attrUlong(this.#attr(s, h, P.CKA_KEY_TYPE));
    if (keyType !== P.CKK_EC && keyType !== -1) return undefined;
    const params = this.#attr(s, h, P.CKA_EC_PARAMS) ?? Buffer.alloc(0);
    if (cls === P.CKO_PRIVATE_KEY) return { h, cls: 'private', unlabelled, finished: params.length > 0, params };
    const point = this.#attr(s, h, P.CKA_EC_POINT) ?? Buffer.alloc(0);
    return { h, cls: 'public', unlabelled, finished: params.length > 0 && point.length > 0, params, point };
  }

  /**
   * The protection attributes of the private half of `id`; undefined unless
   * exactly one finished private key has the id. An attribute the token will
   * not give counts as the unsafe answer.
   */
  protection(s: Handle, id: string): KeyProtection | undefined {
    const privs = this.inspect(s, id).privs;
    if (privs.length !== 1) return undefined;
    const flag = (type: number) => this.#attr(s, privs[0]!.h, type)?.[0];
    return {
      sensitive: flag(P.CKA_SENSITIVE) === 1,
      extractable: flag(P.CKA_EXTRACTABLE) !== 0,
      alwaysSensitive: flag(P.CKA_ALWAYS_SENSITIVE) === 1,
      neverExtractable: flag(P.CKA_NEVER_EXTRACTABLE) === 1,
    };
  }

  /**
   * Everything on the token that belongs to `id`: objects labelled with it,
   * and key objects with an empty label whose CKA_ID is the one derived from
   * it (a half whose label was lost).
   */
  inspect(s: Handle, id: string): Inspection {
    const out: Inspection = { privs: [], pubs: [], remnants: [], others: 0 };
    const add = (o: KeyObject | undefined) => {
      if (!o) return false;
      if (!o.finished) out.remnants.push(o);
      else (o.cls === 'private' ? out.privs : out.pubs).push(o);
      return true;
    };
    for (const h of this.findObjects(s, [{ type: P.CKA_LABEL, value: Buffer.from(id, 'utf8') }])) {
      if (!add(this.#describe(s, h, false))) out.others++;
    }
    for (const h of this.findObjects(s, [
      { type: P.CKA_ID, value: ckaIdFor(id) },
      { type: P.CKA_LABEL, value: Buffer.alloc(0) },
    ])) {
      add(this.#describe(s, h, true));
    }
    return out;
  }

  /**
   * Finds a key pair by id: exactly one finished EC private key and one
   * public key. Returns 'repair' when the pair is whole but has remnants or
   * an unlabelled half beside it (unless `repair`: then it fixes them).
   */
  loadKey(s: Handle, id: string, repair = false): FoundKey | 'repair' | undefined {
    const found = this.inspect(s, id);
    const fail = (why: string) => new AnchorageError('failed_precondition', `pkcs11: key "${id}" on token "${this.tokenLabel}" ${why}`);
    if (found.privs.length > 1) throw fail(`is ambiguous: ${found.privs.length} private keys have that label`);
    if (found.pubs.length > 1) throw fail(`is ambiguous: ${found.pubs.length} public keys have that label`);
    const priv = found.privs[0];
    const pub = found.pubs[0];
    if (!priv || !pub) {
      if (priv || pub || found.remnants.length > 0) {
        this.#logger.warn(
          { id, token: this.tokenLabel, private: found.privs.length, public: found.pubs.length, unfinished: found.remnants.length },
          'pkcs11: key is incomplete (an interrupted key generation); generating it again replaces it',
        );
      }
      return undefined;
    }
    const type = keyTypeFromEcParams(priv.params);
    if (!type) throw fail('is on a curve other than p-256 or p-384');
    if (!pub.params.equals(priv.params)) throw fail('has public and private halves on different curves');
    if (found.remnants.length > 0 || priv.unlabelled || pub.unlabelled) {
      if (!repair) return 'repair';
      if (found.remnants.length > 0) this.destroy(s, id, found.remnants, 'unfinished objects of an interrupted key generation');
      for (const half of [priv, pub].filter((o) => o.unlabelled)) {
        // The pair is whole and its CKA_ID is ours: give the half its label back.
        this.#lib.C_SetAttributeValue(s, half.h, [{ type: P.CKA_LABEL, value: Buffer.from(id, 'utf8') }]);
        this.#logger.warn({ id, token: this.tokenLabel, half: half.cls }, 'pkcs11: restored the label of a key half that had lost it');
      }
    }
    return { type, spki: spkiFromEcPoint(type, pub.point!), priv: priv.h, pub: pub.h };
  }

  destroy(s: Handle, id: string, objects: KeyObject[], what: string): void {
    for (const o of objects) {
      try {
        this.#lib.C_DestroyObject(s, o.h);
      } catch (err) {
        if (!HANDLE_INVALID.has(ckr(err) ?? '')) throw err;
      }
    }
    this.#logger.warn(
      { id, token: this.tokenLabel, objects: objects.map((o) => `${o.cls}${o.finished ? '' : ' (unfinished)'}${o.unlabelled ? ' (unlabelled)' : ''}`) },
      `pkcs11: destroyed ${what}`,
    );
  }

  /**
   * Destroys unlabelled EC key objects that hold no key (no curve, no point):
   * what SoftHSM2 leaves when killed inside C_GenerateKeyPair, before it
   * wrote the template. No lookup can reach them; they only fill the token.
   */
  sweepRemnants(s: Handle): void {
    const remnants: KeyObject[] = [];
    for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY]) {
      for (const h of this.findObjects(s, [
        { type: P.CKA_CLASS, value: cls },
        { type: P.CKA_LABEL, value: Buffer.alloc(0) },
      ])) {
        const o = this.#describe(s, h, true);
        if (o && !o.finished) remnants.push(o);
      }
    }
    if (remnants.length > 0) this.destroy(s, '', remnants, 'unlabelled, unfinished key objects of interrupted key generations');
  }

  /** Runs a whole find (init, collect, final) synchronously, so nothing else can use the session's find state meanwhile. */
  findObjects(s: Handle, template: Template): Handle[] {
    const out: Handle[] = [];
    this.#lib.C_FindObjectsInit(s, template);
    try {
      for (;;) {
        const batch = this.#lib.C_FindObjects(s, 32);
        if (batch.length === 0) break;
        out.push(...batch);
      }
    } finally {
      this.#lib.C_FindObjectsFinal(s);
    }
    return out;
  }
}
