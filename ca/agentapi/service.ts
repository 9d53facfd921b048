import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AnchorageError, invalid } from '@anchorage/client/errors';
import { toServiceError, unaryHandler } from '../../common/grpc.js';
import type { Logger } from '../../common/log.js';
import { SpiffeId } from '@anchorage/client/spiffe/id';
import { uriSansOf } from '@anchorage/client/spiffe/x509svid';
import type { AgentHandlers } from '../../proto/gen/anchorage/agent/v1/Agent.js';
import type { AuthorizedEntry } from '../../proto/gen/anchorage/agent/v1/AuthorizedEntry.js';
import type { SyncAuthorizedEntriesResponse } from '../../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import type { ChangeFeed } from '../changes.js';
import type { AttestedAgent, DataStore, RegistrationEntry, Selector } from '../datastore/DataStore.js';
import type { CaManager } from '../manager.js';
import type { Minter } from '../minter.js';
import type { AuditSink } from '../audit/event.js';
import { DEFAULT_NODE_ATTESTORS, NodeAttestorRegistry } from '../nodeattestor/registry.js';
import { isReservedPath, RESERVED_PATH } from '../reserved.js';
import { attestHandler, type AttestationLimits, type AttestDeps } from './attest.js';
import { MAX_SYNC_MESSAGE_LIMIT, MIN_SYNC_MESSAGE_LIMIT, splitPass, SYNC_MESSAGE_LIMIT } from './sync-chunks.js';

export interface AgentServiceDeps {
  datastore: DataStore;
  ca: CaManager;
  minter: Minter;
  feed: ChangeFeed;
  /** Lifetime of agent SVIDs, seconds. */
  agentSvidTtl: number;
  now?: () => number;
  logger: Logger;
  /** The enabled node attestors. Default: join_token alone. */
  nodeAttestors?: NodeAttestorRegistry;
  /** Bounds of AttestAgent streams; default ATTESTATION_LIMITS of attest.ts. */
  attestationLimits?: Partial<AttestationLimits>;
  /** Node attestation outcomes go here (ca/metrics.ts). */
  metrics?: AttestDeps['metrics'];
  /** Largest encoded SyncAuthorizedEntries message, bytes; default SYNC_MESSAGE_LIMIT (1 MiB). */
  syncMessageLimit?: number;
  /** Attestations and renewals are recorded here (the SVIDs themselves by the minter). */
  audit?: AuditSink;
  /** Refused attestations are recorded here, within its budget. */
  attestRefusals?: AttestDeps['refusals'];
}

/** Every agent ID: spiffe://<td>/anchorage/agent/<node attestor type>/... (ca/nodeattestor/). */
export const AGENT_PATH_PREFIX = '/anchorage/agent/';

/** Entries with this parent are node aliases: they name agents by their node selectors. */
export function serverId(ca: CaManager): SpiffeId {
  return SpiffeId.fromPath(ca.trustDomain, '/anchorage/server');
}

/**
 * An entry naming an ID of anchorage's own namespace (the server, an agent).
 * The admin API refuses to create one; an entry of an older version's
 * datastore may still hold one, and it is neither sent to agents nor signed.
 */
function reservedEntry(e: Pick<RegistrationEntry, 'spiffeId'>): boolean {
  const slash = e.spiffeId.indexOf('/', 'spiffe://'.length);
  return isReservedPath(slash === -1 ? '' : e.spiffeId.slice(slash));
}

function subset(needed: Selector[], have: Selector[]): boolean {
  const set = new Set(have.map((s) => `${s.type}:${s.value}`));
  return needed.every((s) => set.has(`${s.type}:${s.value}`));
}

/**
 * The entries an agent may mint for: those whose parent is the agent itself,
 * or a node alias (an entry parented by the server) whose selectors are all
 * among the agent's node selectors.
 */
export function authorizedEntries(agent: AttestedAgent, all: RegistrationEntry[], server: string): RegistrationEntry[] {
  const parents = new Set([agent.spiffeId]);
  for (const e of all) if (e.parentId === server && !reservedEntry(e) && subset(e.selectors, agent.selectors)) parents.add(e.spiffeId);
  return all.filter((e) => e.parentId !== server && !reservedEntry(e) && parents.has(e.parentId));
}

