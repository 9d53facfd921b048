// The agent's node attestors by type: the one place that knows every
// built-in. An agent attests with one of them (SPIRE's agents do the same).
import { invalid } from '@anchorage/client/errors';
import { JOIN_TOKEN, JoinTokenAgentAttestor } from './join-token.js';
import type { NodeAttestor } from './NodeAttestor.js';

/** Every built-in agent node attestor type. tpm and x509pop come next. */
export const AGENT_NODE_ATTESTOR_TYPES = [JOIN_TOKEN] as const;

/** What any agent node attestor may need. */
export interface AgentNodeAttestorDeps {
  /** The config file, for messages. */
  source: string;
  /** The join token of the config, read again at each call. */
  joinToken: () => string | undefined;
  /** The agent ID of the agent's last identity. */
  lastAgentId: () => string | undefined;
}

const FACTORIES: Record<string, (deps: AgentNodeAttestorDeps) => NodeAttestor> = {
  [JOIN_TOKEN]: (d) => new JoinTokenAgentAttestor({ token: d.joinToken, source: d.source, lastAgentId: d.lastAgentId }),
};

/** The agent node attestor of `type`; an unknown type is a clear error. */
export function agentNodeAttestor(type: string, deps: AgentNodeAttestorDeps): NodeAttestor {
  const make = Object.hasOwn(FACTORIES, type) ? FACTORIES[type] : undefined;
  if (!make) throw invalid(`agent: unknown node attestor type "${type}" (known: ${AGENT_NODE_ATTESTOR_TYPES.join(', ')})`);
  return make(deps);
}
