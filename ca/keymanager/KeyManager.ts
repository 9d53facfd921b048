/** Key algorithms a KeyManager can hold. The hash is fixed by the type. */
export type KeyType = 'ec-p256' | 'ec-p384';

export const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'ec-p384'];

/**
 * A private key held by a KeyManager. The private half never leaves it: the
 * only things a handle gives out are the public key and signatures.
 */
export interface KeyHandle {
  /** Caller-chosen id, unique within the manager (the PKCS#11 CKA_LABEL). */
  readonly id: string;
  readonly type: KeyType;
  /** DER SubjectPublicKeyInfo of the public half. */
  readonly publicKeySpki: Uint8Array;
  /**
   * Hashes `data` with the key's hash (SHA-256 for P-256, SHA-384 for P-384)
   * and signs it. Returns the IEEE P1363 form (r || s, each zero-padded to the
   * curve size), which is what JWS wants; X.509 callers convert it to DER.
   */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/**
 * Where the CA's keys live. Implementations: `pkcs11` (production, an HSM
 * reached through PKCS#11), `disk` and `memory` (development only).
 */
export interface KeyManager {
  readonly kind: 'pkcs11' | 'disk' | 'memory';
  /**
   * Creates a key; fails with `already_exists` if the id is taken. Atomic as
   * seen by callers: a crash in the middle leaves no key under the id (getKey
   * gives undefined), and a later generateKey for the id succeeds, replacing
   * whatever remains the crash left. Callers generate only for ids that no
   * record trusts yet (the CA journal's `preparing` rows).
   */
  generateKey(id: string, type: KeyType): Promise<KeyHandle>;
  /** Finds a key again, including after a restart; undefined if absent or only half-made. */
  getKey(id: string): Promise<KeyHandle | undefined>;
  listKeys(): Promise<KeyHandle[]>;
  /** Destroys a key; no error if it is already gone. */
  deleteKey(id: string): Promise<void>;
  /** Releases sessions and handles. The manager is unusable afterwards. */
  close(): Promise<void>;
  /**
   * How the token protects the private half of key `id`, as the token itself
   * reports it (PKCS#11 attributes); undefined if there is no such key. Only
   * managers whose keys live in an HSM have it.
   */
  keyProtection?(id: string): Promise<KeyProtection | undefined>;
}

/** The PKCS#11 attributes that say whether a private key can ever leave its token. */
export interface KeyProtection {
  /** CKA_SENSITIVE: the key's value cannot be read out in the clear. */
  sensitive: boolean;
  /** CKA_EXTRACTABLE: the key can be exported wrapped. */
  extractable: boolean;
  /** CKA_ALWAYS_SENSITIVE: it has been sensitive since it was made. */
  alwaysSensitive: boolean;
  /** CKA_NEVER_EXTRACTABLE: it has never been extractable. */
  neverExtractable: boolean;
}
