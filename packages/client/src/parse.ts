import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { decodeJwt } from 'jose';
import { AnchorageError, errorMessage } from './common/errors.js';
import type { Struct__Output } from './proto/gen/google/protobuf/Struct.js';
import type { Value__Output } from './proto/gen/google/protobuf/Value.js';
import type { JWTBundlesResponse__Output } from './proto/gen/JWTBundlesResponse.js';
import type { JWTSVIDResponse__Output } from './proto/gen/JWTSVIDResponse.js';
import type { ValidateJWTSVIDResponse__Output } from './proto/gen/ValidateJWTSVIDResponse.js';
import type { X509BundlesResponse__Output } from './proto/gen/X509BundlesResponse.js';
import type { X509SVID__Output } from './proto/gen/X509SVID.js';
import type { X509SVIDResponse__Output } from './proto/gen/X509SVIDResponse.js';
import { JwtBundle, X509Bundle } from './spiffe/bundle.js';
import { SpiffeId, TrustDomain } from './spiffe/id.js';
import { parseSpiffeIdFromCert } from './spiffe/x509svid.js';
import { BundleSet, type JwtSvid, type ValidatedJwtSvid, type X509Context, type X509Svid } from './types.js';

/**
 * Turns Workload API responses into typed values, refusing anything that
 * does not hang together. A response is the agent's word, not an
 * attacker's, so the checks are about consistency — the key fits the leaf,
 * the leaf names the SPIFFE ID it is sent as — not about trusting the chain:
 * an SVID is not verified against its own bundle, because during a root
 * rotation an agent may legitimately send a bundle that is one step ahead.
 *
 * Every rejection is `AnchorageError('internal')` (the server, not the
 * caller, is at fault) with a message that names the message and field.
 */

