// join_token: the first node attestor. The payload is a single-use token made
// by "anchorage token create"; there is no challenge. The agent ID names the
// token, so an operator can tell agents apart and evict one.
import { AnchorageError, invalid } from '@anchorage/client/errors';
import type { DataStore } from '../datastore/DataStore.js';
import type { Challenge, NodeAttestation, NodeAttestor } from './NodeAttestor.js';

export const JOIN_TOKEN = 'join_token';

/** Tokens are 16 random bytes in hex (ca/admin). */
const TOKEN = /^[0-9a-f]{32}$/;

/** The refusal for every token that is not good now; one message, so it tells a prober nothing. */
export const JOIN_TOKEN_REFUSED = 'agent api: join token is unknown, used or expired';

export interface JoinTokenAttestorDeps {
  datastore: Pick<DataStore, 'consumeJoinToken'>;
  /** Seconds since the epoch. */
  now: () => number;
}

/** Server side of join_token: consumes the token; a token attests once. */
export class JoinTokenAttestor implements NodeAttestor {
  readonly type = JOIN_TOKEN;
  readonly #deps: JoinTokenAttestorDeps;

  constructor(deps: JoinTokenAttestorDeps) {
    this.#deps = deps;
  }

  precheck(payload: Buffer): void {
    // Messages as before the attestor interface: agents and operators match them.
    if (payload.length === 0) throw invalid('agent api: join_token is required');
  }

  async attest(payload: Buffer, _challenge: Challenge): Promise<NodeAttestation> {
    this.precheck(payload);
    const token = payload.toString('latin1');
    // Anything not shaped like a token is refused like an unknown one, without a datastore read.
    if (!TOKEN.test(token)) throw new AnchorageError('permission_denied', JOIN_TOKEN_REFUSED);
    const used = await this.#deps.datastore.consumeJoinToken(token, this.#deps.now());
    if (!used) throw new AnchorageError('permission_denied', JOIN_TOKEN_REFUSED);
    return { agentIdPath: `/anchorage/agent/${JOIN_TOKEN}/${token}`, selectors: [{ type: JOIN_TOKEN, value: token }] };
  }
}
