// Issue 13: hardware-rooted node attestation, end to end with real processes:
// `anchorage server run` (SoftHSM2) with the tpm and x509pop attestors, agents
// on real software TPMs (swtpm, EK certificates from a CA made here with
// openssl) and on openssl-made node certificates, entries parented by the
// agent and by node aliases matching tpm: and x509pop: selectors; PCR changes,
// ban and unban; refusals over the real AttestAgent stream with exact statuses.
import { createHash, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWire, tpmPayload } from '../../common/attestation-wire.js';
import type { AnchorageError } from '../../common/errors.js';
import { parseTpm2bPublic } from '../../common/tpm2.js';
import { runAttestation } from '../../node-agent/connection.js';
import type { NodeAttestor as AgentNodeAttestor } from '../../node-agent/nodeattestor/NodeAttestor.js';
import { TpmAgentAttestor } from '../../node-agent/nodeattestor/tpm.js';
import { X509PopAgentAttestor } from '../../node-agent/nodeattestor/x509pop.js';
import { loadWorkloadProto } from '../../proto/load.js';
import type { X509SVIDResponse__Output } from '../../proto/gen/X509SVIDResponse.js';
import { agentApiClient, callStatus } from '../helpers/agent-api.js';
import { keyAndCsr } from '../helpers/csr.js';
import { lacks } from '../helpers/needs.js';
import { issueNodeCert, makeOpensslCa, type OpensslCa } from '../helpers/openssl-ca.js';
import { cli, startAgentProcess, tempDir, type AnchorageProcess } from '../helpers/process.js';
import { startServerFixture, type ServerFixture } from '../helpers/server-fixture.js';
import { extendPcr, haveSwtpm, makeEkCa, manufactureTpm, startSwtpm, type EkCa, type Swtpm } from '../helpers/swtpm.js';

const TD = 'node-attestation.test';
const UID = process.getuid?.() ?? 0;
const ZERO = '00'.repeat(32);
const skip = lacks(!haveSwtpm(), 'swtpm, swtpm-tools, tpm2-tools and openssl');

let pki: { dir: string; cleanup: () => void };
let f: ServerFixture;
let ekCa: EkCa;
let strangerCa: EkCa;
let nodeCa: OpensslCa;
let tpm1: Swtpm;
let tpm2: Swtpm;
const agents: AnchorageProcess[] = [];

const fingerprint = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');

async function ekHash(tcti: string): Promise<string> {
  const a = await new TpmAgentAttestor({ tcti }).begin();
  return createHash('sha256').update(parseTpm2bPublic(parseWire(tpmPayload, a.payload, 'p').ek_pub, 'ek').spki).digest('hex');
}

async function entry(spiffeId: string, parentId: string, selectors: string[]): Promise<void> {
  await f.admin((a) =>
    a.call('CreateEntry', {
      entry: {
        spiffe_id: spiffeId,
        parent_id: parentId,
        selectors: selectors.map((s) => ({ type: s.slice(0, s.indexOf(':')), value: s.slice(s.indexOf(':') + 1) })),
        dns_names: [],
        federates_with: [],
      },
    }),
  );
}

