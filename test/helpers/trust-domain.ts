// A real trust domain for tests: `anchorage server run` on its own SoftHSM2
// token and `anchorage agent run` attested to it with a join token, each its
// own process, with registration entries parented by the agent. Used by the
// interop suites (test/interop/) and the federation tests (two of them).
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Admin } from '../../cli/client.js';
import { loadWorkloadProto } from '@anchorage/client/proto';
import type { X509SVIDResponse__Output } from '@anchorage/client/proto/gen/X509SVIDResponse';
import { cli, cliAsync, freePort, startAgentProcess, startServerProcess, writeFile, type AnchorageProcess } from './process.js';
import { createSoftHsmToken, writePkcs11ServerConfig } from './softhsm.js';

/** Runs the closers in reverse order; used both by close() and when a start fails half-way. */
export function closerList(): { push(c: () => Promise<unknown> | unknown): void; close(): Promise<void> } {
  const closers: (() => Promise<unknown> | unknown)[] = [];
  return {
    push: (c) => void closers.push(c),
    close: async () => {
      for (const c of closers.reverse()) await c();
      closers.length = 0;
    },
  };
}

/**
 * The first FetchX509SVID answer this process gets from the Workload API at
 * `socket`, once it serves `spiffeId` (the agent mints an entry's SVID a
 * moment after the entry is created; until then callers get PERMISSION_DENIED).
 */
