import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './process.js';

/** The plain-JS Workload API client run as another process (and uid). */
export const WORKLOAD_CLIENT = join(REPO, 'workload-api', 'testdata', 'client.mjs');

/** What the client script printed: the first response, or the status it failed with. */
export interface WorkloadClientResult {
  ok: boolean;
  code?: number;
  details?: string;
  response?: {
    svids?: { spiffe_id: string; x509_svid: string; x509_svid_key: string; bundle: string; hint: string }[];
    federated_bundles?: Record<string, string>;
    svids_jwt?: unknown;
  };
}

/** Runs `node args…` as `uid` (gid = uid) from `/` and parses the one JSON line it prints. */
export function runNodeAs<T>(uid: number, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { uid, gid: uid, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        resolve(JSON.parse(out.trim()) as T);
      } catch {
        reject(new Error(`node ${args[0]} as uid ${uid} exited ${code}: ${out} ${err}`));
      }
    });
  });
}

/** Runs the client script as `uid` (gid = uid) and returns the JSON line it printed. */
export function runWorkloadClient(uid: number, opts: Record<string, unknown>): Promise<WorkloadClientResult> {
  return runNodeAs<WorkloadClientResult>(uid, [WORKLOAD_CLIENT, JSON.stringify(opts)]);
}
