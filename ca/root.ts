import { X509Certificate, createPrivateKey, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AnchorageError, errorMessage, isAnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../common/log.js';
import { fromPem } from '@anchorage/client/pem';
import type { TrustDomain } from '@anchorage/client/spiffe/id';
import type { RootConfig } from './config.js';
import type { DataStore, JournalEntry } from './datastore/DataStore.js';
import type { KeyHandle, KeyManager, KeyType } from './keymanager/KeyManager.js';
import { assembleCertificate, encodeCaTbs, randomSerial } from './x509/cert.js';
import { encodeName } from './x509/name.js';

/**
 * The key that signs our intermediates, with its certificate and the path
 * from it to the trust anchor that goes into the bundle.
 */
export interface RootOfTrust {
  readonly kind: 'self-signed' | 'upstream';
  /** The CA journal id of a self-signed root (`root` for the first, `root-<uuid>` after rotations); `upstream` otherwise. */
  readonly id: string;
  readonly key: KeyHandle;
  /** DER certificate of `key`. */
  readonly cert: Uint8Array;
  readonly certInfo: X509Certificate;
  /** Certificates between our intermediate and the anchor (not including the anchor), DER, nearest first. */
  readonly chain: Uint8Array[];
  /** Trust anchors published in the X.509 bundle. */
  readonly anchors: Uint8Array[];
  /** Unix seconds; no intermediate may outlive it. */
  readonly notAfter: number;
}

export interface RootDeps {
  trustDomain: TrustDomain;
  datastore: DataStore;
  /** Where the root key lives (may be another token than the intermediates'). */
  keyManager: KeyManager;
  /** Milliseconds since the epoch. */
  now: () => number;
  logger: Logger;
  /** Key type for a generated self-signed root when the config names none. */
  defaultKeyType: KeyType;
}

/** Clock skew allowance: certificates start this long before they are made. */
export const BACKDATE_SECONDS = 10;

export const ROOT_JOURNAL_ID = 'root';

function secondsOf(date: string): number {
  return Math.floor(new Date(date).getTime() / 1000);
}

function keyTypeOf(key: KeyObject, what: string): KeyType {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') return 'ec-p256';
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'secp384r1') return 'ec-p384';
  throw new AnchorageError(
    'invalid_argument',
    `ca: ${what} must be an EC P-256 or P-384 key (got ${key.asymmetricKeyType}${details?.namedCurve ? ' ' + details.namedCurve : ''})`,
  );
}

/** Creates (first start) or loads the root of trust named by the config. */
export async function loadRootOfTrust(cfg: RootConfig, deps: RootDeps): Promise<RootOfTrust> {
  return cfg.type === 'self-signed' ? loadSelfSigned(cfg, deps) : loadUpstream(cfg, deps);
}

async function loadSelfSigned(cfg: Extract<RootConfig, { type: 'self-signed' }>, deps: RootDeps): Promise<RootOfTrust> {
  const { datastore: ds, keyManager: km, trustDomain: td, logger } = deps;
  const label = cfg.key_label ?? `anchorage-root-${td.name}`;
  const roots = (await ds.listJournal()).filter((r) => r.kind === 'root');
  // After a rotation the active root is not the first one; a crash in the
  // middle of an activation leaves two active rows, and the newer one wins
  // (the CA manager settles the other).
  const active = roots.filter((r) => r.status === 'active' && r.certDer).sort((a, b) => b.notBefore - a.notBefore)[0];
  if (active) return selfSignedRootFromRow(active, km);
  const existing = roots.find((r) => r.id === ROOT_JOURNAL_ID);

  // First start (or a crash between writing the row and issuing the cert):
  // the row names the label first, so a restart finds the same key again.
  const now = Math.floor(deps.now() / 1000);
  const row: JournalEntry = existing ?? {
    id: ROOT_JOURNAL_ID,
    kind: 'root',
    status: 'preparing',
    keyId: label,
    notBefore: 0,
    notAfter: 0,
    createdAt: now,
  };
  if (!existing) await ds.putJournal(row);
  const keyType = cfg.key_type ?? deps.defaultKeyType;
  const key = await keyForPreparingRow(km, row, keyType, logger);
  const done = await issueSelfSignedRoot(row, key, td, now, cfg.ttl);
  await ds.putJournal({ ...done, status: 'active' });
  const certInfo = new X509Certificate(done.certDer!);
  logger.info({ notAfter: certInfo.validTo, fingerprint: certInfo.fingerprint256 }, 'ca: created the self-signed root');
  return selfSignedRoot(row.id, key, done.certDer!, certInfo);
}

