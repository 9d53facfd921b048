import { invalid } from '../common/errors.js';

/**
 * SPIFFE ID and trust domain value types (SPIFFE-ID.md).
 *
 * Both are parsed once at the edge of the system and then passed around as
 * opaque objects, so code further in never has to wonder whether a string
 * has been validated. The validation is deliberately stricter than generic
 * URI parsing: the SPIFFE rules forbid things (percent-encoding, dot
 * segments, upper-case hosts) that a URL parser would silently normalise,
 * and normalising an identity is how two parties end up disagreeing about
 * who someone is.
 */

const SCHEME_PREFIX = 'spiffe://';

/** SPIFFE-ID.md §2.3: implementations must accept IDs up to this size. */
export const MAX_SPIFFE_ID_BYTES = 2048;

/** SPIFFE-ID.md §2.3: the host part of a URI is limited to 255 bytes. */
export const MAX_TRUST_DOMAIN_BYTES = 255;

function isTrustDomainChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2e || // .
    c === 0x2d || // -
    c === 0x5f // _
  );
}

function isPathChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2e || // .
    c === 0x2d || // -
    c === 0x5f // _
  );
}

/** Quotes one offending character for an error message without echoing arbitrary input. */
function quoteChar(s: string, index: number): string {
  const cp = s.codePointAt(index) ?? 0;
  return JSON.stringify(String.fromCodePoint(cp));
}

/**
 * Validates a trust domain name (no scheme). Returns the name unchanged; it
 * never lower-cases, because silently accepting `Example.org` would let two
 * spellings of one trust domain into configuration and bundles.
 */
