import type { Logger } from '../common/log.js';
import { startWorkloadApi, type WorkloadApi } from '../workload-api/server.js';
import { NodeAgent } from './agent.js';
import { createWorkloadAttestors } from './attestor/registry.js';
import type { AgentConfig } from './config.js';

/** A running agent process: the agent and the Workload API it serves. */
export interface RunningAgent {
  agent: NodeAgent;
  workloadApi: WorkloadApi;
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
  try {
    agent.cache.configureJwtCache({ maxBytes: config.jwt_cache_max_bytes, logger });
    // One attestor for the server: every configured one, selectors unioned.
    const attestor = createWorkloadAttestors(config.workload_attestors, { logger });
    workloadApi = await startWorkloadApi({
      socketPath: config.socket_path,
      source: agent.cache,
      attestor,
      logger,
      socketMode: config.socket_mode,
      maxConnections: config.workload_api.max_connections,
      maxConnectionsPerUid: config.workload_api.max_connections_per_uid,
      sds: { names: config.sds },
    });
  } catch (err) {
    await agent.close();
    throw err;
  }
  logger.info({ socket: config.socket_path, agent: agent.spiffeId }, 'agent: workload api listening');
  return {
    agent,
    workloadApi,
    async close() {
      await workloadApi.close();
      await agent.close();
    },
  };
}
