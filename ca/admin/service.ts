import { randomBytes } from 'node:crypto';
import { AnchorageError, invalid } from '@anchorage/client/errors';
import { statusFor, toServiceError, unaryHandler } from '../../common/grpc.js';
import type { handleUnaryCall } from '@grpc/grpc-js';
import type { Logger } from '../../common/log.js';
import { SpiffeId, type TrustDomain } from '@anchorage/client/spiffe/id';
import type { AdminHandlers } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { Entry } from '../../proto/gen/anchorage/admin/v1/Entry.js';
import type { EntryResult } from '../../proto/gen/anchorage/admin/v1/EntryResult.js';
import type { EntryPatch__Output } from '../../proto/gen/anchorage/admin/v1/EntryPatch.js';
import type { DataStore, NewEntry, RegistrationEntry } from '../datastore/DataStore.js';
import { checkFederatesWith, validateEntry } from '../entries.js';
import { checkNotReserved } from '../reserved.js';
import { checkRequestText } from './text.js';
import { rotationTimes, type CaManager } from '../manager.js';
import type { KeyManager } from '../keymanager/KeyManager.js';
import type { ChangeFeed } from '../changes.js';
import { serverId } from '../agentapi/service.js';
import { deleteFederatedBundle, setFederatedBundle, toFederatedBundle } from '../federation/static.js';
import type { FederationClient } from '../federation/client.js';
import { federationHandlers } from './federation.js';
import { listTrustAnchors } from './anchors.js';
import { authorityHandlers } from './authority.js';
import type { AttestedAgent, JournalEntry } from '../datastore/DataStore.js';
import type { Agent } from '../../proto/gen/anchorage/admin/v1/Agent.js';
import type { Minter } from '../minter.js';
import { NO_AUDIT, type AuditActor, type AuditSink } from '../audit/event.js';
import type { AuditLog } from '../audit/log.js';
import { auditHandlers, withAuditRecords } from './audit.js';

export interface AdminServiceDeps {
  datastore: DataStore;
  /** Told about every committed change that connected agents must see. */
  feed: ChangeFeed;
  ca: CaManager;
  minter: Minter;
  /** Intermediate CA lifetime (seconds): no entry TTL may exceed it. */
  caTtl: number;
  /** The CA's key manager: its kind, and how its HSM protects the keys (GetKeyProtection). */
  keyManager: Pick<KeyManager, 'kind' | 'keyProtection'>;
  /** Where the root's key is, when the server holds it (a self-signed root). */
  rootKeyManager?: Pick<KeyManager, 'kind' | 'keyProtection'>;
  /** Fetches the bundles of federated trust domains (ca/federation/client.ts). */
  federation: FederationClient;
  now?: () => number;
  logger: Logger;
  /** Every admin call is recorded here, with its caller; absent, nothing is recorded and the audit RPCs refuse. */
  audit?: AuditLog;
  /** The caller of a call, from the admin socket (ca/admin/listener.ts). */
  actorOf?: (call: { getPeer(): string }) => AuditActor | undefined;
}

/**
 * Entries per BatchCreateEntry call: one transaction of this many inserts
 * takes well under a second, and a request of this many maximal entries
 * is refused by gRPC's 4 MiB message limit anyway (the CLI splits by size).
 */
export const MAX_BATCH_ENTRIES = 10_000;

/** A per-entry refusal of BatchCreateEntry; anything but our own error is a bug and fails the call. */
function entryFailure(err: unknown): EntryResult {
  if (!(err instanceof AnchorageError)) throw err;
  return { code: statusFor(err.code), message: err.message };
}

export const DEFAULT_JOIN_TOKEN_TTL = 600;
const MAX_JOIN_TOKEN_TTL = 7 * 86400;

function toProto(e: RegistrationEntry): Entry {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId,
    selectors: e.selectors,
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    dns_names: e.dnsNames,
    federates_with: e.federatesWith,
    hint: e.hint,
    admin: e.admin,
    downstream: e.downstream,
    revision: e.revision,
    created_at: e.createdAt,
  };
}

function fromProto(e: {
  spiffe_id: string;
  parent_id: string;
  selectors: { type: string; value: string }[];
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string[];
  federates_with: string[];
  hint: string;
  admin: boolean;
  downstream: boolean;
}): NewEntry {
  return {
    spiffeId: e.spiffe_id,
    parentId: e.parent_id,
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509SvidTtl: e.x509_svid_ttl,
    jwtSvidTtl: e.jwt_svid_ttl,
    dnsNames: e.dns_names,
    federatesWith: e.federates_with,
    hint: e.hint,
    admin: e.admin,
    downstream: e.downstream,
  };
}

