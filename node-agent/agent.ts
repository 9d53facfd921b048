// The NodeAgent: its state and control flow (attestation, renewal and
// eviction, the sync loop, minting, the one timer, saving). The parts that
// need none of that state live in agent/: identity.ts (agent SVID checks,
// trust bundle file), sync.ts (applying a sync message), svids.ts (workload
// SVID checks), persist.ts (state file records to and from the cache).
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from '@anchorage/client/backoff';
import { AnchorageError, errorMessage, isAnchorageError } from '@anchorage/client/errors';
import { lockDataDir } from '../common/lockfile.js';
import type { Logger } from '../common/log.js';
import { newKeyAndCsr } from '../common/csr-create.js';
import type { SyncAuthorizedEntriesResponse__Output } from '../proto/gen/anchorage/agent/v1/SyncAuthorizedEntriesResponse.js';
import { SpiffeBundle, X509Bundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import { WorkloadCache, type HeldSvid } from './cache.js';
import { loadAgentConfig, serverAddressesOf, type AgentConfig } from './config.js';
import { EvictedError, ServerConnection, type ServerTrust } from './connection.js';
import { ServerAddresses, type Resolver } from './servers.js';
import { STATE_FILE, ensureDataDir, loadState, removeStateLeftovers, saveState, type CachedEntry, type LoadedState } from './state.js';
import { checkAgentSvid, privateKeySpki, readTrustBundleFile, type AgentIdentity } from './agent/identity.js';
import type { NodeAttestor } from './nodeattestor/NodeAttestor.js';
import { agentNodeAttestor } from './nodeattestor/registry.js';
import { b64, restoreState, stateOf } from './agent/persist.js';
import { newWorkloadKey } from './agent/keys.js';
import { BATCH, checkWorkloadSvid, verifiedIssuerCache } from './agent/svids.js';
import { applySyncMessage, SyncAssembler } from './agent/sync.js';
import { TaintResponder } from './agent/taint.js';

export { readTrustBundleFile } from './agent/identity.js';

/** How often an agent reports its state (ReportState) besides after each sync message. */
const REPORT_INTERVAL_MS = 60_000;
/**
 * The server keeps at most one report per agent per second and drops the
 * rest (ca/agentapi/service.ts): a report this soon after the last one that
 * was kept is sent once this much has passed instead, so a new bundle is
 * acknowledged (the root rotation gate waits for it) within about a second,
 * not at the next minute's report.
 */
const REPORT_MIN_GAP_MS = 1_200;

/** Reconnect and retry delays: 250 ms doubling to 5 s (SPIRE agents sync every 5 s), ±20 % jitter. */
const BACKOFF = { initialMs: 250, maxMs: 5_000 };
/**
 * BatchSignX509SVID calls in flight at once: while the server signs one
 * batch the agent makes the keys of the next and checks the last.
 */
const MINT_PIPELINE = 3;
/** Entries a call needs to run alongside another one (see NodeAgent.#mintDue). */
const MIN_PIPELINED_BATCH = 100;
/** Keys asked of the thread pool at once while a batch is prepared. */
const KEYS_PER_TURN = 50;
/** setTimeout's limit. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of {@link NodeAgent.start}. */
export interface NodeAgentOptions {
  config: AgentConfig;
  logger: Logger;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /**
   * The join token to attest with when the agent has no valid SVID. Default:
   * `join_token` of the config file, read again each time, so an operator
   * can hand an evicted agent a new token without restarting it.
   */
  joinToken?: () => string | undefined;
  /** Looks up a server name's addresses (tests); default: the system resolver. */
  resolve?: Resolver;
}

/**
 * The node agent: attests to the server with its node attestor
 * (`node_attestor`, default join_token; nodeattestor/), keeps its own
 * SVID renewed, follows the server's push stream of authorized entries,
 * mints workload SVIDs (keys made here, CSRs signed by the server) and
 * rotates them at half-life, and serves all of it to the Workload API
 * through {@link cache}. Its identity and the bundles are written to its
 * data dir (state.ts); workload keys and SVIDs stay in memory.
 */
export class NodeAgent {
  readonly cache: WorkloadCache;
  readonly config: AgentConfig;
  readonly #log: Logger;
  readonly #nowMs: () => number;
  readonly #td: TrustDomain;
  readonly #serverId: SpiffeId;
  readonly #attestor: NodeAttestor;
  readonly #releaseLock: () => void;
  /** The configured servers and the one in use (servers.ts). */
  readonly #servers: ServerAddresses;

  #identity: AgentIdentity | undefined;
  /** Agent ID of the last identity, kept after eviction so its spent token is not tried again. */
  #lastAgentId: string | undefined;
  #conn: ServerConnection | undefined;
  #connFor = '';
  #stream: { cancel: () => void } | undefined;
  /** Set when we end the stream ourselves to reconnect with new credentials: no backoff. */
  #reconnectNow = false;
  #synced = false;
  /** Milliseconds: when the sync stream last delivered a message, or was last known open (see {@link lastSyncMs}). */
  #lastSyncMs: number | undefined;
  #streamUp = false;

  #closed = false;
  #loop: Promise<void> | undefined;
  #wake: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** BatchSignX509SVID calls in flight, and the entries they are for. */
  #mintCalls = 0;
  readonly #minting = new Set<string>();
  readonly #mintBackoff = new Backoff(BACKOFF);
  #mintRetryAt = 0;
  #renewing = false;
  readonly #renewBackoff = new Backoff(BACKOFF);
  #renewRetryAt = 0;
  /** When the next state report is due (ms); one report in flight at a time. */
  #reportAt = 0;
  #reporting = false;
  /** When the last report the server would keep was sent (ms), and the bundle sequence it carried. */
  #reportKeptAt = 0;
  #reportKeptSequence = -1;
  /** Intermediates already verified against the bundle, by their DER, with their keys and names (agent/svids.ts). */
  readonly #verifiedIssuers = verifiedIssuerCache();
  /** Bundle documents of the last sync message applied (agent/sync.ts). */
  #lastBundles: { docs?: string } = {};
  /** Tainted authorities and what the agent does about them (agent/taint.ts). */
  readonly #taint: TaintResponder;

  private constructor(opts: NodeAgentOptions, releaseLock: () => void) {
    this.config = opts.config;
    this.#log = opts.logger;
    this.#nowMs = opts.now ?? Date.now;
    this.#td = opts.config.trust_domain;
    this.#serverId = SpiffeId.fromPath(this.#td, '/anchorage/server');
    this.#releaseLock = releaseLock;
    const cfg = opts.config;
    this.#servers = new ServerAddresses(serverAddressesOf(cfg), opts.resolve);
    const joinToken =
      opts.joinToken ??
      (() => {
        if (!existsSync(cfg.source)) return cfg.join_token;
        try {
          return loadAgentConfig(cfg.source).join_token;
        } catch (err) {
          this.#log.warn({ err: errorMessage(err) }, 'agent: cannot re-read the config for a join token; using the one read at start');
          return cfg.join_token;
        }
      });
    this.#attestor = agentNodeAttestor(cfg.node_attestor, { source: cfg.source, joinToken, lastAgentId: () => this.#lastAgentId });
    this.cache = new WorkloadCache(this.#td.name, () => this.#now(), (entryId, audience) => this.#mintJwt(entryId, audience));
    this.#taint = new TaintResponder({
      cache: this.cache,
      log: this.#log,
      nowMs: () => this.#nowMs(),
      ownChain: () => this.#identity?.chain,
      mintNow: () => this.#mintDue(),
      renewNow: () => this.#renewNow(),
    });
  }

  /**
   * Takes the data dir, restores the cached state and connects. When the
   * agent has no valid SVID it attests first: a refused token or a missing
   * bootstrap trust is an error here, so a misconfigured agent fails at once;
   * an unreachable server is not — the agent serves what it has cached and
   * keeps trying.
   */
  static async start(opts: NodeAgentOptions): Promise<NodeAgent> {
    const cfg = opts.config;
    ensureDataDir(cfg.data_dir);
    const release = lockDataDir(cfg.data_dir, 'agent');
    const agent = new NodeAgent(opts, release);
    try {
      // Ours alone now (the lock): temp files of a write a kill interrupted.
      const leftovers = removeStateLeftovers(cfg.data_dir);
      if (leftovers.length > 0) opts.logger.warn({ removed: leftovers }, 'agent: removed temp files of an interrupted state write');
      const state = loadState(cfg.data_dir, cfg.trust_domain.name);
      agent.#restore(state);
      await agent.#servers.refresh();
      if (state.legacy) {
        // Written by an older version, with every workload's private key: those go now.
        opts.logger.warn('agent: rewriting its state without the workload keys and svids an older version kept on disk');
        agent.#save();
      }
      // Each server in turn, once: the first that answers attests us.
      for (let tries = agent.#servers.targets.length; !agent.#identityValid() && tries > 0; tries--) {
        try {
          await agent.#attest();
        } catch (err) {
          if (!isAnchorageError(err, 'unavailable')) throw err;
          if (tries > 1) await agent.#failover(errorMessage(err));
          else opts.logger.warn({ err: errorMessage(err) }, 'agent: server unreachable for attestation; retrying in the background');
        }
      }
    } catch (err) {
      release();
      throw err;
    }
    agent.#loop = agent.#run();
    agent.#schedule();
    return agent;
  }

  /** The agent's SPIFFE ID, once attested. */
  get spiffeId(): string | undefined {
    return this.#identity?.spiffeId.toString();
  }

  /** notBefore (Unix seconds) of the agent's own SVID; undefined while it has none. */
  get svidNotBefore(): number | undefined {
    return this.#identity?.notBefore;
  }

  /** notAfter (Unix seconds) of the agent's own SVID; undefined while it has none. */
  get svidNotAfter(): number | undefined {
    return this.#identity?.notAfter;
  }

  /**
   * When the agent was last known in sync with the server (ms since the
   * epoch): now while the sync stream is open and has delivered its first
   * message (the server pushes every change on it), else when it was last
   * open. Undefined if it never was in this run.
   */
  get lastSyncMs(): number | undefined {
    return this.#streamUp ? this.#nowMs() : this.#lastSyncMs;
  }

  /** The server address in use ("ip:port"). */
  get server(): string {
    return this.#servers.current;
  }

  /** How many times this run moved to another server after the one in use failed. */
  get serverSwitches(): number {
    return this.#servers.switches;
  }

  /** True once the first sync message of this run arrived. */
  get synced(): boolean {
    return this.#synced;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#wake?.abort();
    this.#stream?.cancel();
    await this.#loop?.catch(() => undefined);
    this.#conn?.close();
    this.#save();
    this.#releaseLock();
  }

  // ---- state ----------------------------------------------------------------

  #now(): number {
    return Math.floor(this.#nowMs() / 1000);
  }

  #identityValid(): boolean {
    return this.#identity !== undefined && this.#identity.notAfter > this.#now();
  }

  #restore(state: LoadedState): void {
    const identity = restoreState({ td: this.#td, cache: this.cache, log: this.#log }, state);
    if (state.agent) {
      this.#lastAgentId = state.agent.spiffeId;
      this.#identity = identity;
    }
  }

  /** Writes the state (identity and bundles: a few kilobytes); false (logged) when it could not. */
  #save(): boolean {
    try {
      saveState(this.config.data_dir, stateOf(this.#td, this.#identity, this.cache));
      return true;
    } catch (err) {
      // The agent keeps serving from memory; a restart would attest again.
      this.#log.error({ err: errorMessage(err) }, 'agent: cannot write its state');
      return false;
    }
  }

  // ---- server connection ----------------------------------------------------

  /** What the agent trusts the server with: its own bundle once it has one. */
  #serverTrust(): ServerTrust {
    const own = this.cache.bundle(this.#td.name);
    if (own && own.x509.size > 0) return { kind: 'bundle', authorities: own.x509 };
    const file = this.config.trust_bundle_file;
    if (file !== undefined) return { kind: 'bundle', authorities: readTrustBundleFile(file, this.#td) };
    if (this.config.insecure_bootstrap) return { kind: 'insecure' };
    throw new AnchorageError(
      'failed_precondition',
      `agent: no trust bundle to verify the server with: set trust_bundle_file (from "anchorage bundle show") or insecure_bootstrap in ${this.config.source}`,
    );
  }

  /** The channel for the current identity and authorities, made anew when either changed. */
  #connection(): ServerConnection {
    const id = this.#identity;
    if (!id) throw new AnchorageError('unauthenticated', 'agent: not attested');
    const trust = this.#serverTrust();
    const target = this.#servers.current;
    const fingerprint = `${target}|${b64(id.chain[0]!)}|${trust.kind === 'bundle' ? trust.authorities.authorities().map(b64).join(',') : ''}`;
    if (!this.#conn || this.#connFor !== fingerprint) {
      this.#conn?.close();
      this.#conn = new ServerConnection(target, this.#serverId, trust, { keyPem: id.keyPem, chain: id.chain });
      this.#connFor = fingerprint;
    }
    return this.#conn;
  }

  /** Node attestation with the agent's node attestor: a new key, the server's SVID for it and the bundle. */
  async #attest(): Promise<void> {
    const attempt = await this.#attestor.begin();
    const trust = this.#serverTrust();
    if (trust.kind === 'insecure') {
      this.#log.warn('agent: insecure_bootstrap: the server is not verified for this first attestation');
    }
    const { csr, pkcs8, privateKey } = newKeyAndCsr();
    const conn = new ServerConnection(this.#servers.current, this.#serverId, trust);
    let res;
    try {
      res = await conn.attest({ type: this.#attestor.type, payload: attempt.payload, csr, respond: (c) => attempt.respond(c) });
    } catch (err) {
      if (isAnchorageError(err, 'permission_denied')) attempt.refused();
      throw err;
    } finally {
      conn.close();
    }
    const bundle = SpiffeBundle.parse(this.#td, res.bundle);
    const id = checkAgentSvid(this.#td, () => this.#nowMs(), res.svid_chain, bundle.x509, privateKeySpki(privateKey));
    if (id.spiffeId.toString() !== res.spiffe_id || !attempt.expects(res.spiffe_id)) {
      throw new AnchorageError('internal', `agent: the server attested us as ${res.spiffe_id}, not as an agent with our ${this.#attestor.type} evidence`);
    }
    if (trust.kind === 'insecure') {
      this.#log.warn({ authorities: bundle.x509.size }, 'agent: trusting the bundle received over the unverified first connection');
    }
    this.#setIdentity({ ...id, keyPkcs8: pkcs8, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
    this.cache.setOwnBundle(bundle); // federated bundles arrive with the first sync
    this.#lastBundles = {};
    this.#save();
    this.#log.info({ agent: res.spiffe_id, notAfter: id.notAfter }, 'agent: attested');
  }

  #setIdentity(id: AgentIdentity): void {
    this.#identity = id;
    this.#lastAgentId = id.spiffeId.toString();
  }

  /** The server no longer accepts our SVID (evicted, superseded, unknown): attest again. */
  #dropIdentity(reason: string): void {
    if (!this.#identity) return;
    this.#log.error({ agent: this.#identity.spiffeId.toString(), reason }, `agent: the server refused our agent svid; attesting again${this.#againWith()}`);
    this.#identity = undefined;
    this.#conn?.close();
    this.#conn = undefined;
    this.#connFor = '';
    this.#save();
  }

  /**
   * The server evicted us (`anchorage agent evict`): we are no longer
   * authorized to hold anything obtained with this identity. Every workload
   * SVID, cached JWT-SVID, entry and federated bundle is dropped at once —
   * open Workload API streams end with PERMISSION_DENIED and new calls get it
   * — and the state file is rewritten without them (removed, if it cannot
   * be written), so a restart does not bring them back. The own trust
   * domain's bundle is kept only to verify the server when attesting again
   * with a new join token; what the new identity is authorized for arrives
   * with its first sync. An unreachable server is not this: cached SVIDs
   * are then served until they expire.
   */
  #onEvicted(err: EvictedError): void {
    const id = this.#identity;
    // A late refusal naming an identity we already dropped changes nothing.
    if (!id || err.agentId !== id.spiffeId.toString()) return;
    const dropped = this.cache.svids().length;
    this.#synced = false;
    this.cache.setEntries([]);
    const own = this.cache.bundle(this.#td.name);
    if (own) this.cache.setBundles(own, new Map());
    this.#lastBundles = {};
    this.#identity = undefined;
    this.#conn?.close();
    this.#conn = undefined;
    this.#connFor = '';
    if (!this.#save()) {
      const path = join(this.config.data_dir, STATE_FILE);
      try {
        unlinkSync(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.#log.error({ err: errorMessage(e), path }, 'agent: cannot remove its state after eviction');
      }
    }
    this.#log.error(
      { agent: err.agentId, droppedSvids: dropped, reason: err.message },
      `agent: evicted by the server; dropped every workload identity it held; attesting again${this.#againWith()}`,
    );
  }

  /** What attesting again takes, for the log: a join token is spent; tpm and x509pop evidence is not. */
  #againWith(): string {
    return this.#attestor.type === 'join_token' ? ' with a new join token' : ` with ${this.#attestor.type}`;
  }

  /** RenewAgent at half-life: a new key, a new SVID, a new channel. */
  async #renew(): Promise<void> {
    const id = this.#identity;
    if (this.#renewing || !id || this.#closed) return;
    this.#renewing = true;
    try {
      const { csr, pkcs8, privateKey } = newKeyAndCsr();
      const chain = await this.#connection().renew(csr);
      const own = this.cache.bundle(this.#td.name);
      const checked = checkAgentSvid(this.#td, () => this.#nowMs(), chain, own?.x509 ?? this.#serverTrustAuthorities(), privateKeySpki(privateKey));
      if (!checked.spiffeId.equals(id.spiffeId)) throw new AnchorageError('internal', `agent: renewal returned ${checked.spiffeId.toString()}`);
      this.#setIdentity({ ...checked, keyPkcs8: pkcs8, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
      // Written before anything uses it: the server now only accepts the new SVID.
      this.#save();
      this.#renewBackoff.reset();
      this.#renewRetryAt = 0;
      this.#log.info({ agent: id.spiffeId.toString(), notAfter: checked.notAfter }, 'agent: agent svid renewed');
      // Still signed by a tainted authority (the server has not switched yet): again after a backoff.
      const again = this.#taint.afterRenew(checked.chain);
      if (again !== undefined) this.#renewRetryAt = this.#nowMs() + again;
      this.#restartStream();
    } catch (err) {
      if (err instanceof EvictedError) {
        this.#onEvicted(err);
        this.#restartStream();
      } else if (isAnchorageError(err, 'permission_denied') || isAnchorageError(err, 'unauthenticated')) {
        this.#dropIdentity(errorMessage(err));
        this.#restartStream();
      } else {
        const delay = this.#renewBackoff.next();
        this.#renewRetryAt = this.#nowMs() + delay;
        this.#log.warn({ err: errorMessage(err), retryMs: delay }, 'agent: agent svid renewal failed');
      }
    } finally {
      this.#renewing = false;
      this.#mintDue();
      this.#schedule();
    }
  }

  /**
   * Renewal out of turn (the own SVID's authority was tainted, or it no
   * longer chains to the bundle): a failure backs off as at half-life.
   */
  #renewNow(): void {
    if (!this.#identity || this.#closed) return;
    if (this.#renewing) {
      // The renewal under way may still return the old authority's SVID: afterRenew sees to it.
      return;
    }
    this.#renewRetryAt = 0;
    void this.#renew();
  }

  /** The own SVID is signed by a tainted authority: it is renewed now, not at half-life. */
  #ownTainted(): boolean {
    return this.#identity !== undefined && this.#taint.isTainted(this.#identity.chain);
  }

  #serverTrustAuthorities(): X509Bundle {
    const t = this.#serverTrust();
    if (t.kind !== 'bundle') throw new AnchorageError('failed_precondition', 'agent: no bundle to verify the renewed svid with');
    return t.authorities;
  }

  /** Ends the current sync stream so the loop reconnects at once with the current credentials. */
  #restartStream(): void {
    this.#reconnectNow = true;
    this.#stream?.cancel();
    this.#wake?.abort();
  }

  // ---- the sync loop --------------------------------------------------------

  async #run(): Promise<void> {
    const backoff = new Backoff(BACKOFF);
    let failures = 0;
    while (!this.#closed) {
      let gotMessage = false;
      /** A refusal while attesting is about the evidence, not about the identity we hold. */
      let attesting = false;
      failures++;
      try {
        if (!this.#identityValid()) {
          if (this.#identity) this.#log.warn({ agent: this.#identity.spiffeId.toString() }, 'agent: agent svid expired; attesting again');
          attesting = true;
          await this.#attest();
          attesting = false;
        }
        const conn = this.#connection();
        // A pass may come in several messages; it is applied when complete.
        const assembler = new SyncAssembler();
        const stream = conn.sync((m) => {
          gotMessage = true;
          backoff.reset();
          const pass = assembler.add(m);
          if (pass) this.#onSync(pass);
          failures = 0;
        });
        this.#stream = stream;
        await stream.done;
        // Not when we ended it ourselves (#restartStream): that is no fault of the server.
        if (!this.#closed && !this.#reconnectNow) {
          this.#log.warn({ server: this.#servers.current }, 'agent: the server ended the sync stream; reconnecting');
          await this.#failover('the server ended the sync stream');
        }
      } catch (err) {
        if (this.#closed) break;
        if (this.#reconnectNow) {
          this.#reconnectNow = false;
          continue;
        }
        const msg = errorMessage(err);
        if (err instanceof EvictedError) {
          this.#onEvicted(err);
        } else if (isAnchorageError(err, 'permission_denied') || isAnchorageError(err, 'unauthenticated')) {
          if (this.#identity && !attesting) this.#dropIdentity(msg);
          else this.#log.error({ err: msg }, 'agent: cannot attest');
        } else if (isAnchorageError(err, 'failed_precondition')) {
          this.#log.error({ err: msg }, 'agent: cannot attest');
        } else {
          this.#log.warn({ err: msg, failures, server: this.#servers.current }, 'agent: server unreachable; serving cached svids');
          await this.#failover(msg);
        }
      } finally {
        this.#stream = undefined;
        if (this.#streamUp) this.#lastSyncMs = this.#nowMs();
        this.#streamUp = false;
      }
      if (this.#closed) break;
      if (this.#reconnectNow) {
        this.#reconnectNow = false;
        continue;
      }
      if (gotMessage) backoff.reset();
      this.#wake = new AbortController();
      await sleep(backoff.next(), undefined, { signal: this.#wake.signal }).catch(() => undefined);
      this.#wake = undefined;
    }
  }

  /**
   * The server in use failed (unreachable, refused TLS, ended or broke the
   * sync stream, a deadline): the next configured one is used from now on,
   * with the same identity. Refusals of the identity itself (evicted,
   * unauthenticated) do not move: every server would say the same. One log
   * line per move.
   */
  async #failover(reason: string): Promise<void> {
    const moved = await this.#servers.next();
    if (!moved || this.#closed) return;
    this.#conn?.close();
    this.#conn = undefined;
    this.#connFor = '';
    this.#log.warn({ from: moved.from, to: moved.to, reason, switches: this.#servers.switches }, 'agent: switching to another server');
  }

  /** One pass of the sync stream (all its messages): the full set or changes. */
  #onSync(m: SyncAuthorizedEntriesResponse__Output): void {
    const { needMint, bundlesChanged } = applySyncMessage(this.#td, this.cache, this.#log, this.#synced, m, this.#lastBundles);
    this.#synced = true;
    this.#streamUp = true;
    this.#lastSyncMs = this.#nowMs();
    if (bundlesChanged) {
      // An intermediate checked against the old bundle is checked again.
      this.#verifiedIssuers.clear();
      this.#save();
    }
    // Tainted authorities first: a revoked one arrives tainted, then leaves the bundle.
    this.#taint.onSync(m);
    if (bundlesChanged) this.#taint.onBundleChanged(this.#td, this.cache.bundle(this.#td.name)?.x509);
    // The bundle may have changed: say at once which one is held now.
    void this.#report();
    if (m.full) {
      // A new stream: the server is back, so a mint that failed while it was away is retried now,
      // with the rotations that came due meanwhile.
      this.#mintRetryAt = 0;
      this.#mintBackoff.reset();
      this.cache.markDue();
    }
    if (needMint || this.cache.pending().size > 0) this.#mintDue();
  }

  // ---- workload SVIDs -------------------------------------------------------

  /**
   * Starts BatchSignX509SVID calls for the entries waiting for an SVID, each
   * for up to {@link BATCH} entries not already in flight. With no call in
   * flight one goes out at once (a new entry alone is minted without delay);
   * more run alongside, up to {@link MINT_PIPELINE}, only for a full enough
   * batch: entries arriving one by one while a call is out wait for it and
   * go together in the next, instead of as many small calls whose fixed
   * cost at the server would slow everything (entries being created
   * included). Each call that ends starts the next.
   */
  #mintDue(): void {
    if (!this.#identityValid() || this.#closed || this.#mintRetryAt > this.#nowMs()) return;
    // A renewal under way: the server will refuse calls made with the SVID it replaces. Minting resumes when it ends.
    if (this.#renewing) return;
    while (this.#mintCalls < MINT_PIPELINE) {
      const ids: string[] = [];
      for (const id of this.cache.pending()) {
        if (this.#minting.has(id)) continue;
        ids.push(id);
        if (ids.length === BATCH) break;
      }
      if (ids.length === 0 || (this.#mintCalls > 0 && ids.length < MIN_PIPELINED_BATCH)) break;
      for (const id of ids) this.#minting.add(id);
      this.#mintCalls++;
      void this.#mintBatch(ids)
        .then(
          () => {
            this.#mintBackoff.reset();
            this.#mintRetryAt = 0;
          },
          (err: unknown) => {
            const delay = this.#mintBackoff.next();
            this.#mintRetryAt = this.#nowMs() + delay;
            if (err instanceof EvictedError) this.#onEvicted(err);
            else this.#log.warn({ err: errorMessage(err), retryMs: delay }, 'agent: minting workload svids failed; cached ones are still served');
          },
        )
        .finally(() => {
          this.#mintCalls--;
          for (const id of ids) this.#minting.delete(id);
          this.#mintDue();
          this.#schedule();
        });
    }
  }

  async #mintBatch(entryIds: string[]): Promise<void> {
    const reqs: { id: string; entry: CachedEntry; csr: Buffer; pkcs8: Buffer; spki: Buffer }[] = [];
    // Keys are made on the thread pool, a slice at a time.
    for (let i = 0; i < entryIds.length && !this.#closed; i += KEYS_PER_TURN) {
      const slice = entryIds.slice(i, i + KEYS_PER_TURN).flatMap((id) => {
        const entry = this.cache.entry(id);
        return entry ? [{ id, entry }] : [];
      });
      reqs.push(
        ...(await Promise.all(
          slice.map(async (r) => {
            // No KeyObject is kept: the SVID is checked against the SPKI, and the Workload API hands out the PKCS#8.
            const { csr, pkcs8, spki } = await newWorkloadKey();
            return { ...r, csr, pkcs8, spki };
          }),
        )),
      );
    }
    if (this.#closed) return;
    if (reqs.length === 0) return;
    const res = await this.#connection().batchSign(reqs.map((r) => ({ entry_id: r.id, csr: r.csr })));
    const byId = new Map(reqs.map((r) => [r.id, r]));
    const held: HeldSvid[] = [];
    const ctx = { td: this.#td, cache: this.cache, nowMs: () => this.#nowMs(), verifiedIssuers: this.#verifiedIssuers };
    for (const result of res.results) {
      const req = byId.get(result.entry_id);
      if (!req) throw new AnchorageError('internal', `agent: the server signed entry ${result.entry_id}, which was not asked for`);
      held.push(checkWorkloadSvid(ctx, req.entry, req, result.chain));
    }
    this.cache.putSvids(held);
    this.#log.info({ minted: held.length }, 'agent: workload svids minted');
    this.#taint.afterMint(held);
  }

  async #mintJwt(entryId: string, audience: string[]): Promise<{ token: string; expiresAt: number }> {
    if (!this.#identityValid()) throw new AnchorageError('unavailable', 'agent: not attested to the server; no JWT-SVID can be minted');
    return this.#connection()
      .mintJwt(entryId, audience)
      .catch((err: unknown) => {
        if (err instanceof EvictedError) this.#onEvicted(err);
        throw err;
      });
  }

  // ---- state reports --------------------------------------------------------

  /**
   * Tells the server the sequence of the bundle held and this host's clock
   * (for drift and skew in `anchorage check`). Best effort: a failed report
   * waits for the next one, a minute later or at the next sync message.
   */
  async #report(): Promise<void> {
    if (this.#reporting || this.#closed) return;
    const nowMs = this.#nowMs();
    const bundle = this.cache.bundle(this.#td.name);
    const sequence = bundle?.sequence ?? 0;
    if (nowMs - this.#reportKeptAt < REPORT_MIN_GAP_MS) {
      // The server would drop it: the same bundle waits for the regular report, a new one for the gap to pass.
      if (sequence !== this.#reportKeptSequence) this.#reportAt = Math.min(this.#reportAt, this.#reportKeptAt + REPORT_MIN_GAP_MS);
      this.#schedule();
      return;
    }
    this.#reportAt = nowMs + REPORT_INTERVAL_MS;
    this.#schedule();
    if (!this.#identity || !bundle) return;
    this.#reporting = true;
    this.#reportKeptAt = nowMs;
    this.#reportKeptSequence = sequence;
    try {
      await this.#connection().report(sequence, nowMs);
    } catch (err) {
      this.#log.debug({ err: errorMessage(err) }, 'agent: state report failed');
    } finally {
      this.#reporting = false;
    }
    // The bundle changed while this report was out: report the new one too (after the gap).
    if ((this.cache.bundle(this.#td.name)?.sequence ?? 0) !== sequence) void this.#report();
  }

  // ---- timers ---------------------------------------------------------------

  /** One timer for the next thing to do: a rotation, an expiry, a renewal or a retry. */
  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    const nowMs = this.#nowMs();
    const times: number[] = [];
    const deadline = this.cache.nextDeadline();
    if (deadline !== undefined) times.push(Math.max(deadline * 1000, this.#mintRetryAt));
    // Entries still waiting for an SVID after a failed call: the retry.
    if (this.#mintRetryAt > nowMs && this.cache.pending().size > 0) times.push(this.#mintRetryAt);
    if (this.#identity) times.push(Math.max(this.#ownTainted() ? 0 : this.#identity.renewAt * 1000, this.#renewRetryAt));
    if (this.#synced && this.#reportAt > 0) times.push(this.#reportAt);
    const taintRetry = this.#taint.nextWake();
    if (taintRetry !== undefined) times.push(taintRetry);
    if (times.length === 0) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, Math.min(...times) - nowMs));
    this.#timer = setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    if (this.#closed) return;
    const nowMs = this.#nowMs();
    this.cache.expire();
    if (this.#identity && (this.#identity.renewAt * 1000 <= nowMs || this.#ownTainted()) && this.#renewRetryAt <= nowMs) void this.#renew();
    if (this.#synced) this.#taint.tick();
    if (this.cache.markDue() > 0 && this.#synced) this.#mintDue();
    if (this.#synced && this.#reportAt > 0 && this.#reportAt <= nowMs) void this.#report();
    this.#schedule();
  }
}
