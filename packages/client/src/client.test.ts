import { createPublicKey } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAnchorageError } from './common/errors.js';
import { TrustDomain } from './spiffe/id.js';
import { verifyJwtSvid } from './spiffe/jwtsvid.js';
import { verifyX509Svid } from './spiffe/x509svid.js';
import { isWorkloadApiError, WorkloadApiError } from './errors.js';
import { WorkloadApiClient, type WatchErrorInfo } from './client.js';
import { Harness, waitFor, type Env } from '../../../test/helpers/workload-api-harness.js';
import type { X509Context } from './types.js';

const TD = 'example.test';
const FED_TD = 'fed.test';
const WEB = `spiffe://${TD}/web`;
const WEB_ADMIN = `spiffe://${TD}/web-admin`;

const h = new Harness();
let env: Env;
let client: WorkloadApiClient;
let webNotAfter: number;

beforeAll(async () => {
  await h.setup([TD, FED_TD]);
  env = await h.startEnv(TD);
  webNotAfter = (await env.addSelf(WEB, { hint: 'main', federatesWith: [FED_TD] })).notAfter;
  await env.addSelf(WEB_ADMIN, { hint: 'admin' });
  env.source.setFederatedBundle(h.ca(FED_TD).ca.bundle());
  client = new WorkloadApiClient({ address: env.address });
  h.defer(() => client.close());
});

afterAll(() => h.close());

