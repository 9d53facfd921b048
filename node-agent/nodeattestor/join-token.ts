// join_token on the agent: the token of agent.yaml (`join_token:`), read
// again at each attempt, so an operator can hand an evicted agent a new token
// without restarting it. A token is single use: one this agent already used,
// or one the server refused, is not sent again.
import { AnchorageError, invalid } from '@anchorage/client/errors';
import type { AttestationAttempt, NodeAttestor } from './NodeAttestor.js';

export const JOIN_TOKEN = 'join_token';

/** The join token inside an agent ID made by join-token attestation. */
export function tokenOf(agentId: string): string | undefined {
  return /\/anchorage\/agent\/join_token\/([0-9a-f]{32})$/.exec(agentId)?.[1];
}

export interface JoinTokenAgentOptions {
  /** The current token of the config, if any. */
  token: () => string | undefined;
  /** The config file, for messages. */
  source: string;
  /** The agent ID of the agent's last identity: its token is spent. */
  lastAgentId: () => string | undefined;
}

/** Agent side of join_token: sends the token; answers no challenge. */
export class JoinTokenAgentAttestor implements NodeAttestor {
  readonly type = JOIN_TOKEN;
  readonly #opts: JoinTokenAgentOptions;
  /** Tokens the server refused: not tried again until the config names another one. */
  readonly #refused = new Set<string>();

  constructor(opts: JoinTokenAgentOptions) {
    this.#opts = opts;
  }

  async begin(): Promise<AttestationAttempt> {
    const token = this.#opts.token();
    const where = this.#opts.source;
    if (!token) {
      throw new AnchorageError(
        'failed_precondition',
        `agent: no valid agent SVID and no join_token in ${where}: create one with "anchorage token create" on the server`,
      );
    }
    const last = this.#opts.lastAgentId();
    if (last !== undefined && tokenOf(last) === token) {
      throw new AnchorageError('failed_precondition', `agent: join token ${token.slice(0, 8)}… was already used by this agent; put a new one in ${where}`);
    }
    if (this.#refused.has(token)) {
      throw new AnchorageError('permission_denied', `agent: the server refused join token ${token.slice(0, 8)}…; put a new one in ${where}`);
    }
    return {
      payload: Buffer.from(token, 'latin1'),
      respond: () => Promise.reject(invalid('agent: the server sent a challenge to join_token attestation, which has none')),
      refused: () => this.#refused.add(token),
      expects: (agentId) => tokenOf(agentId) === token,
    };
  }
}
