import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
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

/**
 * What {@link saveState} writes: the same shape as {@link AgentState}, with
 * entries and SVIDs given lazily, so that 10k SVIDs are serialized one at a
 * time instead of as one 20 MB string next to a 20 MB object tree.
 */
export interface AgentStateSource extends Omit<AgentState, 'entries' | 'svids'> {
  entries: Iterable<CachedEntry>;
  svids: Iterable<CachedSvid>;
}

/** Bytes gathered before each write. */
const WRITE_CHUNK = 1 << 20;

/**
 * Written to a temp file, flushed to disk and renamed: a crash leaves the
 * old state or the new, never half of one.
 */
export function saveState(dir: string, state: AgentState | AgentStateSource): void {
  const path = join(dir, STATE_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    let buf = '';
    const put = (text: string) => {
      buf += text;
      if (buf.length >= WRITE_CHUNK) {
        writeSync(fd, buf);
        buf = '';
      }
    };
    const { entries, svids, ...head } = state;
    put(JSON.stringify(head).slice(0, -1)); // the head object, still open
    put(`${Object.keys(head).length > 0 ? ',' : ''}"entries":[`);
    let first = true;
    for (const e of entries) {
      put((first ? '' : ',') + JSON.stringify(e));
      first = false;
    }
    put('],"svids":{');
    first = true;
    const list: Iterable<CachedSvid> = Symbol.iterator in svids ? (svids as Iterable<CachedSvid>) : Object.values(svids as Record<string, CachedSvid>);
    for (const sv of list) {
      put(`${first ? '' : ','}${JSON.stringify(sv.entryId)}:${JSON.stringify(sv)}`);
      first = false;
    }
    put('}}');
    writeSync(fd, buf);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
