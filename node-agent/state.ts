import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { AnchorageError, errorMessage } from '../common/errors.js';

/** One workload SVID the agent holds, with its key. */
export interface CachedSvid {
  entryId: string;
  /** Entry revision it was minted for: a changed entry is re-minted. */
  revision: number;
  keyPkcs8: string; // base64 DER
  chain: string[]; // base64 DER, leaf first
  notBefore: number;
  notAfter: number;
  /** Half-life with ±10 % jitter, fixed when minted. */
  rotateAt: number;
}

export interface CachedEntry {
  id: string;
  spiffeId: string;
  selectors: string[]; // type:value
  x509SvidTtl: number;
  jwtSvidTtl: number;
  dnsNames: string[];
  federatesWith: string[];
  hint: string;
  revision: number;
}

/** Everything the agent needs to serve workloads while the server is away. */
export interface AgentState {
  version: 1;
  trustDomain: string;
  agent?: { spiffeId: string; keyPkcs8: string; chain: string[]; notBefore: number; notAfter: number };
  /** SPIFFE bundle document of the agent's trust domain. */
  bundle?: string;
  /** Trust domain name -> bundle document. */
  federated: Record<string, string>;
  entries: CachedEntry[];
  svids: Record<string, CachedSvid>;
}

export const STATE_FILE = 'agent-state.json';

export function emptyState(trustDomain: string): AgentState {
  return { version: 1, trustDomain, federated: {}, entries: [], svids: {} };
}

/** The data dir holds private keys: it must be 0700 and the state file 0600. */
export function ensureDataDir(dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (!st.isDirectory()) throw new AnchorageError('invalid_argument', `agent: data_dir ${dir} is not a directory`);
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

export function loadState(dir: string, trustDomain: string): AgentState {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) return emptyState(trustDomain);
  let parsed: AgentState;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as AgentState;
  } catch (err) {
    throw new AnchorageError('failed_precondition', `agent: ${path} is not readable agent state (${errorMessage(err)}); move it away to start afresh`);
  }
  if (parsed.version !== 1 || typeof parsed.trustDomain !== 'string' || !Array.isArray(parsed.entries) || typeof parsed.svids !== 'object') {
    throw new AnchorageError('failed_precondition', `agent: ${path} has an unknown format; move it away to start afresh`);
  }
  if (parsed.trustDomain !== trustDomain) {
    throw new AnchorageError('failed_precondition', `agent: ${path} belongs to trust domain "${parsed.trustDomain}", not "${trustDomain}"`);
  }
  parsed.federated ??= {};
  return parsed;
}

/** Written to a temp file and renamed: a crash leaves the old state or the new, never half of one. */
export function saveState(dir: string, state: AgentState): void {
  const path = join(dir, STATE_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  renameSync(tmp, path);
}
