/**
 * The agent's Prometheus metrics and readiness (`metrics:` in agent.yaml).
 * Workload API calls and workload attestations are counted at their call
 * sites; every gauge about state (SVID expiries, the bundle sequence, sync)
 * is read when Prometheus scrapes. Labels are bounded: RPC names, gRPC
 * status names, attestor types — never a SPIFFE ID, pid or uid.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../common/log.js';
import { resultOf, startMetricsHttp, type HealthReport, type MetricsHttp } from '../common/metrics-http.js';
import type { Selector } from '../common/selector.js';
import type { WorkloadApiObserver } from '../workload-api/handlers.js';
import type { PeerCredentials, WorkloadAttestor } from '../workload-api/WorkloadAttestor.js';
import type { NodeAgent } from './agent.js';
import { UnionAttestor } from './attestor/union.js';

/** Attestation reads procfs and may hash a binary: from tens of µs to seconds. */
const ATTEST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5];

type Bound = { inc: () => void };

/** The agent's metrics; one per process, with its own Registry. */
export class AgentMetrics implements WorkloadApiObserver {
  readonly registry = new Registry();
  readonly #calls: Counter<'rpc' | 'code'>;
  readonly #streams: Gauge<'rpc'>;
  readonly #attestations: Counter<'attestor' | 'result'>;
  readonly #attestSeconds: Histogram<'attestor'>;
  /** Bound children by `rpc|code`: a call costs one Map lookup and one increment. */
  readonly #boundCalls = new Map<string, Bound>();
  readonly #boundStreams = new Map<string, { inc: () => void; dec: () => void }>();

  constructor() {
    const registers = [this.registry];
    this.#calls = new Counter({
      name: 'anchorage_workload_api_calls_total',
      help: 'Workload API calls by RPC and the gRPC status they ended with (streams count when they end; a client\'s cancel is CANCELLED).',
      labelNames: ['rpc', 'code'],
      registers,
    });
    this.#streams = new Gauge({
      name: 'anchorage_workload_api_streams_open',
      help: 'Workload API streams open now, by RPC.',
      labelNames: ['rpc'],
      registers,
    });
    this.#attestations = new Counter({
      name: 'anchorage_workload_attestations_total',
      help: 'Workload attestations, by attestor (unix, …) and result (success, or the error code).',
      labelNames: ['attestor', 'result'],
      registers,
    });
    this.#attestSeconds = new Histogram({
      name: 'anchorage_workload_attestation_duration_seconds',
      help: 'Duration of workload attestations, by attestor.',
      labelNames: ['attestor'],
      buckets: ATTEST_BUCKETS,
      registers,
    });
  }

  callEnded(rpc: string, code: string): void {
    const key = `${rpc}|${code}`;
    let b = this.#boundCalls.get(key);
    if (b === undefined) {
      b = this.#calls.labels(rpc, code);
      this.#boundCalls.set(key, b);
    }
    b.inc();
  }

  streamOpened(rpc: string): void {
    this.#stream(rpc).inc();
  }

  streamClosed(rpc: string): void {
    this.#stream(rpc).dec();
  }

  #stream(rpc: string): { inc: () => void; dec: () => void } {
    let b = this.#boundStreams.get(rpc);
    if (b === undefined) {
      b = this.#streams.labels(rpc);
      this.#boundStreams.set(rpc, b);
    }
    return b;
  }

  /** The same attestors, each timed and counted under its own name; a union is rebuilt from timed members. */
  instrument(attestor: WorkloadAttestor): WorkloadAttestor {
    if (attestor instanceof UnionAttestor) return new UnionAttestor(attestor.members.map((m) => this.instrument(m)));
    const name = attestor.name;
    const ok = this.#attestations.labels(name, 'success');
    const seconds = this.#attestSeconds.labels(name);
    const counters = this.#attestations;
    const timed: WorkloadAttestor = {
      name,
      attest: async (peer: PeerCredentials): Promise<Selector[]> => {
        const t0 = performance.now();
        try {
          const selectors = await attestor.attest(peer);
          ok.inc();
          return selectors;
        } catch (err) {
          counters.labels(name, resultOf(err)).inc();
          throw err;
        } finally {
          seconds.observe((performance.now() - t0) / 1000);
        }
      },
    };
    if (attestor.confirm) timed.confirm = (peer) => attestor.confirm!(peer);
    return timed;
  }

  /** Gauges read from the running agent at scrape time. */
  attach(agent: NodeAgent, now: () => number = Date.now): void {
    const registers = [this.registry];
    const td = agent.config.trust_domain.name;
    const seconds = () => now() / 1000;
    new Gauge({
      name: 'anchorage_agent_svid_not_after_timestamp_seconds',
      help: 'notAfter (Unix seconds) of the agent\'s own SVID; absent while it has none.',
      registers,
      collect() {
        this.reset();
        const na = agent.svidNotAfter;
        if (na !== undefined) this.set(na);
      },
    });
    new Gauge({
      name: 'anchorage_agent_svid_not_before_timestamp_seconds',
      help: 'notBefore (Unix seconds) of the agent\'s own SVID (its lifetime tells when renewal is due: at half of it).',
      registers,
      collect() {
        this.reset();
        const nb = agent.svidNotBefore;
        if (nb !== undefined) this.set(nb);
      },
    });
    new Gauge({
      name: 'anchorage_agent_workload_svid_soonest_not_after_timestamp_seconds',
      help: 'notAfter (Unix seconds) of the workload X509-SVID that expires first; absent when the agent holds none.',
      registers,
      collect() {
        this.reset();
        let soonest = Infinity;
        for (const s of agent.cache.svids()) if (s.notAfter < soonest) soonest = s.notAfter;
        if (soonest !== Infinity) this.set(soonest);
      },
    });
    new Gauge({
      name: 'anchorage_agent_workload_svids',
      help: 'Workload X509-SVIDs the agent holds.',
      registers,
      collect() {
        this.set(agent.cache.svids().length);
      },
    });
    new Gauge({
      name: 'anchorage_agent_bundle_sequence',
      help: 'spiffe_sequence of the trust domain\'s own bundle as the agent holds it (compare with anchorage_bundle_sequence of the server).',
      labelNames: ['trust_domain'],
      registers,
      collect() {
        this.reset();
        const seq = agent.cache.bundle(td)?.sequence;
        if (seq !== undefined) this.labels(td).set(seq);
      },
    });
    new Gauge({
      name: 'anchorage_agent_last_sync_timestamp_seconds',
      help: 'When the agent was last known in sync with the server (Unix seconds): now while its push stream is open, else when it was last open; absent if never in this run.',
      registers,
      collect() {
        this.reset();
        const ms = agent.lastSyncMs;
        if (ms !== undefined) this.set(ms / 1000);
      },
    });
    new Gauge({
      name: 'anchorage_agent_sync_lag_seconds',
      help: 'Seconds since the agent was last known in sync with the server: 0 while its push stream is open; since start if it never was.',
      registers,
      collect() {
        const ms = agent.lastSyncMs;
        this.set(ms === undefined ? process.uptime() : Math.max(0, seconds() - ms / 1000));
      },
    });
    new Counter({
      name: 'anchorage_agent_server_switches_total',
      help: 'Times the agent moved to another server of server_address because the one in use failed.',
      registers,
      collect() {
        this.reset();
        this.inc(agent.serverSwitches);
      },
    });
  }

  /** Starts the HTTP listener at `address`; /ready asks `ready`. */
  listen(address: string, ready: () => HealthReport, logger: Logger): Promise<MetricsHttp> {
    return startMetricsHttp({ address, registry: this.registry, ready: async () => ready(), logger });
  }
}

