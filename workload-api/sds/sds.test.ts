import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/log.js';
import { toPem } from '../../common/pem.js';
import { UnixWorkloadAttestor } from '../../node-agent/attestor/unix.js';
import { captureLogger } from '../../test/helpers/log.js';
import { fetchSecrets, SdsStream, sdsClient, SECRET_TYPE_URL, type SdsResponse } from '../../test/helpers/sds.js';
import { startTestCa, TestIdentitySource, type TestCa } from '../../test/helpers/test-ca.js';
import type { X509Identity } from '../IdentitySource.js';
import { startWorkloadApi, type WorkloadApi } from '../server.js';
import { MAX_RESOURCE_NAME_BYTES, MAX_RESOURCE_NAMES, MAX_STREAMS_PER_CONNECTION } from './handler.js';
import { decodeSpiffeValidatorConfig, MAX_REQUEST_BYTES, SPIFFE_VALIDATOR_NAME } from './proto.js';

// Envoy SDS v3 on a real Workload API socket, with the real unix attestor and
// SVIDs minted by a real CA, driven by a client that speaks the protocol the
// way Envoy does. The real Envoy runs in test/interop/envoy-sds.test.ts.

const TD = 'sds.test';
const FED = 'fed.test';
const ME = `spiffe://${TD}/me`;
const ME2 = `spiffe://${TD}/me-too`;
const OTHER = `spiffe://${TD}/other`;
const uid = process.getuid!();

let dir: string;
let ca: TestCa;
let fedCa: TestCa;
let source: TestIdentitySource;
let api: WorkloadApi;
let client: grpc.Client;
let me: X509Identity;
const logs = captureLogger();

/** The PEM text of a DataSource's inline bytes, as decodeSecret gives them (base64). */
const inline = (ds: unknown): string => Buffer.from((ds as { inline_bytes: string }).inline_bytes, 'base64').toString('utf8');
const chainPem = (id: X509Identity): string => id.chain.map((c) => toPem('CERTIFICATE', c)).join('');
const bundlePem = (c: TestCa): string => c.ca.bundle().x509.authorities().map((d) => toPem('CERTIFICATE', d)).join('');
const names = (r: SdsResponse): string[] => r.secrets.map((s) => s.name as string);
const req = (resource_names: string[], extra: Record<string, unknown> = {}) => ({ type_url: SECRET_TYPE_URL, resource_names, ...extra });

/** The trust domains of a validation context with the SPIFFE validator: [name, PEM] pairs. */
function spiffeDomains(secret: Record<string, unknown>): [string, string][] {
  const vc = secret.validation_context as { custom_validator_config: { name: string; typed_config: { type_url: string; value: string } } };
  expect(vc.custom_validator_config.name).toBe(SPIFFE_VALIDATOR_NAME);
  expect(vc.custom_validator_config.typed_config.type_url).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig');
  const cfg = decodeSpiffeValidatorConfig(Buffer.from(vc.custom_validator_config.typed_config.value, 'base64')) as { trust_domains: { name: string; trust_bundle: unknown }[] };
  return cfg.trust_domains.map((t) => [t.name, inline(t.trust_bundle)]);
}

/** Waits until the server has logged a record like this (after index `since`): it has processed the request behind it. */
async function logged(match: (r: Record<string, unknown>) => boolean, since = 0): Promise<void> {
  const found = () => logs.records.slice(since).some(match);
  for (let i = 0; i < 400 && !found(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!found()) throw new Error('the server did not log what the test waits for');
}

async function startApi(sub: string, sds?: Parameters<typeof startWorkloadApi>[0]['sds']): Promise<{ api: WorkloadApi; client: grpc.Client }> {
  const socketPath = join(dir, sub, 'api.sock');
  const a = await startWorkloadApi({ socketPath, source, attestor: new UnixWorkloadAttestor({ logger: silentLogger() }), logger: silentLogger(), sds });
  return { api: a, client: sdsClient(socketPath) };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-sds-'));
  chmodSync(dir, 0o755);
  ca = await startTestCa(TD, join(dir, 'ca'));
  fedCa = await startTestCa(FED, join(dir, 'fedca'));
  source = new TestIdentitySource(ca);
  me = await source.addIdentity({ spiffeId: ME, selectors: [`unix:uid:${uid}`], federatesWith: [FED] });
  await source.addIdentity({ spiffeId: OTHER, selectors: ['unix:uid:4242'] });
  const socketPath = join(dir, 'public', 'api.sock');
  api = await startWorkloadApi({ socketPath, source, attestor: new UnixWorkloadAttestor({ logger: silentLogger() }), logger: logs.logger });
  client = sdsClient(socketPath);
});