describe('WorkloadApiClient against the Workload API server', () => {
  it('fetchX509Context: every SVID, default first, parsed and consistent, with own and federated bundles', async () => {
    const ctx = await client.fetchX509Context();
    expect(ctx.svids.map((s) => s.spiffeId.toString())).toEqual([WEB, WEB_ADMIN]);
    expect(ctx.svids.map((s) => s.hint)).toEqual(['main', 'admin']);
    const svid = ctx.svids[0]!;
    // The chain verifies against the bundle that came with it, and the key is the leaf's.
    const verified = verifyX509Svid(
      svid.chain.map((c) => new Uint8Array(c.raw)),
      (td) => ctx.bundles.get(td),
    );
    expect(verified.spiffeId.toString()).toBe(WEB);
    expect(createPublicKey(svid.privateKey).export({ type: 'spki', format: 'der' })).toEqual(svid.chain[0]!.publicKey.export({ type: 'spki', format: 'der' }));
    expect(svid.expiresAt.getTime()).toBe(webNotAfter * 1000);
    expect(ctx.bundles.trustDomains().map((t) => t.name).sort()).toEqual([TD, FED_TD]);
    expect(ctx.bundles.get(TD)!.equals(h.ca(TD).ca.bundle().x509)).toBe(true);
    expect(ctx.bundles.get(`spiffe://${FED_TD}`)!.equals(h.ca(FED_TD).ca.bundle().x509)).toBe(true);
    expect((await client.fetchX509SVID()).spiffeId.toString()).toBe(WEB);
  });

  it('fetchX509Bundles and fetchJWTBundles: keyed by trust domain, equal to the CAs\' bundles', async () => {
    const x509 = await client.fetchX509Bundles();
    expect(x509.trustDomains().map((t) => t.name).sort()).toEqual([TD, FED_TD]);
    expect(x509.get(TD)!.equals(h.ca(TD).ca.bundle().x509)).toBe(true);
    const jwt = await client.fetchJWTBundles();
    expect(jwt.trustDomains().map((t) => t.name).sort()).toEqual([TD, FED_TD]);
    expect(jwt.get(TD)!.equals(h.ca(TD).ca.bundle().jwt)).toBe(true);
    expect(jwt.get(FED_TD)!.equals(h.ca(FED_TD).ca.bundle().jwt)).toBe(true);
  });

  it('fetchJWTSVID: default identity, or the one asked for; the token verifies', async () => {
    const svid = await client.fetchJWTSVID(['svc-a', 'svc-b']);
    expect(svid.spiffeId.toString()).toBe(WEB);
    expect(svid.hint).toBe('main');
    expect(svid.audience).toEqual(['svc-a', 'svc-b']);
    const jwt = await client.fetchJWTBundles();
    const verified = await verifyJwtSvid(svid.token, (td) => jwt.get(td), ['svc-b']);
    expect(verified.spiffeId.toString()).toBe(WEB);
    expect(svid.expiresAt.getTime()).toBe(verified.expiry.getTime());

    const admin = await client.fetchJWTSVID('svc-a', WEB_ADMIN);
    expect(admin.spiffeId.toString()).toBe(WEB_ADMIN);
    const all = await client.fetchJWTSVIDs('svc-a');
    expect(all.map((s) => s.spiffeId.toString())).toEqual([WEB, WEB_ADMIN]);
  });

  it('fetchJWTSVID: an identity that is not ours is PERMISSION_DENIED; bad arguments are refused locally', async () => {
    const err = await client.fetchJWTSVID('svc', `spiffe://${TD}/someone-else`).catch((e: unknown) => e);
    expect(isWorkloadApiError(err, grpc.status.PERMISSION_DENIED)).toBe(true);
    expect((err as WorkloadApiError).code).toBe('permission_denied');
    expect((err as Error).message).toBe(`workloadapi: FetchJWTSVID: PERMISSION_DENIED: workloadapi: no identity spiffe://${TD}/someone-else issued to the caller`);
    await expect(client.fetchJWTSVID([])).rejects.toThrow('workloadapi: at least one audience is required');
    await expect(client.fetchJWTSVID(['a', ''])).rejects.toThrow('workloadapi: audience must not contain empty strings');
    await expect(client.fetchJWTSVID('a', 'not-an-id')).rejects.toThrow('spiffeid: scheme must be "spiffe://" in lower case');
  });

  it('validateJWTSVID: the agent validates; a wrong audience is INVALID_ARGUMENT with the reason', async () => {
    const { token } = await client.fetchJWTSVID('svc');
    const ok = await client.validateJWTSVID(token, 'svc');
    expect(ok.spiffeId.toString()).toBe(WEB);
    expect(ok.claims.sub).toBe(WEB);
    expect(ok.claims.aud).toEqual(['svc']);
    expect(typeof ok.claims.exp).toBe('number');
    const err = await client.validateJWTSVID(token, 'elsewhere').catch((e: unknown) => e);
    expect(isWorkloadApiError(err, grpc.status.INVALID_ARGUMENT)).toBe(true);
    expect((err as Error).message).toBe('workloadapi: ValidateJWTSVID: INVALID_ARGUMENT: jwtsvid: token audience does not include any expected audience');
  });

  it('watchX509Context: the full state, then every rotation on the open stream', async () => {
    const updates: X509Context[] = [];
    const watch = client.watchX509Context({ onUpdate: (c) => updates.push(c) });
    await waitFor(() => updates.length === 1, 'the first update');
    const before = updates[0]!.svids[0]!.chain[0]!.serialNumber;
    const rotated = await env.source.rotate(WEB);
    await waitFor(() => updates.length === 2, 'the rotation');
    const after = updates[1]!.svids[0]!;
    expect(after.spiffeId.toString()).toBe(WEB);
    expect(after.chain[0]!.serialNumber).not.toBe(before);
    expect(after.chain[0]!.raw.equals(Buffer.from(rotated.chain[0]!))).toBe(true);
    watch.close();
    expect(watch.closed).toBe(true);
    await waitFor(() => env.source.listenerCount === 0, 'the server to see the stream cancelled');
  });

  it('a closed client refuses calls and closes its watches', async () => {
    const c = new WorkloadApiClient({ address: env.address });
    const watch = c.watchX509Bundles({ onUpdate: () => undefined });
    c.close();
    expect(watch.closed).toBe(true);
    const err = await c.fetchX509Context().catch((e: unknown) => e);
    expect(isAnchorageError(err, 'failed_precondition')).toBe(true);
    expect((err as Error).message).toBe('workloadapi: the client is closed');
  });

  it('nobody listening: UNAVAILABLE, and the watch keeps retrying with growing delays', async () => {
    const c = new WorkloadApiClient({ address: `unix://${h.newSocketPath()}` });
    h.defer(() => c.close());
    const err = await c.fetchX509Context().catch((e: unknown) => e);
    expect(isWorkloadApiError(err, grpc.status.UNAVAILABLE)).toBe(true);
    expect((err as WorkloadApiError).code).toBe('unavailable');
    const infos: WatchErrorInfo[] = [];
    const watch = c.watchX509Context({ onUpdate: () => undefined, onError: (_e, info) => infos.push(info) }, { backoff: { initialMs: 5, jitter: 0 } });
    await waitFor(() => infos.length >= 3, 'three failed attempts');
    watch.close();
    expect(infos.slice(0, 3)).toEqual([
      { terminal: false, retryInMs: 5 },
      { terminal: false, retryInMs: 10 },
      { terminal: false, retryInMs: 20 },
    ]);
    // Without retry, the first failure is the last.
    const once: WatchErrorInfo[] = [];
    const single = c.watchX509Context({ onUpdate: () => undefined, onError: (_e, info) => once.push(info) }, { retry: false });
    await waitFor(() => single.closed, 'the watch to stop');
    expect(once).toEqual([{ terminal: true }]);
  });

  it('reads the address from SPIFFE_ENDPOINT_SOCKET', async () => {
    const saved = process.env.SPIFFE_ENDPOINT_SOCKET;
    process.env.SPIFFE_ENDPOINT_SOCKET = env.address;
    try {
      const c = new WorkloadApiClient();
      expect(c.address).toEqual({ network: 'unix', path: env.socketPath, target: `unix://${env.socketPath}` });
      expect((await c.fetchX509SVID()).spiffeId.toString()).toBe(WEB);
      c.close();
      delete process.env.SPIFFE_ENDPOINT_SOCKET;
      expect(() => new WorkloadApiClient()).toThrow(/^workloadapi: no Workload API address: set SPIFFE_ENDPOINT_SOCKET/);
    } finally {
      if (saved === undefined) delete process.env.SPIFFE_ENDPOINT_SOCKET;
      else process.env.SPIFFE_ENDPOINT_SOCKET = saved;
    }
  });
});