/**
 * The agent is ready when it holds an unexpired SVID of its own and a current
 * bundle of its trust domain (at least one X.509 authority that has not
 * expired): what it needs to serve workloads and to reach the server.
 */
export function agentReadiness(agent: NodeAgent, now: () => number = Date.now): HealthReport {
  const t = Math.floor(now() / 1000);
  const lines: string[] = [];
  const na = agent.svidNotAfter;
  const svidOk = na !== undefined && na > t;
  lines.push(svidOk ? `ok: agent SVID valid until ${new Date(na * 1000).toISOString()}` : na === undefined ? 'FAIL: no agent SVID (not attested yet)' : `FAIL: agent SVID expired at ${new Date(na * 1000).toISOString()}`);
  const bundle = agent.cache.bundle(agent.config.trust_domain.name);
  const current = bundle?.x509.certificates().filter((c) => Date.parse(c.validTo) / 1000 > t).length ?? 0;
  const bundleOk = current > 0;
  lines.push(
    bundleOk
      ? `ok: bundle of ${agent.config.trust_domain.name} (sequence ${bundle!.sequence ?? 0}) has ${current} current X.509 authorit${current === 1 ? 'y' : 'ies'}`
      : bundle === undefined
        ? 'FAIL: no bundle of the trust domain yet'
        : 'FAIL: every X.509 authority of the bundle has expired',
  );
  const last = agent.lastSyncMs;
  lines.push(last === undefined ? 'info: not synced with the server in this run' : `info: last in sync with the server at ${new Date(last).toISOString()}`);
  return { ok: svidOk && bundleOk, lines };
}