function applyPatch(base: RegistrationEntry, p: EntryPatch__Output): NewEntry {
  return {
    spiffeId: p.spiffe_id ?? base.spiffeId,
    parentId: p.parent_id ?? base.parentId,
    selectors: p.selectors ? p.selectors.items.map((s) => ({ type: s.type, value: s.value })) : base.selectors,
    x509SvidTtl: p.x509_svid_ttl ?? base.x509SvidTtl,
    jwtSvidTtl: p.jwt_svid_ttl ?? base.jwtSvidTtl,
    dnsNames: p.dns_names ? p.dns_names.items : base.dnsNames,
    federatesWith: p.federates_with ? p.federates_with.items : base.federatesWith,
    hint: p.hint ?? base.hint,
    admin: p.admin ?? base.admin,
    downstream: p.downstream ?? base.downstream,
  };
}

function agentToProto(a: AttestedAgent, banned: boolean): Agent {
  return {
    banned,
    spiffe_id: a.spiffeId,
    attestation_type: a.attestationType,
    cert_serial: a.certSerial,
    cert_not_after: a.certNotAfter,
    selectors: a.selectors,
    evicted: a.evicted,
    created_at: a.createdAt,
    updated_at: a.updatedAt,
    last_seen_at: a.report?.seenAt ?? 0,
    bundle_sequence: a.report?.bundleSequence ?? 0,
    clock_skew_ms: a.report?.clockSkewMs ?? 0,
  };
}

/** When a CA key's successor is due to be prepared and activated; none for the root, which does not rotate. */
function rotationOf(r: JournalEntry): { prepare_at: number; activate_at: number } {
  if (r.kind === 'root' || r.notAfter === 0) return { prepare_at: 0, activate_at: 0 };
  const t = rotationTimes(r.notBefore, r.notAfter);
  return { prepare_at: t.prepareAt, activate_at: t.activateAt };
}

async function requireAgent(ds: DataStore, spiffeId: string): Promise<AttestedAgent> {
  const id = SpiffeId.parse(required(spiffeId, 'spiffe_id')).toString();
  const agent = await ds.getAgent(id);
  if (!agent) throw new AnchorageError('not_found', `admin: no agent ${id}`);
  return agent;
}

/** An agent ID of this trust domain (`spiffe://<td>/anchorage/agent/<type>/<id>`), canonical. */
function agentIdOf(spiffeId: string, td: TrustDomain): string {
  const id = SpiffeId.parse(required(spiffeId, 'spiffe_id'));
  if (!id.trustDomain.equals(td) || !/^\/anchorage\/agent\/[^/]+\/./.test(id.path)) {
    throw invalid(`admin: ${id.toString()} is not an agent ID of ${td.name} (spiffe://${td.name}/anchorage/agent/<type>/...)`);
  }
  return id.toString();
}

function required(value: string, what: string): string {
  if (!value) throw invalid(`admin: ${what} is required`);
  return value;
}

/**
 * Every handler, behind one check of every string in its request for control
 * and bidirectional formatting characters (ca/admin/text.ts): one place, so
 * no field or future RPC is forgotten.
 */
function withTextCheck(handlers: AdminHandlers, log: Logger): AdminHandlers {
  const guarded: Record<string, handleUnaryCall<unknown, unknown>> = {};
  for (const [method, handler] of Object.entries(handlers) as Array<[string, handleUnaryCall<unknown, unknown>]>) {
    guarded[method] = (call, callback) => {
      try {
        checkRequestText(call.request);
      } catch (err) {
        callback(toServiceError(err, log, method));
        return;
      }
      handler(call, callback);
    };
  }
  return guarded as unknown as AdminHandlers;
}

/** The admin API handlers. The transport (a 0600 Unix socket) is the authorization. */
export function adminHandlers(deps: AdminServiceDeps): AdminHandlers {
  const sink: AuditSink = deps.audit ?? NO_AUDIT;
  const audit = auditHandlers({ audit: sink, log: deps.audit, actorOf: deps.actorOf, logger: deps.logger });
  const unary = withTextCheck({ ...handlers(deps, sink), VerifyAudit: audit.VerifyAudit } as AdminHandlers, deps.logger);
  // Every unary call is recorded with its caller and outcome; the stream records itself when it starts.
  return { ...withAuditRecords(unary, { audit: sink, actorOf: deps.actorOf, logger: deps.logger }), ListAuditRecords: audit.ListAuditRecords };
}