/**
 * Signs the self-signed certificate of a root journal row whose key exists:
 * the row as it is to be written (the caller sets the status). The first
 * root's subject is `O=Anchorage, CN=Anchorage root <td>`; later roots add
 * a serialNumber naming their journal id, so two published roots never
 * share a subject.
 */
export async function issueSelfSignedRoot(row: JournalEntry, key: KeyHandle, td: TrustDomain, now: number, ttl: number): Promise<JournalEntry> {
  const subject = encodeName([
    { type: 'O', value: 'Anchorage' },
    { type: 'CN', value: `Anchorage root ${td.name}`.slice(0, 64) },
    ...(row.id === ROOT_JOURNAL_ID ? [] : [{ type: 'serialNumber' as const, value: row.id.slice(0, 64) }]),
  ]);
  const notBefore = now - BACKDATE_SECONDS;
  const tbs = encodeCaTbs({
    serial: randomSerial(),
    issuerName: subject,
    subject,
    notBefore: new Date(notBefore * 1000),
    notAfter: new Date((now + ttl) * 1000),
    spki: key.publicKeySpki,
    signerKeyType: key.type,
    spiffeId: td.idString(),
  });
  const certDer = assembleCertificate(tbs, key.type, await key.sign(tbs));
  return { ...row, certDer, publicKeySpki: key.publicKeySpki, notBefore, notAfter: secondsOf(new X509Certificate(certDer).validTo) };
}

