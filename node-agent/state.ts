import { chmodSync, existsSync, lstatSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { AnchorageError, errorMessage } from '@anchorage/client/errors';
import { checkPrivateDir, removeTempFiles, writeFileAtomic } from '../common/safe-file.js';
import { quote } from '../common/text.js';

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

/**
 * The data dir holds private keys: it must be a real directory (not a
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
 * The whole shape NodeAgent.#restore and the cache dereference, checked
 * before any of it is used: a state file with a wrong type inside (a
 * hand-edited file, a bit flipped on disk, a file of a future version that
 * kept version 1) is refused with the key path named, instead of failing
 * later with a TypeError. Numbers are finite (zod 4). Unknown keys are
 * dropped; `federated` is absent from files written before federation.
 */
const str = z.string();
const num = z.number();
const strings = z.array(str);
const stateSchema = z.object({
  version: z.literal(1),
  // A trust domain name's characters (spiffe/id.ts): also keeps the mismatch message below printable.
  trustDomain: str.regex(/^[a-z0-9._-]{1,255}$/, 'not a trust domain name'),
  agent: z.object({ spiffeId: str, keyPkcs8: str, chain: strings, notBefore: num, notAfter: num }).optional(),
  bundle: str.optional(),
  federated: z.record(str, str).default({}),
  entries: z.array(
    z.object({
      id: str,
      spiffeId: str,
      selectors: strings,
      x509SvidTtl: num,
      jwtSvidTtl: num,
      dnsNames: strings,
      federatesWith: strings,
      hint: str,
      revision: num,
    }),
  ),
  svids: z.record(
    str,
    z.object({ entryId: str, revision: num, keyPkcs8: str, chain: strings, notBefore: num, notAfter: num, rotateAt: num }),
  ),
});

// Keeps AgentState and the schema in step: each must be assignable to the other.
type Parsed = z.output<typeof stateSchema>;
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
export function loadState(dir: string, trustDomain: string): AgentState {
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
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || (parsed as { version?: unknown }).version !== 1) {
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
  const state = result.data;
  if (state.trustDomain !== trustDomain) {
    throw new AnchorageError('failed_precondition', `agent: ${path} belongs to trust domain "${state.trustDomain}", not "${trustDomain}"`);
  }
  return state;
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

/** writeSync may write less than asked (a disk filling up): loop until all is written or it fails. */
function writeAll(fd: number, text: string): void {
  const b = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < b.length) off += writeSync(fd, b, off, b.length - off);
}

/** Bytes gathered before each write. */
const WRITE_CHUNK = 1 << 20;

/**
 * Written to a new temp file (unpredictable name, created exclusively,
 * links not followed), flushed to disk and renamed: a crash leaves the old
 * state or the new, never half of one.
 */
export function saveState(dir: string, state: AgentState | AgentStateSource): void {
  writeFileAtomic(dir, STATE_FILE, (fd) => {
    let buf = '';
    const put = (text: string) => {
      buf += text;
      if (buf.length >= WRITE_CHUNK) {
        writeAll(fd, buf);
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
    writeAll(fd, buf);
  });
}