function handlers(deps: AdminServiceDeps, audit: AuditSink): Omit<AdminHandlers, 'ListAuditRecords' | 'VerifyAudit'> {
  const { datastore: ds, ca, minter, feed, logger: log } = deps;
  const now = () => Math.floor((deps.now ?? Date.now)() / 1000);
  const td = ca.trustDomain;

  return {
    CreateEntry: unaryHandler(log, 'CreateEntry', async (req) => {
      if (!req.entry) throw invalid('admin: entry is required');
      const entry = validateEntry(fromProto(req.entry), td, deps.caTtl);
      await checkFederatesWith(ds, entry.federatesWith);
      const created = await ds.createEntry(entry);
      feed.entriesChanged([created.id]);
      log.info({ id: created.id, spiffeId: created.spiffeId }, 'admin: entry created');
      return toProto(created);
    }),
    BatchCreateEntry: unaryHandler(log, 'BatchCreateEntry', async (req) => {
      if (req.entries.length === 0) throw invalid('admin: entries must not be empty');
      if (req.entries.length > MAX_BATCH_ENTRIES) throw invalid(`admin: at most ${MAX_BATCH_ENTRIES} entries per call (got ${req.entries.length})`);
      const results: EntryResult[] = new Array<EntryResult>(req.entries.length);
      const valid: { at: number; entry: NewEntry }[] = [];
      /** Trust domains already found federated: each is looked up once per call. */
      const federated: string[] = [];
      for (const [at, e] of req.entries.entries()) {
        try {
          const entry = validateEntry(fromProto(e), td, deps.caTtl);
          await checkFederatesWith(ds, entry.federatesWith, federated);
          federated.push(...entry.federatesWith.filter((t) => !federated.includes(t)));
          valid.push({ at, entry });
        } catch (err) {
          results[at] = entryFailure(err);
        }
      }
      const created = valid.length > 0 ? await ds.createEntries(valid.map((v) => v.entry)) : [];
      const ids: string[] = [];
      created.forEach((r, k) => {
        const at = valid[k]!.at;
        if ('error' in r) results[at] = entryFailure(r.error);
        else {
          results[at] = { code: 0, message: '', entry: toProto(r.entry) };
          ids.push(r.entry.id);
        }
      });
      if (ids.length > 0) feed.entriesChanged(ids);
      log.info({ requested: req.entries.length, created: ids.length }, 'admin: entries created');
      return { results };
    }),
    GetEntry: unaryHandler(log, 'GetEntry', async (req) => {
      const e = await ds.getEntry(required(req.id, 'id'));
      if (!e) throw new AnchorageError('not_found', `admin: no entry with id ${req.id}`);
      return toProto(e);
    }),
    ListEntries: unaryHandler(log, 'ListEntries', async (req) => {
      const filter = {
        ...(req.parent_id ? { parentId: SpiffeId.parse(req.parent_id).toString() } : {}),
        ...(req.spiffe_id ? { spiffeId: SpiffeId.parse(req.spiffe_id).toString() } : {}),
      };
      return { entries: (await ds.listEntries(filter)).map(toProto) };
    }),
    UpdateEntry: unaryHandler(log, 'UpdateEntry', async (req) => {
      const base = await ds.getEntry(required(req.id, 'id'));
      if (!base) throw new AnchorageError('not_found', `admin: no entry with id ${req.id}`);
      if (!req.patch) throw invalid('admin: patch is required');
      const entry = validateEntry(applyPatch(base, req.patch), td, deps.caTtl);
      await checkFederatesWith(ds, entry.federatesWith, base.federatesWith);
      const updated = await ds.updateEntry(req.id, entry, req.expect_revision || undefined);
      feed.entriesChanged([updated.id]);
      log.info({ id: updated.id, revision: updated.revision }, 'admin: entry updated');
      return toProto(updated);
    }),
    DeleteEntry: unaryHandler(log, 'DeleteEntry', async (req) => {
      const deleted = await ds.deleteEntry(required(req.id, 'id'));
      feed.entriesChanged([deleted.id]);
      log.info({ id: deleted.id }, 'admin: entry deleted');
      return toProto(deleted);
    }),
    CreateJoinToken: unaryHandler(log, 'CreateJoinToken', async (req) => {
      const ttl = req.ttl || DEFAULT_JOIN_TOKEN_TTL;
      if (ttl < 0 || ttl > MAX_JOIN_TOKEN_TTL) throw invalid(`admin: join token ttl must be between 1s and ${MAX_JOIN_TOKEN_TTL}s`);
      let spiffeId: string | undefined;
      if (req.spiffe_id) {
        const id = SpiffeId.parse(req.spiffe_id);
        if (!id.memberOf(td)) throw invalid(`admin: spiffe id ${id} is not in trust domain ${td.name}`);
        if (id.isTrustDomainId()) throw invalid(`admin: spiffe id ${id} has no path`);
        // An alias naming an agent would hand this token's agent every entry of that agent.
        checkNotReserved(id, 'admin');
        spiffeId = id.toString();
      }
      // 128 bits from the CSPRNG; hex keeps it a valid SPIFFE ID path segment.
      const token = randomBytes(16).toString('hex');
      const expiresAt = now() + ttl;
      await ds.createJoinToken({ token, expiresAt, ...(spiffeId ? { spiffeId } : {}) });
      if (spiffeId) {
        // A node alias: the agent that attests with this token (node selector
        // join_token:<token>) may mint for entries parented by spiffeId.
        const alias = await ds.createEntry({
          spiffeId,
          parentId: serverId(ca).toString(),
          selectors: [{ type: 'join_token', value: token }],
          x509SvidTtl: 0,
          jwtSvidTtl: 0,
          dnsNames: [],
          federatesWith: [],
          hint: '',
          admin: false,
          downstream: false,
        });
        feed.entriesChanged([alias.id]);
      }
      log.info({ expiresAt, spiffeId }, 'admin: join token created');
      return { token, spiffe_id: spiffeId ?? '', expires_at: expiresAt };
    }),
    SetFederatedBundle: unaryHandler(log, 'SetFederatedBundle', async (req) => {
      const stored = await setFederatedBundle(ds, td, req.trust_domain, req.document, now());
      feed.bundlesChanged();
      await audit.record({ type: 'federation.bundle_set', outcome: 'ok', details: { trust_domain: stored.trustDomain, sequence: stored.sequence } });
      log.info({ trustDomain: stored.trustDomain, sequence: stored.sequence }, 'admin: federated bundle set');
      return toFederatedBundle(stored);
    }),
    DeleteFederatedBundle: unaryHandler(log, 'DeleteFederatedBundle', async (req) => {
      const old = await deleteFederatedBundle(ds, td, req.trust_domain);
      feed.bundlesChanged();
      await audit.record({ type: 'federation.bundle_deleted', outcome: 'ok', details: { trust_domain: old.trustDomain } });
      log.info({ trustDomain: old.trustDomain }, 'admin: federated bundle deleted');
      return toFederatedBundle(old);
    }),
    GetBundle: unaryHandler(log, 'GetBundle', async () => {
      const b = ca.bundle();
      return {
        trust_domain: td.name,
        x509_authorities: b.x509.authorities().map((d) => Buffer.from(d)),
        document: b.marshal(),
        sequence: b.sequence ?? 0,
        refresh_hint: b.refreshHint ?? 0,
      };
    }),
    MintX509SVID: unaryHandler(log, 'MintX509SVID', async (req, call) => {
      if (req.csr.length === 0) throw invalid('admin: csr is required');
      const actor = deps.actorOf?.(call);
      const minted = await minter.mintX509FromCsr(req.csr, {
        spiffeId: checkNotReserved(SpiffeId.parse(required(req.spiffe_id, 'spiffe_id')), 'x509svid'),
        dnsNames: req.dns_names,
        ttl: req.ttl,
        ...(actor && { actor }),
      });
      // Debug, not info: each SVID is in the audit log, caller included; a line per mint would flood the log at thousands a second.
      log.debug({ spiffeId: req.spiffe_id, notAfter: minted.notAfter }, 'admin: x509-svid minted');
      return {
        chain: minted.chain.map((d) => Buffer.from(d)),
        bundle: ca.bundle().x509.authorities().map((d) => Buffer.from(d)),
        expires_at: minted.notAfter,
      };
    }),
    MintJWTSVID: unaryHandler(log, 'MintJWTSVID', async (req, call) => {
      const actor = deps.actorOf?.(call);
      const minted = await minter.mintJwt({
        spiffeId: checkNotReserved(SpiffeId.parse(required(req.spiffe_id, 'spiffe_id')), 'jwtsvid'),
        audience: req.audience,
        ttl: req.ttl,
        ...(actor && { actor }),
      });
      log.debug({ spiffeId: req.spiffe_id, expiresAt: minted.expiresAt }, 'admin: jwt-svid minted');
      return { token: minted.token, expires_at: minted.expiresAt };
    }),
    ListAgents: unaryHandler(log, 'ListAgents', async () => {
      const banned = new Set(await ds.listBannedAgents());
      return { agents: (await ds.listAgents()).map((a) => agentToProto(a, banned.has(a.spiffeId))) };
    }),
    GetAgent: unaryHandler(log, 'GetAgent', async (req) => {
      const agent = await requireAgent(ds, req.spiffe_id);
      return agentToProto(agent, await ds.isAgentBanned(agent.spiffeId));
    }),
    EvictAgent: unaryHandler(log, 'EvictAgent', async (req) => {
      const agent = await requireAgent(ds, req.spiffe_id);
      const evicted = { ...agent, evicted: true, updatedAt: now() };
      await ds.putAgent(evicted);
      feed.agentEvicted(agent.spiffeId);
      await audit.record({ type: 'agent.evicted', agent: agent.spiffeId, spiffeId: agent.spiffeId, serial: agent.certSerial.toLowerCase(), outcome: 'ok' });
      log.warn({ agent: agent.spiffeId }, 'admin: agent evicted');
      return agentToProto(evicted, await ds.isAgentBanned(agent.spiffeId));
    }),
    // A ban refuses every later attestation to this ID (ca/agentapi/attest.ts)
    // and evicts the current record, so its SVID and streams end now too.
    BanAgent: unaryHandler(log, 'BanAgent', async (req) => {
      const id = agentIdOf(req.spiffe_id, td);
      await ds.banAgent(id, now());
      const agent = await ds.getAgent(id);
      const evict = agent !== undefined && !agent.evicted;
      if (evict) {
        await ds.putAgent({ ...agent, evicted: true, updatedAt: now() });
        feed.agentEvicted(id);
      }
      await audit.record({ type: 'agent.banned', agent: id, spiffeId: id, outcome: 'ok', details: { evicted: evict } });
      log.warn({ agent: id, evicted: evict }, 'admin: agent banned');
      return { spiffe_id: id, banned: true, evicted: evict };
    }),
    UnbanAgent: unaryHandler(log, 'UnbanAgent', async (req) => {
      const id = agentIdOf(req.spiffe_id, td);
      if (!(await ds.unbanAgent(id))) throw new AnchorageError('not_found', `admin: agent ${id} is not banned`);
      await audit.record({ type: 'agent.unbanned', agent: id, spiffeId: id, outcome: 'ok' });
      log.warn({ agent: id }, 'admin: agent unbanned');
      return { spiffe_id: id, banned: false, evicted: false };
    }),
    ...federationHandlers({ datastore: ds, feed, federation: deps.federation, trustDomain: td, now, logger: log, audit }),
    ...authorityHandlers({ ca, datastore: ds, now: deps.now ?? Date.now, logger: log }),
    GetCAStatus: unaryHandler(log, 'GetCAStatus', async () => {
      const rows = await ca.journal();
      return {
        trust_domain: td.name,
        key_manager: deps.keyManager.kind,
        keys: rows.map((r) => ({
          ...rotationOf(r),
          id: r.id,
          kind: r.kind,
          status: r.status,
          key_id: r.keyId,
          kid: r.kid ?? '',
          not_before: r.notBefore,
          not_after: r.notAfter,
          cert: r.certDer ? Buffer.from(r.certDer) : Buffer.alloc(0),
        })),
      };
    }),
    ListTrustAnchors: unaryHandler(log, 'ListTrustAnchors', () =>
      listTrustAnchors({ datastore: ds, ca, keyManagerKind: deps.keyManager.kind, rootKeyManagerKind: deps.rootKeyManager?.kind }),
    ),
    GetKeyProtection: unaryHandler(log, 'GetKeyProtection', async () => {
      const keys = [];
      // A key still being made has no finished private half to read yet.
      for (const r of (await ca.journal()).filter((row) => row.status !== 'preparing')) {
        const km = r.kind === 'root' ? deps.rootKeyManager : deps.keyManager;
        if (!km) continue;
        const p = km.keyProtection ? await km.keyProtection(r.keyId) : undefined;
        keys.push({
          journal_id: r.id,
          key_id: r.keyId,
          key_manager: km.kind,
          found: p !== undefined,
          sensitive: p?.sensitive ?? false,
          extractable: p?.extractable ?? false,
          always_sensitive: p?.alwaysSensitive ?? false,
          never_extractable: p?.neverExtractable ?? false,
        });
      }
      return { keys };
    }),
  };
}