describe('WorkloadApiClient against a minimal server', () => {
  it('works over tcp://IP:port and always sends the security header', async () => {
    const seen: string[][] = [];
    const { address } = await h.startFake(
      {
        FetchJWTBundles: (call) => {
          seen.push(call.metadata.get('workload.spiffe.io').map(String));
          call.write({ bundles: { [`spiffe://${TD}`]: Buffer.from(JSON.stringify({ keys: [] })) } });
        },
      },
      'tcp',
    );
    const c = new WorkloadApiClient({ address });
    h.defer(() => c.close());
    expect(c.address.network).toBe('tcp');
    const bundles = await c.fetchJWTBundles();
    expect(bundles.trustDomains()).toEqual([TrustDomain.parse(TD)]);
    expect(bundles.get(TD)!.size).toBe(0);
    expect(seen).toEqual([['true']]);
  });

  it('one-shot calls honour timeoutMs and an AbortSignal', async () => {
    // A server that accepts the stream and never answers.
    const { address } = await h.startFake({ FetchX509SVID: () => undefined, FetchJWTBundles: () => undefined });
    const c = new WorkloadApiClient({ address });
    h.defer(() => c.close());
    const late = await c.fetchX509Context({ timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isWorkloadApiError(late, grpc.status.DEADLINE_EXCEEDED)).toBe(true);
    expect((late as WorkloadApiError).code).toBe('unavailable');
    const ac = new AbortController();
    const pending = c.fetchJWTBundles({ signal: ac.signal }).catch((e: unknown) => e);
    ac.abort();
    const aborted = await pending;
    expect(isWorkloadApiError(aborted, grpc.status.CANCELLED)).toBe(true);
    expect((aborted as Error).message).toBe('workloadapi: FetchJWTBundles: CANCELLED: Cancelled on client');
  });

  it('a stream the server closes with OK is a disconnection, retried like any other', async () => {
    let calls = 0;
    const { address } = await h.startFake({
      FetchX509Bundles: (call) => {
        calls++;
        call.end();
      },
    });
    const c = new WorkloadApiClient({ address });
    h.defer(() => c.close());
    const err = await c.fetchX509Bundles().catch((e: unknown) => e);
    expect((err as Error).message).toBe('workloadapi: FetchX509Bundles: the server ended the stream');
    expect((err as WorkloadApiError).code).toBe('unavailable');
    const errors: string[] = [];
    const watch = c.watchX509Bundles({ onUpdate: () => undefined, onError: (e) => errors.push(e.message) }, { backoff: { initialMs: 5 } });
    await waitFor(() => calls >= 3, 'two reconnections');
    watch.close();
    expect(errors[0]).toBe('workloadapi: FetchX509Bundles: the server ended the stream');
  });
});
