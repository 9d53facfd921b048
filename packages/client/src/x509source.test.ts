import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAnchorageError } from './common/errors.js';
import { silentLogger } from '../../../common/log.js';
import { verifyX509Svid } from './spiffe/x509svid.js';
import { isWorkloadApiError, type WorkloadApiError } from './errors.js';
import { WorkloadApiClient } from './client.js';
import { Harness, nextEvent, rejectionOf, waitFor, x509Response } from '../../../test/helpers/workload-api-harness.js';
import type { X509Context } from './types.js';
import { X509Source } from './x509source.js';

const TD = 'example.test';
const FED_TD = 'fed.test';
const WEB = `spiffe://${TD}/web`;
const WEB_ADMIN = `spiffe://${TD}/web-admin`;
/** Quick retries, so tests that go through several attempts stay short. */
const FAST = { initialMs: 10, maxMs: 100 };

const h = new Harness();

beforeAll(() => h.setup([TD, FED_TD]));
afterAll(() => h.close());

/** A source closed at teardown. */
async function create(opts: ConstructorParameters<typeof X509Source>[0] & { timeoutMs?: number }): Promise<X509Source> {
  const s = await X509Source.create(opts);
  h.defer(() => s.close());
  return s;
}

function track(s: X509Source): X509Source {
  h.defer(() => s.close());
  return s;
}

