// The agent's node attestors by type: the one place that knows every
// built-in. An agent attests with one of them (SPIRE's agents do the same).
import { invalid } from '../../common/errors.js';
import { JOIN_TOKEN, JoinTokenAgentAttestor } from './join-token.js';
import type { NodeAttestor } from './NodeAttestor.js';
import { DEFAULT_TCTI, EK_ALGORITHMS, TPM, TpmAgentAttestor, type EkAlgorithm } from './tpm.js';
import { X509POP, X509PopAgentAttestor } from './x509pop.js';

/** Every built-in agent node attestor type. */
export const AGENT_NODE_ATTESTOR_TYPES = [JOIN_TOKEN, TPM, X509POP] as const;

/** `node_attestor` of agent.yaml, paths absolute. */
export type AgentNodeAttestorConfig =
  | { type: typeof JOIN_TOKEN }
  | { type: typeof TPM; tcti: string; ek_algorithm: EkAlgorithm }
  | { type: typeof X509POP; cert_file: string; key_file: string };

export { DEFAULT_TCTI, EK_ALGORITHMS };

/** What any agent node attestor may need. */
export interface AgentNodeAttestorDeps {
  /** The config file, for messages. */
  source: string;
  /** The join token of the config, read again at each call. */
  joinToken: () => string | undefined;
  /** The agent ID of the agent's last identity. */
  lastAgentId: () => string | undefined;
}

/** The agent node attestor `cfg` names; an unknown type is a clear error. */
export function agentNodeAttestor(cfg: AgentNodeAttestorConfig | { type: string }, deps: AgentNodeAttestorDeps): NodeAttestor {
  const c = cfg as AgentNodeAttestorConfig;
  switch (c.type) {
    case JOIN_TOKEN:
      return new JoinTokenAgentAttestor({ token: deps.joinToken, source: deps.source, lastAgentId: deps.lastAgentId });
    case TPM:
      return new TpmAgentAttestor({ tcti: c.tcti, ekAlgorithm: c.ek_algorithm });
    case X509POP:
      return new X509PopAgentAttestor({ certFile: c.cert_file, keyFile: c.key_file });
    default:
      throw invalid(`agent: unknown node attestor type "${cfg.type}" (known: ${AGENT_NODE_ATTESTOR_TYPES.join(', ')})`);
  }
}