/** The SPIFFE IDs the Workload API at `socket` serves this process now ([] when it serves none). */
async function served(socket: string): Promise<string[]> {
  const client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socket}`, grpc.credentials.createInsecure());
  try {
    return await new Promise<string[]>((resolve) => {
      const md = new grpc.Metadata();
      md.set('workload.spiffe.io', 'true');
      const call = client.FetchX509SVID({}, md, { deadline: Date.now() + 5_000 });
      call.on('data', (m: X509SVIDResponse__Output) => {
        resolve(m.svids.map((s) => s.spiffe_id).sort());
        call.cancel();
      });
      call.on('error', () => resolve([]));
    });
  } finally {
    client.close();
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function startAgent(name: string, attestor: string): Promise<{ socket: string; proc: AnchorageProcess }> {
  const socket = join(f.dir, 'public', `${name}.sock`);
  mkdirSync(join(f.dir, 'public'), { recursive: true });
  const cfg = f.agentConfig(name, { dataDir: join(f.dir, name), socket, extra: `node_attestor:\n${attestor}\n` });
  const proc = await startAgentProcess(cfg, socket, f.env);
  agents.push(proc);
  return { socket, proc };
}

/** One attestation over the real server's AttestAgent stream, as its gRPC status. */
async function attestOverGrpc(attestor: AgentNodeAttestor) {
  const attempt = await attestor.begin();
  const client = agentApiClient({ port: f.port, trustDomain: TD, rootPem: Buffer.from(f.bundlePem) });
  try {
    return await callStatus(
      runAttestation(client.AttestAgent(), { type: attestor.type, payload: attempt.payload, csr: keyAndCsr().csr, respond: (c) => attempt.respond(c) }),
    );
  } finally {
    client.close();
  }
}

async function agentRecord(id: string) {
  return f.admin((a) => a.call('GetAgent', { spiffe_id: id }));
}

beforeAll(async () => {
  if (skip) return;
  pki = tempDir('anchorage-node-attestation-pki-');
  ekCa = makeEkCa(pki.dir, 'ek-ca');
  strangerCa = makeEkCa(pki.dir, 'stranger-ek-ca');
  nodeCa = makeOpensslCa(pki.dir, 'node-ca');
  const caDir = join(pki.dir, 'ek-cas');
  mkdirSync(caDir);
  copyFileSync(ekCa.certFile, join(caDir, 'ek-ca.pem'));
  manufactureTpm(join(pki.dir, 'tpm1'), ekCa);
  manufactureTpm(join(pki.dir, 'tpm2'), strangerCa);
  tpm1 = await startSwtpm(join(pki.dir, 'tpm1'));
  tpm2 = await startSwtpm(join(pki.dir, 'tpm2'));
  f = await startServerFixture(TD, 'anchorage-node-attestation-', '1h', {
    serverExtra:
      `node_attestors:\n  join_token: {}\n  tpm:\n    ek_ca_dir: ${caDir}\n    pcrs: [{ bank: sha256, indices: [0, 16] }]\n` +
      `  x509pop:\n    ca_bundle_file: ${nodeCa.certFile}\n`,
  });
}, 120_000);

afterAll(async () => {
  for (const a of agents) await a.kill('SIGTERM');
  await f?.close();
  tpm1?.stop();
  tpm2?.stop();
  pki?.cleanup();
});

describe.skipIf(skip)('node attestation with tpm (swtpm) and x509pop', () => {
  let agentId: string;
  let socket: string;
  const caFp = () => fingerprint(ekCa.certPem);

  it('a TPM node attests and gets SVIDs for entries parented by it and by a node alias on tpm: selectors', async () => {
    agentId = `spiffe://${TD}/anchorage/agent/tpm/${await ekHash(tpm1.tcti)}`;
    ({ socket } = await startAgent('tpm-agent', `  type: tpm\n  tcti: ${tpm1.tcti}`));
    const rec = await agentRecord(agentId);
    expect(rec.attestation_type).toBe('tpm');
    // Stored sorted.
    expect(rec.selectors.map((s) => `${s.type}:${s.value}`)).toEqual([
      `tpm:ek_ca:${caFp()}`,
      `tpm:ek_pub_hash:${agentId.split('/').pop()}`,
      `tpm:pcr:sha256:0:${ZERO}`,
      `tpm:pcr:sha256:16:${ZERO}`,
    ]);
    await entry(`spiffe://${TD}/direct`, agentId, [`unix:uid:${UID}`]);
    await entry(`spiffe://${TD}/nodes/pcr16-pristine`, `spiffe://${TD}/anchorage/server`, [`tpm:ek_ca:${caFp()}`, `tpm:pcr:sha256:16:${ZERO}`]);
    await entry(`spiffe://${TD}/via-alias`, `spiffe://${TD}/nodes/pcr16-pristine`, [`unix:uid:${UID}`]);
    const want = [`spiffe://${TD}/direct`, `spiffe://${TD}/via-alias`];
    expect(await until('both SVIDs', async () => ((await served(socket)).join() === want.join() ? want : undefined))).toEqual(want);
  });

  it('after a PCR is extended, re-attestation (evict) gives the new tpm:pcr selector and the alias entry is no longer served', async () => {
    extendPcr(tpm1.tcti, 16, 'an unexpected boot component', pki.dir);
    expect(cli(['agent', 'evict', '--spiffe-id', agentId, '--socket', f.adminSocket], f.env).stdout).toBe(`Evicted ${agentId}\n`);
    // tpm spends nothing: the evicted agent attests again by itself, to the same ID.
    const rec = await until('re-attestation', async () => {
      const r = await agentRecord(agentId);
      return !r.evicted && !r.selectors.some((s) => s.value === `pcr:sha256:16:${ZERO}`) ? r : undefined;
    }).catch((err: unknown) => {
      throw new Error(`${String(err)}\nagent log:\n${agents[0]!.log().slice(-4000)}`);
    });
    const pcr16 = rec.selectors.filter((s) => s.value.startsWith('pcr:sha256:16:'));
    expect(pcr16).toHaveLength(1);
    expect(pcr16[0]!.value).toMatch(/^pcr:sha256:16:[0-9a-f]{64}$/);
    const want = [`spiffe://${TD}/direct`];
    expect(await until('only the direct SVID', async () => ((await served(socket)).join() === want.join() ? want : undefined))).toEqual(want);
  });

  it('a banned node is evicted and refused when it attests again; unbanned, a restarted agent attests to the same ID', async () => {
    expect(cli(['agent', 'ban', '--spiffe-id', agentId, '--socket', f.adminSocket], f.env).stdout).toBe(`Banned ${agentId} (its current SVID is evicted)\n`);
    expect(await until('the agent to lose its SVIDs', async () => ((await served(socket)).length === 0 ? true : undefined))).toBe(true);
    const refusedLine = `"reason":"agent api: agent ${agentId} is banned (\\"anchorage agent unban\\" lifts it)"`;
    // The evicted agent tries again by itself, and the server says why it refuses.
    expect(await until('the refusal in the server log', async () => (f.server!.log().includes(refusedLine) ? true : undefined))).toBe(true);
    const banned = await agentRecord(agentId);
    expect([banned.banned, banned.evicted]).toEqual([true, true]);
    // The agent stops, so that this process alone uses its TPM for the next attestation.
    await agents.shift()!.kill('SIGTERM');
    expect(await attestOverGrpc(new TpmAgentAttestor({ tcti: tpm1.tcti }))).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: `agent api: agent ${agentId} is banned ("anchorage agent unban" lifts it)`,
    });

    expect(cli(['agent', 'unban', '--spiffe-id', agentId, '--socket', f.adminSocket], f.env).stdout).toBe(`Unbanned ${agentId}\n`);
    const again = cli(['agent', 'unban', '--spiffe-id', agentId, '--socket', f.adminSocket], f.env);
    expect([again.code, again.stderr]).toEqual([1, `anchorage: admin: agent ${agentId} is not banned\n`]);
    // Restarted without a valid SVID, the agent attests again: nothing was spent, so to the same ID.
    ({ socket } = await startAgent('tpm-agent', `  type: tpm\n  tcti: ${tpm1.tcti}`));
    const rec = await agentRecord(agentId);
    expect([rec.banned, rec.evicted]).toEqual([false, false]);
    const want = [`spiffe://${TD}/direct`];
    expect(await until('the direct SVID again', async () => ((await served(socket)).join() === want.join() ? want : undefined))).toEqual(want);
  });

  it('ban refuses IDs that are not agent IDs of this trust domain, and ban/unban need --spiffe-id', async () => {
    const bad = cli(['agent', 'ban', '--spiffe-id', `spiffe://${TD}/workload`, '--socket', f.adminSocket], f.env);
    expect([bad.code, bad.stderr]).toEqual([1, `anchorage: admin: spiffe://${TD}/workload is not an agent ID of ${TD} (spiffe://${TD}/anchorage/agent/<type>/...)\n`]);
    const other = cli(['agent', 'ban', '--spiffe-id', 'spiffe://other.test/anchorage/agent/tpm/x', '--socket', f.adminSocket], f.env);
    expect(other.stderr).toBe(`anchorage: admin: spiffe://other.test/anchorage/agent/tpm/x is not an agent ID of ${TD} (spiffe://${TD}/anchorage/agent/<type>/...)\n`);
    const rpc = (method: 'BanAgent' | 'UnbanAgent', spiffe_id: string) =>
      f.admin((a) => a.call(method, { spiffe_id })).then(
        () => 'ok',
        (e: AnchorageError) => `${e.code}: ${e.message}`,
      );
    await expect(rpc('BanAgent', '')).resolves.toBe('invalid_argument: admin: spiffe_id is required');
    await expect(rpc('UnbanAgent', '')).resolves.toBe('invalid_argument: admin: spiffe_id is required');
    await expect(rpc('BanAgent', 'https://example.org/x')).resolves.toMatch(/^invalid_argument: /);
    await expect(rpc('UnbanAgent', `spiffe://${TD}/anchorage/agent/tpm/never`)).resolves.toBe(`not_found: admin: agent spiffe://${TD}/anchorage/agent/tpm/never is not banned`);
    const none = cli(['agent', 'unban', '--socket', f.adminSocket], f.env);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--spiffe-id');
  });

  it('a TPM whose EK CA is not trusted is refused over the real stream', async () => {
    expect(await attestOverGrpc(new TpmAgentAttestor({ tcti: tpm2.tcti }))).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: 'agent api: tpm: EK certificate does not chain to a CA in ek_ca_dir',
    });
    const line = '"reason":"agent api: tpm: EK certificate does not chain to a CA in ek_ca_dir"';
    // The log is written asynchronously: it may land just after the status.
    expect(await until('the refusal in the server log', async () => (f.server!.log().includes(line) ? true : undefined))).toBe(true);
  });

  it('an x509pop node attests and gets an SVID through an alias on x509pop: selectors; expired and foreign certificates are refused', async () => {
    const node = issueNodeCert(nodeCa, pki.dir, 'rack7-node3', { san: 'DNS:rack7-node3.example' });
    const { socket: s } = await startAgent('x509pop-agent', `  type: x509pop\n  cert_file: ${node.certFile}\n  key_file: ${node.keyFile}`);
    const id = `spiffe://${TD}/anchorage/agent/x509pop/${fingerprint(readFileSync(node.certFile, 'utf8'))}`;
    expect((await agentRecord(id)).selectors.map((x) => `${x.type}:${x.value}`)).toEqual([
      `x509pop:ca:fingerprint:${fingerprint(nodeCa.certPem)}`,
      'x509pop:san:dns:rack7-node3.example',
      'x509pop:subject:cn:rack7-node3',
    ]);
    await entry(`spiffe://${TD}/nodes/rack7`, `spiffe://${TD}/anchorage/server`, ['x509pop:san:dns:rack7-node3.example']);
    await entry(`spiffe://${TD}/rack7-workload`, `spiffe://${TD}/nodes/rack7`, [`unix:uid:${UID}`]);
    const want = [`spiffe://${TD}/rack7-workload`];
    expect(await until('the alias SVID', async () => ((await served(s)).join() === want.join() ? want : undefined))).toEqual(want);

    const expired = issueNodeCert(nodeCa, pki.dir, 'old-node', { start: '20200101000000Z', end: '20210101000000Z' });
    expect(await attestOverGrpc(new X509PopAgentAttestor(expired))).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: 'agent api: x509pop: node certificate expired at 2021-01-01T00:00:00.000Z',
    });
    const foreign = issueNodeCert(makeOpensslCa(pki.dir, 'foreign-ca'), pki.dir, 'foreign-node');
    expect(await attestOverGrpc(new X509PopAgentAttestor(foreign))).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: 'agent api: x509pop: node certificate does not chain to a CA in ca_bundle_file',
    });
  });
});
