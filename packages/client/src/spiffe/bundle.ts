import { createPublicKey, X509Certificate, type JsonWebKeyInput, type KeyObject, type webcrypto } from 'node:crypto';
import { invalid } from '../common/errors.js';
import type { TrustDomain } from './id.js';

// webcrypto's name for it: @types/node has it in every version since 20, crypto.JsonWebKey not.
type JsonWebKey = webcrypto.JsonWebKey;

/**
 * Trust bundles: the public key material a relying party needs to verify
 * SVIDs of one trust domain (SPIFFE_Trust_Domain_and_Bundle.md).
 *
 * A bundle always belongs to exactly one trust domain and never merges with
 * another; verifiers look bundles up by the trust domain of the identity
 * they are checking, which is what keeps one trust domain's keys from
 * vouching for another's identities.
 */

/** The `use` values the SPIFFE bundle format defines. */
const USE_X509 = 'x509-svid';
const USE_JWT = 'jwt-svid';

/** Bundle documents larger than this are refused before parsing unless the caller says otherwise. */
export const DEFAULT_MAX_BUNDLE_BYTES = 1024 * 1024;

const EC_CURVES = new Set(['P-256', 'P-384', 'P-521']);

/** Smallest RSA modulus accepted from a JWK; jose refuses smaller keys for RS/PS anyway. */
export const MIN_RSA_BITS = 2048;

/**
 * A public key in JWK form, restricted to the members that identify the key
 * (`kty` plus `crv`/`x`/`y` for EC or `n`/`e` for RSA). Anything else a
 * document carried (`alg`, `key_ops`, private members) is dropped or
 * refused at the edge, so what is stored is exactly what will be trusted.
 */
export interface PublicJwk {
  readonly kty: 'EC' | 'RSA';
  readonly crv?: string;
  readonly x?: string;
  readonly y?: string;
  readonly n?: string;
  readonly e?: string;
}

function copyBytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

function derKey(der: Uint8Array): string {
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
}

/**
 * Parses exactly one DER certificate. Node's parser ignores trailing bytes,
 * which would let two different byte strings stand for one authority, so
 * the re-read encoding must match the input byte for byte.
 */
function parseCertificate(der: Uint8Array): X509Certificate | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(der.buffer, der.byteOffset, der.byteLength));
  } catch {
    return undefined;
  }
  return Buffer.compare(cert.raw, Buffer.from(der.buffer, der.byteOffset, der.byteLength)) === 0 ? cert : undefined;
}

/**
 * Reduces a KeyObject to its identifying JWK members in a fixed order, so
 * the marshalled document is stable and two bundles with the same keys
 * compare equal as JSON. Returns undefined for key types the SPIFFE
 * profiles do not use.
 */
function toPublicJwk(key: KeyObject): PublicJwk | undefined {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty === 'EC' && typeof jwk.crv === 'string' && EC_CURVES.has(jwk.crv)) {
    return { kty: 'EC', crv: jwk.crv, x: jwk.x!, y: jwk.y! };
  }
  if (jwk.kty === 'RSA') return { kty: 'RSA', n: jwk.n!, e: jwk.e! };
  return undefined;
}

/** Any key Node can express as a JWK, members in Node's order; undefined if it cannot. */
function exportJwk(key: KeyObject): JsonWebKey | undefined {
  try {
    return key.export({ format: 'jwk' });
  } catch {
    return undefined;
  }
}

/** True when the JWK names a key type and curve this implementation can use. */
function isSupportedKeyType(jwk: Record<string, unknown>): boolean {
  if (jwk.kty === 'RSA') return true;
  return jwk.kty === 'EC' && typeof jwk.crv === 'string' && EC_CURVES.has(jwk.crv);
}

/** The members that only a private JWK carries (RFC 7518 §6.2.2, §6.3.2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

function hasPrivateMembers(jwk: Record<string, unknown>): boolean {
  return PRIVATE_MEMBERS.some((m) => m in jwk);
}

/**
 * Imports a public JWK after checking it carries no private material.
 * `where` prefixes messages so the caller can say which key was bad.
 */
