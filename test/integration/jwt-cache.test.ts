import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { SpiffeWorkloadAPIClient } from '@anchorage/client/proto/gen/SpiffeWorkloadAPI';
import { softHsmAvailable } from '../helpers/softhsm.js';
import { startAgentProcess, tempDir, writeFile, type AnchorageProcess } from '../helpers/process.js';
import { startTrustDomain, waitForSvid, type RealTrustDomain } from '../helpers/trust-domain.js';
import { lacks } from '../helpers/needs.js';

/**
 * Issue 10 item 4, against real processes: one registered workload sending
 * huge or ever-new audience lists must neither reach the server nor grow the
 * agent's JWT-SVID cache past its byte bound (`jwt_cache_max_bytes`).
 * Before the fix, a 2.8 MB audience list was minted and cached, and the
 * cache was bounded by count only (10,000 tokens of any size).
 */

const TD = 'jwt-cache.test';
const MAX_BYTES = 256 * 1024;
const ID = `spiffe://${TD}/jwt-heavy`;

let tmp: { dir: string; cleanup: () => void };
let td: RealTrustDomain | undefined;
let agent: AnchorageProcess | undefined;
let socket: string;
let client: SpiffeWorkloadAPIClient | undefined;

beforeAll(async () => {
  tmp = tempDir('anchorage-jwt-cache-');
  chmodSync(tmp.dir, 0o755);
  td = await startTrustDomain(tmp.dir, { trustDomain: TD, entries: [] });
  // A second agent of our own: the harness's agent has the default bound,
  // and filling 64 MiB would take thousands of mints.
  const token = await td.admin.call('CreateJoinToken', { spiffe_id: '', ttl: 600 });
  const agentDir = join(tmp.dir, 'small');
  mkdirSync(join(agentDir, 'public'), { recursive: true, mode: 0o755 });
  socket = join(agentDir, 'public', 'api.sock');
  const port = /bind_address: 127\.0\.0\.1:(\d+)/.exec(readFileSync(join(tmp.dir, 'server.yaml'), 'utf8'))![1];
  const config = writeFile(
    join(agentDir, 'agent.yaml'),
    `trust_domain: ${TD}
server_address: 127.0.0.1:${port}
data_dir: ${join(agentDir, 'data')}
socket_path: ${socket}
join_token: ${token.token}
trust_bundle_file: ${join(tmp.dir, 'bundle.pem')}
jwt_cache_max_bytes: ${MAX_BYTES}
log_level: debug
`,
  );
  agent = await startAgentProcess(config, socket, td.env);
  await td.admin.call('CreateEntry', {
    entry: {
      spiffe_id: ID,
      parent_id: `spiffe://${TD}/anchorage/agent/join_token/${token.token}`,
      selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
      hint: '',
      dns_names: [],
      federates_with: [],
    },
  });
  await waitForSvid(socket, ID, 30_000);
  client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socket}`, grpc.credentials.createInsecure());
}, 120_000);

afterAll(async () => {
  client?.close();
  await agent?.kill('SIGTERM');
  await td?.close();
  tmp?.cleanup();
});

function fetchJwt(audience: string[]): Promise<{ code: number; details: string; svids: number }> {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return new Promise((resolve) => {
    client!.FetchJWTSVID({ audience }, md, { deadline: Date.now() + 30_000 }, (err, res) =>
      resolve(err ? { code: err.code, details: err.details, svids: 0 } : { code: grpc.status.OK, details: '', svids: res!.svids.length }),
    );
  });
}

interface CacheRecord {
  msg: string;
  bytes: number;
  cachedBytes: number;
  cachedTokens: number;
  maxBytes: number;
}

function cacheRecords(): CacheRecord[] {
  return agent!
    .log()
    .split('\n')
    .filter((l) => l.includes('"agent: jwt-svid cached"'))
    .map((l) => JSON.parse(l) as CacheRecord);
}

describe.skipIf(lacks(!softHsmAvailable(), 'SoftHSM2'))('JWT-SVID requests against a real agent', () => {
  it('refuses a 2.8 MB audience list with INVALID_ARGUMENT and caches nothing for it', async () => {
    const before = cacheRecords().length;
    const huge = Array.from({ length: 28 }, (_, i) => `${i}`.padEnd(100_000, 'a'));
    expect(await fetchJwt(huge)).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'workloadapi: an audience must be at most 1024 bytes (got 100000)', svids: 0 });
    const tooMany = Array.from({ length: 33 }, (_, i) => `aud-${i}`);
    expect(await fetchJwt(tooMany)).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'workloadapi: at most 32 audiences may be requested (got 33)', svids: 0 });
    const tooLong = Array.from({ length: 9 }, (_, i) => `${i}`.padEnd(1000, 'b'));
    expect(await fetchJwt(tooLong)).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'workloadapi: the audiences must total at most 8192 bytes (got 9000)', svids: 0 });
    expect(cacheRecords().length).toBe(before);
  }, 60_000);

  it('keeps the cache within jwt_cache_max_bytes under many distinct maximal audience lists', async () => {
    const requests = 40;
    for (let i = 0; i < requests; i++) {
      // 8 audiences of 1,000 bytes: the largest list a request may carry.
      const audience = Array.from({ length: 8 }, (_, j) => `req-${i}-${j}`.padEnd(1000, 'c'));
      expect(await fetchJwt(audience)).toEqual({ code: grpc.status.OK, details: '', svids: 1 });
    }
    // The agent's stderr reaches us on its own schedule, possibly after the last answer.
    const deadline = Date.now() + 10_000;
    let records = cacheRecords();
    while (records.length < requests && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      records = cacheRecords();
    }
    expect(records).toHaveLength(requests);
    for (const r of records) {
      expect(r.maxBytes).toBe(MAX_BYTES);
      expect(r.cachedBytes).toBeLessThanOrEqual(MAX_BYTES);
    }
    // Each token is charged ~40 KB (8 KB of audience in the key, ~11 KB of
    // token, two bytes per character): the cache holds what fits, not 40.
    const last = records.at(-1)!;
    expect(last.cachedTokens).toBe(Math.floor(MAX_BYTES / last.bytes));
    expect(last.cachedBytes).toBe(last.cachedTokens * last.bytes);
  }, 120_000);
});