export async function waitForSvid(socket: string, spiffeId: string, timeoutMs: number): Promise<X509SVIDResponse__Output> {
  const client = new (loadWorkloadProto().SpiffeWorkloadAPI)(`unix://${socket}`, grpc.credentials.createInsecure());
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  try {
    for (;;) {
      const got = await new Promise<X509SVIDResponse__Output | undefined>((resolve) => {
        const md = new grpc.Metadata();
        md.set('workload.spiffe.io', 'true');
        const call = client.FetchX509SVID({}, md, { deadline: Date.now() + 5_000 });
        call.on('data', (m: X509SVIDResponse__Output) => {
          call.cancel();
          if (m.svids.some((s) => s.spiffe_id === spiffeId)) resolve(m);
          else {
            last = `served ${m.svids.map((s) => s.spiffe_id).join(', ') || 'no SVID'}`;
            resolve(undefined);
          }
        });
        call.on('error', (e: grpc.ServiceError) => {
          if (e.code !== grpc.status.CANCELLED) last = `${grpc.status[e.code]}: ${e.details}`;
          resolve(undefined);
        });
      });
      if (got) return got;
      if (Date.now() > deadline) throw new Error(`interop: the agent did not serve ${spiffeId} within ${timeoutMs} ms (${last})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.close();
  }
}

export interface EntrySpec {
  spiffeId: string;
  /** Selectors as "type:value", e.g. `unix:uid:0`. */
  selectors: string[];
  hint?: string;
  dnsNames?: string[];
  federatesWith?: string[];
  /** The entry's X509-SVID lifetime in seconds (`entry create --x509-ttl`); the server's default if unset. */
  x509SvidTtl?: number;
}

export interface TrustDomainOptions {
  trustDomain: string;
  /** Entries parented by the agent; the harness waits until the first one is served to this process. */
  entries: EntrySpec[];
  /** server.yaml durations (defaults 1h / 5m / 24h). */
  x509SvidTtl?: string;
  jwtSvidTtl?: string;
  caTtl?: string;
  /** Extra server.yaml text (e.g. a federation block). */
  serverYaml?: string;
  /** Extra agent.yaml text (e.g. an sds or a metrics block). */
  agentYaml?: string;
  /** The `anchorage` to run (default the repository's bin/anchorage.js), e.g. one installed from the tarball. */
  bin?: string;
}

export interface RealTrustDomain {
  trustDomain: string;
  adminSocket: string;
  /** Environment for `anchorage` commands against this server (SOFTHSM2_CONF set). */
  env: NodeJS.ProcessEnv;
  admin: Admin;
  /** The agent's Workload API: `unix:///…/api.sock` and the bare path. */
  endpoint: string;
  workloadSocket: string;
  agentId: string;
  /** Entry IDs, in the order of options.entries. */
  entryIds: string[];
  /** Makes the agent mint a new X509-SVID for entry i at once (changes its hint); returns the new hint. */
  rotate(i?: number): Promise<string>;
  /** The tails of the server's and agent's logs, for failure messages. */
  diagnostics(): string;
  /** Everything the agent logged so far (JSON lines). */
  agentLog(): string;
  /** Everything the server logged so far (JSON lines). */
  serverLog(): string;
  /** The agent process's pid (for its RSS). */
  agentPid: number;
  close(): Promise<void>;
}

/**
 * The real thing: `anchorage server run` on a fresh SoftHSM2 token and
 * `anchorage agent run` attested with a join token, each its own process,
 * with the given entries parented by the agent. `dir` must be reachable by
 * every uid that will call the Workload API (0755 all the way down).
 */
export async function startTrustDomain(dir: string, opts: TrustDomainOptions): Promise<RealTrustDomain> {
  const TD = opts.trustDomain;
  const closers = closerList();
  let server: AnchorageProcess | undefined;
  let agent: AnchorageProcess | undefined;
  try {
    const hsm = createSoftHsmToken(`anchorage-${TD}`.slice(0, 32), '1357');
    closers.push(() => hsm.cleanup());
    const env = { ...hsm.env };
    const port = await freePort();
    const adminSocket = join(dir, 'admin.sock');
    const publicDir = join(dir, 'public');
    mkdirSync(publicDir, { recursive: true, mode: 0o755 });
    chmodSync(publicDir, 0o755);
    const workloadSocket = join(publicDir, 'api.sock');
    const serverConfig = writePkcs11ServerConfig(hsm, { dir, trustDomain: TD, socket: adminSocket, dataDir: join(dir, 'server'), port, extra: `ca:\n  ttl: ${opts.caTtl ?? '24h'}\nx509_svid_ttl: ${opts.x509SvidTtl ?? '1h'}\njwt_svid_ttl: ${opts.jwtSvidTtl ?? '5m'}\n${opts.serverYaml ?? ''}` });
    server = await startServerProcess(serverConfig, adminSocket, env, opts.bin);
    closers.push(() => server?.kill('SIGTERM'));
    const admin = new Admin(adminSocket);
    closers.push(() => admin.close());

    const token = await admin.call('CreateJoinToken', { spiffe_id: '', ttl: 600 });
    const bundle = cli(['bundle', 'show', '--format', 'pem', '--socket', adminSocket], env, opts.bin);
    if (bundle.code !== 0) throw new Error(`interop: anchorage bundle show failed (exit ${bundle.code}): ${bundle.stderr}`);
    writeFile(join(dir, 'bundle.pem'), bundle.stdout);
    const agentConfig = writeFile(
      join(dir, 'agent.yaml'),
      `trust_domain: ${TD}
server_address: 127.0.0.1:${port}
data_dir: ${join(dir, 'agent')}
socket_path: ${workloadSocket}
join_token: ${token.token}
trust_bundle_file: ${join(dir, 'bundle.pem')}
${opts.agentYaml ?? ''}`,
    );
    agent = await startAgentProcess(agentConfig, workloadSocket, env, opts.bin);
    closers.push(() => agent?.kill('SIGTERM'));
    const agentId = `spiffe://${TD}/anchorage/agent/join_token/${token.token}`;

    const entryIds: string[] = [];
    const hints: string[] = [];
    for (const e of opts.entries) {
      const hint = e.hint ?? '';
      const created = await admin.call('CreateEntry', {
        entry: {
          spiffe_id: e.spiffeId,
          parent_id: agentId,
          selectors: e.selectors.map((s) => {
            const i = s.indexOf(':');
            return { type: s.slice(0, i), value: s.slice(i + 1) };
          }),
          hint,
          dns_names: e.dnsNames ?? [],
          federates_with: e.federatesWith ?? [],
          x509_svid_ttl: e.x509SvidTtl ?? 0,
        },
      });
      entryIds.push(created.id);
      hints.push(hint);
    }
    if (opts.entries[0]) await waitForSvid(workloadSocket, opts.entries[0].spiffeId, 30_000);

    let rotations = 0;
    return {
      trustDomain: TD,
      adminSocket,
      env,
      admin,
      endpoint: `unix://${workloadSocket}`,
      workloadSocket,
      agentId,
      entryIds,
      // A new revision of the entry (here: its hint) makes the agent mint a new SVID at once.
      rotate: async (i = 0) => {
        const hint = `${hints[i] || 'entry'}-rotated-${++rotations}`;
        await admin.call('UpdateEntry', { id: entryIds[i], patch: { hint } });
        return hint;
      },
      agentLog: () => agent?.log() ?? '',
      serverLog: () => server?.log() ?? '',
      agentPid: agent.child.pid!,
      diagnostics: () => `\n--- agent log (tail) ---\n${agent?.log().slice(-4000) ?? ''}\n--- server log (tail) ---\n${server?.log().slice(-2000) ?? ''}`,
      close: closers.close,
    };
  } catch (err) {
    const logs = `${agent ? `\n--- agent log ---\n${agent.log().slice(-4000)}` : ''}${server ? `\n--- server log ---\n${server.log().slice(-4000)}` : ''}`;
    await closers.close();
    if (logs && err instanceof Error) err.message += logs;
    throw err;
  }
}

/** `anchorage <args> --socket <td's admin socket> --json`, parsed; throws (with the logs) on a non-zero exit. */
export async function cliJson<T>(td: Pick<RealTrustDomain, 'adminSocket' | 'env' | 'diagnostics'>, args: string[]): Promise<T> {
  const r = await cliAsync([...args, '--socket', td.adminSocket, '--json'], td.env);
  if (r.code !== 0) throw new Error(`anchorage ${args.join(' ')} exited ${r.code}: ${r.stderr}${td.diagnostics()}`);
  return JSON.parse(r.stdout) as T;
}

export { until } from './until.js';
