import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Selector } from '../common/selector.js';
import { silentLogger } from '../common/log.js';
import { execAfterConnect, UnixWorkloadAttestor } from '../node-agent/attestor/unix.js';
import type { PeerCredentials, WorkloadAttestor } from './WorkloadAttestor.js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { SpiffeWorkloadAPIClient } from '@anchorage/client/proto/gen/SpiffeWorkloadAPI';
import type { X509SVIDResponse__Output } from '@anchorage/client/proto/gen/X509SVIDResponse';
import { startWorkloadApi, type WorkloadApi } from './server.js';
import { startTestCa, TestIdentitySource, type TestCa } from '../test/helpers/test-ca.js';
import { until } from '../test/helpers/until.js';

// Streams have the attestor confirm their caller before every message after
// the first (issue 10 item 5): the real unix attestor behind a switch that
// makes it refuse as it does for a process that executed another binary, on a
// real Workload API socket.

const TD = 'streams.test';
const ME = `spiffe://${TD}/me`;
const OTHER = `spiffe://${TD}/other`;

/** The real attestor, counting calls, refusing (as after an exec) once `refuse` is set. */
class SwitchedAttestor implements WorkloadAttestor {
  readonly name = 'unix';
  readonly #inner = new UnixWorkloadAttestor({ logger: silentLogger() });
  calls = 0;
  confirms = 0;
  refuse = false;
  async attest(peer: PeerCredentials): Promise<Selector[]> {
    this.calls++;
    if (this.refuse) throw execAfterConnect(peer.pid);
    return this.#inner.attest(peer);
  }
  confirm(peer: PeerCredentials): void {
    this.confirms++;
    if (this.refuse) throw execAfterConnect(peer.pid);
    this.#inner.confirm(peer);
  }
}

let dir: string;
let ca: TestCa;
let api: WorkloadApi;
let client: SpiffeWorkloadAPIClient;
let source: TestIdentitySource;
const attestor = new SwitchedAttestor();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-wl-streams-'));
  chmodSync(dir, 0o755);
  ca = await startTestCa(TD, join(dir, 'ca'));
  source = new TestIdentitySource(ca);
  await source.addIdentity({ spiffeId: ME, selectors: [`unix:uid:${process.getuid!()}`] });
  await source.addIdentity({ spiffeId: OTHER, selectors: ['unix:uid:4242'] });
  const socketPath = join(dir, 'public', 'api.sock');
  api = await startWorkloadApi({ socketPath, source, attestor, logger: silentLogger() });
  client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socketPath}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await api?.close();
  await ca?.close();
  rmSync(dir, { recursive: true, force: true });
});


describe('FetchX509SVID stream re-attestation', () => {
  it('confirms the caller only for changes it sees, and ends with PERMISSION_DENIED once the attestor refuses', async () => {
    const md = new grpc.Metadata();
    md.set('workload.spiffe.io', 'true');
    const stream = client.FetchX509SVID({}, md);
    const messages: X509SVIDResponse__Output[] = [];
    let error: grpc.ServiceError | undefined;
    stream.on('data', (m: X509SVIDResponse__Output) => messages.push(m));
    stream.on('error', (e: grpc.ServiceError) => (error = e));
    try {
      await until('the first message', () => messages.length === 1, 5_000, 25);
      expect([attestor.calls, attestor.confirms]).toEqual([1, 0]);

      // Another workload's SVID rotates: nothing this caller sees changes, nothing checked.
      await source.rotate(OTHER);
      await new Promise((r) => setTimeout(r, 200));
      expect([attestor.calls, attestor.confirms]).toEqual([1, 0]);
      expect(messages).toHaveLength(1);

      // Its own SVID rotates: the caller is confirmed (no full attestation), then sent.
      await source.rotate(ME);
      await until('the rotated SVID', () => messages.length === 2, 5_000, 25);
      expect([attestor.calls, attestor.confirms]).toEqual([1, 1]);

      attestor.refuse = true;
      await source.rotate(ME);
      await until('the end of the stream', () => error !== undefined, 5_000, 25);
      expect(messages).toHaveLength(2);
      expect(error!.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(error!.details).toMatch(/^attestor: the calling process \(pid \d+\) executed another binary after connecting; reconnect$/);
      expect(api.openStreams).toBe(0);
    } finally {
      attestor.refuse = false;
      stream.cancel();
    }
  });

  it('refuses a unary call with the attestor’s PERMISSION_DENIED, not the server’s UNAVAILABLE wrapper', async () => {
    attestor.refuse = true;
    try {
      const md = new grpc.Metadata();
      md.set('workload.spiffe.io', 'true');
      const err = await new Promise<grpc.ServiceError | null>((resolve) => client.FetchJWTSVID({ audience: ['a'] }, md, (e) => resolve(e)));
      expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err?.details).toMatch(/^attestor: the calling process \(pid \d+\) executed another binary after connecting; reconnect$/);
    } finally {
      attestor.refuse = false;
    }
  });
});
