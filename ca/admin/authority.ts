// Admin handlers for the authority lifecycle (anchorage authority ...): the
// requests are checked here, the steps and their refusals live in the CA
// manager (ca/manager.ts), which runs them one at a time with its rotation.
import { X509Certificate } from 'node:crypto';
import { invalid } from '@anchorage/client/errors';
import { unaryHandler } from '../../common/grpc.js';
import type { Logger } from '../../common/log.js';
import type { AdminHandlers } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { Authority } from '../../proto/gen/anchorage/admin/v1/Authority.js';
import type { AuthorityChange } from '../../proto/gen/anchorage/admin/v1/AuthorityChange.js';
import type { LaggingAgent } from '../../proto/gen/anchorage/admin/v1/LaggingAgent.js';
import type { AttestedAgent, DataStore, JournalEntry } from '../datastore/DataStore.js';
import { certFingerprint, type AuthorityKind, type AuthorityOutcome, type CaManager } from '../manager.js';

type AuthorityHandlers = Pick<AdminHandlers, 'ListAuthorities' | 'PrepareAuthority' | 'ActivateAuthority' | 'TaintAuthority' | 'RevokeAuthority'>;

export interface AuthorityDeps {
  ca: CaManager;
  datastore: DataStore;
  now: () => number;
  logger: Logger;
}

const KINDS: readonly AuthorityKind[] = ['x509', 'jwt', 'root'];
/** Longest journal id we make (`root-` + a UUID); anything longer is not one of ours. */
const MAX_ID = 64;

function kindOf(kind: string): AuthorityKind {
  if (!(KINDS as readonly string[]).includes(kind)) throw invalid(`admin: kind must be one of ${KINDS.join(', ')} (got ${JSON.stringify(kind.slice(0, 40))})`);
  return kind as AuthorityKind;
}

function idOf(id: string): string | undefined {
  if (id === '') return undefined;
  if (id.length > MAX_ID || !/^[a-z0-9][a-z0-9-]*$/.test(id)) throw invalid(`admin: id ${JSON.stringify(id.slice(0, MAX_ID))} is not an authority id (see anchorage authority <kind> list)`);
  return id;
}

function lagging(a: AttestedAgent): LaggingAgent {
  return { spiffe_id: a.spiffeId, bundle_sequence: a.report?.bundleSequence ?? 0, last_seen_at: a.report?.seenAt ?? 0 };
}

function subjectOf(der: Uint8Array | undefined): string {
  if (!der) return '';
  return new X509Certificate(der).subject.replaceAll('\n', ', ');
}

/** The proto view of a journal row; agents holding it counted from their reports. */
export function toAuthority(r: JournalEntry, ca: CaManager, roots: JournalEntry[], agents: AttestedAgent[]): Authority {
  const published = r.publishedSequence ?? 0;
  return {
    id: r.id,
    kind: r.kind,
    status: r.status,
    tainted: Boolean(r.taintedAt),
    revoked: Boolean(r.revokedAt),
    fingerprint: r.certDer ? certFingerprint(r.certDer) : '',
    kid: r.kid ?? '',
    subject: subjectOf(r.certDer),
    not_before: r.notBefore,
    not_after: r.notAfter,
    issuer_id: r.kind === 'x509' ? (ca.issuerOf(r, roots) ?? '') : '',
    key_id: r.revokedAt ? '' : r.keyId,
    tainted_at: r.taintedAt ?? 0,
    revoked_at: r.revokedAt ?? 0,
    published_sequence: published,
    server_id: r.serverId ?? '',
    agents_holding:
      r.kind === 'x509' ? -1 : published === 0 || r.revokedAt ? 0 : agents.filter((a) => (a.report?.bundleSequence ?? 0) >= published).length,
  };
}

export function authorityHandlers(deps: AuthorityDeps): AuthorityHandlers {
  const { ca, datastore: ds, logger: log } = deps;

  /** Agents that count: not evicted, SVID unexpired. */
  const liveAgents = async () => {
    const now = Math.floor(deps.now() / 1000);
    return (await ds.listAgents()).filter((a) => !a.evicted && a.certNotAfter > now);
  };

  const change = async (o: AuthorityOutcome): Promise<AuthorityChange> => {
    const [journal, agents] = await Promise.all([ca.journal(), liveAgents()]);
    const roots = journal.filter((r) => r.kind === 'root');
    log.warn({ authority: o.row.id, kind: o.row.kind, also: o.also.map((r) => r.id), lostTrust: o.lostTrust.length }, `admin: ${o.message}`);
    return {
      authority: toAuthority(o.row, ca, roots, agents),
      also: o.also.map((r) => toAuthority(r, ca, roots, agents)),
      lost_trust: o.lostTrust.map(lagging),
      message: o.message,
    };
  };

  return {
    ListAuthorities: unaryHandler(log, 'ListAuthorities', async (req) => {
      const kind = kindOf(req.kind);
      const [journal, agents] = await Promise.all([ca.journal(), liveAgents()]);
      const roots = journal.filter((r) => r.kind === 'root');
      const rows = journal.filter((r) => r.kind === kind && r.status !== 'preparing').sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
      // Who lags behind the newest root or key in the bundle (root: the gate on removing an old one).
      const needed = Math.max(0, ...rows.filter((r) => kind !== 'x509' && !r.revokedAt).map((r) => r.publishedSequence ?? 0));
      const behind = kind === 'x509' ? [] : agents.filter((a) => (a.report?.bundleSequence ?? 0) < needed).sort((a, b) => a.spiffeId.localeCompare(b.spiffeId));
      return {
        authorities: rows.map((r) => toAuthority(r, ca, roots, agents)),
        bundle_sequence: ca.bundle().sequence ?? 0,
        agents: agents.length,
        lagging: behind.map(lagging),
      };
    }),
    PrepareAuthority: unaryHandler(log, 'PrepareAuthority', async (req) => {
      const kind = kindOf(req.kind);
      if (req.id !== '') throw invalid('admin: prepare makes a new authority; it takes no id');
      if (req.force) throw invalid('admin: prepare takes no force');
      return change(await ca.prepareAuthority(kind));
    }),
    ActivateAuthority: unaryHandler(log, 'ActivateAuthority', async (req) => {
      const kind = kindOf(req.kind);
      if (req.force && kind !== 'root') throw invalid('admin: force applies to root activate, and to root and x509 revoke, only');
      return change(await ca.activateAuthority(kind, idOf(req.id), req.force));
    }),
    TaintAuthority: unaryHandler(log, 'TaintAuthority', async (req) => {
      const kind = kindOf(req.kind);
      if (req.force) throw invalid('admin: taint takes no force');
      return change(await ca.taintAuthority(kind, idOf(req.id)));
    }),
    RevokeAuthority: unaryHandler(log, 'RevokeAuthority', async (req) => {
      const kind = kindOf(req.kind);
      if (req.force && kind === 'jwt') throw invalid('admin: force applies to root activate, and to root and x509 revoke, only');
      return change(await ca.revokeAuthority(kind, idOf(req.id), req.force));
    }),
  };
}
