import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Selector } from '../common/selector.js';
import { silentLogger } from '../common/log.js';
import { UnixWorkloadAttestor } from '../node-agent/attestor/unix.js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { SpiffeWorkloadAPIClient } from '@anchorage/client/proto/gen/SpiffeWorkloadAPI';
import type { SpiffeId } from '@anchorage/client/spiffe/id';
import { MAX_AUDIENCE_BYTES, MAX_AUDIENCES, MAX_TOTAL_AUDIENCE_BYTES, MAX_VALIDATE_SVID_BYTES } from './handlers.js';
import type { JwtIdentity } from './IdentitySource.js';
import { startWorkloadApi, type WorkloadApi } from './server.js';
import { startTestCa, TestIdentitySource, type TestCa } from '../test/helpers/test-ca.js';

// The per-request bounds of FetchJWTSVID and ValidateJWTSVID, through a real
// Workload API on a real socket with the real unix attestor: an oversize
// request is refused with INVALID_ARGUMENT and never reaches the source
// (the agent's cache, and through it the server).

const TD = 'limits.test';
let dir: string;
let ca: TestCa;
let api: WorkloadApi;
let client: SpiffeWorkloadAPIClient;

/** Counts what reaches jwtSvids(), i.e. what the agent would send to the server. */
class CountingSource extends TestIdentitySource {
  audiencesSeen: string[][] = [];
  override async jwtSvids(selectors: Selector[], audience: string[], spiffeId?: SpiffeId): Promise<JwtIdentity[]> {
    this.audiencesSeen.push(audience);
    return super.jwtSvids(selectors, audience, spiffeId);
  }
}
let source: CountingSource;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-wl-limits-'));
  chmodSync(dir, 0o755);
  ca = await startTestCa(TD, join(dir, 'ca'));
  source = new CountingSource(ca);
  await source.addIdentity({ spiffeId: `spiffe://${TD}/me`, selectors: [`unix:uid:${process.getuid!()}`] });
  const socketPath = join(dir, 'public', 'api.sock');
  api = await startWorkloadApi({ socketPath, source, attestor: new UnixWorkloadAttestor({ logger: silentLogger() }), logger: silentLogger() });
  client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socketPath}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await api?.close();
  await ca?.close();
  rmSync(dir, { recursive: true, force: true });
});

function md(): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set('workload.spiffe.io', 'true');
  return m;
}

function fetchJwt(audience: string[]): Promise<{ ok: boolean; code?: number; details?: string }> {
  return new Promise((resolve) => {
    client.FetchJWTSVID({ audience }, md(), (err) => resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true }));
  });
}

function validate(audience: string, svid: string): Promise<{ code?: number; details?: string }> {
  return new Promise((resolve) => {
    client.ValidateJWTSVID({ audience, svid }, md(), (err) => resolve(err ? { code: err.code, details: err.details } : {}));
  });
}

describe('FetchJWTSVID request bounds', () => {
  it('serves a request exactly at every bound', async () => {
    source.audiencesSeen = [];
    // 8 audiences of 1 KiB: at the per-audience and the total bound at once.
    const atBound = Array.from({ length: MAX_TOTAL_AUDIENCE_BYTES / MAX_AUDIENCE_BYTES }, (_, i) => String(i).padEnd(MAX_AUDIENCE_BYTES, 'a'));
    expect(await fetchJwt(atBound)).toEqual({ ok: true });
    const many = Array.from({ length: MAX_AUDIENCES }, (_, i) => `aud-${i}`);
    expect(await fetchJwt(many)).toEqual({ ok: true });
    expect(source.audiencesSeen).toEqual([atBound, many]);
  });

  it.each<[string, () => string[], string]>([
    ['too many audiences', () => Array.from({ length: MAX_AUDIENCES + 1 }, (_, i) => `aud-${i}`), `workloadapi: at most 32 audiences may be requested (got 33)`],
    ['one audience over 1 KiB', () => ['ok', 'x'.repeat(MAX_AUDIENCE_BYTES + 1)], 'workloadapi: an audience must be at most 1024 bytes (got 1025)'],
    // 'é' is two bytes in UTF-8: 600 characters are 1,200 bytes.
    ['one audience over 1 KiB in UTF-8 bytes', () => ['é'.repeat(600)], 'workloadapi: an audience must be at most 1024 bytes (got 1200)'],
    ['audiences totalling over 8 KiB', () => Array.from({ length: 9 }, () => 'y'.repeat(1000)), 'workloadapi: the audiences must total at most 8192 bytes (got 9000)'],
    // The attack: one registered workload, megabytes of audience per request.
    ['a 2.8 MB audience list', () => Array.from({ length: 28 }, (_, i) => `${i}`.padEnd(100_000, 'z')), 'workloadapi: an audience must be at most 1024 bytes (got 100000)'],
  ])('refuses %s with INVALID_ARGUMENT before anything reaches the cache or the server', async (_name, audience, message) => {
    source.audiencesSeen = [];
    expect(await fetchJwt(audience())).toEqual({ ok: false, code: grpc.status.INVALID_ARGUMENT, details: message });
    expect(source.audiencesSeen).toEqual([]);
  });
});

describe('ValidateJWTSVID request bounds', () => {
  it('refuses an oversize token or audience with INVALID_ARGUMENT, and parses one at the bound', async () => {
    expect(await validate('a'.repeat(MAX_AUDIENCE_BYTES + 1), 'x.y.z')).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'workloadapi: an audience must be at most 1024 bytes (got 1025)',
    });
    expect(await validate('a', 'x'.repeat(MAX_VALIDATE_SVID_BYTES + 1))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'workloadapi: svid must be at most 65536 bytes (got 65537)',
    });
    // At the bound the token is parsed (and found malformed), not refused for its size.
    const atBound = await validate('a', 'x'.repeat(MAX_VALIDATE_SVID_BYTES));
    expect(atBound.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(atBound.details).toBe('jwtsvid: token is not a compact JWS');
  });
});