afterAll(async () => {
  client?.close();
  await api?.close();
  await ca?.close();
  await fedCa?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('StreamSecrets (state of the world)', () => {
  it('serves default and ROOTCA, then pushes a rotation as a new version; an ACK, a NACK and a stale nonce send nothing', async () => {
    const s = SdsStream.sotw(client);
    const mark = logs.records.length;
    try {
      s.send(req(['default', 'ROOTCA'], { node: { id: 'envoy-1', cluster: 'c' } }));
      const first = await s.next();
      expect(first.version_info).toBe('1');
      expect(first.nonce).toMatch(/^[0-9a-f]{16}$/);
      expect(first.type_url).toBe(SECRET_TYPE_URL);
      expect(names(first)).toEqual(['default', 'ROOTCA']);
      const tls = first.secrets[0]!.tls_certificate as { certificate_chain: unknown; private_key: unknown };
      expect(inline(tls.certificate_chain)).toBe(chainPem(me));
      expect(inline(tls.private_key)).toBe(toPem('PRIVATE KEY', me.privateKey));
      expect(spiffeDomains(first.secrets[1]!)).toEqual([[TD, bundlePem(ca)]]);

      // ACK: nothing is sent; the next message is the rotation's, version 2.
      s.send(req(['default', 'ROOTCA'], { version_info: '1', response_nonce: first.nonce }));
      await logged((r) => r.msg === 'sds: ACK' && r.version === '1', mark);
      me = await source.rotate(ME);
      const second = await s.next();
      expect(second.version_info).toBe('2');
      expect(second.nonce).not.toBe(first.nonce);
      expect(inline((second.secrets[0]!.tls_certificate as { certificate_chain: unknown }).certificate_chain)).toBe(chainPem(me));

      // NACK of version 2: logged, not sent again. A stale nonce (with other names) is ignored.
      s.send(req(['default', 'ROOTCA'], { version_info: '1', response_nonce: second.nonce, error_detail: { code: 3, message: 'bad key' } }));
      s.send(req(['ROOTCA'], { version_info: '1', response_nonce: first.nonce }));
      await logged((r) => r.msg === 'sds: stale nonce, request ignored' && r.nonce === first.nonce);
      me = await source.rotate(ME);
      const third = await s.next();
      expect(third.version_info).toBe('3');
      expect(names(third)).toEqual(['default', 'ROOTCA']);
      expect(inline((third.secrets[0]!.tls_certificate as { certificate_chain: unknown }).certificate_chain)).toBe(chainPem(me));
      const nack = logs.records.find((r) => r.msg === 'sds: Envoy rejected the secrets (NACK); the same version is not sent again');
      expect(nack).toMatchObject({ rejectedVersion: '2', keptVersion: '1', error: 'bad key', node: 'envoy-1', names: ['default', 'ROOTCA'] });
      expect(s.received).toHaveLength(3);
    } finally {
      s.cancel();
    }
  });

  it('never sends a name the caller cannot have, and pushes it once it becomes available (a federated bundle)', async () => {
    const s = SdsStream.sotw(client);
    const mark = logs.records.length;
    try {
      s.send(req(['nope', OTHER, `spiffe://${FED}`, 'spiffe://elsewhere.test', 'spiffe://bad id']));
      s.send(req(['nope', OTHER, `spiffe://${FED}`, 'default']));
      const first = await s.next();
      expect(names(first)).toEqual(['default']);
      expect(first.version_info).toBe('1');
      const unresolved = logs.records.filter((r) => r.msg === 'sds: requested secrets this caller cannot have are not sent').map((r) => r.unresolved);
      expect(unresolved).toContainEqual([
        { name: 'nope', reason: 'not a resource name this agent serves' },
        { name: OTHER, reason: 'not an identity of this caller' },
        { name: `spiffe://${FED}`, reason: 'no bundle of that trust domain for this caller' },
        { name: 'spiffe://elsewhere.test', reason: 'no bundle of that trust domain for this caller' },
        { name: 'spiffe://bad id', reason: expect.stringMatching(/^not a SPIFFE ID: spiffeid: /) },
      ]);

      s.send(req(['nope', OTHER, `spiffe://${FED}`, 'default'], { version_info: '1', response_nonce: first.nonce }));
      await logged((r) => r.msg === 'sds: ACK' && r.version === '1', mark);
      source.setFederatedBundle(fedCa.ca.bundle());
      const second = await s.next();
      expect(names(second)).toEqual([`spiffe://${FED}`, 'default']);
      expect(spiffeDomains(second.secrets[0]!)).toEqual([[FED, bundlePem(fedCa)]]);
    } finally {
      s.cancel();
    }
  });

  it('ALL carries one trust domain per bundle, own first; ME by its SPIFFE ID carries that SVID', async () => {
    source.setFederatedBundle(fedCa.ca.bundle());
    const s = SdsStream.sotw(client);
    try {
      s.send(req(['ALL', ME]));
      const r = await s.next();
      expect(names(r)).toEqual(['ALL', ME]);
      expect(spiffeDomains(r.secrets[0]!)).toEqual([
        [TD, bundlePem(ca)],
        [FED, bundlePem(fedCa)],
      ]);
      expect(inline((r.secrets[1]!.tls_certificate as { certificate_chain: unknown }).certificate_chain)).toBe(chainPem(me));
    } finally {
      s.cancel();
    }
  });

  it('a caller that loses its last identity: its stream ends PERMISSION_DENIED; new calls get PERMISSION_DENIED', async () => {
    const s = SdsStream.sotw(client);
    s.send(req(['default']));
    await s.next();
    source.removeIdentity(ME);
    try {
      const end = await s.status();
      expect([end?.code, end?.details]).toEqual([grpc.status.PERMISSION_DENIED, 'workloadapi: no identity issued']);
      const s2 = SdsStream.sotw(client);
      s2.send(req(['default']));
      const end2 = await s2.status();
      expect([end2?.code, end2?.details]).toEqual([grpc.status.PERMISSION_DENIED, 'workloadapi: no identity issued']);
      const err = (await fetchSecrets(client, req(['default'])).catch((e: unknown) => e)) as grpc.ServiceError;
      expect([err.code, err.details]).toEqual([grpc.status.PERMISSION_DENIED, 'workloadapi: no identity issued']);
    } finally {
      me = await source.addIdentity({ spiffeId: ME, selectors: [`unix:uid:${uid}`], federatesWith: [FED] });
    }
  });
});

describe('validation contexts', () => {
  it('sds.disable_spiffe_cert_validation sends trusted_ca, and ALL is then not served (it would merge trust domains)', async () => {
    const { api: a, client: c } = await startApi('plain', { names: { defaultSvidName: 'default', defaultBundleName: 'ROOTCA', defaultAllBundlesName: 'ALL', disableSpiffeCertValidation: true } });
    try {
      const r = await fetchSecrets(c, req(['ROOTCA', `spiffe://${TD}`]));
      expect(r.secrets.map((x) => inline((x.validation_context as { trusted_ca: unknown }).trusted_ca))).toEqual([bundlePem(ca), bundlePem(ca)]);
      expect(r.secrets[0]!.validation_context).not.toHaveProperty('custom_validator_config');
      const err = (await fetchSecrets(c, req(['ALL'])).catch((e: unknown) => e)) as grpc.ServiceError;
      expect([err.code, err.details]).toEqual([
        grpc.status.NOT_FOUND,
        'sds: not served to this caller: "ALL" (all bundles need the SPIFFE certificate validator, which is disabled for this Envoy)',
      ]);
      // The node may turn it back on (SPIRE's metadata key).
      const on = await fetchSecrets(c, req(['ROOTCA'], { node: { id: 'n', metadata: { fields: { disable_spiffe_cert_validation: { boolValue: false } } } } }));
      expect(spiffeDomains(on.secrets[0]!)).toEqual([[TD, bundlePem(ca)]]);
    } finally {
      c.close();
      await a.close();
    }
  });

  it('a node may turn the validator off (metadata) and an Envoy older than 1.18 gets trusted_ca', async () => {
    const off = await fetchSecrets(client, req(['ROOTCA'], { node: { id: 'n', metadata: { fields: { disable_spiffe_cert_validation: { stringValue: 'true' } } } } }));
    expect(inline((off.secrets[0]!.validation_context as { trusted_ca: unknown }).trusted_ca)).toBe(bundlePem(ca));
    const old = await fetchSecrets(client, req(['ROOTCA'], { node: { id: 'n', user_agent_build_version: { version: { major_number: 1, minor_number: 17 } } } }));
    expect(inline((old.secrets[0]!.validation_context as { trusted_ca: unknown }).trusted_ca)).toBe(bundlePem(ca));
    const current = await fetchSecrets(client, req(['ROOTCA'], { node: { id: 'n', user_agent_build_version: { version: { major_number: 1, minor_number: 40 } } } }));
    expect(spiffeDomains(current.secrets[0]!)).toEqual([[TD, bundlePem(ca)]]);
  });

  it('serves the configured names instead of SPIRE\'s', async () => {
    const { api: a, client: c } = await startApi('named', { names: { defaultSvidName: 'svid', defaultBundleName: 'own', defaultAllBundlesName: 'every', disableSpiffeCertValidation: false } });
    try {
      const r = await fetchSecrets(c, req(['svid', 'own', 'every']));
      expect(names(r)).toEqual(['svid', 'own', 'every']);
      const err = (await fetchSecrets(c, req(['default'])).catch((e: unknown) => e)) as grpc.ServiceError;
      expect([err.code, err.details]).toEqual([grpc.status.NOT_FOUND, 'sds: not served to this caller: "default" (not a resource name this agent serves)']);
    } finally {
      c.close();
      await a.close();
    }
  });
});

describe('FetchSecrets and bad input', () => {
  it('FetchSecrets answers the names asked for, with a content version and no nonce', async () => {
    const r = await fetchSecrets(client, req(['default']));
    expect(names(r)).toEqual(['default']);
    expect(r.version_info).toMatch(/^[0-9a-f]{16}$/);
    expect(r.nonce).toBe('');
    expect((await fetchSecrets(client, req(['default']))).version_info).toBe(r.version_info);
  });

  const bad: [string, Record<string, unknown>, grpc.status, string][] = [
    ['a v2 type URL', { type_url: 'type.googleapis.com/envoy.api.v2.auth.Secret', resource_names: ['default'] }, grpc.status.INVALID_ARGUMENT, `sds: type_url must be ${SECRET_TYPE_URL} (got "type.googleapis.com/envoy.api.v2.auth.Secret")`],
    ['a cluster type URL', { type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster', resource_names: ['default'] }, grpc.status.INVALID_ARGUMENT, `sds: type_url must be ${SECRET_TYPE_URL} (got "type.googleapis.com/envoy.config.cluster.v3.Cluster")`],
    ['too many names', req(Array.from({ length: MAX_RESOURCE_NAMES + 1 }, (_, i) => `n${i}`)), grpc.status.INVALID_ARGUMENT, `sds: at most ${MAX_RESOURCE_NAMES} resource names may be requested (got ${MAX_RESOURCE_NAMES + 1})`],
    ['a long name', req(['x'.repeat(MAX_RESOURCE_NAME_BYTES + 1)]), grpc.status.INVALID_ARGUMENT, `sds: a resource name may be at most ${MAX_RESOURCE_NAME_BYTES} bytes (got ${MAX_RESOURCE_NAME_BYTES + 1})`],
    ['an empty name', req(['default', '']), grpc.status.INVALID_ARGUMENT, 'sds: resource names must not be empty'],
    ['an xdstp locator', req([], { resource_locators: [{ name: 'xdstp://x/y' }] }), grpc.status.INVALID_ARGUMENT, 'sds: resource locators (xdstp://) are not served; name resources with resource_names'],
  ];

  it.each(bad)('StreamSecrets with %s ends INVALID_ARGUMENT', async (_what, request, code, details) => {
    const s = SdsStream.sotw(client);
    s.send(request);
    const end = await s.status();
    expect([end?.code, end?.details]).toEqual([code, details]);
    expect(s.received).toEqual([]);
  });

  it.each([...bad, ['no names', req([]), grpc.status.INVALID_ARGUMENT, 'sds: resource_names must name at least one secret (SDS has no wildcard)'] as const])(
    'FetchSecrets with %s is INVALID_ARGUMENT',
    async (_what, request, code, details) => {
      const err = (await fetchSecrets(client, request).catch((e: unknown) => e)) as grpc.ServiceError;
      expect([err.code, err.details]).toEqual([code, details]);
    },
  );

  it('a request over the size bound is refused undecoded', async () => {
    const request = req(['default'], { node: { id: 'x'.repeat(MAX_REQUEST_BYTES) } });
    const err = (await fetchSecrets(client, request).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(new RegExp(`^sds: a request may be at most ${MAX_REQUEST_BYTES} bytes \\(got \\d+\\)$`));
    const s = SdsStream.sotw(client);
    s.send(request);
    const end = await s.status();
    expect([end?.code, end?.details]).toEqual([err.code, err.details]);
  });

  it('FetchSecrets for a name the caller cannot have is NOT_FOUND, naming each', async () => {
    const err = (await fetchSecrets(client, req(['default', OTHER, 'nope'])).catch((e: unknown) => e)) as grpc.ServiceError;
    expect([err.code, err.details]).toEqual([
      grpc.status.NOT_FOUND,
      `sds: not served to this caller: "${OTHER}" (not an identity of this caller), "nope" (not a resource name this agent serves)`,
    ]);
  });

  it(`one connection holds at most ${MAX_STREAMS_PER_CONNECTION} SDS streams; the next ends UNAVAILABLE`, async () => {
    const streams = Array.from({ length: MAX_STREAMS_PER_CONNECTION }, () => SdsStream.sotw(client));
    try {
      for (const s of streams) s.send(req(['default']));
      await Promise.all(streams.map((s) => s.next()));
      const extra = SdsStream.sotw(client);
      extra.send(req(['default']));
      const end = await extra.status();
      expect([end?.code, end?.details]).toEqual([grpc.status.UNAVAILABLE, `sds: too many streams on this connection (at most ${MAX_STREAMS_PER_CONNECTION})`]);
      // Logged once, rate-limited, at warn: a caller cannot flood the log with refusals.
      const more = [SdsStream.sotw(client), SdsStream.sotw(client)];
      for (const m of more) m.send(req(['default']));
      await Promise.all(more.map((m) => m.status()));
      const refusals = logs.records.filter((r) => (r.level as number) >= 30 && JSON.stringify(r).includes('too many streams on this connection'));
      expect(refusals).toEqual([expect.objectContaining({ level: 40, msg: 'sds: stream refused', reason: `sds: too many streams on this connection (at most ${MAX_STREAMS_PER_CONNECTION})`, suppressed: 0 })]);
    } finally {
      for (const s of streams) s.cancel();
      // Until the server has seen them go, they still count against this connection.
      for (let i = 0; i < 400 && api.openStreams > 0; i++) await new Promise((r) => setTimeout(r, 25));
    }
  });

  it('one uid holds at most maxStreamsPerUid SDS streams over all its connections; a stream that ends frees its slot', async () => {
    const { api: a, client: c1 } = await startApi('per-uid', { maxStreamsPerUid: 3 });
    const c2 = sdsClient(join(dir, 'per-uid', 'api.sock'), { 'grpc.use_local_subchannel_pool': 1 });
    try {
      const held = [SdsStream.sotw(c1), SdsStream.sotw(c1), SdsStream.sotw(c2)];
      for (const s of held) s.send(req(['default']));
      await Promise.all(held.map((s) => s.next()));
      const extra = SdsStream.sotw(c2);
      extra.send(req(['default']));
      const end = await extra.status();
      expect([end?.code, end?.details]).toEqual([grpc.status.UNAVAILABLE, `sds: too many streams for uid ${uid} (at most 3)`]);
      held[0]!.cancel();
      for (let i = 0; i < 400 && a.openStreams > 2; i++) await new Promise((r) => setTimeout(r, 25));
      const again = SdsStream.sotw(c2);
      again.send(req(['default']));
      expect(names(await again.next())).toEqual(['default']);
      for (const s of [...held, again]) s.cancel();
    } finally {
      c1.close();
      c2.close();
      await a.close();
    }
  });
});

describe('DeltaSecrets', () => {
  it('sends only what changed, removes what the caller can no longer have, and honours initial_resource_versions', async () => {
    await source.addIdentity({ spiffeId: ME2, selectors: [`unix:uid:${uid}`] });
    const s = SdsStream.delta(client);
    try {
      s.send({ type_url: SECRET_TYPE_URL, resource_names_subscribe: ['default', 'nope', ME2] });
      const first = await s.next();
      expect(first.resources.map((r) => r.name)).toEqual(['default', ME2]);
      expect(first.resources[0]!.version).toMatch(/^[0-9a-f]{16}$/);
      expect(first.removed_resources).toEqual([]);
      expect(first.system_version_info).toBe('1');
      const defaultVersion = first.resources[0]!.version;

      s.send({ type_url: SECRET_TYPE_URL, response_nonce: first.nonce });
      s.send({ type_url: SECRET_TYPE_URL, resource_names_subscribe: ['ROOTCA'] });
      const second = await s.next();
      expect(second.resources.map((r) => r.name)).toEqual(['ROOTCA']);

      source.removeIdentity(ME2);
      const third = await s.next();
      expect(third.resources).toEqual([]);
      expect(third.removed_resources).toEqual([ME2]);

      me = await source.rotate(ME);
      const fourth = await s.next();
      expect(fourth.resources.map((r) => r.name)).toEqual(['default']);
      expect(fourth.resources[0]!.version).not.toBe(defaultVersion);
      expect(inline((fourth.resources[0]!.secret.tls_certificate as { certificate_chain: unknown }).certificate_chain)).toBe(chainPem(me));

      // A reconnecting Envoy that already has this version is not sent it again.
      const again = SdsStream.delta(client);
      try {
        again.send({ type_url: SECRET_TYPE_URL, resource_names_subscribe: ['default'], initial_resource_versions: { default: fourth.resources[0]!.version } });
        me = await source.rotate(ME);
        const pushed = await again.next();
        expect(pushed.system_version_info).toBe('1');
        expect(inline((pushed.resources[0]!.secret.tls_certificate as { certificate_chain: unknown }).certificate_chain)).toBe(chainPem(me));
      } finally {
        again.cancel();
      }
      const fifth = await s.next();
      expect(fifth.resources.map((r) => r.name)).toEqual(['default']);
      expect(s.received).toHaveLength(5);
    } finally {
      s.cancel();
    }
  });

  it('a client that does not read gets no response built meanwhile: once it reads, the state of that moment, nothing lost', async () => {
    const s = SdsStream.delta(client);
    const mark = logs.records.length;
    try {
      s.send({ type_url: SECRET_TYPE_URL, resource_names_subscribe: ['default'] });
      await s.next();
      s.pause();
      // Each subscribe after an unsubscribe would be a response of ~1 KiB: 2,000 of them.
      const rounds = 2000;
      for (let i = 0; i < rounds; i++) {
        s.send({ type_url: SECRET_TYPE_URL, resource_names_unsubscribe: ['default'] });
        s.send({ type_url: SECRET_TYPE_URL, resource_names_subscribe: ['default'] });
      }
      s.send({ type_url: SECRET_TYPE_URL, resource_names_subscribe: ['ROOTCA'] });
      // Wait until the server has read every request (the last one subscribes ROOTCA): it built nothing for them.
      await logged((r) => r.msg === 'sds: delta request' && JSON.stringify(r.subscribe) === '["ROOTCA"]', mark);
      s.resume();
      let last;
      do last = await s.next();
      while (!last.resources.some((x) => x.name === 'ROOTCA'));
      // The Envoy had unsubscribed 'default' since the last response it read: it gets both again.
      expect(last.resources.map((x) => x.name)).toEqual(['default', 'ROOTCA']);
      expect(s.received.length).toBeLessThan(rounds / 4);
    } finally {
      s.cancel();
    }
  });

  it('a wrong type URL ends the stream INVALID_ARGUMENT', async () => {
    const s = SdsStream.delta(client);
    s.send({ type_url: 'type.googleapis.com/envoy.config.listener.v3.Listener', resource_names_subscribe: ['default'] });
    const end = await s.status();
    expect([end?.code, end?.details]).toEqual([grpc.status.INVALID_ARGUMENT, `sds: type_url must be ${SECRET_TYPE_URL} (got "type.googleapis.com/envoy.config.listener.v3.Listener")`]);
  });
});
