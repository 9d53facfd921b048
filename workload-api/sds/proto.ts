// Envoy's SDS v3 messages at the edge: the .proto files shipped in
// @grpc/grpc-js-xds (deps/: envoy-api, xds, googleapis, protoc-gen-validate)
// loaded once with protobufjs, a grpc-js service definition built on them, and
// narrow typed views of the few messages and fields SDS uses. Nothing untyped
// leaves this file.
//
// Loaded at run time rather than generated: the SDS messages pull in ~120
// .proto files of Envoy's API (core config, matchers, annotations), whose
// generated types would be thousands of committed lines of which we read
// eight fields. protobufjs (not proto-loader) because the secrets travel as
// google.protobuf.Any, whose bytes we must encode ourselves; proto-loader has
// no encoder for a message that is not a method's argument.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

/** The type URL of every resource SDS serves, and the only one a request may name. */
export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
const SPIFFE_VALIDATOR_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig';
/** The name Envoy registers its SPIFFE certificate validator under. */
export const SPIFFE_VALIDATOR_NAME = 'envoy.tls.cert_validator.spiffe';
export const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';

/**
 * Largest request message accepted, in bytes. Envoy's first request carries
 * its whole Node (the build's list of ~300 extensions, ≈ 25 KiB for 1.40);
 * later ones a few hundred bytes. Bigger requests are answered
 * INVALID_ARGUMENT without being decoded.
 */
export const MAX_REQUEST_BYTES = 256 * 1024;

const FILES = [
  'envoy/service/secret/v3/sds.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.proto',
];

/** Where Envoy's .proto files are: grpc-js-xds's deps, and protobufjs's own google/protobuf/descriptor.proto. */
function includeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const xds = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return [...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(xds, d)), dirname(require.resolve('protobufjs/package.json'))];
}

interface Types {
  request: protobuf.Type;
  response: protobuf.Type;
  deltaRequest: protobuf.Type;
  deltaResponse: protobuf.Type;
  secret: protobuf.Type;
  spiffeValidator: protobuf.Type;
}

let types: Types | undefined;

function load(): Types {
  if (types) return types;
  const dirs = includeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const d of dirs) {
      const p = join(d, target);
      if (existsSync(p)) return p;
    }
    throw new Error(`sds: cannot find ${target} (imported by ${origin}) in ${dirs.join(', ')}`);
  };
  root.loadSync(FILES, { keepCase: true });
  root.resolveAll();
  types = {
    request: root.lookupType('envoy.service.discovery.v3.DiscoveryRequest'),
    response: root.lookupType('envoy.service.discovery.v3.DiscoveryResponse'),
    deltaRequest: root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryRequest'),
    deltaResponse: root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse'),
    secret: root.lookupType('envoy.extensions.transport_sockets.tls.v3.Secret'),
    spiffeValidator: root.lookupType('envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig'),
  };
  return types;
}

/** What SDS reads of Envoy's `config.core.v3.Node`. */
export interface NodeInfo {
  id: string;
  cluster: string;
  /** `user_agent_build_version.version`, when Envoy sent one. */
  version?: { major: number; minor: number };
  /** `metadata.disable_spiffe_cert_validation` as a bool or "true"/"false" string, when present. */
  disableSpiffeCertValidation?: boolean;
}

/** The part of `google.rpc.Status` a NACK carries. */
export interface ErrorDetail {
  code: number;
  message: string;
}

/** A decoded `DiscoveryRequest`, or why it was not decoded. */
export type SdsRequest = DiscoveryRequest | RefusedRequest;

export interface DiscoveryRequest {
  kind: 'sotw';
  version_info: string;
  node?: NodeInfo;
  resource_names: string[];
  /** How many xdstp resource locators the request carried; we serve none. */
  locators: number;
  type_url: string;
  response_nonce: string;
  error_detail?: ErrorDetail;
}

export interface DeltaDiscoveryRequest {
  kind: 'delta';
  node?: NodeInfo;
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  locators: number;
  initial_resource_versions: Record<string, string>;
  response_nonce: string;
  error_detail?: ErrorDetail;
}

/** A request that was too large or not protobuf; the handler ends the call with INVALID_ARGUMENT. */
export interface RefusedRequest {
  kind: 'refused';
  reason: string;
}

export type SdsDeltaRequest = DeltaDiscoveryRequest | RefusedRequest;

/** A resource ready to send: its name and the encoded `Secret`. */
export interface EncodedSecret {
  name: string;
  bytes: Uint8Array;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: EncodedSecret[];
  nonce: string;
}