/** The root of trust a finished self-signed root row describes, its key found again in `km`. */
export async function selfSignedRootFromRow(row: JournalEntry, km: KeyManager): Promise<RootOfTrust> {
  const key = await km.getKey(row.keyId);
  if (!key) {
    throw new AnchorageError(
      'failed_precondition',
      `ca: the root key "${row.keyId}" recorded in the CA journal (${row.id}) is not in the ${km.kind} key manager; ` +
        'check key_manager (token label, module) — a new root would break every existing trust relationship',
    );
  }
  const certInfo = new X509Certificate(row.certDer!);
  if (!Buffer.from(key.publicKeySpki).equals(certInfo.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new AnchorageError('failed_precondition', `ca: the root key "${row.keyId}" does not match the root certificate of ${row.id}`);
  }
  return selfSignedRoot(row.id, key, row.certDer!, certInfo);
}

/**
 * The key of a journal row that is still `preparing`: found again if the
 * key manager holds exactly one whole key under the row's label, generated
 * otherwise. Nothing trusts such a key yet (its certificate or kid is written
 * in the same journal write that ends `preparing`), so whatever a crash left
 * under the label (duplicates, a lone half: see the PKCS#11 manager) may be
 * cleared. Keys of `active`, `prepared` or `old` rows are never cleared.
 */
export async function keyForPreparingRow(km: KeyManager, row: JournalEntry, keyType: KeyType, logger: Logger): Promise<KeyHandle> {
  let key: KeyHandle | undefined;
  try {
    key = await km.getKey(row.keyId);
  } catch (err) {
    if (!isAnchorageError(err, 'failed_precondition')) throw err;
    logger.warn({ row: row.id, label: row.keyId, err: err.message }, 'ca: clearing an unusable key of a journal row that was still being prepared');
    await km.deleteKey(row.keyId);
  }
  if (key) {
    logger.info({ row: row.id, label: row.keyId }, 'ca: using the key found in the key manager for a journal row being prepared');
    return key;
  }
  key = await km.generateKey(row.keyId, keyType);
  logger.info({ row: row.id, label: row.keyId, keyType }, 'ca: generated a key for a journal row being prepared');
  return key;
}

function selfSignedRoot(id: string, key: KeyHandle, cert: Uint8Array, certInfo: X509Certificate): RootOfTrust {
  return {
    kind: 'self-signed',
    id,
    key,
    cert,
    certInfo,
    chain: [],
    anchors: [cert],
    notAfter: secondsOf(certInfo.validTo),
  };
}

async function loadUpstream(cfg: Extract<RootConfig, { type: 'upstream' }>, deps: RootDeps): Promise<RootOfTrust> {
  let pem: string;
  try {
    pem = readFileSync(cfg.cert_file, 'utf8');
  } catch (err) {
    throw new AnchorageError('invalid_argument', `ca: ca.root.cert_file: cannot read ${cfg.cert_file}: ${errorMessage(err)}`);
  }
  const ders = fromPem(pem, 'CERTIFICATE', `ca: ca.root.cert_file ${cfg.cert_file}`);
  let certs: X509Certificate[];
  try {
    certs = ders.map((d) => new X509Certificate(d));
  } catch (err) {
    throw new AnchorageError('invalid_argument', `ca: ca.root.cert_file: not a valid certificate: ${errorMessage(err)}`);
  }
  const leaf = certs[0]!;
  const now = deps.now();
  for (const [i, c] of certs.entries()) {
    if (!c.ca) throw new AnchorageError('invalid_argument', `ca: ca.root.cert_file: certificate ${i + 1} is not a CA certificate`);
    if (new Date(c.validTo).getTime() <= now || new Date(c.validFrom).getTime() > now) {
      throw new AnchorageError('invalid_argument', `ca: ca.root.cert_file: certificate ${i + 1} is not valid now (${c.validFrom} – ${c.validTo})`);
    }
    const issuer = certs[i + 1] ?? c;
    if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) {
      throw new AnchorageError(
        'invalid_argument',
        certs[i + 1]
          ? `ca: ca.root.cert_file: certificate ${i + 1} is not signed by certificate ${i + 2}`
          : `ca: ca.root.cert_file: the chain must end at a self-signed root (certificate ${i + 1} is not self-signed)`,
      );
    }
  }

  let key: KeyHandle;
  if (cfg.key_file !== undefined) {
    let keyObject: KeyObject;
    try {
      keyObject = createPrivateKey(readFileSync(cfg.key_file));
    } catch (err) {
      throw new AnchorageError('invalid_argument', `ca: ca.root.key_file: cannot load a private key from ${cfg.key_file}: ${errorMessage(err).split('\n')[0]}`);
    }
    key = softwareKeyHandle('upstream', keyObject, 'ca.root.key_file');
    deps.logger.warn({ file: cfg.key_file }, 'ca: the upstream root key is a software key read from a file');
  } else {
    const found = await deps.keyManager.getKey(cfg.key_label!);
    if (!found) throw new AnchorageError('invalid_argument', `ca: ca.root.key_label: no key "${cfg.key_label}" in the ${deps.keyManager.kind} key manager`);
    key = found;
  }
  const certSpki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  if (!certSpki.equals(Buffer.from(key.publicKeySpki))) {
    throw new AnchorageError('invalid_argument', 'ca: ca.root: the key does not match the first certificate of ca.root.cert_file');
  }
  return {
    kind: 'upstream',
    id: 'upstream',
    key,
    cert: ders[0]!,
    certInfo: leaf,
    chain: ders.slice(0, -1),
    anchors: [ders[ders.length - 1]!],
    notAfter: Math.min(...certs.map((c) => secondsOf(c.validTo))),
  };
}

/** Wraps a software private key as a KeyHandle (upstream keys given as files). */
export function softwareKeyHandle(id: string, keyObject: KeyObject, what: string): KeyHandle {
  const type = keyTypeOf(keyObject, what);
  const hash = type === 'ec-p256' ? 'sha256' : 'sha384';
  return {
    id,
    type,
    publicKeySpki: createPublicKey(keyObject).export({ type: 'spki', format: 'der' }),
    sign: async (data) => cryptoSign(hash, data, { key: keyObject, dsaEncoding: 'ieee-p1363' }),
  };
}