function importPublicJwk(jwk: Record<string, unknown>, where: string): KeyObject {
  if (hasPrivateMembers(jwk)) throw invalid(`bundle: ${where} must not contain private key material`);
  if (!isSupportedKeyType(jwk)) throw invalid(`bundle: ${where} has an unsupported key type`);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as JsonWebKeyInput['key'], format: 'jwk' });
  } catch (err) {
    throw invalid(`bundle: ${where} has invalid key material`, err);
  }
  // Node builds an RSA key from any modulus, even an empty one; a key too
  // weak to verify anything safely is refused here rather than at use.
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw invalid(`bundle: ${where} has an RSA key shorter than ${MIN_RSA_BITS} bits`);
  }
  // With e = 1 a "signature" is the padded digest itself, which anyone can
  // write; an even e is not an RSA key at all (same rule as ca/x509/csr.ts).
  const e = key.asymmetricKeyDetails?.publicExponent;
  if (key.asymmetricKeyType === 'rsa' && (e === undefined || e < 3n || e % 2n === 0n)) {
    throw invalid(`bundle: ${where} has an invalid RSA public exponent`);
  }
  // Node decodes JWK members leniently (padding, whitespace, the standard
  // base64 alphabet, leading zero bytes), so one key had many spellings and
  // documents that RFC 7518 and other SPIFFE implementations refuse were
  // trusted here. The members must be the key's one canonical encoding.
  const canonical = toPublicJwk(key) as unknown as Record<string, unknown> | undefined;
  for (const m of ['crv', 'x', 'y', 'n', 'e']) {
    if (canonical?.[m] !== undefined && jwk[m] !== canonical[m]) {
      throw invalid(`bundle: ${where} member "${m}" is not the canonical unpadded base64url encoding`);
    }
  }
  return key;
}

/**
 * The X.509 authorities (root CA certificates) of one trust domain: what a
 * TLS peer's X509-SVID chain must lead to. Authorities are compared by
 * their exact DER bytes.
 */
export class X509Bundle {
  readonly trustDomain: TrustDomain;
  readonly #authorities = new Map<string, { der: Uint8Array; cert: X509Certificate }>();

  constructor(trustDomain: TrustDomain, authorities: Iterable<Uint8Array> = []) {
    this.trustDomain = trustDomain;
    for (const der of authorities) this.add(der);
  }

