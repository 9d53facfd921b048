import { closeSync, openSync, readSync } from 'node:fs';
import { z } from 'zod';
import { AnchorageError, errorMessage, invalid } from '@anchorage/client/errors';
import { quote } from '../common/text.js';
import type { Entry } from '../proto/gen/anchorage/admin/v1/Entry.js';
import type { EntryResult__Output } from '../proto/gen/anchorage/admin/v1/EntryResult.js';
import { esc, out, withAdmin } from './args.js';

/**
 * `anchorage entry create --data FILE|-`: many entries from a JSON file in
 * SPIRE's `entry create -data` shape, sent with BatchCreateEntry (each call
 * one datastore transaction, each entry its own result).
 *
 *   {"entries": [{"spiffe_id": "spiffe://td/web", "parent_id": "spiffe://td/...",
 *                 "selectors": [{"type": "unix", "value": "uid:1000"}],
 *                 "x509_svid_ttl": 3600, "jwt_svid_ttl": 300, "dns_names": [...],
 *                 "federates_with": [...], "hint": "...", "admin": false, "downstream": false}]}
 *
 * Keys SPIRE has and Anchorage does not (entry_expiry, store_svid, ttl...)
 * are refused by name rather than ignored: an entry must not be created
 * with less than its file asked for.
 */

/** The largest file read: 100,000 entries of a few hundred bytes each fit many times over. */
export const MAX_DATA_BYTES = 64 * 1024 * 1024;
/** Entries in one file. */
export const MAX_DATA_ENTRIES = 100_000;
/** Entries per BatchCreateEntry call (the server takes up to 10,000). */
const CALL_ENTRIES = 2_000;
/** JSON bytes of entries per call: well under gRPC's 4 MiB message limit, whatever the entries hold. */
const CALL_BYTES = 2 * 1024 * 1024;

const ttl = z.number().int().min(0).max(2 ** 31 - 1).default(0);
const strings = z.array(z.string()).default([]);
const entrySchema = z
  .object({
    spiffe_id: z.string(),
    parent_id: z.string(),
    selectors: z.array(z.object({ type: z.string(), value: z.string() }).strict()).min(1),
    x509_svid_ttl: ttl,
    jwt_svid_ttl: ttl,
    dns_names: strings,
    federates_with: strings,
    hint: z.string().default(''),
    admin: z.boolean().default(false),
    downstream: z.boolean().default(false),
  })
  .strict();
const fileSchema = z.object({ entries: z.array(entrySchema).min(1).max(MAX_DATA_ENTRIES) }).strict();

/** `spiffe://td` (SPIRE's form in federates_with) or `td`: the trust domain name. */
function trustDomainName(s: string): string {
  return s.startsWith('spiffe://') && !s.slice('spiffe://'.length).includes('/') ? s.slice('spiffe://'.length) : s;
}

/** A zod issue path as `entries[3].selectors[0].type`. */
function issuePath(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i === 0 ? '' : '.'}${String(k)}`)).join('') || '(top level)';
}

/** Reads a file or standard input ("-"), refusing more than `max` bytes without reading them all. */
function readBounded(file: string, max: number): string {
  let fd: number;
  try {
    fd = file === '-' ? 0 : openSync(file, 'r');
  } catch (err) {
    throw invalid(`cli: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(1 << 20);
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (err) {
        throw invalid(`cli: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
      }
      if (n === 0) break;
      total += n;
      if (total > max) throw invalid(`cli: ${file} is larger than ${max / 1024 / 1024} MiB`);
      chunks.push(chunk.subarray(0, n));
    }
  } finally {
    if (fd !== 0) closeSync(fd);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The entries of a `--data` file, checked for shape (the server checks the values). */
export function parseEntryData(text: string, file: string): Entry[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalid(`cli: ${file} is not JSON: ${errorMessage(err)}`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const problem = issue.code === 'unrecognized_keys' ? `unknown key ${issue.keys.map((k) => quote(k)).join(', ')}` : issue.message.replace(/^Invalid input: /, '');
    throw invalid(`cli: ${file}: ${issuePath(issue.path)}: ${problem.charAt(0).toLowerCase()}${problem.slice(1)}`);
  }
  return parsed.data.entries.map((e) => ({ ...e, federates_with: e.federates_with.map(trustDomainName) }));
}

/** Calls of at most CALL_ENTRIES entries and about CALL_BYTES of JSON each. */
function calls(entries: Entry[]): Entry[][] {
  const out: Entry[][] = [];
  let current: Entry[] = [];
  let bytes = 0;
  for (const e of entries) {
    const size = JSON.stringify(e).length;
    if (current.length > 0 && (current.length === CALL_ENTRIES || bytes + size > CALL_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * `entry create --data FILE|-` (its flags already parsed). Prints one
 * result per entry, in the file's order; exits 1 when any was refused.
 */
export async function entryBatchCommand(file: string, v: { socket?: string; config?: string; json?: boolean }): Promise<void> {
  const entries = parseEntryData(readBounded(file, MAX_DATA_BYTES), file);
  const results: EntryResult__Output[] = [];
  await withAdmin(v, async (a) => {
    for (const batch of calls(entries)) {
      const res = await a.call('BatchCreateEntry', { entries: batch }, 120_000);
      if (res.results.length !== batch.length) {
        throw new AnchorageError('internal', `cli: the server answered ${res.results.length} results for ${batch.length} entries`);
      }
      results.push(...res.results);
    }
  });
  const failed = results.filter((r) => r.code !== 0).length;
  out(
    v.json,
    results.map((r, i) =>
      r.code === 0 ? { index: i, created: true, entry: r.entry } : { index: i, created: false, code: r.code, message: r.message, spiffe_id: entries[i]!.spiffe_id },
    ),
    () =>
      results
        .map((r, i) =>
          r.code === 0
            ? `created entries[${i}] ${esc(r.entry!.id)} ${esc(r.entry!.spiffe_id)}\n`
            : `FAILED  entries[${i}] ${esc(entries[i]!.spiffe_id ?? '')}: ${esc(r.message)}\n`,
        )
        .join('') + `${results.length - failed} of ${results.length} entries created\n`,
  );
  if (failed > 0) throw new AnchorageError('invalid_argument', `cli: ${failed} of ${results.length} entries were not created`);
}
