import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AnchorageError, invalid } from '../../common/errors.js';
import { toServiceError, unaryHandler } from '../../common/grpc.js';
import type { Logger } from '../../common/log.js';
import { SpiffeId } from '../../spiffe/id.js';
import type { AgentHandlers } from '../../proto/gen/anchorage/agent/v1/Agent.js';
import type { AuthorizedEntry } from '../../proto/gen/anchorage/agent/v1/AuthorizedEntry.js';
import type { SyncAuthorizedEntriesResponse } from '../../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import type { ChangeFeed } from '../changes.js';
import type { AttestedAgent, DataStore, RegistrationEntry, Selector } from '../datastore/DataStore.js';
import type { CaManager } from '../manager.js';
import type { Minter } from '../minter.js';

export interface AgentServiceDeps {
  datastore: DataStore;
  ca: CaManager;
  minter: Minter;
  feed: ChangeFeed;
  /** Lifetime of agent SVIDs, seconds. */
  agentSvidTtl: number;
  now?: () => number;
  logger: Logger;
}

/** Agent IDs made by join-token attestation: spiffe://<td>/anchorage/agent/join_token/<token>. */
export const AGENT_PATH_PREFIX = '/anchorage/agent/';

/** Entries with this parent are node aliases: they name agents by their node selectors. */
export function serverId(ca: CaManager): SpiffeId {
  return SpiffeId.fromPath(ca.trustDomain, '/anchorage/server');
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
  for (const e of all) if (e.parentId === server && subset(e.selectors, agent.selectors)) parents.add(e.spiffeId);
  return all.filter((e) => e.parentId !== server && parents.has(e.parentId));
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

  /** Who is calling: the agent named by the client certificate, if it is current and not evicted. */
  async function authenticate(call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext'>): Promise<AttestedAgent> {
    const cert = call.getAuthContext().sslPeerCertificate;
    if (!cert || !cert.raw) throw new AnchorageError('unauthenticated', 'agent api: this call needs the agent svid as client certificate');
    const uris = (cert.subjectaltname ?? '').split(', ').filter((s: string) => s.startsWith('URI:'));
    if (uris.length !== 1) throw new AnchorageError('unauthenticated', 'agent api: the client certificate is not an svid');
    const id = SpiffeId.parse(uris[0]!.slice(4));
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

  // Every entry, read once per change and shared by all agents' streams and
  // signing calls: the feed bumps the generation before any stream hears of
  // the change (this listener is registered first).
  let generation = 0;
  let allEntries: { generation: number; entries: Promise<RegistrationEntry[]> } | undefined;
  feed.on('entries', () => {
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

  async function authorizedFor(agent: AttestedAgent): Promise<Map<string, RegistrationEntry>> {
    return new Map(authorizedEntries(agent, await entries(), server).map((e) => [e.id, e]));
  }

  async function bundles(): Promise<Pick<SyncAuthorizedEntriesResponse, 'bundle' | 'federated_bundles'>> {
    const federated: Record<string, string> = {};
    for (const b of await ds.listBundles()) if (b.trustDomain !== ca.trustDomain.name) federated[b.trustDomain] = b.document;
    return { bundle: ca.bundle().marshal(), federated_bundles: federated };
  }

  return {
    AttestAgent: unaryHandler(log, 'AttestAgent', async (req) => {
      if (!req.join_token) throw invalid('agent api: join_token is required');
      if (req.csr.length === 0) throw invalid('agent api: csr is required');
      // The CSR is checked before the token is spent, so a bad request does not burn it.
      const spki = await minter.verifyCsr(req.csr);
      if (!/^[0-9a-f]{32}$/.test(req.join_token)) {
        throw new AnchorageError('permission_denied', 'agent api: join token is unknown, used or expired');
      }
      const token = await ds.consumeJoinToken(req.join_token, now());
      if (!token) throw new AnchorageError('permission_denied', 'agent api: join token is unknown, used or expired');
      const id = SpiffeId.fromPath(ca.trustDomain, `${AGENT_PATH_PREFIX}join_token/${req.join_token}`);
      const minted = await minter.mintX509({ spiffeId: id, spki, ttl: deps.agentSvidTtl, capToCa: true });
      const leaf = new X509Certificate(minted.chain[0]!);
      const t = now();
      await ds.putAgent({
        spiffeId: id.toString(),
        attestationType: 'join_token',
        certSerial: serialHex(leaf),
        certNotAfter: minted.notAfter,
        selectors: [{ type: 'join_token', value: req.join_token }],
        evicted: false,
        createdAt: t,
        updatedAt: t,
      });
      log.info({ agent: id.toString() }, 'agent api: agent attested');
      return { spiffe_id: id.toString(), svid_chain: minted.chain.map((d) => Buffer.from(d)), bundle: ca.bundle().marshal() };
    }),

    RenewAgent: unaryHandler(log, 'RenewAgent', async (req, call) => {
      const agent = await authenticate(call);
      if (req.csr.length === 0) throw invalid('agent api: csr is required');
      const spki = await minter.verifyCsr(req.csr);
      const minted = await minter.mintX509({ spiffeId: SpiffeId.parse(agent.spiffeId), spki, ttl: deps.agentSvidTtl, capToCa: true });
      const leaf = new X509Certificate(minted.chain[0]!);
      await ds.putAgent({ ...agent, certSerial: serialHex(leaf), certNotAfter: minted.notAfter, updatedAt: now() });
      log.info({ agent: agent.spiffeId, notAfter: minted.notAfter }, 'agent api: agent svid renewed');
      return { svid_chain: minted.chain.map((d) => Buffer.from(d)) };
    }),

    SyncAuthorizedEntries: (call) => {
      let agent: AttestedAgent;
      let closed = false;
      /** What this agent has been sent: entry ID -> revision. */
      const sent = new Map<string, number>();
      let sentBundles = '';
      let first = true;
      // One message at a time, and changes that arrive meanwhile are folded
      // into the next one: a burst of entry changes costs a few messages, not
      // one each, and an older state is never sent after a newer one.
      let running = false;
      let dirty = false;
      const push = () => {
        dirty = true;
        if (running) return;
        running = true;
        void (async () => {
          try {
            while (dirty && !closed) {
              dirty = false;
              const current = await ds.getAgent(agent.spiffeId);
              if (!current || current.evicted) return end(new AnchorageError('permission_denied', `agent api: agent ${agent.spiffeId} has been evicted`));
              const authorized = authorizedEntries(current, await entries(), server);
              const b = await bundles();
              const changed: RegistrationEntry[] = [];
              const seen = new Set<string>();
              for (const e of authorized) {
                seen.add(e.id);
                if (sent.get(e.id) !== e.revision) changed.push(e);
              }
              const removed = [...sent.keys()].filter((id) => !seen.has(id));
              const bundleText = JSON.stringify(b);
              if (!first && changed.length === 0 && removed.length === 0 && bundleText === sentBundles) continue;
              if (closed) return;
              for (const e of changed) sent.set(e.id, e.revision);
              for (const id of removed) sent.delete(id);
              sentBundles = bundleText;
              call.write({ ...b, full: first, entries: changed.map(toAuthorized), removed_entry_ids: first ? [] : removed });
              first = false;
            }
          } catch (err) {
            end(err);
          } finally {
            running = false;
          }
        })();
      };
      const onEvicted = (id: string) => {
        if (agent && id === agent.spiffeId) push();
      };
      const cleanup = () => {
        closed = true;
        feed.off('entries', push);
        feed.off('bundles', push);
        feed.off('evicted', onEvicted);
        ca.off('bundle', push);
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
          feed.on('entries', push);
          feed.on('bundles', push);
          feed.on('evicted', onEvicted);
          ca.on('bundle', push);
          push();
        },
        (err) => end(err),
      );
    },

    BatchSignX509SVID: unaryHandler(log, 'BatchSignX509SVID', async (req, call) => {
      const agent = await authenticate(call);
      if (req.params.length === 0) throw invalid('agent api: params must not be empty');
      if (req.params.length > 500) throw invalid('agent api: at most 500 csrs per call');
      const allowed = await authorizedFor(agent);
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
          });
          return { entry_id: entry.id, chain: minted.chain.map((d) => Buffer.from(d)), expires_at: minted.notAfter };
        }),
      );
      return { results };
    }),

    MintJWTSVID: unaryHandler(log, 'MintJWTSVID', async (req, call) => {
      const agent = await authenticate(call);
      const entry = (await authorizedFor(agent)).get(req.entry_id);
      if (!entry) throw new AnchorageError('permission_denied', `agent api: agent ${agent.spiffeId} is not authorized for entry ${req.entry_id}`);
      const minted = await minter.mintJwt({ spiffeId: SpiffeId.parse(entry.spiffeId), audience: req.audience, ttl: entry.jwtSvidTtl, capToCa: true });
      return { token: minted.token, expires_at: minted.expiresAt };
    }),
  };
}
