import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAnchorageError } from './common/errors.js';
import type { X509SVIDResponse__Output } from './proto/gen/X509SVIDResponse.js';
import type { X509SVID__Output } from './proto/gen/X509SVID.js';
import { SpiffeId } from './spiffe/id.js';
import type { X509Identity } from '../../../workload-api/IdentitySource.js';
import { WorkloadApiClient } from './client.js';
import { parseDerCertificates, parseJwtBundlesResponse, parseJwtSvidResponse, parseX509SvidResponse } from './parse.js';
import { Harness, waitFor } from '../../../test/helpers/workload-api-harness.js';
import type { X509Context } from './types.js';

const TD = 'example.test';
const A = `spiffe://${TD}/a`;
const B = `spiffe://${TD}/b`;

const h = new Harness();
let a: X509Identity;
let b: X509Identity;
let bundleDer: Buffer;

beforeAll(async () => {
  await h.setup([TD]);
  // Minted by the real CA; the test source is only used as a minting helper here.
  const env = await h.startEnv(TD);
  a = await env.addSelf(A);
  b = await env.addSelf(B);
  bundleDer = Buffer.concat(h.ca(TD).ca.bundle().x509.authorities());
});

afterAll(() => h.close());

function wire(id: X509Identity, over: Partial<X509SVID__Output> = {}): X509SVID__Output {
  return {
    spiffe_id: id.spiffeId.toString(),
    x509_svid: Buffer.concat(id.chain),
    x509_svid_key: Buffer.from(id.privateKey),
    bundle: bundleDer,
    hint: '',
    ...over,
  };
}

function response(svids: X509SVID__Output[], federated: Record<string, Buffer> = {}): X509SVIDResponse__Output {
  return { svids, crl: [], federated_bundles: federated };
}

