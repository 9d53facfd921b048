import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError, isAnchorageError } from './common/errors.js';
import { silentLogger } from '../../../common/log.js';
import { UnixWorkloadAttestor } from '../../../node-agent/attestor/unix.js';
import type { WorkloadAttestor } from '../../../workload-api/WorkloadAttestor.js';
import { SpiffeBundle } from './spiffe/bundle.js';
import { SpiffeId } from './spiffe/id.js';
import { isWorkloadApiError } from './errors.js';
import { JWTSource } from './jwtsource.js';
import { Harness, nextEvent, rejectionOf, type Env } from '../../../test/helpers/workload-api-harness.js';
import type { JwtBundleSet } from './types.js';

const TD = 'example.test';
const FED_TD = 'fed.test';
const OTHER_TD = 'other.test';
const WEB = `spiffe://${TD}/web`;
const FAST = { initialMs: 10, maxMs: 100 };

/** The unix attestor, made to fail the next `failNext` calls as if the caller could not be attested yet. */
class FlakyAttestor implements WorkloadAttestor {
  readonly name = 'unix';
  readonly #inner = new UnixWorkloadAttestor({ logger: silentLogger() });
  failNext = 0;
  calls = 0;

  attest(peer: Parameters<WorkloadAttestor['attest']>[0]): ReturnType<WorkloadAttestor['attest']> {
    this.calls++;
    if (this.failNext > 0) {
      this.failNext--;
      return Promise.reject(new AnchorageError('unavailable', 'attestor: not yet'));
    }
    return this.#inner.attest(peer);
  }
}

const h = new Harness();
let env: Env;
let attestor: FlakyAttestor;
let source: JWTSource;

beforeAll(async () => {
  await h.setup([TD, FED_TD, OTHER_TD]);
  attestor = new FlakyAttestor();
  env = await h.startEnv(TD, { attestor });
  await env.addSelf(WEB, { hint: 'main', federatesWith: [FED_TD] });
  env.source.setFederatedBundle(h.ca(FED_TD).ca.bundle());
  source = await JWTSource.create({ address: env.address, backoff: FAST });
  h.defer(() => source.close());
});

afterAll(() => h.close());

describe('JWTSource', () => {
  it('holds the JWT bundles of the own and federated trust domains', () => {
    expect(source.isReady).toBe(true);
    expect(source.bundles().trustDomains().map((t) => t.name).sort()).toEqual([TD, FED_TD]);
    expect(source.bundleFor(TD)!.equals(h.ca(TD).ca.bundle().jwt)).toBe(true);
    expect(source.bundleFor(OTHER_TD)).toBeUndefined();
  });

  it('fetches a JWT-SVID and validates it locally; a wrong audience is refused', async () => {
    const svid = await source.fetchJWTSVID(['svc', 'svc-2']);
    expect(svid.spiffeId.toString()).toBe(WEB);
    expect(svid.hint).toBe('main');
    const verified = await source.validate(svid.token, 'svc-2');
    expect(verified.spiffeId.toString()).toBe(WEB);
    expect(verified.audience).toEqual(['svc', 'svc-2']);
    expect(verified.claims.sub).toBe(WEB);
    const err = await rejectionOf(source.validate(svid.token, 'elsewhere'));
    expect(isAnchorageError(err, 'invalid_argument')).toBe(true);
    expect(err.message).toBe('jwtsvid: token audience does not include any expected audience');
    const tampered = `${svid.token.slice(0, -4)}AAAA`;
    await expect(source.validate(tampered, 'svc')).rejects.toThrow('jwtsvid: signature is invalid');
  });

  it('validates tokens of federated trust domains, and only those', async () => {
    const fed = (await h.ca(FED_TD).minter.mintJwt({ spiffeId: SpiffeId.parse(`spiffe://${FED_TD}/peer`), audience: ['svc'] })).token;
    expect((await source.validate(fed, 'svc')).spiffeId.toString()).toBe(`spiffe://${FED_TD}/peer`);
    const other = (await h.ca(OTHER_TD).minter.mintJwt({ spiffeId: SpiffeId.parse(`spiffe://${OTHER_TD}/peer`), audience: ['svc'] })).token;
    await expect(source.validate(other, 'svc')).rejects.toThrow(`jwtsvid: no JWT bundle for trust domain "${OTHER_TD}"`);
  });

  it('follows bundle changes on the open stream', async () => {
    const fed = h.ca(FED_TD).ca.bundle();
    // fed.test publishes an additional JWT key: the caller gets the new set on the same stream.
    const grown = new SpiffeBundle(fed.trustDomain, { jwtAuthorities: [...fed.jwt.keys(), ...h.ca(OTHER_TD).ca.bundle().jwt.keys()] });
    const update = nextEvent<[JwtBundleSet]>(source, 'update', (b) => b.get(FED_TD)?.equals(grown.jwt) === true);
    env.source.setFederatedBundle(grown);
    const [bundles] = await update;
    expect(bundles.get(FED_TD)!.size).toBe(fed.jwt.size + h.ca(OTHER_TD).ca.bundle().jwt.size);
    expect(source.bundleFor(FED_TD)!.equals(grown.jwt)).toBe(true);
    expect(env.api!.openStreams).toBe(1);
    env.source.setFederatedBundle(fed);
  });

  it('fetchJWTSVID retries UNAVAILABLE, up to fetchAttempts', async () => {
    attestor.failNext = 2;
    const before = attestor.calls;
    const svid = await source.fetchJWTSVID('svc');
    expect(svid.spiffeId.toString()).toBe(WEB);
    expect(attestor.calls - before).toBe(3);

    const bounded = new JWTSource({ address: env.address, backoff: FAST, fetchAttempts: 2 });
    h.defer(() => bounded.close());
    await bounded.ready();
    attestor.failNext = 5;
    const start = attestor.calls;
    const err = await rejectionOf(bounded.fetchJWTSVID('svc'));
    expect(isWorkloadApiError(err, grpc.status.UNAVAILABLE)).toBe(true);
    expect(err.message).toBe('workloadapi: FetchJWTSVID: UNAVAILABLE: attestor: not yet');
    expect(attestor.calls - start).toBe(2);
    attestor.failNext = 0;
  });

  it('fetchJWTSVID does not retry other errors', async () => {
    const before = attestor.calls;
    const err = await rejectionOf(source.fetchJWTSVID('svc', `spiffe://${TD}/not-mine`));
    expect(isWorkloadApiError(err, grpc.status.PERMISSION_DENIED)).toBe(true);
    expect(attestor.calls - before).toBe(1);
  });

  it('drops its bundles on PERMISSION_DENIED after updates, and gets them back with the entry', async () => {
    const own = await h.startEnv(TD);
    await own.addSelf(WEB);
    const s = await JWTSource.create({ address: own.address, backoff: FAST });
    h.defer(() => s.close());
    const token = (await s.fetchJWTSVID('svc')).token;
    const revoked = nextEvent(s, 'revoked');
    own.source.removeIdentity(WEB);
    await revoked;
    const err = await rejectionOf(s.validate(token, 'svc'));
    expect(isAnchorageError(err, 'permission_denied')).toBe(true);
    expect(err.message).toBe('workloadapi: JWTSource has no identity: workloadapi: FetchJWTBundles: PERMISSION_DENIED: workloadapi: no identity issued');
    await own.addSelf(WEB);
    await s.ready();
    expect((await s.validate(token, 'svc')).spiffeId.toString()).toBe(WEB);
  });
});
