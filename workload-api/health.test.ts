import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../common/log.js';
import { AgentMetrics } from '../node-agent/metrics.js';
import { UnixWorkloadAttestor } from '../node-agent/attestor/unix.js';
import { loadHealthProto } from '../proto/load.js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { HealthClient } from '../proto/gen/grpc/health/v1/Health.js';
import { startTestCa, TestIdentitySource, type TestCa } from '../test/helpers/test-ca.js';
import { startWorkloadApi, type WorkloadApi } from './server.js';

// grpc.health.v1.Health on a real Workload API socket, called as
// `spire-agent healthcheck` calls it: service "", no metadata at all. And the
// Workload API's calls as the agent's metrics count them.

const TD = 'health.test';
let dir: string;
let ca: TestCa;
let api: WorkloadApi;
let health: HealthClient;
let socketPath: string;
let healthy: () => boolean = () => true;
const metrics = new AgentMetrics();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-wl-health-'));
  chmodSync(dir, 0o755);
  ca = await startTestCa(TD, join(dir, 'ca'));
  const source = new TestIdentitySource(ca);
  await source.addIdentity({ spiffeId: `spiffe://${TD}/me`, selectors: [`unix:uid:${process.getuid!()}`] });
  socketPath = join(dir, 'public', 'api.sock');
  api = await startWorkloadApi({
    socketPath,
    source,
    attestor: metrics.instrument(new UnixWorkloadAttestor({ logger: silentLogger() })),
    logger: silentLogger(),
    observer: metrics,
    healthy: () => healthy(),
  });
  health = new (loadHealthProto().grpc.health.v1.Health)(`unix://${socketPath}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  health?.close();
  await api?.close();
  await ca?.close();
  rmSync(dir, { recursive: true, force: true });
});

function check(service: string): Promise<{ status?: string; code?: grpc.status; details?: string }> {
  return new Promise((resolve) =>
    health.Check({ service }, (err, res) => resolve(err ? { code: err.code, details: err.details } : { status: res!.status })),
  );
}

describe('grpc.health.v1.Health on the Workload API socket', () => {
  it('answers SERVING for service "" without the workload.spiffe.io header, as spire-agent healthcheck asks', async () => {
    healthy = () => true;
    expect(await check('')).toEqual({ status: 'SERVING' });
    expect(await check('SpiffeWorkloadAPI')).toEqual({ status: 'SERVING' });
  });

  it('answers NOT_SERVING while the agent is not ready, or cannot tell', async () => {
    healthy = () => false;
    expect(await check('')).toEqual({ status: 'NOT_SERVING' });
    healthy = () => {
      throw new Error('boom');
    };
    expect(await check('')).toEqual({ status: 'NOT_SERVING' });
    healthy = () => true;
  });

  it('answers NOT_FOUND for another service, quoting at most 64 characters of its name', async () => {
    const got = await check(`x${'y'.repeat(200)}`);
    expect(got.code).toBe(grpc.status.NOT_FOUND);
    expect(got.details).toBe(`health: unknown service "x${'y'.repeat(63)}"`);
  });

  it('does not serve Watch (UNIMPLEMENTED), so no stream can be held open here', async () => {
    const code = await new Promise<grpc.status>((resolve) => {
      const call = health.Watch({ service: '' });
      call.on('data', () => resolve(grpc.status.OK));
      call.on('error', (e: grpc.ServiceError) => resolve(e.code));
    });
    expect(code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe('Workload API metrics', () => {
  it('count calls by RPC and status, streams open and closed, attestations by attestor', async () => {
    const client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socketPath}`, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set('workload.spiffe.io', 'true');
    // Refused before attestation: no header.
    await new Promise((resolve) => client.FetchJWTSVID({ audience: ['a'] }, (err) => resolve(err)));
    // A stream, open until we cancel it.
    const stream = client.FetchX509SVID({}, md);
    await new Promise((resolve) => stream.once('data', resolve));
    const open = await metrics.registry.getSingleMetricAsString('anchorage_workload_api_streams_open');
    expect(open).toContain('anchorage_workload_api_streams_open{rpc="FetchX509SVID"} 1');
    const closed = new Promise((resolve) => stream.on('error', resolve));
    stream.cancel();
    await closed;
    // The server sees the cancel a moment later; its counter then moves.
    for (let i = 0; i < 100 && !(await metrics.registry.getSingleMetricAsString('anchorage_workload_api_calls_total')).includes('code="CANCELLED"'); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    client.close();
    const calls = await metrics.registry.getSingleMetricAsString('anchorage_workload_api_calls_total');
    expect(calls).toContain('anchorage_workload_api_calls_total{rpc="FetchJWTSVID",code="INVALID_ARGUMENT"} 1');
    expect(calls).toContain('anchorage_workload_api_calls_total{rpc="FetchX509SVID",code="CANCELLED"} 1');
    expect(await metrics.registry.getSingleMetricAsString('anchorage_workload_api_streams_open')).toContain('anchorage_workload_api_streams_open{rpc="FetchX509SVID"} 0');
    const attest = await metrics.registry.getSingleMetricAsString('anchorage_workload_attestations_total');
    expect(attest).toContain('anchorage_workload_attestations_total{attestor="unix",result="success"} 1');
  });
});