function rejection(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    expect(isAnchorageError(err, 'internal')).toBe(true);
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('parseX509SvidResponse refuses malformed responses', () => {
  it('accepts a well-formed one', () => {
    const ctx = parseX509SvidResponse(response([wire(a, { hint: 'h' }), wire(b)]));
    expect(ctx.svids.map((s) => [s.spiffeId.toString(), s.hint])).toEqual([
      [A, 'h'],
      [B, ''],
    ]);
    expect(ctx.svids[0]!.chain).toHaveLength(a.chain.length);
    expect(ctx.bundles.get(TD)!.equals(h.ca(TD).ca.bundle().x509)).toBe(true);
  });

  it.each<[string, () => X509SVIDResponse__Output, string | (() => string)]>([
    ['an empty svids list', () => response([]), 'workloadapi: malformed X509SVIDResponse: svids is empty'],
    [
      'a bad spiffe_id',
      () => response([wire(a, { spiffe_id: 'https://x' })]),
      'workloadapi: malformed X509SVIDResponse: svid 0: spiffe_id "https://x" is invalid: spiffeid: scheme must be "spiffe://" in lower case',
    ],
    ['an empty chain', () => response([wire(a, { x509_svid: Buffer.alloc(0) })]), `workloadapi: malformed X509SVIDResponse: svid 0 (${A}): x509_svid is empty`],
    [
      'a truncated certificate',
      () => response([wire(a, { x509_svid: Buffer.concat(a.chain).subarray(0, 100) })]),
      `workloadapi: malformed X509SVIDResponse: svid 0 (${A}): x509_svid: certificate 0 is truncated`,
    ],
    [
      'bytes that are not DER',
      () => response([wire(a, { x509_svid: Buffer.from('not a certificate') })]),
      `workloadapi: malformed X509SVIDResponse: svid 0 (${A}): x509_svid: certificate 0 does not start with a DER SEQUENCE (offset 0)`,
    ],
    [
      'trailing garbage after the chain',
      () => response([wire(a, { x509_svid: Buffer.concat([...a.chain, Buffer.from([0x01])]) })]),
      () => `workloadapi: malformed X509SVIDResponse: svid 0 (${A}): x509_svid: certificate 2 does not start with a DER SEQUENCE (offset ${Buffer.concat(a.chain).length})`,
    ],
    [
      'a SEQUENCE that is not a certificate',
      () => response([wire(a, { x509_svid: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]) })]),
      `workloadapi: malformed X509SVIDResponse: svid 0 (${A}): x509_svid: certificate 0 could not be parsed:`,
    ],
    [
      'a leaf for another SPIFFE ID than spiffe_id',
      () => response([wire(a, { x509_svid: Buffer.concat(b.chain), x509_svid_key: Buffer.from(b.privateKey) })]),
      `workloadapi: malformed X509SVIDResponse: svid 0 (${A}): leaf certificate is for ${B}, not ${A}`,
    ],
    [
      'a key that does not match the leaf',
      () => response([wire(a, { x509_svid_key: Buffer.from(b.privateKey) })]),
      `workloadapi: malformed X509SVIDResponse: svid 0 (${A}): x509_svid_key does not match the leaf certificate's public key`,
    ],
    [
      'a key that is not PKCS#8',
      () => response([wire(a, { x509_svid_key: Buffer.from('junk') })]),
      `workloadapi: malformed X509SVIDResponse: svid 0 (${A}): x509_svid_key is not a PKCS#8 DER private key`,
    ],
    ['an empty bundle', () => response([wire(a, { bundle: Buffer.alloc(0) })]), `workloadapi: malformed X509SVIDResponse: svid 0 (${A}): bundle is empty`],
    [
      'a bad federated bundle key',
      () => response([wire(a)], { 'spiffe://fed.test/path': bundleDer }),
      'workloadapi: malformed X509SVIDResponse: federated_bundles: key "spiffe://fed.test/path" is not a trust domain: spiffeid: trust domain must not have a path',
    ],
    [
      'a bad federated bundle',
      () => response([wire(a)], { 'spiffe://fed.test': Buffer.from([0x30, 0x82]) }),
      'workloadapi: malformed X509SVIDResponse: federated_bundles[spiffe://fed.test]: certificate 0 is truncated',
    ],
  ])('%s', (_name, build, want) => {
    const message = typeof want === 'string' ? want : want();
    const err = rejection(() => parseX509SvidResponse(build()));
    if (message.endsWith(':')) expect(err.message.startsWith(message)).toBe(true);
    else expect(err.message).toBe(message);
  });

  it('the second SVID is checked as carefully as the first', () => {
    const err = rejection(() => parseX509SvidResponse(response([wire(a), wire(b, { x509_svid_key: Buffer.from(a.privateKey) })])));
    expect(err.message).toBe(`workloadapi: malformed X509SVIDResponse: svid 1 (${B}): x509_svid_key does not match the leaf certificate's public key`);
  });

  it('parseDerCertificates splits a concatenated chain exactly', () => {
    const certs = parseDerCertificates(Buffer.concat(a.chain), 'chain');
    expect(certs.map((c) => c.raw.length)).toEqual(a.chain.map((c) => c.length));
    expect(certs[0]!.fingerprint256).toBe(new X509Certificate(a.chain[0]!).fingerprint256);
  });
});