  /**
   * Reads authorities from concatenated PEM `CERTIFICATE` blocks, the form
   * operators hand over for a bootstrap bundle.
   */
  static parsePem(trustDomain: TrustDomain, pem: string): X509Bundle {
    const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g)];
    if (blocks.length === 0) throw invalid('bundle: no PEM certificates found');
    return new X509Bundle(
      trustDomain,
      blocks.map((m) => new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'))),
    );
  }

  /** Adds an authority; adding one that is already present is a no-op. */
  add(der: Uint8Array): void {
    const cert = parseCertificate(der);
    if (!cert) throw invalid('bundle: x509 authority is not a DER certificate');
    const key = derKey(der);
    if (!this.#authorities.has(key)) this.#authorities.set(key, { der: copyBytes(der), cert });
  }

  /** Removes an authority; returns whether it was present. */
  remove(der: Uint8Array): boolean {
    return this.#authorities.delete(derKey(der));
  }

  has(der: Uint8Array): boolean {
    return this.#authorities.has(derKey(der));
  }

  /** DER copies in insertion order; callers may not mutate the bundle through them. */
  authorities(): Uint8Array[] {
    return [...this.#authorities.values()].map((a) => copyBytes(a.der));
  }

  /** Parsed authorities for chain verification, parsed once when added. */
  certificates(): X509Certificate[] {
    return [...this.#authorities.values()].map((a) => a.cert);
  }

  get size(): number {
    return this.#authorities.size;
  }

  /** Same trust domain and the same set of authorities, in any order. */
  equals(other: X509Bundle): boolean {
    if (!this.trustDomain.equals(other.trustDomain) || this.size !== other.size) return false;
    for (const key of this.#authorities.keys()) if (!other.#authorities.has(key)) return false;
    return true;
  }

  clone(): X509Bundle {
    return new X509Bundle(this.trustDomain, this.authorities());
  }
}

/**
 * The JWT authorities of one trust domain, by key ID. JWT-SVIDs name their
 * signing key in the `kid` header, so lookup is by kid only.
 */
export class JwtBundle {
  readonly trustDomain: TrustDomain;
  readonly #keys = new Map<string, PublicJwk>();

  constructor(trustDomain: TrustDomain, keys: Iterable<[string, PublicJwk | JsonWebKey]> = []) {
    this.trustDomain = trustDomain;
    for (const [kid, jwk] of keys) this.addKey(kid, jwk);
  }

  /**
   * Adds or replaces the key for `kid`. The key is validated and reduced to
   * its public members, so a private JWK passed by mistake is refused
   * instead of being published in the next bundle document.
   */
  addKey(kid: string, jwk: PublicJwk | JsonWebKey): void {
    if (typeof kid !== 'string' || kid === '') throw invalid('bundle: jwt authority must have a non-empty kid');
    const key = importPublicJwk(jwk as Record<string, unknown>, `jwt authority "${kid}"`);
    this.#keys.set(kid, toPublicJwk(key)!);
  }

  removeKey(kid: string): boolean {
    return this.#keys.delete(kid);
  }

  hasKey(kid: string): boolean {
    return this.#keys.has(kid);
  }

  /** The public JWK for `kid`, or undefined; callers turn undefined into their own error. */
  findKey(kid: string): PublicJwk | undefined {
    return this.#keys.get(kid);
  }

  /** A snapshot of the keys; changing it does not change the bundle. */
  keys(): Map<string, PublicJwk> {
    return new Map(this.#keys);
  }

  get size(): number {
    return this.#keys.size;
  }

  equals(other: JwtBundle): boolean {
    if (!this.trustDomain.equals(other.trustDomain) || this.size !== other.size) return false;
    for (const [kid, jwk] of this.#keys) {
      const o = other.#keys.get(kid);
      if (!o || JSON.stringify(o) !== JSON.stringify(jwk)) return false;
    }
    return true;
  }

  clone(): JwtBundle {
    return new JwtBundle(this.trustDomain, this.#keys);
  }
}

/**
 * Validates `spiffe_sequence` / `spiffe_refresh_hint`. JSON numbers above
 * 2^53 − 1 are rounded by JSON.parse, so a large sequence cannot be
 * compared reliably with the next one; it is refused rather than rounded.
 */
function checkCounter(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw invalid(`bundle: ${name} must be a non-negative integer`);
  }
  if (Number.isInteger(value) && value > Number.MAX_SAFE_INTEGER) {
    throw invalid(`bundle: ${name} is larger than 2^53-1 and cannot be represented exactly`);
  }
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(`bundle: ${name} must be a non-negative integer`);
  return value;
}

/** Options for {@link SpiffeBundle}. */
export interface SpiffeBundleOptions {
  x509Authorities?: Iterable<Uint8Array>;
  jwtAuthorities?: Iterable<[string, PublicJwk | JsonWebKey]>;
  sequence?: number;
  /** Seconds between polls that the publisher asks of its consumers. */
  refreshHint?: number;
}

/** Options for {@link SpiffeBundle.parse}. */
export interface ParseBundleOptions {
  /** Largest document accepted, in bytes; defaults to {@link DEFAULT_MAX_BUNDLE_BYTES}. */
  maxBytes?: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * A SPIFFE bundle: X.509 and JWT authorities of one trust domain plus the
 * publisher's sequence number and refresh hint. This is what federation
 * exchanges and what the Workload API serves per trust domain.
 */
export class SpiffeBundle {
  readonly trustDomain: TrustDomain;
  readonly x509: X509Bundle;
  readonly jwt: JwtBundle;
  #sequence: number | undefined;
  #refreshHint: number | undefined;

  constructor(trustDomain: TrustDomain, options: SpiffeBundleOptions = {}) {
    this.trustDomain = trustDomain;
    this.x509 = new X509Bundle(trustDomain, options.x509Authorities ?? []);
    this.jwt = new JwtBundle(trustDomain, options.jwtAuthorities ?? []);
    this.sequence = options.sequence;
    this.refreshHint = options.refreshHint;
  }

  /** Monotonic revision number set by the publisher; undefined when the document has none. */
  get sequence(): number | undefined {
    return this.#sequence;
  }

  set sequence(value: number | undefined) {
    this.#sequence = value === undefined ? undefined : checkCounter(value, 'spiffe_sequence');
  }

  /** Suggested polling interval in seconds; undefined when the document has none. */
  get refreshHint(): number | undefined {
    return this.#refreshHint;
  }

  set refreshHint(value: number | undefined) {
    this.#refreshHint = value === undefined ? undefined : checkCounter(value, 'spiffe_refresh_hint');
  }

  /**
   * Parses a SPIFFE bundle document (a JWKS with SPIFFE members) for the
   * given trust domain. The document does not name its trust domain, so
   * the caller must supply the one it fetched the document for.
   *
   * Keys with an unknown `use` or an unsupported key type are skipped, as
   * the format requires, so a publisher can add new kinds of keys without
   * breaking older consumers. A key whose `use` is known but which is
   * malformed fails the whole document: trusting a partial bundle would
   * silently drop authorities the publisher meant to be trusted.
   */
  static parse(trustDomain: TrustDomain, doc: string | Uint8Array, options: ParseBundleOptions = {}): SpiffeBundle {
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
    const size = typeof doc === 'string' ? Buffer.byteLength(doc, 'utf8') : doc.byteLength;
    if (size > maxBytes) throw invalid(`bundle: document is ${size} bytes, more than the limit of ${maxBytes}`);
    const text = typeof doc === 'string' ? doc : Buffer.from(doc.buffer, doc.byteOffset, doc.byteLength).toString('utf8');

    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw invalid('bundle: document is not valid JSON', err);
    }
    if (!isObject(parsed)) throw invalid('bundle: document must be a JSON object');
    if (!('keys' in parsed)) throw invalid('bundle: document has no "keys" member');
    const keys = parsed.keys;
    if (!Array.isArray(keys)) throw invalid('bundle: "keys" must be an array');

    const bundle = new SpiffeBundle(trustDomain);
    // The setters validate; a JSON null is present-but-wrong, not absent.
    if (parsed.spiffe_sequence !== undefined) bundle.sequence = parsed.spiffe_sequence as number;
    if (parsed.spiffe_refresh_hint !== undefined) bundle.refreshHint = parsed.spiffe_refresh_hint as number;

    keys.forEach((key: unknown, i: number) => {
      if (!isObject(key)) throw invalid(`bundle: key ${i} is not a JSON object`);
      if (key.use === USE_X509) {
        parseX509Key(bundle.x509, key, i);
      } else if (key.use === USE_JWT) {
        parseJwtKey(bundle.jwt, key, i);
      }
      // Any other `use` (or none) is for someone else: skip it.
    });
    return bundle;
  }

  /**
   * Serialises to a SPIFFE bundle document. X.509 authorities carry their
   * public key and the certificate in `x5c` and no `kid` (the spec gives
   * them none); JWT authorities carry their `kid`.
   */
  marshal(): string {
    const keys: Record<string, unknown>[] = [];
    for (const cert of this.x509.certificates()) {
      // Key types outside the SPIFFE profiles (Ed25519, say) are still
      // published as their standard JWK; consumers skip what they cannot use.
      const jwk = toPublicJwk(cert.publicKey) ?? exportJwk(cert.publicKey);
      if (!jwk) continue;
      keys.push({ ...jwk, use: USE_X509, x5c: [cert.raw.toString('base64')] });
    }
    for (const [kid, jwk] of this.jwt.keys()) {
      keys.push({ ...jwk, use: USE_JWT, kid });
    }
    const doc: Record<string, unknown> = { keys };
    if (this.#sequence !== undefined) doc.spiffe_sequence = this.#sequence;
    if (this.#refreshHint !== undefined) doc.spiffe_refresh_hint = this.#refreshHint;
    return JSON.stringify(doc);
  }

  /** Same trust domain, authorities, sequence and refresh hint. */
  equals(other: SpiffeBundle): boolean {
    return (
      this.trustDomain.equals(other.trustDomain) &&
      this.#sequence === other.#sequence &&
      this.#refreshHint === other.#refreshHint &&
      this.x509.equals(other.x509) &&
      this.jwt.equals(other.jwt)
    );
  }

  clone(): SpiffeBundle {
    return new SpiffeBundle(this.trustDomain, {
      x509Authorities: this.x509.authorities(),
      jwtAuthorities: this.jwt.keys(),
      sequence: this.#sequence,
      refreshHint: this.#refreshHint,
    });
  }
}

/**
 * One `use: "x509-svid"` entry. The certificate is the authority; the JWK
 * members must describe the same key, because a consumer that reads only
 * the JWK members must not end up trusting a different key than one that
 * reads the certificate.
 */
function parseX509Key(into: X509Bundle, key: Record<string, unknown>, i: number): void {
  const where = `x509-svid key ${i}`;
  if (typeof key.kty !== 'string') throw invalid(`bundle: ${where} has no kty`);
  if (!isSupportedKeyType(key)) return;
  const x5c = key.x5c;
  if (!Array.isArray(x5c) || x5c.length !== 1) {
    const n = Array.isArray(x5c) ? x5c.length : 0;
    throw invalid(`bundle: ${where} must have exactly one certificate in x5c, found ${n}`);
  }
  const b64 = x5c[0];
  if (typeof b64 !== 'string' || b64 === '' || !BASE64.test(b64)) {
    throw invalid(`bundle: ${where} x5c is not valid base64`);
  }
  const der = new Uint8Array(Buffer.from(b64, 'base64'));
  const cert = parseCertificate(der);
  if (!cert) throw invalid(`bundle: ${where} x5c is not a DER certificate`);
  const jwkKey = importPublicJwk(key, where);
  if (!jwkKey.equals(cert.publicKey)) throw invalid(`bundle: ${where} key does not match its x5c certificate`);
  into.add(der);
}

/** One `use: "jwt-svid"` entry: a public key named by a kid unique in the document. */
function parseJwtKey(into: JwtBundle, key: Record<string, unknown>, i: number): void {
  const where = `jwt-svid key ${i}`;
  if (typeof key.kty !== 'string') throw invalid(`bundle: ${where} has no kty`);
  if (!isSupportedKeyType(key)) return;
  const kid = key.kid;
  if (typeof kid !== 'string' || kid === '') throw invalid(`bundle: ${where} has no kid`);
  if (into.hasKey(kid)) throw invalid(`bundle: duplicate jwt-svid kid ${JSON.stringify(kid)}`);
  const imported = importPublicJwk(key, `${where} (kid ${JSON.stringify(kid)})`);
  into.addKey(kid, toPublicJwk(imported)!);
}