function malformed(what: string, message: string, cause?: unknown): AnchorageError {
  return new AnchorageError('internal', `workloadapi: malformed ${what}: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * Splits concatenated DER certificates by their outer SEQUENCE lengths and
 * parses each one. Trailing garbage, indefinite lengths and lengths that
 * run past the end are errors, as is a certificate Node re-encodes
 * differently from the bytes received.
 */
export function parseDerCertificates(buf: Uint8Array, what: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  let i = 0;
  while (i < buf.length) {
    if (buf[i] !== 0x30) throw new Error(`${what}: certificate ${out.length} does not start with a DER SEQUENCE (offset ${i})`);
    if (i + 1 >= buf.length) throw new Error(`${what}: certificate ${out.length} is truncated`);
    let len = buf[i + 1]!;
    let header = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4) throw new Error(`${what}: certificate ${out.length} has an unsupported DER length`);
      if (i + 2 + n > buf.length) throw new Error(`${what}: certificate ${out.length} is truncated`);
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + buf[i + 2 + k]!;
      header += n;
    }
    const end = i + header + len;
    if (end > buf.length) throw new Error(`${what}: certificate ${out.length} is truncated`);
    const der = Buffer.from(buf.buffer, buf.byteOffset + i, header + len);
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
    } catch (err) {
      throw new Error(`${what}: certificate ${out.length} could not be parsed: ${errorMessage(err)}`, { cause: err });
    }
    if (!cert.raw.equals(der)) throw new Error(`${what}: certificate ${out.length} is not DER-encoded`);
    out.push(cert);
    i = end;
  }
  return out;
}

/** Like {@link parseDerCertificates}, but every failure is a malformed-response error. */
function certificates(buf: Uint8Array, msg: string, field: string): X509Certificate[] {
  try {
    return parseDerCertificates(buf, field);
  } catch (err) {
    throw malformed(msg, errorMessage(err), err);
  }
}

function bundleFromCerts(td: TrustDomain, certs: X509Certificate[]): X509Bundle {
  return new X509Bundle(
    td,
    certs.map((c) => new Uint8Array(c.raw)),
  );
}

function parseX509Svid(m: X509SVID__Output, index: number, msg: string): { svid: X509Svid; bundle: X509Bundle } {
  let spiffeId: SpiffeId;
  try {
    spiffeId = SpiffeId.parse(m.spiffe_id);
  } catch (err) {
    throw malformed(msg, `svid ${index}: spiffe_id ${JSON.stringify(m.spiffe_id)} is invalid: ${errorMessage(err)}`, err);
  }
  const where = `svid ${index} (${spiffeId.toString()})`;
  const chain = certificates(m.x509_svid, msg, `${where}: x509_svid`);
  if (chain.length === 0) throw malformed(msg, `${where}: x509_svid is empty`);
  const leaf = chain[0]!;
  let certId: SpiffeId;
  try {
    certId = parseSpiffeIdFromCert(leaf);
  } catch (err) {
    throw malformed(msg, `${where}: leaf certificate: ${errorMessage(err)}`, err);
  }
  if (!certId.equals(spiffeId)) throw malformed(msg, `${where}: leaf certificate is for ${certId.toString()}, not ${spiffeId.toString()}`);

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: m.x509_svid_key, format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw malformed(msg, `${where}: x509_svid_key is not a PKCS#8 DER private key`, err);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw malformed(msg, `${where}: x509_svid_key does not match the leaf certificate's public key`);

  const bundleCerts = certificates(m.bundle, msg, `${where}: bundle`);
  if (bundleCerts.length === 0) throw malformed(msg, `${where}: bundle is empty`);
  const svid: X509Svid = Object.freeze({
    spiffeId,
    chain: Object.freeze(chain),
    privateKey,
    hint: m.hint,
    expiresAt: new Date(leaf.validTo),
  });
  return { svid, bundle: bundleFromCerts(spiffeId.trustDomain, bundleCerts) };
}

/** Bundles keyed `spiffe://<td>` (or a bare name), one map entry each. */
function parseX509BundleMap(map: Record<string, Buffer>, msg: string, field: string): X509Bundle[] {
  const out: X509Bundle[] = [];
  for (const [key, der] of Object.entries(map)) {
    let td: TrustDomain;
    try {
      td = TrustDomain.parse(key);
    } catch (err) {
      throw malformed(msg, `${field}: key ${JSON.stringify(key)} is not a trust domain: ${errorMessage(err)}`, err);
    }
    // A trust domain with only JWT authorities has an empty X.509 bundle; it
    // is kept (empty) so that lookups say "not signed by" rather than "unknown".
    out.push(bundleFromCerts(td, certificates(der, msg, `${field}[${key}]`)));
  }
  return out;
}

/**
 * An X509SVIDResponse as an {@link X509Context}. The svids list must not be
 * empty (the spec says so; an empty list would leave a source with nothing
 * to present). The bundle of an SVID's own trust domain comes from its
 * `bundle` field — the first SVID's when several share a trust domain — and
 * wins over a federated entry for the same trust domain.
 */
export function parseX509SvidResponse(res: X509SVIDResponse__Output): X509Context {
  const msg = 'X509SVIDResponse';
  if (res.svids.length === 0) throw malformed(msg, 'svids is empty');
  const svids: X509Svid[] = [];
  const bundles = new Map<string, X509Bundle>();
  res.svids.forEach((m, i) => {
    const { svid, bundle } = parseX509Svid(m, i, msg);
    svids.push(svid);
    if (!bundles.has(bundle.trustDomain.name)) bundles.set(bundle.trustDomain.name, bundle);
  });
  for (const b of parseX509BundleMap(res.federated_bundles, msg, 'federated_bundles')) {
    if (!bundles.has(b.trustDomain.name)) bundles.set(b.trustDomain.name, b);
  }
  return Object.freeze({ svids: Object.freeze(svids), bundles: new BundleSet(bundles.values()) });
}

export function parseX509BundlesResponse(res: X509BundlesResponse__Output): BundleSet<X509Bundle> {
  return new BundleSet(parseX509BundleMap(res.bundles, 'X509BundlesResponse', 'bundles'));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * One JWKS document. Keys marked for another use are skipped, as are key
 * types SPIFFE does not use; a key without `use` is taken as a JWT
 * authority (plain JWKS documents, as some servers send, have no `use`).
 */
function parseJwks(td: TrustDomain, doc: Buffer, msg: string, field: string): JwtBundle {
  let parsed: unknown;
  try {
    parsed = JSON.parse(doc.toString('utf8'));
  } catch (err) {
    throw malformed(msg, `${field}: not valid JSON`, err);
  }
  if (!isObject(parsed) || !Array.isArray(parsed.keys)) throw malformed(msg, `${field}: not a JWKS document (no "keys" array)`);
  const bundle = new JwtBundle(td);
  parsed.keys.forEach((key: unknown, i: number) => {
    if (!isObject(key)) throw malformed(msg, `${field}: key ${i} is not an object`);
    if (key.use !== undefined && key.use !== 'jwt-svid') return;
    if (key.kty !== 'EC' && key.kty !== 'RSA') return;
    if (typeof key.kid !== 'string' || key.kid === '') throw malformed(msg, `${field}: key ${i} has no kid`);
    try {
      bundle.addKey(key.kid, key);
    } catch (err) {
      throw malformed(msg, `${field}: key ${i}: ${errorMessage(err)}`, err);
    }
  });
  return bundle;
}

export function parseJwtBundlesResponse(res: JWTBundlesResponse__Output): BundleSet<JwtBundle> {
  const msg = 'JWTBundlesResponse';
  const out: JwtBundle[] = [];
  for (const [key, doc] of Object.entries(res.bundles)) {
    let td: TrustDomain;
    try {
      td = TrustDomain.parse(key);
    } catch (err) {
      throw malformed(msg, `bundles: key ${JSON.stringify(key)} is not a trust domain: ${errorMessage(err)}`, err);
    }
    out.push(parseJwks(td, doc, msg, `bundles[${key}]`));
  }
  return new BundleSet(out);
}

/**
 * A JWTSVIDResponse. Each token's `sub` must be its `spiffe_id`, it must
 * expire, and its audience must include every audience asked for.
 */
export function parseJwtSvidResponse(res: JWTSVIDResponse__Output, audience: readonly string[]): JwtSvid[] {
  const msg = 'JWTSVIDResponse';
  if (res.svids.length === 0) throw malformed(msg, 'svids is empty');
  return res.svids.map((m, i) => {
    let spiffeId: SpiffeId;
    try {
      spiffeId = SpiffeId.parse(m.spiffe_id);
    } catch (err) {
      throw malformed(msg, `svid ${i}: spiffe_id ${JSON.stringify(m.spiffe_id)} is invalid: ${errorMessage(err)}`, err);
    }
    const where = `svid ${i} (${spiffeId.toString()})`;
    let claims: Record<string, unknown>;
    try {
      claims = decodeJwt(m.svid) as Record<string, unknown>;
    } catch (err) {
      throw malformed(msg, `${where}: svid is not a JWT: ${errorMessage(err)}`, err);
    }
    if (claims.sub !== spiffeId.toString()) throw malformed(msg, `${where}: token sub ${JSON.stringify(claims.sub)} is not the spiffe_id`);
    if (typeof claims.exp !== 'number') throw malformed(msg, `${where}: token has no exp claim`);
    const aud = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
    if (!Array.isArray(aud) || !aud.every((a): a is string => typeof a === 'string')) throw malformed(msg, `${where}: token aud is not a list of strings`);
    const missing = audience.filter((a) => !aud.includes(a));
    if (missing.length > 0) throw malformed(msg, `${where}: token audience lacks ${missing.map((a) => JSON.stringify(a)).join(', ')}`);
    return Object.freeze({
      spiffeId,
      token: m.svid,
      hint: m.hint,
      audience: Object.freeze([...aud]),
      expiresAt: new Date(claims.exp * 1000),
      claims: Object.freeze(claims),
    });
  });
}

/** `google.protobuf.Struct` (as grpc-js decodes it, with `kind` set) back to plain JSON. */
export function fromStruct(s: Struct__Output | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}

function fromValue(v: Value__Output): unknown {
  switch (v.kind) {
    case 'numberValue':
      return v.numberValue;
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return fromStruct(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

export function parseValidateJwtSvidResponse(res: ValidateJWTSVIDResponse__Output): ValidatedJwtSvid {
  const msg = 'ValidateJWTSVIDResponse';
  let spiffeId: SpiffeId;
  try {
    spiffeId = SpiffeId.parse(res.spiffe_id);
  } catch (err) {
    throw malformed(msg, `spiffe_id ${JSON.stringify(res.spiffe_id)} is invalid: ${errorMessage(err)}`, err);
  }
  return Object.freeze({ spiffeId, claims: Object.freeze(fromStruct(res.claims)) });
}