describe('JWT responses', () => {
  it('JWTBundlesResponse: a document that is not JWKS, or a key without kid, is refused', () => {
    expect(() => parseJwtBundlesResponse({ bundles: { [`spiffe://${TD}`]: Buffer.from('{') } })).toThrow(
      `workloadapi: malformed JWTBundlesResponse: bundles[spiffe://${TD}]: not valid JSON`,
    );
    expect(() => parseJwtBundlesResponse({ bundles: { [`spiffe://${TD}`]: Buffer.from('{"keys":{}}') } })).toThrow(
      `workloadapi: malformed JWTBundlesResponse: bundles[spiffe://${TD}]: not a JWKS document (no "keys" array)`,
    );
    const jwk = { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' };
    expect(() => parseJwtBundlesResponse({ bundles: { [`spiffe://${TD}`]: Buffer.from(JSON.stringify({ keys: [jwk] })) } })).toThrow(
      `workloadapi: malformed JWTBundlesResponse: bundles[spiffe://${TD}]: key 0 has no kid`,
    );
    // Keys for another use, and key types SPIFFE does not use, are skipped.
    const other = parseJwtBundlesResponse({
      bundles: { [`spiffe://${TD}`]: Buffer.from(JSON.stringify({ keys: [{ ...jwk, use: 'x509-svid' }, { kty: 'OKP', kid: 'k', crv: 'Ed25519', x: 'AA' }] })) },
    });
    expect(other.get(TD)!.size).toBe(0);
  });

  it('JWTSVIDResponse: sub must be spiffe_id and the audience must include what was asked', async () => {
    const token = (await h.ca(TD).minter.mintJwt({ spiffeId: SpiffeId.parse(A), audience: ['svc'] })).token;
    const ok = parseJwtSvidResponse({ svids: [{ spiffe_id: A, svid: token, hint: '' }] }, ['svc']);
    expect(ok[0]!.audience).toEqual(['svc']);
    expect(() => parseJwtSvidResponse({ svids: [] }, ['svc'])).toThrow('workloadapi: malformed JWTSVIDResponse: svids is empty');
    expect(() => parseJwtSvidResponse({ svids: [{ spiffe_id: B, svid: token, hint: '' }] }, ['svc'])).toThrow(
      `workloadapi: malformed JWTSVIDResponse: svid 0 (${B}): token sub "${A}" is not the spiffe_id`,
    );
    expect(() => parseJwtSvidResponse({ svids: [{ spiffe_id: A, svid: token, hint: '' }] }, ['svc', 'other'])).toThrow(
      `workloadapi: malformed JWTSVIDResponse: svid 0 (${A}): token audience lacks "other"`,
    );
    expect(() => parseJwtSvidResponse({ svids: [{ spiffe_id: A, svid: 'x.y', hint: '' }] }, ['svc'])).toThrow(
      `workloadapi: malformed JWTSVIDResponse: svid 0 (${A}): svid is not a JWT: Invalid JWT`,
    );
  });
});

describe('malformed messages on the wire', () => {
  it('fetchX509Context rejects a malformed answer', async () => {
    const { address } = await h.startFake({ FetchX509SVID: (call) => void call.write(response([])) });
    const c = new WorkloadApiClient({ address });
    h.defer(() => c.close());
    await expect(c.fetchX509Context()).rejects.toThrow('workloadapi: malformed X509SVIDResponse: svids is empty');
  });

  it('a watch skips a malformed message, reports it, and takes the next good one on the same stream', async () => {
    let streams = 0;
    const { address } = await h.startFake({
      FetchX509SVID: (call) => {
        streams++;
        call.write(response([wire(a)]));
        setTimeout(() => call.write(response([wire(a, { x509_svid_key: Buffer.from(b.privateKey) })])), 20);
        setTimeout(() => call.write(response([wire(b)])), 40);
      },
    });
    const c = new WorkloadApiClient({ address });
    h.defer(() => c.close());
    const updates: X509Context[] = [];
    const errors: [string, unknown][] = [];
    const watch = c.watchX509Context({ onUpdate: (ctx) => updates.push(ctx), onError: (e, info) => errors.push([e.message, info]) });
    await waitFor(() => updates.length === 2, 'two good updates');
    watch.close();
    expect(updates.map((u) => u.svids[0]!.spiffeId.toString())).toEqual([A, B]);
    expect(errors).toEqual([[`workloadapi: malformed X509SVIDResponse: svid 0 (${A}): x509_svid_key does not match the leaf certificate's public key`, { terminal: false }]]);
    expect(streams).toBe(1);
  });
});