export interface DeltaDiscoveryResponse {
  system_version_info: string;
  resources: { name: string; version: string; secret: EncodedSecret }[];
  removed_resources: string[];
  nonce: string;
}

type Obj = Record<string, unknown>;

const asObj = (v: unknown): Obj | undefined => (typeof v === 'object' && v !== null ? (v as Obj) : undefined);
const asStr = (v: unknown): string => (typeof v === 'string' ? v : '');
const asStrs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);

/** protobufjs names the fields of its bundled google/protobuf types in camelCase even with keepCase. */
function field(o: Obj | undefined, snake: string): unknown {
  if (o === undefined) return undefined;
  return o[snake] ?? o[snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())];
}

function nodeInfo(v: unknown): NodeInfo | undefined {
  const n = asObj(v);
  if (n === undefined) return undefined;
  const info: NodeInfo = { id: asStr(n.id), cluster: asStr(n.cluster) };
  const version = asObj(asObj(n.user_agent_build_version)?.version);
  if (version !== undefined) info.version = { major: Number(version.major_number ?? 0), minor: Number(version.minor_number ?? 0) };
  const flag = asObj(asObj(field(asObj(n.metadata), 'fields'))?.disable_spiffe_cert_validation);
  const b = field(flag, 'bool_value');
  const s = field(flag, 'string_value');
  if (typeof b === 'boolean') info.disableSpiffeCertValidation = b;
  else if (s === 'true' || s === 'false') info.disableSpiffeCertValidation = s === 'true';
  return info;
}

function errorDetail(v: unknown): ErrorDetail | undefined {
  const e = asObj(v);
  return e === undefined ? undefined : { code: Number(e.code ?? 0), message: asStr(e.message) };
}

/** Decodes within the size bound; anything wrong becomes a {@link RefusedRequest}, never an exception inside grpc-js. */
function decode<T>(type: () => protobuf.Type, buf: Buffer, view: (o: Obj) => T): T | RefusedRequest {
  if (buf.length > MAX_REQUEST_BYTES) return { kind: 'refused', reason: `sds: a request may be at most ${MAX_REQUEST_BYTES} bytes (got ${buf.length})` };
  try {
    const t = type();
    return view(t.toObject(t.decode(buf), { longs: Number, defaults: false, arrays: true, objects: true }));
  } catch (err) {
    return { kind: 'refused', reason: `sds: the request is not a valid message: ${(err as Error).message}` };
  }
}

function decodeRequest(buf: Buffer): SdsRequest {
  return decode(() => load().request, buf, (o) => ({
    kind: 'sotw',
    version_info: asStr(o.version_info),
    node: nodeInfo(o.node),
    resource_names: asStrs(o.resource_names),
    locators: Array.isArray(o.resource_locators) ? o.resource_locators.length : 0,
    type_url: asStr(o.type_url),
    response_nonce: asStr(o.response_nonce),
    error_detail: errorDetail(o.error_detail),
  }));
}

function decodeDeltaRequest(buf: Buffer): SdsDeltaRequest {
  return decode(() => load().deltaRequest, buf, (o) => {
    const versions = asObj(o.initial_resource_versions) ?? {};
    const locators = (Array.isArray(o.resource_locators_subscribe) ? o.resource_locators_subscribe.length : 0) + (Array.isArray(o.resource_locators_unsubscribe) ? o.resource_locators_unsubscribe.length : 0);
    return {
      kind: 'delta',
      node: nodeInfo(o.node),
      type_url: asStr(o.type_url),
      resource_names_subscribe: asStrs(o.resource_names_subscribe),
      resource_names_unsubscribe: asStrs(o.resource_names_unsubscribe),
      locators,
      initial_resource_versions: Object.fromEntries(Object.entries(versions).map(([k, v]) => [k, asStr(v)])),
      response_nonce: asStr(o.response_nonce),
      error_detail: errorDetail(o.error_detail),
    };
  });
}

const any = (s: EncodedSecret) => ({ type_url: SECRET_TYPE_URL, value: s.bytes });

function encodeResponse(r: DiscoveryResponse): Buffer {
  const t = load().response;
  return Buffer.from(t.encode(t.fromObject({ version_info: r.version_info, resources: r.resources.map(any), type_url: SECRET_TYPE_URL, nonce: r.nonce })).finish());
}

function encodeDeltaResponse(r: DeltaDiscoveryResponse): Buffer {
  const t = load().deltaResponse;
  const msg = t.fromObject({
    system_version_info: r.system_version_info,
    resources: r.resources.map((x) => ({ name: x.name, version: x.version, resource: any(x.secret) })),
    type_url: SECRET_TYPE_URL,
    removed_resources: r.removed_resources,
    nonce: r.nonce,
  });
  return Buffer.from(t.encode(msg).finish());
}