function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('X509Source', () => {
  it('create() resolves with the caller\'s SVIDs and bundles', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB, { hint: 'main', federatesWith: [FED_TD] });
    await env.addSelf(WEB_ADMIN, { hint: 'admin' });
    env.source.setFederatedBundle(h.ca(FED_TD).ca.bundle());
    const source = await create({ address: env.address });
    expect(source.isReady).toBe(true);
    expect(source.svid().spiffeId.toString()).toBe(WEB);
    expect(source.svids().map((s) => s.spiffeId.toString())).toEqual([WEB, WEB_ADMIN]);
    expect(source.bundleFor(TD)!.equals(h.ca(TD).ca.bundle().x509)).toBe(true);
    expect(source.bundleFor(`spiffe://${FED_TD}`)!.equals(h.ca(FED_TD).ca.bundle().x509)).toBe(true);
    expect(source.bundleFor('unknown.test')).toBeUndefined();
    expect(source.bundles().size).toBe(2);

    const picked = await create({ address: env.address, picker: (svids) => svids.find((s) => s.hint === 'admin') });
    expect(picked.svid().spiffeId.toString()).toBe(WEB_ADMIN);
    const none = await create({ address: env.address, picker: () => undefined });
    expect(caught(() => none.svid()).message).toBe('workloadapi: X509Source: the picker chose no SVID');
  });

  it('finds the Workload API through SPIFFE_ENDPOINT_SOCKET', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    const saved = process.env.SPIFFE_ENDPOINT_SOCKET;
    process.env.SPIFFE_ENDPOINT_SOCKET = env.address;
    try {
      const source = await create({});
      expect(source.client.address).toMatchObject({ network: 'unix', path: env.socketPath });
      expect(source.svid().spiffeId.toString()).toBe(WEB);
    } finally {
      if (saved === undefined) delete process.env.SPIFFE_ENDPOINT_SOCKET;
      else process.env.SPIFFE_ENDPOINT_SOCKET = saved;
    }
  });

  it('receives a rotation on the open stream; the new chain verifies against the source\'s bundles', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    const source = await create({ address: env.address });
    const old = source.svid();
    const update = nextEvent<[X509Context]>(source, 'update');
    const minted = await env.source.rotate(WEB);
    const [ctx] = await update;
    const svid = source.svid();
    expect(ctx.svids[0]).toBe(svid);
    expect(svid.chain[0]!.serialNumber).not.toBe(old.chain[0]!.serialNumber);
    expect(svid.chain[0]!.raw.equals(Buffer.from(minted.chain[0]!))).toBe(true);
    const verified = verifyX509Svid(
      svid.chain.map((c) => new Uint8Array(c.raw)),
      (td) => source.bundleFor(td),
    );
    expect(verified.spiffeId.toString()).toBe(WEB);
    expect(svid.chain[0]!.checkPrivateKey(svid.privateKey)).toBe(true);
    // One stream carried both messages.
    expect(env.api!.openStreams).toBe(1);
  });

  it('keeps its SVID while the agent is down and recovers when it is back at the same socket', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    // A pino logger fits the client's logger interface.
    const source = await create({ address: env.address, backoff: FAST, logger: silentLogger() });
    const before = source.svid();
    const lost = nextEvent<[Error]>(source, 'streamError');
    await env.stop();
    const [err] = await lost;
    expect(isWorkloadApiError(err, grpc.status.UNAVAILABLE)).toBe(true);
    expect(err.message).toBe('workloadapi: FetchX509SVID: UNAVAILABLE: workloadapi: server is shutting down');
    // Still usable: an outage of the agent is not a revocation.
    expect(source.svid()).toBe(before);
    // The SVID rotates while nobody listens; the restarted server serves the new one.
    const rotated = await env.source.rotate(WEB);
    const back = nextEvent<[X509Context]>(source, 'update');
    await env.start();
    const [ctx] = await back;
    expect(ctx.svids[0]!.chain[0]!.raw.equals(Buffer.from(rotated.chain[0]!))).toBe(true);
    expect(source.svid().chain[0]!.serialNumber).not.toBe(before.chain[0]!.serialNumber);
    expect(source.lastError).toBeUndefined();
  });

  it('INVALID_ARGUMENT is terminal: create() fails at once and nothing is retried', async () => {
    let calls = 0;
    const { address } = await h.startFake({
      FetchX509SVID: (call) => {
        calls++;
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'fake: security header missing from request' });
      },
    });
    const err = await rejectionOf(X509Source.create({ address, backoff: FAST, timeoutMs: 60_000 }));
    expect(isAnchorageError(err, 'invalid_argument')).toBe(true);
    expect(err.message).toBe('workloadapi: X509Source has stopped: workloadapi: FetchX509SVID: INVALID_ARGUMENT: fake: security header missing from request');
    expect(isWorkloadApiError((err as Error & { cause: unknown }).cause, grpc.status.INVALID_ARGUMENT)).toBe(true);
    // With 10 ms retries, a retry would long have happened.
    await new Promise((r) => setTimeout(r, 200));
    expect(calls).toBe(1);
  });

  it('INVALID_ARGUMENT after updates stops the source: accessors throw, no more streams', async () => {
    const minting = await h.startEnv(TD);
    const identity = await minting.addSelf(WEB);
    let calls = 0;
    const { address } = await h.startFake({
      FetchX509SVID: (call) => {
        calls++;
        call.write(x509Response([identity], h.ca(TD).ca.bundle()));
        setTimeout(() => call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'fake: bad request' }), 20);
      },
    });
    const source = await create({ address, backoff: FAST });
    expect(source.svid().spiffeId.toString()).toBe(WEB);
    const [err, info] = await nextEvent<[Error, { terminal: boolean }]>(source, 'streamError');
    expect(info).toEqual({ terminal: true });
    expect(err.message).toBe('workloadapi: FetchX509SVID: INVALID_ARGUMENT: fake: bad request');
    expect(source.isReady).toBe(false);
    expect(caught(() => source.svid()).message).toBe('workloadapi: X509Source has stopped: workloadapi: FetchX509SVID: INVALID_ARGUMENT: fake: bad request');
    expect(() => source.bundleFor(TD)).toThrow('workloadapi: X509Source has stopped');
    await expect(source.ready()).rejects.toThrow('workloadapi: X509Source has stopped');
    await new Promise((r) => setTimeout(r, 200));
    expect(calls).toBe(1);
  });

  it('PERMISSION_DENIED (no registration yet) is retried until an entry appears', async () => {
    const env = await h.startEnv(TD);
    const source = track(new X509Source({ address: env.address, backoff: FAST }));
    const [err] = await nextEvent<[Error]>(source, 'streamError');
    expect(isWorkloadApiError(err, grpc.status.PERMISSION_DENIED)).toBe(true);
    expect(err.message).toBe('workloadapi: FetchX509SVID: PERMISSION_DENIED: workloadapi: no identity issued');
    expect(caught(() => source.svid()).message).toBe(
      'workloadapi: X509Source has no identity: workloadapi: FetchX509SVID: PERMISSION_DENIED: workloadapi: no identity issued',
    );
    // A second denial shows the source keeps asking.
    await nextEvent<[Error]>(source, 'streamError');
    await env.addSelf(WEB);
    await source.ready({ timeoutMs: 10_000 });
    expect(source.svid().spiffeId.toString()).toBe(WEB);
  });

  it('create() reports PERMISSION_DENIED when no update came before the timeout', async () => {
    const env = await h.startEnv(TD);
    const err = await rejectionOf(X509Source.create({ address: env.address, backoff: FAST, timeoutMs: 300 }));
    expect(isAnchorageError(err, 'permission_denied')).toBe(true);
    expect(err.message).toBe(
      'workloadapi: X509Source: no update from the Workload API within 300 ms; last error: workloadapi: FetchX509SVID: PERMISSION_DENIED: workloadapi: no identity issued',
    );
    // The failed create() closed its source: the server has no stream left.
    await waitFor(() => env.api!.openStreams === 0 && env.source.listenerCount === 0, 'the stream to be gone');
  });

  it('create() against a socket nobody listens on times out with UNAVAILABLE', async () => {
    const err = await rejectionOf(X509Source.create({ address: h.newSocketPath(), backoff: FAST, timeoutMs: 200 }));
    expect(isAnchorageError(err, 'unavailable')).toBe(true);
    expect(err.message).toMatch(/^workloadapi: X509Source: no update from the Workload API within 200 ms; last error: workloadapi: FetchX509SVID: UNAVAILABLE: /);
  });

  it('PERMISSION_DENIED after updates drops the SVID (svid() throws) until the entry comes back', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    const source = await create({ address: env.address, backoff: FAST });
    const revoked = nextEvent<[WorkloadApiError]>(source, 'revoked');
    env.source.removeIdentity(WEB);
    const [err] = await revoked;
    expect(err.status).toBe(grpc.status.PERMISSION_DENIED);
    expect(source.isReady).toBe(false);
    const thrown = caught(() => source.svid());
    expect(isAnchorageError(thrown, 'permission_denied')).toBe(true);
    expect(thrown.message).toBe('workloadapi: X509Source has no identity: workloadapi: FetchX509SVID: PERMISSION_DENIED: workloadapi: no identity issued');
    expect(source.bundleFor(TD)).toBeUndefined();
    await env.addSelf(WEB);
    await source.ready();
    expect(source.svid().spiffeId.toString()).toBe(WEB);
  });

  it('close() ends the stream; accessors and ready() fail afterwards', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    const source = await create({ address: env.address });
    expect(env.api!.openStreams).toBe(1);
    await source.close();
    await waitFor(() => env.api!.openStreams === 0, 'the server to see the stream end');
    expect(caught(() => source.svid()).message).toBe('workloadapi: X509Source is closed');
    await expect(source.ready()).rejects.toThrow('workloadapi: X509Source is closed');
    // A source waiting for its first update is released by close().
    const pending = track(new X509Source({ address: h.newSocketPath(), backoff: FAST }));
    const waiting = pending.ready({ timeoutMs: 60_000 });
    await pending.close();
    await expect(waiting).rejects.toThrow('workloadapi: X509Source was closed before its first update');
  });

  it('shares a client between sources without closing it', async () => {
    const env = await h.startEnv(TD);
    await env.addSelf(WEB);
    const client = new WorkloadApiClient({ address: env.address });
    h.defer(() => client.close());
    const one = await create({ client });
    const two = await create({ client });
    await one.close();
    expect(client.closed).toBe(false);
    expect(two.svid().spiffeId.toString()).toBe(WEB);
  });
});
