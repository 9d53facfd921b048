import type { Logger } from '../common/log.js';
import type { MetricsHttp } from '../common/metrics-http.js';
import { startWorkloadApi, type WorkloadApi } from '../workload-api/server.js';
import { NodeAgent } from './agent.js';
import { createWorkloadAttestors } from './attestor/registry.js';
import type { AgentConfig } from './config.js';
import { AgentMetrics, agentReadiness } from './metrics.js';

/** A running agent process: the agent and the Workload API it serves. */
export interface RunningAgent {
  agent: NodeAgent;
  workloadApi: WorkloadApi;
  /** The port of /metrics, /live and /ready, when `metrics` is configured. */
  metricsPort: number | undefined;
  close(): Promise<void>;
}

/**
 * `anchorage agent run`: starts the agent (attesting if needed), then the
 * Workload API on its Unix socket, attesting callers with every attestor
 * in `workload_attestors` (selectors unioned).
 */
export async function runAgent(config: AgentConfig, opts: { logger: Logger; now?: () => number }): Promise<RunningAgent> {
  const { logger } = opts;
  const agent = await NodeAgent.start({ config, logger, now: opts.now });
  let workloadApi: WorkloadApi;
  let metricsHttp: MetricsHttp | undefined;
  const now = opts.now ?? Date.now;
  const metrics = config.metrics ? new AgentMetrics() : undefined;
  try {
    agent.cache.configureJwtCache({ maxBytes: config.jwt_cache_max_bytes, logger });
    // One attestor for the server: every configured one, selectors unioned.
    const configured = createWorkloadAttestors(config.workload_attestors, { logger });
    const attestor = metrics ? metrics.instrument(configured) : configured;
    if (metrics && config.metrics) {
      metrics.attach(agent, now);
      metricsHttp = await metrics.listen(config.metrics.address, () => agentReadiness(agent, now), logger);
    }
    workloadApi = await startWorkloadApi({
      socketPath: config.socket_path,
      source: agent.cache,
      attestor,
      logger,
      socketMode: config.socket_mode,
      maxConnections: config.workload_api.max_connections,
      maxConnectionsPerUid: config.workload_api.max_connections_per_uid,
      sds: { names: config.sds },
      observer: metrics,
      healthy: () => agentReadiness(agent, now).ok,
    });
  } catch (err) {
    await metricsHttp?.close();
    await agent.close();
    throw err;
  }
  logger.info({ socket: config.socket_path, agent: agent.spiffeId }, 'agent: workload api listening');
  return {
    agent,
    workloadApi,
    metricsPort: metricsHttp?.port,
    async close() {
      await workloadApi.close();
      await metricsHttp?.close();
      await agent.close();
    },
  };
}