/** A `DataSource` with inline bytes. */
const inline = (bytes: string) => ({ inline_bytes: Buffer.from(bytes, 'utf8') });

/** A `Secret` holding a `TlsCertificate`: PEM chain (leaf first) and PEM PKCS#8 key. */
export function tlsCertificateSecret(name: string, chainPem: string, keyPem: string): EncodedSecret {
  const t = load().secret;
  const bytes = t.encode(t.fromObject({ name, tls_certificate: { certificate_chain: inline(chainPem), private_key: inline(keyPem) } })).finish();
  return { name, bytes };
}

/**
 * A `Secret` holding a `CertificateValidationContext`: with `spiffe`, a
 * `SPIFFECertValidatorConfig` naming each trust domain with its own bundle
 * (a peer is checked only against the bundle of its own trust domain);
 * otherwise the one bundle as plain `trusted_ca`.
 */
export function validationContextSecret(name: string, bundles: { trustDomain: string; pem: string }[], spiffe: boolean): EncodedSecret {
  const { secret, spiffeValidator } = load();
  let context: Obj;
  if (spiffe) {
    const config = spiffeValidator.encode(spiffeValidator.fromObject({ trust_domains: bundles.map((b) => ({ name: b.trustDomain, trust_bundle: inline(b.pem) })) })).finish();
    context = { custom_validator_config: { name: SPIFFE_VALIDATOR_NAME, typed_config: { type_url: SPIFFE_VALIDATOR_TYPE_URL, value: config } } };
  } else {
    if (bundles.length !== 1) throw new Error('sds: trusted_ca holds the bundle of exactly one trust domain');
    context = { trusted_ca: inline(bundles[0]!.pem) };
  }
  const bytes = secret.encode(secret.fromObject({ name, validation_context: context })).finish();
  return { name, bytes };
}

/** Decodes a `Secret` as plain objects (tests and the bench read what we sent). */
export function decodeSecret(bytes: Uint8Array): Obj {
  const t = load().secret;
  return t.toObject(t.decode(bytes), { longs: Number, bytes: String, defaults: false });
}

/** Decodes a `SPIFFECertValidatorConfig` (tests). */
export function decodeSpiffeValidatorConfig(bytes: Uint8Array): Obj {
  const t = load().spiffeValidator;
  return t.toObject(t.decode(bytes), { longs: Number, bytes: String, defaults: false });
}

const path = (m: string) => `/${SDS_SERVICE}/${m}`;

/** The grpc-js definition of `SecretDiscoveryService`, with our typed views as its messages. */
export function sdsServiceDefinition(): grpc.ServiceDefinition {
  load();
  const common = {
    originalName: undefined,
    requestSerialize: () => {
      throw new Error('sds: the server does not send requests');
    },
    responseDeserialize: () => {
      throw new Error('sds: the server does not read responses');
    },
  };
  return {
    StreamSecrets: { ...common, path: path('StreamSecrets'), requestStream: true, responseStream: true, requestDeserialize: decodeRequest, responseSerialize: encodeResponse },
    FetchSecrets: { ...common, path: path('FetchSecrets'), requestStream: false, responseStream: false, requestDeserialize: decodeRequest, responseSerialize: encodeResponse },
    DeltaSecrets: { ...common, path: path('DeltaSecrets'), requestStream: true, responseStream: true, requestDeserialize: decodeDeltaRequest, responseSerialize: encodeDeltaResponse },
  };
}

/**
 * A client-side codec for the same service (tests and the bench drive SDS
 * the way Envoy does, with requests built from plain objects).
 */
export function sdsClientDefinition(): grpc.ServiceDefinition {
  const { request, response, deltaRequest, deltaResponse } = load();
  const enc = (t: protobuf.Type) => (o: Obj) => Buffer.from(t.encode(t.fromObject(o)).finish());
  const dec = (t: protobuf.Type) => (b: Buffer) => t.toObject(t.decode(b), { longs: Number, defaults: true, arrays: true });
  const m = (name: string, stream: boolean, req: protobuf.Type, res: protobuf.Type) => ({
    path: path(name),
    requestStream: stream,
    responseStream: stream,
    requestSerialize: enc(req),
    requestDeserialize: dec(req),
    responseSerialize: enc(res),
    responseDeserialize: dec(res),
    originalName: undefined,
  });
  return {
    StreamSecrets: m('StreamSecrets', true, request, response),
    FetchSecrets: m('FetchSecrets', false, request, response),
    DeltaSecrets: m('DeltaSecrets', true, deltaRequest, deltaResponse),
  };
}
