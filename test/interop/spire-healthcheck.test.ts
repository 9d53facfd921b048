// `spire-agent healthcheck -socketPath` (SPIRE's own command) against our
// Workload API socket: "Agent is healthy." while the agent is ready, and
// "Agent is unhealthy: agent returned status "NOT_SERVING"" when it is not.
//
// Opt-in: SPIRE publishes no Debian package and `go install` of its module
// is refused by the Go proxy here, so the binary is built from SPIRE's source
// by hand (about 15 minutes on 2 cores) into the gitignored build cache, or
// named by SPIRE_AGENT:
//
//   git clone https://github.com/spiffe/spire /tmp/spire
//   (cd /tmp/spire && go build -o "$OLDPWD/test/interop/.cache/spire/spire-agent" ./cmd/spire-agent)
//   npx vitest run test/interop/spire-healthcheck.test.ts
//
// Without the binary the suite says so and does not run (CI cannot provide
// it); workload-api/health.test.ts makes the same calls with a gRPC client on
// every run.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/log.js';
import { UnixWorkloadAttestor } from '../../node-agent/attestor/unix.js';
import { startWorkloadApi, type WorkloadApi } from '../../workload-api/server.js';
import { startTestCa, TestIdentitySource, type TestCa } from '../helpers/test-ca.js';

const CACHED = join(dirname(fileURLToPath(import.meta.url)), '.cache', 'spire', 'spire-agent');
const SPIRE_AGENT = process.env.SPIRE_AGENT ?? (existsSync(CACHED) ? CACHED : undefined);
if (!SPIRE_AGENT) console.log(`skipped: spire-healthcheck needs a spire-agent binary at ${CACHED} or SPIRE_AGENT (see the file header)`);

describe.skipIf(!SPIRE_AGENT)('spire-agent healthcheck against our Workload API socket', () => {
  let dir: string;
  let ca: TestCa;
  let api: WorkloadApi;
  let socketPath: string;
  let ready = true;

  beforeAll(async () => {
    if (!existsSync(SPIRE_AGENT!)) throw new Error(`SPIRE_AGENT=${SPIRE_AGENT} does not exist`);
    dir = mkdtempSync(join(tmpdir(), 'anchorage-spire-hc-'));
    chmodSync(dir, 0o755);
    ca = await startTestCa('spire-hc.test', join(dir, 'ca'));
    socketPath = join(dir, 'public', 'api.sock');
    api = await startWorkloadApi({
      socketPath,
      source: new TestIdentitySource(ca),
      attestor: new UnixWorkloadAttestor({ logger: silentLogger() }),
      logger: silentLogger(),
      healthy: () => ready,
    });
  });

  afterAll(async () => {
    await api?.close();
    await ca?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Asynchronous: the server answering it runs in this process. */
  async function healthcheck(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const { spawn } = await import('node:child_process');
    return new Promise((resolve) => {
      const child = spawn(SPIRE_AGENT!, ['healthcheck', '-socketPath', socketPath, ...args]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('reports healthy while the agent is ready', async () => {
    ready = true;
    expect(await healthcheck()).toEqual({ code: 0, stdout: 'Agent is healthy.\n', stderr: '' });
  });

  it('reports unhealthy, naming the status, while it is not', async () => {
    ready = false;
    expect(await healthcheck()).toEqual({ code: 1, stdout: '', stderr: 'Agent is unhealthy: agent returned status "NOT_SERVING"\n' });
    ready = true;
  });

  it('says it cannot tell when nothing listens on the socket', () => {
    const r = spawnSync(SPIRE_AGENT!, ['healthcheck', '-socketPath', join(dir, 'nothing.sock')], { encoding: 'utf8', timeout: 60_000 });
    expect([r.status, r.stderr]).toEqual([1, 'Agent is unhealthy: unable to determine health\n']);
  });
});
