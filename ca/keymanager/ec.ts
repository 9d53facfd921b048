import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { AnchorageError, invalid } from '@anchorage/client/errors';
import type { KeyType } from './KeyManager.js';

/**
 * What every implementation needs to know about a key type, in one place so
 * the PKCS#11, disk and memory managers cannot disagree on hash or sizes.
 */
export interface CurveInfo {
  readonly type: KeyType;
  /** Node's name for the curve (`crypto.generateKeyPair`, `asymmetricKeyDetails.namedCurve`). */
  readonly nodeCurve: 'prime256v1' | 'secp384r1';
  /** The hash the type is fixed to (see KeyHandle.sign). */
  readonly hash: 'sha256' | 'sha384';
  /** Bytes of one coordinate / of r and of s. */
  readonly size: 32 | 48;
  /** DER of the named-curve OBJECT IDENTIFIER, which is also CKA_EC_PARAMS. */
  readonly oidDer: Buffer;
}

const ID_EC_PUBLIC_KEY_DER = Buffer.from('06072a8648ce3d0201', 'hex'); // 1.2.840.10045.2.1

/** Curve facts per key type. */
export const CURVES: Readonly<Record<KeyType, CurveInfo>> = {
  'ec-p256': {
    type: 'ec-p256',
    nodeCurve: 'prime256v1',
    hash: 'sha256',
    size: 32,
    oidDer: Buffer.from('06082a8648ce3d030107', 'hex'), // 1.2.840.10045.3.1.7
  },
  'ec-p384': {
    type: 'ec-p384',
    nodeCurve: 'secp384r1',
    hash: 'sha384',
    size: 48,
    oidDer: Buffer.from('06052b81040022', 'hex'), // 1.3.132.0.34
  },
};

/** Maps CKA_EC_PARAMS (a DER OID) back to a key type; undefined for curves we do not use. */
export function keyTypeFromEcParams(params: Uint8Array): KeyType | undefined {
  for (const c of Object.values(CURVES)) if (c.oidDer.equals(params)) return c.type;
  return undefined;
}

/** Maps a Node key's curve to a key type; undefined for anything else. */
export function keyTypeFromKeyObject(key: KeyObject): KeyType | undefined {
  if (key.asymmetricKeyType !== 'ec') return undefined;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  for (const c of Object.values(CURVES)) if (c.nodeCurve === curve) return c.type;
  return undefined;
}

/** Hashes locally: HSMs sign a raw digest faster than they hash, and the data never needs to reach the token. */
export function digestFor(type: KeyType, data: Uint8Array): Buffer {
  return createHash(CURVES[type].hash).update(data).digest();
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  return Buffer.from([0x82, n >> 8, n & 0xff]);
}

function derTlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

/**
 * Builds a SubjectPublicKeyInfo from CKA_EC_POINT. The standard says the
 * attribute is a DER OCTET STRING around the uncompressed point, but some
 * tokens return the bare point; both are accepted, anything else is refused
 * (and the result is parsed once more by Node as a final check).
 */
export function spkiFromEcPoint(type: KeyType, ecPoint: Uint8Array): Buffer {
  const { size, oidDer } = CURVES[type];
  const pointLen = 1 + 2 * size;
  const raw = Buffer.from(ecPoint);
  let point: Buffer;
  if (raw.length === pointLen && raw[0] === 0x04) {
    point = raw;
  } else if (raw.length === pointLen + 2 && raw[0] === 0x04 && raw[1] === pointLen && raw[2] === 0x04) {
    point = raw.subarray(2);
  } else {
    throw new AnchorageError('internal', `keymanager: unexpected CKA_EC_POINT encoding for ${type} (${raw.length} bytes)`);
  }
  const algorithm = derTlv(0x30, Buffer.concat([ID_EC_PUBLIC_KEY_DER, oidDer]));
  const spki = derTlv(0x30, Buffer.concat([algorithm, derTlv(0x03, Buffer.concat([Buffer.from([0]), point]))]));
  const parsed = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  if (keyTypeFromKeyObject(parsed) !== type) {
    throw new AnchorageError('internal', `keymanager: public key from CKA_EC_POINT is not a valid ${type} key`);
  }
  return spki;
}

/** The longest id any implementation accepts (matches the config's key_label limit). */
export const MAX_KEY_ID_LENGTH = 128;

/**
 * The id rules every implementation shares, so a CA configuration can move
 * between key managers: 1–128 characters, no control characters. The disk
 * manager adds its own, stricter file-name rule.
 */
export function checkKeyId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0) throw invalid('keymanager: key id must be a non-empty string');
  if (id.length > MAX_KEY_ID_LENGTH) throw invalid(`keymanager: key id is longer than ${MAX_KEY_ID_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(id)) throw invalid('keymanager: key id must not contain control characters');
}

/** Rejects anything that is not one of KEY_TYPES (callers may come from untyped config). */
export function checkKeyType(type: unknown): asserts type is KeyType {
  if (typeof type !== 'string' || !Object.hasOwn(CURVES, type)) {
    throw invalid(`keymanager: unsupported key type ${JSON.stringify(type)}`);
  }
}

/** The one error a closed manager gives, so callers see the same thing from every kind. */
export function closedError(kind: string): AnchorageError {
  return new AnchorageError('failed_precondition', `keymanager: the ${kind} key manager is closed`);
}
