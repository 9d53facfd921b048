import { errorMessage } from '@anchorage/client/errors';
import { SpiffeId } from '@anchorage/client/spiffe/id';
import { parseDuration } from '../../common/duration.js';
import { escapeJsonControls } from '../../common/text.js';
import { escapeControls } from '../../ca/admin/text.js';
import type { AuditRecord__Output } from '../../proto/gen/anchorage/admin/v1/AuditRecord.js';
import { action, type CommandGroup } from '../command.js';
import { UsageError, esc, out, withAdmin } from '../args.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** --since: an RFC 3339 time with its offset, or a duration ago (10m, 2h, 7d); Unix milliseconds. */
export function parseSince(text: string, nowMs = Date.now()): number {
  if (RFC3339.test(text)) {
    const t = Date.parse(text.replace(' ', 'T'));
    if (Number.isNaN(t)) throw new UsageError(`--since: ${JSON.stringify(text)} is not a valid time`);
    if (t < 0) throw new UsageError('--since: the time is before 1970');
    return t;
  }
  let seconds: number;
  try {
    seconds = parseDuration(text, '--since', 'an RFC 3339 time like 2026-12-05T20:00:00Z, or a duration ago like 10m, 2h, 7d');
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  if (seconds <= 0) throw new UsageError('--since: the duration must be more than 0');
  return Math.max(0, nowMs - seconds * 1000);
}

/** --serial: a certificate serial in hex (colons allowed, as openssl prints them) or a JWT jti. */
export function parseSerial(text: string): string {
  if (text.includes(':')) {
    const hex = text.replaceAll(':', '');
    if (!/^[0-9A-Fa-f]{1,128}$/.test(hex)) throw new UsageError(`--serial: ${JSON.stringify(text)} is not a hex serial number`);
    return hex.toLowerCase();
  }
  if (!/^[0-9A-Za-z_-]{1,128}$/.test(text)) {
    throw new UsageError(`--serial: ${JSON.stringify(text.slice(0, 60))} is neither a hex serial number nor a JWT jti (letters, digits, - and _, at most 128)`);
  }
  return text;
}

function parseLimit(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 2 ** 31 - 1) throw new UsageError(`--limit must be a whole number from 1, not ${JSON.stringify(text)}`);
  return Number(text);
}

/** One line of text: seq, time, type, then the fields that are present. */
function recordLine(r: AuditRecord__Output): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(r.json) as Record<string, unknown>;
  } catch {
    rec = {};
  }
  const parts = [String(r.seq).padStart(6), new Date(r.time_ms).toISOString(), esc(r.type)];
  const actor = rec.actor as { uid: number; gid: number; pid: number } | undefined;
  if (actor) parts.push(`uid=${actor.uid} gid=${actor.gid} pid=${actor.pid}`);
  for (const k of ['outcome', 'spiffeId', 'agent', 'serial', 'jti', 'authority'] as const) {
    if (typeof rec[k] === 'string') parts.push(`${k}=${esc(rec[k] as string)}`);
  }
  if (typeof rec.expiresAt === 'number') parts.push(`expires=${new Date(rec.expiresAt * 1000).toISOString()}`);
  const details = rec.details as Record<string, unknown> | undefined;
  if (details) for (const [k, v] of Object.entries(details)) if (k !== 'sig') parts.push(`${esc(k)}=${esc(String(v))}`);
  return parts.join(' ');
}

export const command: CommandGroup = {
  name: 'audit',
  summary: 'The tamper-evident audit log.',
  actions: {
    list: action({
      name: 'audit list',
      synopsis: '[--since T] [--spiffe-id ID] [--serial S] [--limit N] [--follow] [--output text|json]',
      summary:
        'Lists audit records in order: admin calls (with the caller\'s uid, gid and pid), SVIDs issued, attestations,\n' +
        'renewals, evictions, federation and authority changes, and the log\'s own checkpoints. --output json prints\n' +
        'JSON lines, one whole record per line (the export: every line can be checked again offline).',
      flags: {
        since: { type: 'string', arg: 'T', help: 'records from this time on: RFC 3339 with offset (2026-12-05T20:00:00Z) or a duration ago (10m, 2h, 7d)' },
        'spiffe-id': { type: 'string', arg: 'ID', help: 'records about this SPIFFE ID' },
        serial: { type: 'string', arg: 'S', help: 'records with this X.509 serial (hex, colons allowed) or JWT jti' },
        limit: { type: 'string', arg: 'N', help: 'at most N existing records' },
        follow: { type: 'boolean', help: 'then print new records as they are written, until interrupted' },
      },
      async run(v) {
        const request = {
          since_ms: v.since !== undefined ? parseSince(v.since) : 0,
          spiffe_id: '',
          serial: v.serial !== undefined ? parseSerial(v.serial) : '',
          limit: v.limit !== undefined ? parseLimit(v.limit) : 0,
          follow: v.follow === true,
          after_seq: 0,
        };
        if (v['spiffe-id'] !== undefined) {
          try {
            request.spiffe_id = SpiffeId.parse(v['spiffe-id']).toString();
          } catch (err) {
            throw new UsageError(`--spiffe-id: ${errorMessage(err)}`);
          }
        }
        let n = 0;
        await withAdmin(v, (a) =>
          a.serverStream('ListAuditRecords', request, (r) => {
            n++;
            process.stdout.write(v.json ? escapeJsonControls(r.json) + '\n' : escapeControls(recordLine(r)) + '\n');
          }),
        );
        if (n === 0 && !v.json) process.stderr.write('No audit records\n');
      },
    }),
    verify: action({
      name: 'audit verify',
      synopsis: '[--json]',
      summary:
        'Checks the whole audit log: every record\'s hash and link to the one before, that no seq is missing or out\n' +
        'of place, every checkpoint\'s signature with the audit key in the key manager, and that the log reaches the\n' +
        'last record the server wrote. Exits 1 and names the first bad record if anything is wrong.',
      flags: {},
      async run(v) {
        const res = await withAdmin(v, (a) => a.call('VerifyAudit', {}, 600_000));
        out(v.json, res, () =>
          res.ok
            ? `Audit log OK: ${res.records_checked} records, ${res.checkpoints_checked} signed checkpoints, head at record ${res.head_seq}\n`
            : `Audit log BAD: first bad record ${res.first_bad_seq}: ${esc(res.reason)}\n` +
              `  (${res.records_checked} records good before it; ${res.checkpoints_checked} signed checkpoints checked; head at record ${res.head_seq})\n`,
        );
        return res.ok ? 0 : 1;
      },
    }),
  },
};
