import { chmodSync, existsSync, lstatSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import { checkPrivateDir, removeTempFiles, writeFileAtomic } from '../common/safe-file.js';
import { quote } from '../common/text.js';

/** An authorized entry as the agent holds it (in memory only: see {@link AgentState}). */
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

/**
 * What survives a restart of the agent: its identity (key and SVID, so it
 * does not need a new join token) and the bundles (to verify the server and
 * to answer bundle calls at once). Entries and workload SVIDs are not kept:
 * workload private keys never touch the disk, and the agent mints fresh
 * SVIDs after its first sync. So a write costs the same whatever the number
 * of workloads, and happens only when the identity or the bundles change.
 * Version 1 files (which also held entries and workload SVIDs with their
 * keys) are read for their identity and bundles; the rest is dropped and
 * the file is rewritten at start.
 */
export interface AgentState {
  version: 2;
  trustDomain: string;
  agent?: { spiffeId: string; keyPkcs8: string; chain: string[]; notBefore: number; notAfter: number };
  /** SPIFFE bundle document of the agent's trust domain. */
  bundle?: string;
  /** Trust domain name -> bundle document. */
  federated: Record<string, string>;
}

/** What {@link loadState} returns: the state, and whether the file was of version 1 (to be rewritten). */
export interface LoadedState extends AgentState {
  /** The file held workload keys (version 1): write the state again at once. */
  legacy?: true;
}

export const STATE_FILE = 'agent-state.json';

export function emptyState(trustDomain: string): AgentState {
  return { version: 2, trustDomain, federated: {} };
}

/**
 * The data dir holds the agent's private key: it must be a real directory (not a
 * symbolic link) owned by the agent's uid and writable by nobody else, or the
 * agent refuses to start; read access for group or others is taken away
 * (0700). The state file is 0600.
 */
export function ensureDataDir(dir: string): void {
  const st = checkPrivateDir(dir, 'agent');
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/**
 * Removes the temp files of state writes a killed agent left behind. Call
 * with the data dir locked. Returns the names removed.
 */
export function removeStateLeftovers(dir: string): string[] {
  return removeTempFiles(dir, STATE_FILE, 'agent');
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/*
 * The whole shape NodeAgent.#restore dereferences, checked before any of it
 * is used: a state file with a wrong type inside (a hand-edited file, a bit
 * flipped on disk) is refused with the key path named, instead of failing
 * later with a TypeError. Numbers are finite (zod 4). Unknown keys are
 * dropped: the entries and workload SVIDs of a version 1 file among them;
 * `federated` is absent from files written before federation.
 */
const str = z.string();
const num = z.number();
const strings = z.array(str);
const stateSchema = z.object({
  version: z.union([z.literal(1), z.literal(2)]),
  // A trust domain name's characters (spiffe/id.ts): also keeps the mismatch message below printable.
  trustDomain: str.regex(/^[a-z0-9._-]{1,255}$/, 'not a trust domain name'),
  agent: z.object({ spiffeId: str, keyPkcs8: str, chain: strings, notBefore: num, notAfter: num }).optional(),
  bundle: str.optional(),
  federated: z.record(str, str).default({}),
});

// Keeps AgentState and the schema in step: each must be assignable to the other.
type Parsed = Omit<z.output<typeof stateSchema>, 'version'> & { version: 2 };
const _sameShape: [Parsed, AgentState] extends [AgentState, Parsed] ? true : never = true;
void _sameShape;

/** `svids["e 1"].chain[0]`: a zod issue path, its keys (which come from the file) quoted unless plain names. */
function keyPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  let out = '';
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (typeof k === 'string' && /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/.test(k)) out += out ? `.${k}` : k;
    else out += `[${quote(String(k))}]`;
  }
  return out;
}

/**
 * Reads the agent's state from `dir`, or an empty state when there is none.
 * Throws failed_precondition, telling the operator to move the file away,
 * when it is not a regular file of the agent's uid, not JSON, not of the
 * shape the agent writes (the first bad key path is named), or of another
 * trust domain.
 */
export function loadState(dir: string, trustDomain: string): LoadedState {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path) && !isLink(path)) return emptyState(trustDomain);
  // A link or a file of someone else's could feed us state (keys, bundles) of their choosing.
  const st = lstatSync(path);
  const uid = process.getuid?.();
  if (!st.isFile() || (uid !== undefined && st.uid !== uid)) {
    throw new AnchorageError('failed_precondition', `agent: ${path} is not a regular file owned by uid ${uid}; move it away to start afresh`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AnchorageError('failed_precondition', `agent: ${path} is not readable agent state (${errorMessage(err)}); move it away to start afresh`);
  }
  const version = (parsed as { version?: unknown } | null)?.version;
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || (version !== 1 && version !== 2)) {
    throw new AnchorageError('failed_precondition', `agent: ${path} has an unknown format; move it away to start afresh`);
  }
  const result = stateSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const problem = issue.message.replace(/^Invalid input: /, '');
    throw new AnchorageError(
      'failed_precondition',
      `agent: ${path} is not valid agent state (${keyPath(issue.path)}: ${problem.charAt(0).toLowerCase()}${problem.slice(1)}); move it away to start afresh`,
    );
  }
  const { version: _v, ...state } = result.data;
  if (state.trustDomain !== trustDomain) {
    throw new AnchorageError('failed_precondition', `agent: ${path} belongs to trust domain "${state.trustDomain}", not "${trustDomain}"`);
  }
  return version === 1 ? { version: 2, ...state, legacy: true } : { version: 2, ...state };
}

/**
 * Written to a new temp file (unpredictable name, created exclusively,
 * links not followed), flushed to disk and renamed: a crash leaves the old
 * state or the new, never half of one. A few kilobytes, whatever the number
 * of workloads.
 */
export function saveState(dir: string, state: AgentState): void {
  const text = Buffer.from(JSON.stringify({ version: 2, trustDomain: state.trustDomain, agent: state.agent, bundle: state.bundle, federated: state.federated }));
  writeFileAtomic(dir, STATE_FILE, (fd) => {
    let off = 0;
    // writeSync may write less than asked (a disk filling up): loop until all is written or it fails.
    while (off < text.length) off += writeSync(fd, text, off, text.length - off);
  });
}