function validateTrustDomainName(name: string): string {
  if (name.length === 0) throw invalid('spiffeid: trust domain is missing');
  // Userinfo first: `user:pass@host` is userinfo, not a port.
  if (name.includes('@')) throw invalid('spiffeid: trust domain must not include userinfo');
  if (name.includes(':')) throw invalid('spiffeid: trust domain must not include a port');
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (isTrustDomainChar(c)) continue;
    if (c === 0x25) throw invalid('spiffeid: percent-encoding is not allowed');
    throw invalid(`spiffeid: trust domain contains an invalid character ${quoteChar(name, i)}`);
  }
  // Every accepted character is ASCII, so characters equal bytes here.
  if (name.length > MAX_TRUST_DOMAIN_BYTES) {
    throw invalid(`spiffeid: trust domain exceeds ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  }
  return name;
}

/**
 * Validates a path: empty, or one or more `/segment`. Percent-encoding,
 * dot segments and trailing slashes are refused rather than normalised so
 * that one identity has exactly one spelling.
 */
function validatePath(path: string): string {
  if (path === '') return path;
  if (path.charCodeAt(0) !== 0x2f) throw invalid('spiffeid: path must be empty or start with "/"');
  let segmentStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const atEnd = i === path.length;
    const c = atEnd ? 0x2f : path.charCodeAt(i);
    if (c === 0x2f) {
      const segment = path.slice(segmentStart, i);
      if (segment === '') {
        throw invalid(atEnd ? 'spiffeid: path must not have a trailing slash' : 'spiffeid: path must not contain empty segments');
      }
      if (segment === '.' || segment === '..') throw invalid('spiffeid: path must not contain dot segments');
      segmentStart = i + 1;
      continue;
    }
    if (isPathChar(c)) continue;
    if (c === 0x25) throw invalid('spiffeid: percent-encoding is not allowed');
    if (c === 0x3f) throw invalid('spiffeid: query is not allowed');
    if (c === 0x23) throw invalid('spiffeid: fragment is not allowed');
    throw invalid(`spiffeid: path segment contains an invalid character ${quoteChar(path, i)}`);
  }
  return path;
}

function checkIdLength(byteLength: number): void {
  if (byteLength > MAX_SPIFFE_ID_BYTES) throw invalid(`spiffeid: exceeds ${MAX_SPIFFE_ID_BYTES} bytes`);
}

/**
 * Splits `spiffe://td/path` into its parts, checking the scheme and the
 * URI components SPIFFE forbids before the character rules get a chance to
 * report something less helpful.
 */
function splitId(s: string): { td: string; path: string } {
  if (s === '') throw invalid('spiffeid: cannot be empty');
  checkIdLength(Buffer.byteLength(s, 'utf8'));
  if (!s.startsWith(SCHEME_PREFIX)) {
    throw invalid('spiffeid: scheme must be "spiffe://" in lower case');
  }
  const rest = s.slice(SCHEME_PREFIX.length);
  const slash = rest.indexOf('/');
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  // A query or fragment may begin inside what looks like the authority
  // (`spiffe://td?x`); name the real problem rather than a bad character.
  const q = authority.indexOf('?');
  const h = authority.indexOf('#');
  if (q !== -1 && (h === -1 || q < h)) throw invalid('spiffeid: query is not allowed');
  if (h !== -1) throw invalid('spiffeid: fragment is not allowed');
  return { td: authority, path };
}

/** Module-private factory for names already validated, so no unchecked constructor is exported. */
let makeTrustDomain: (validatedName: string) => TrustDomain;

/**
 * A trust domain: the root of trust an identity belongs to. Construct with
 * {@link TrustDomain.parse}; equality is by name.
 */
export class TrustDomain {
  /** The bare name, e.g. `example.org`. */
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
  }

  /**
   * Accepts the bare name (`example.org`) as found in configuration, or the
   * trust domain's own ID (`spiffe://example.org`) as found in bundle maps.
   * An ID with a path is refused: taking its trust domain silently would
   * let a workload ID stand in where an operator meant a trust domain.
   */
  static parse(s: string): TrustDomain {
    if (typeof s !== 'string' || s === '') throw invalid('spiffeid: trust domain is missing');
    if (s.includes(':/') || /^spiffe:/i.test(s)) {
      const id = SpiffeId.parse(s);
      if (!id.isTrustDomainId()) throw invalid('spiffeid: trust domain must not have a path');
      return id.trustDomain;
    }
    return new TrustDomain(validateTrustDomainName(s));
  }

  /** `spiffe://<name>`: the key the Workload API and federation use in bundle maps. */
  idString(): string {
    return SCHEME_PREFIX + this.name;
  }

  /** The trust domain's own identity, as carried by its signing authorities. */
  id(): SpiffeId {
    return SpiffeId.fromPath(this, '');
  }

  equals(other: TrustDomain): boolean {
    return other instanceof TrustDomain && other.name === this.name;
  }

  toString(): string {
    return this.name;
  }

  /** Serialises as the bare name so logs and JSON show something readable. */
  toJSON(): string {
    return this.name;
  }

  static {
    makeTrustDomain = (name) => new TrustDomain(name);
  }
}

/**
 * A SPIFFE ID: `spiffe://<trust domain><path>`. Construct with
 * {@link SpiffeId.parse}, {@link SpiffeId.fromPath} or
 * {@link SpiffeId.fromSegments}; equality is by the full string, which is
 * unambiguous because no normalisation is ever applied.
 */
export class SpiffeId {
  readonly trustDomain: TrustDomain;
  /** `""` for the trust domain's own ID, otherwise `/seg/seg`. */
  readonly path: string;
  readonly #text: string;

  private constructor(td: TrustDomain, path: string) {
    this.trustDomain = td;
    this.path = path;
    this.#text = td.idString() + path;
  }

  /** Parses a SPIFFE ID, enforcing every rule of SPIFFE-ID.md without normalising anything. */
  static parse(s: string): SpiffeId {
    if (typeof s !== 'string') throw invalid('spiffeid: must be a string');
    const { td, path } = splitId(s);
    const name = validateTrustDomainName(td);
    return new SpiffeId(makeTrustDomain(name), validatePath(path));
  }

  /**
   * Builds an ID from a trust domain and a path such as `/ns/prod/sa/web`.
   * The path gets the same checks as in {@link SpiffeId.parse}, so
   * registration entries built from operator input cannot smuggle in an ID
   * that other SPIFFE implementations would reject.
   */
  static fromPath(td: TrustDomain, path: string): SpiffeId {
    validatePath(path);
    checkIdLength(SCHEME_PREFIX.length + td.name.length + path.length);
    return new SpiffeId(td, path);
  }

  /**
   * Builds an ID from individual segments. Each segment is checked on its
   * own, so a segment containing `/` is an error rather than two segments.
   */
  static fromSegments(td: TrustDomain, ...segments: string[]): SpiffeId {
    for (const segment of segments) {
      if (segment.includes('/')) throw invalid('spiffeid: path segment contains an invalid character "/"');
    }
    return SpiffeId.fromPath(td, segments.map((seg) => `/${seg}`).join(''));
  }

  /** True for the ID of the trust domain itself (no path), as used by signing authorities. */
  isTrustDomainId(): boolean {
    return this.path === '';
  }

  memberOf(td: TrustDomain): boolean {
    return this.trustDomain.equals(td);
  }

  equals(other: SpiffeId): boolean {
    return other instanceof SpiffeId && other.#text === this.#text;
  }

  toString(): string {
    return this.#text;
  }

  toJSON(): string {
    return this.#text;
  }
}
