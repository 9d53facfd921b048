import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Admin } from '../cli/client.js';
import { runAttestation } from '../node-agent/connection.js';
import { JoinTokenAgentAttestor } from '../node-agent/nodeattestor/join-token.js';
import type { NodeAttestor } from '../node-agent/nodeattestor/NodeAttestor.js';
import { TpmAgentAttestor } from '../node-agent/nodeattestor/tpm.js';
import { X509PopAgentAttestor } from '../node-agent/nodeattestor/x509pop.js';
import { agentApiClient } from '../test/helpers/agent-api.js';
import { keyAndCsr } from '../test/helpers/csr.js';
import { issueNodeCert, makeOpensslCa } from '../test/helpers/openssl-ca.js';
import { cli, freePort, startServerProcess, tempDir, type AnchorageProcess } from '../test/helpers/process.js';
import { createSoftHsmToken, writePkcs11ServerConfig } from '../test/helpers/softhsm.js';
import { makeEkCa, manufactureTpm, startSwtpm, type Swtpm } from '../test/helpers/swtpm.js';
import { percentile, round } from './stats.js';

/**
 * Node attestation latency per attestor, against a real server process on
 * SoftHSM2, over the real AttestAgent stream (TLS): from the agent gathering
 * its evidence to the agent SVID in hand, one attestation after another.
 * join_token with tokens made beforehand; tpm on a swtpm (EK and AK made by
 * tpm2-tools each time, as the agent does), with the RSA EK and with the ECC
 * P-384 one (tpm_ecc384); x509pop with an openssl-made P-256
 * node certificate. For tpm the agent-side part (EK + AK creation, then
 * activation + quote) is also reported, since tpm2-tools dominates it.
 */

const TD = 'bench.test';
const SAMPLES = Number(process.env.BENCH_ATTEST_SAMPLES ?? 50);

interface Figures {
  samples: number;
  p50_ms: number;
  p99_ms: number;
  agent_evidence_p50_ms?: number;
  agent_answer_p50_ms?: number;
}

export async function benchAttest(): Promise<void> {
  const hsm = createSoftHsmToken('bench', '1357');
  const tmp = tempDir('anchorage-bench-attest-');
  const env = { ...hsm.env };
  const port = await freePort();
  const adminSocket = join(tmp.dir, 'admin.sock');
  const ekCa = makeEkCa(tmp.dir, 'ek-ca');
  const nodeCa = makeOpensslCa(tmp.dir, 'node-ca');
  mkdirSync(join(tmp.dir, 'ek-cas'));
  writeFileSync(join(tmp.dir, 'ek-cas', 'ek-ca.pem'), ekCa.certPem);
  const serverConfig = writePkcs11ServerConfig(hsm, {
    dir: tmp.dir,
    trustDomain: TD,
    socket: adminSocket,
    dataDir: join(tmp.dir, 'server'),
    port,
    extra:
      `node_attestors:\n  join_token: {}\n  tpm:\n    ek_ca_dir: ${join(tmp.dir, 'ek-cas')}\n    pcrs: [{ bank: sha256, indices: [0, 1, 2, 3, 4, 5, 6, 7] }]\n` +
      `  x509pop:\n    ca_bundle_file: ${nodeCa.certFile}\n`,
  });
  let server: AnchorageProcess | undefined;
  let tpm: Swtpm | undefined;
  let admin: Admin | undefined;
  try {
    server = await startServerProcess(serverConfig, adminSocket, env);
    admin = new Admin(adminSocket);
    const rootPem = Buffer.from(cli(['bundle', 'show', '--format', 'pem', '--socket', adminSocket], env).stdout);
    manufactureTpm(join(tmp.dir, 'tpm'), ekCa);
    tpm = await startSwtpm(join(tmp.dir, 'tpm'));
    const node = issueNodeCert(nodeCa, tmp.dir, 'bench-node');
    console.log(`bench attest: ${cpus().length} cores, ${SAMPLES} attestations per attestor, SoftHSM2-backed server, swtpm ${tpm.tcti}`);

    const tokens: string[] = [];
    for (let i = 0; i <= SAMPLES; i++) tokens.push((await admin!.call('CreateJoinToken', { spiffe_id: '', ttl: 3600 })).token);
    const attestors: Record<string, () => NodeAttestor> = {
      join_token: () => new JoinTokenAgentAttestor({ token: () => tokens.shift(), source: 'bench', lastAgentId: () => undefined }),
      tpm: () => new TpmAgentAttestor({ tcti: tpm!.tcti }),
      tpm_ecc384: () => new TpmAgentAttestor({ tcti: tpm!.tcti, ekAlgorithm: 'ecc384' }),
      x509pop: () => new X509PopAgentAttestor(node),
    };

    const results: Record<string, Figures> = {};
    for (const [type, make] of Object.entries(attestors)) {
      const total: number[] = [];
      const evidence: number[] = [];
      const answer: number[] = [];
      const client = agentApiClient({ port, trustDomain: TD, rootPem });
      // One warm-up attestation (TLS session, code paths), not counted.
      for (let i = -1; i < SAMPLES; i++) {
        const t0 = performance.now();
        const attempt = await make().begin();
        const t1 = performance.now();
        let answering = 0;
        const res = await runAttestation(client.AttestAgent(), {
          type: type.startsWith('tpm') ? 'tpm' : type,
          payload: attempt.payload,
          csr: keyAndCsr().csr,
          respond: async (c) => {
            const a0 = performance.now();
            const a = await attempt.respond(c);
            answering += performance.now() - a0;
            return a;
          },
        });
        if (!attempt.expects(res.spiffe_id)) throw new Error(`bench attest: ${type} attested as ${res.spiffe_id}`);
        if (i < 0) continue;
        total.push(performance.now() - t0);
        evidence.push(t1 - t0);
        answer.push(answering);
      }
      client.close();
      results[type] = { samples: SAMPLES, p50_ms: round(percentile(total, 50)), p99_ms: round(percentile(total, 99)) };
      if (type.startsWith('tpm')) {
        results[type]!.agent_evidence_p50_ms = round(percentile(evidence, 50));
        results[type]!.agent_answer_p50_ms = round(percentile(answer, 50));
      }
      const r = results[type]!;
      console.log(
        `attest_${type} p50 ${r.p50_ms} ms  p99 ${r.p99_ms} ms` +
          (r.agent_evidence_p50_ms !== undefined ? `  (agent: EK+AK ${r.agent_evidence_p50_ms} ms, activation+quote ${r.agent_answer_p50_ms} ms, p50)` : ''),
      );
    }
    const result = { date: new Date().toISOString(), cores: cpus().length, ...Object.fromEntries(Object.entries(results).map(([k, v]) => [`attest_${k}`, v])) };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/attest.json', JSON.stringify(result, null, 2) + '\n');
    console.log('wrote bench/results/attest.json');
  } catch (err) {
    if (server) writeFileSync('/tmp/bench-attest-server.log', server.log());
    console.error('bench attest: failed; server log in /tmp/bench-attest-server.log');
    throw err;
  } finally {
    admin?.close();
    tpm?.stop();
    await server?.kill('SIGTERM');
    tmp.cleanup();
    hsm.cleanup();
  }
}