function toAuthorized(e: RegistrationEntry): AuthorizedEntry {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    selectors: e.selectors.map((s) => `${s.type}:${s.value}`),
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    dns_names: e.dnsNames,
    federates_with: e.federatesWith,
    hint: e.hint,
    revision: e.revision,
  };
}

function serialHex(cert: X509Certificate | { serialNumber: string }): string {
  return cert.serialNumber.toUpperCase().replace(/^0+(?=.)/, '');
}

/** The agent API handlers. Every call but AttestAgent is authenticated by the agent's SVID. */
export function agentHandlers(deps: AgentServiceDeps): AgentHandlers {
  const { datastore: ds, ca, minter, feed, logger: log } = deps;
  const now = () => Math.floor((deps.now ?? Date.now)() / 1000);
  const server = serverId(ca).toString();
  const messageLimit = deps.syncMessageLimit ?? SYNC_MESSAGE_LIMIT;
  if (!Number.isSafeInteger(messageLimit) || messageLimit < MIN_SYNC_MESSAGE_LIMIT || messageLimit > MAX_SYNC_MESSAGE_LIMIT) {
    throw invalid(`agent api: the sync message limit must be a whole number of bytes from ${MIN_SYNC_MESSAGE_LIMIT} to ${MAX_SYNC_MESSAGE_LIMIT} (got ${messageLimit})`);
  }
  /** When each agent's report was last stored, ms: bounded by the attested agents. */
  const lastReport = new Map<string, number>();

  /** Who is calling: the agent named by the client certificate, if it is current and not evicted. */
  async function authenticate(call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext'>): Promise<AttestedAgent> {
    const cert = call.getAuthContext().sslPeerCertificate;
    if (!cert || !cert.raw) throw new AnchorageError('unauthenticated', 'agent api: this call needs the agent svid as client certificate');
    const uris = uriSansOf(cert);
    if (uris.length !== 1) throw new AnchorageError('unauthenticated', 'agent api: the client certificate is not an svid');
    const id = SpiffeId.parse(uris[0]!);
    if (!id.memberOf(ca.trustDomain) || !id.path.startsWith(AGENT_PATH_PREFIX)) {
      throw new AnchorageError('permission_denied', `agent api: ${id} is not an agent`);
    }
    const agent = await ds.getAgent(id.toString());
    if (!agent) throw new AnchorageError('permission_denied', `agent api: ${id} is not an attested agent`);
    if (agent.evicted) throw new AnchorageError('permission_denied', `agent api: agent ${id} has been evicted`);
    if (serialHex(cert) !== agent.certSerial) {
      throw new AnchorageError('permission_denied', `agent api: the svid presented by ${id} has been superseded`);
    }
    return agent;
  }

  // Every open sync stream listens to the feed and the CA: as many
  // listeners as agents, bounded by the agent API's connection caps, not a leak.
  feed.setMaxListeners(0);
  ca.setMaxListeners(0);

  // Every entry, read once per change and shared by all agents' streams and
  // signing calls: the feed bumps the generation before any stream hears of
  // the change (this listener is registered first).
  let generation = 0;
  let allEntries: { generation: number; entries: Promise<RegistrationEntry[]> } | undefined;
  feed.on('entries', () => {
    generation++;
  });
  feed.on('everything', () => {
    generation++;
  });
  function entries(): Promise<RegistrationEntry[]> {
    if (!allEntries || allEntries.generation !== generation) {
      const p = ds.listEntries();
      allEntries = { generation, entries: p };
      p.catch(() => {
        if (allEntries?.entries === p) allEntries = undefined;
      });
    }
    return allEntries.entries;
  }

  // What one change of the feed names, read once and shared by every agent's
  // stream: the feed hands the same ID array to every listener, so the first
  // stream to hear of a change starts the reads and the others reuse them
  // (with 1,000 agents, a change of 1,000 entries is 1,000 reads, not a
  // million). The reads start after the change was committed, so what they
  // return is at least as new as the change.
  const changeReads = new WeakMap<string[], Promise<Map<string, RegistrationEntry | undefined>>>();
  function readChange(ids: string[]): Promise<Map<string, RegistrationEntry | undefined>> {
    let p = changeReads.get(ids);
    if (!p) {
      const unique = [...new Set(ids)];
      p = Promise.all(unique.map((id) => ds.getEntry(id))).then((found) => new Map(unique.map((id, i) => [id, found[i]])));
      changeReads.set(ids, p);
      // A stream that ends, or falls back to a full pass, may never await it;
      // a stream that does sees the failure and ends with it.
      p.catch(() => undefined);
    }
    return p;
  }

  /** SPIFFE IDs of the node aliases whose selectors the agent's node selectors match. */
  async function aliasesOf(agent: AttestedAgent): Promise<Set<string>> {
    const aliases = await ds.listEntries({ parentId: server });
    return new Set(aliases.filter((e) => !reservedEntry(e) && subset(e.selectors, agent.selectors)).map((e) => e.spiffeId));
  }

  /** The requested entries the agent may mint for, by ID: the cost is the request's, not the datastore's. */
  async function authorizedFor(agent: AttestedAgent, ids: string[]): Promise<Map<string, RegistrationEntry>> {
    const parents = await aliasesOf(agent);
    parents.add(agent.spiffeId);
    const out = new Map<string, RegistrationEntry>();
    for (const id of new Set(ids)) {
      const e = await ds.getEntry(id);
      if (e && e.parentId !== server && parents.has(e.parentId)) {
        if (reservedEntry(e)) {
          log.warn({ agent: agent.spiffeId, entry: e.id, spiffeId: e.spiffeId }, 'agent api: refused to sign an entry in the reserved namespace');
          throw new AnchorageError('permission_denied', `agent api: entry ${e.id} names ${e.spiffeId}, in the namespace reserved for anchorage itself (${RESERVED_PATH}/...); it is never signed`);
        }
        out.set(id, e);
      }
    }
    return out;
  }

  async function bundles(): Promise<Pick<SyncAuthorizedEntriesResponse, 'bundle' | 'federated_bundles'>> {
    const federated: Record<string, string> = {};
    for (const b of await ds.listBundles()) if (b.trustDomain !== ca.trustDomain.name) federated[b.trustDomain] = b.document;
    return { bundle: ca.bundle().marshal(), federated_bundles: federated };
  }

  return {
    AttestAgent: attestHandler({
      datastore: ds,
      ca,
      minter,
      attestors: deps.nodeAttestors ?? NodeAttestorRegistry.fromTypes(DEFAULT_NODE_ATTESTORS, { datastore: ds, now }),
      agentSvidTtl: deps.agentSvidTtl,
      now,
      logger: log,
      limits: deps.attestationLimits,
      metrics: deps.metrics,
      audit: deps.audit,
      refusals: deps.attestRefusals,
    }),

    RenewAgent: unaryHandler(log, 'RenewAgent', async (req, call) => {
      const agent = await authenticate(call);
      if (req.csr.length === 0) throw invalid('agent api: csr is required');
      const spki = await minter.verifyCsr(req.csr);
      const minted = await minter.mintX509({ spiffeId: SpiffeId.parse(agent.spiffeId), spki, ttl: deps.agentSvidTtl, capToCa: true, agent: agent.spiffeId });
      const leaf = new X509Certificate(minted.chain[0]!);
      await ds.putAgent({ ...agent, certSerial: serialHex(leaf), certNotAfter: minted.notAfter, updatedAt: now() });
      await deps.audit?.record({
        type: 'agent.renewed',
        agent: agent.spiffeId,
        spiffeId: agent.spiffeId,
        serial: minted.serial,
        expiresAt: minted.notAfter,
        outcome: 'ok',
        details: { previous_serial: agent.certSerial.toLowerCase() },
      });
      log.info({ agent: agent.spiffeId, notAfter: minted.notAfter }, 'agent api: agent svid renewed');
      return { svid_chain: minted.chain.map((d) => Buffer.from(d)) };
    }),

    SyncAuthorizedEntries: (call) => {
      let agent: AttestedAgent;
      let closed = false;
      /** What this agent has been sent: entry ID -> revision. */
      const sent = new Map<string, number>();
      /** Node aliases the agent matched at the last full pass. */
      let aliases = new Set<string>();
      let sentBundles = '';
      /** The tainted sets last sent (joined), so they go out only when they change. */
      let sentTainted = '';
      let first = true;
      // Work is folded: entry IDs that changed since the last message, or
      // "everything" (first message, a node alias changed). One message is
      // built at a time, so an older state is never sent after a newer one,
      // and a burst of changes costs a few messages, not one each.
      /** The changes heard of since the last message, in order (see readChange). */
      let changes: Promise<Map<string, RegistrationEntry | undefined>>[] = [];
      let everything = true;
      /** A push for something other than entries (bundles, taint, eviction, the first pass): the agent is read and the bundles compared. */
      let other = true;
      let dirty = false;
      let running = false;
      const push = (ids?: string[]) => {
        if (ids) changes.push(readChange(ids));
        else other = true;
        dirty = true;
        if (running) return;
        running = true;
        void (async () => {
          try {
            while (dirty && !closed) {
              dirty = false;
              const pending = changes;
              changes = [];
              const otherChange = other;
              other = false;
              const changedById = new Map<string, RegistrationEntry>();
              const removedIds = new Set<string>();
              let full = everything;
              if (!full) {
                // Only the entries that changed, the later change of an entry
                // winning; a node alias changing may change the whole set, so
                // it falls back to a full pass.
                scan: for (const read of pending) {
                  for (const [id, e] of await read) {
                    if (e?.parentId === server || (e === undefined && !sent.has(id) && aliases.size > 0)) {
                      full = true;
                      break scan;
                    }
                    const mine = e !== undefined && !reservedEntry(e) && (e.parentId === agent.spiffeId || aliases.has(e.parentId));
                    changedById.delete(id);
                    removedIds.delete(id);
                    if (mine && sent.get(id) !== e.revision) changedById.set(id, e);
                    else if (!mine && sent.has(id)) removedIds.add(id);
                  }
                }
              }
              // Changes to other agents' entries cost this stream a scan of
              // their IDs, not a read of the agent and the bundles.
              if (!full && !otherChange && changedById.size === 0 && removedIds.size === 0) continue;
              const current = await ds.getAgent(agent.spiffeId);
              if (!current || current.evicted) return end(new AnchorageError('permission_denied', `agent api: agent ${agent.spiffeId} has been evicted`));
              const changed: RegistrationEntry[] = full ? [] : [...changedById.values()];
              const removed: string[] = full ? [] : [...removedIds];
              if (full) {
                everything = false;
                changed.length = 0;
                removed.length = 0;
                const all = await entries();
                aliases = new Set(all.filter((e) => e.parentId === server && !reservedEntry(e) && subset(e.selectors, current.selectors)).map((e) => e.spiffeId));
                const seen = new Set<string>();
                for (const e of authorizedEntries(current, all, server)) {
                  seen.add(e.id);
                  if (sent.get(e.id) !== e.revision) changed.push(e);
                }
                for (const id of sent.keys()) if (!seen.has(id)) removed.push(id);
              }
              const b = await bundles();
              const bundleText = JSON.stringify(b);
              const tainted = ca.taintedAuthorities();
              const taintedText = `${tainted.x509.join(',')}|${tainted.jwt.join(',')}`;
              const taintChanged = first || taintedText !== sentTainted;
              if (!first && changed.length === 0 && removed.length === 0 && bundleText === sentBundles && !taintChanged) continue;
              if (closed) return;
              for (const e of changed) sent.set(e.id, e.revision);
              for (const id of removed) sent.delete(id);
              sentBundles = bundleText;
              sentTainted = taintedText;
              // One pass, in messages of bounded size (sync-chunks.ts): the
              // agent applies it when the last one (more = false) arrives.
              const head = { ...b, ...(taintChanged ? { has_tainted: true, tainted_x509_authorities: [...tainted.x509], tainted_jwt_authorities: [...tainted.jwt] } : {}) };
              for (const m of splitPass(head, first, changed.map(toAuthorized), first ? [] : removed, messageLimit)) call.write(m);
              first = false;
            }
          } catch (err) {
            end(err);
          } finally {
            running = false;
          }
        })();
      };
      const onEntries = (ids: string[]) => push(ids);
      const onBundles = () => push();
      const onEverything = () => {
        everything = true;
        push();
      };
      const onEvicted = (id: string) => {
        if (agent && id === agent.spiffeId) push();
      };
      const cleanup = () => {
        closed = true;
        feed.off('entries', onEntries);
        feed.off('bundles', onBundles);
        feed.off('evicted', onEvicted);
        feed.off('everything', onEverything);
        ca.off('bundle', onBundles);
        ca.off('taint', onBundles);
      };
      const end = (err: unknown) => {
        if (closed) return;
        cleanup();
        call.emit('error', toServiceError(err, log, 'SyncAuthorizedEntries'));
      };
      call.on('cancelled', cleanup);
      call.on('close', cleanup);
      authenticate(call).then(
        (a) => {
          agent = a;
          feed.on('entries', onEntries);
          feed.on('bundles', onBundles);
          feed.on('evicted', onEvicted);
          feed.on('everything', onEverything);
          ca.on('bundle', onBundles);
          ca.on('taint', onBundles);
          push();
        },
        (err) => end(err),
      );
    },

    BatchSignX509SVID: unaryHandler(log, 'BatchSignX509SVID', async (req, call) => {
      const agent = await authenticate(call);
      if (req.params.length === 0) throw invalid('agent api: params must not be empty');
      if (req.params.length > 500) throw invalid('agent api: at most 500 csrs per call');
      const allowed = await authorizedFor(agent, req.params.map((p) => p.entry_id));
      for (const p of req.params) {
        if (!allowed.has(p.entry_id)) {
          throw new AnchorageError('permission_denied', `agent api: agent ${agent.spiffeId} is not authorized for entry ${p.entry_id}`);
        }
      }
      const results = await Promise.all(
        req.params.map(async (p) => {
          const entry = allowed.get(p.entry_id)!;
          const minted = await minter.mintX509FromCsr(p.csr, {
            spiffeId: SpiffeId.parse(entry.spiffeId),
            dnsNames: entry.dnsNames,
            ttl: entry.x509SvidTtl,
            capToCa: true,
            agent: agent.spiffeId,
          });
          return { entry_id: entry.id, chain: minted.chain.map((d) => Buffer.from(d)), expires_at: minted.notAfter };
        }),
      );
      return { results };
    }),

    ReportState: unaryHandler(log, 'ReportState', async (req, call) => {
      const agent = await authenticate(call);
      const nowMs = (deps.now ?? Date.now)();
      if (!Number.isSafeInteger(req.bundle_sequence) || req.bundle_sequence < 0) throw invalid('agent api: bundle_sequence must be a whole number');
      if (!Number.isSafeInteger(req.agent_time_ms) || req.agent_time_ms <= 0) throw invalid('agent api: agent_time_ms is required');
      // One write per agent per second at most, however often it calls.
      const last = lastReport.get(agent.spiffeId) ?? 0;
      if (nowMs - last < 1000) return {};
      lastReport.set(agent.spiffeId, nowMs);
      await ds.reportAgentState(agent.spiffeId, { seenAt: Math.floor(nowMs / 1000), bundleSequence: req.bundle_sequence, clockSkewMs: req.agent_time_ms - nowMs });
      return {};
    }),

    MintJWTSVID: unaryHandler(log, 'MintJWTSVID', async (req, call) => {
      const agent = await authenticate(call);
      const entry = (await authorizedFor(agent, [req.entry_id])).get(req.entry_id);
      if (!entry) throw new AnchorageError('permission_denied', `agent api: agent ${agent.spiffeId} is not authorized for entry ${req.entry_id}`);
      const minted = await minter.mintJwt({ spiffeId: SpiffeId.parse(entry.spiffeId), audience: req.audience, ttl: entry.jwtSvidTtl, capToCa: true, agent: agent.spiffeId });
      return { token: minted.token, expires_at: minted.expiresAt };
    }),
  };
}
