// State persistence glue: turns the agent's identity and the bundles of its
// WorkloadCache into the state file's record (../state.ts does the file
// itself, and says what is kept and why) and back at start.
import { createPrivateKey } from 'node:crypto';
import { errorMessage } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import type { WorkloadCache } from '../cache.js';
import type { AgentState } from '../state.js';
import { halfLife, type AgentIdentity } from './identity.js';

/** Base64 of bytes, as the state file stores keys and certificates. */
export function b64(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64');
}

export function unb64(s: string): Buffer {
  return Buffer.from(s, 'base64');
}

/** What {@link restoreState} works on. */
export interface PersistContext {
  td: TrustDomain;
  cache: WorkloadCache;
  log: Logger;
}

/**
 * Loads a state read at start into the cache and returns the agent identity
 * it held, if any (expired or not: the caller decides).
 */
export function restoreState(ctx: PersistContext, state: AgentState): AgentIdentity | undefined {
  let identity: AgentIdentity | undefined;
  if (state.agent) {
    const keyPkcs8 = unb64(state.agent.keyPkcs8);
    identity = {
      spiffeId: SpiffeId.parse(state.agent.spiffeId),
      keyPkcs8,
      keyPem: createPrivateKey({ key: keyPkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string,
      chain: state.agent.chain.map(unb64),
      notBefore: state.agent.notBefore,
      notAfter: state.agent.notAfter,
      renewAt: halfLife(state.agent.notBefore, state.agent.notAfter),
    };
  }
  if (state.bundle) {
    const federated = new Map<string, SpiffeBundle>();
    for (const [td, doc] of Object.entries(state.federated)) {
      try {
        federated.set(td, SpiffeBundle.parse(TrustDomain.parse(td), doc));
      } catch (err) {
        ctx.log.warn({ trustDomain: td, err: errorMessage(err) }, 'agent: dropping an unreadable cached federated bundle');
      }
    }
    ctx.cache.setBundles(SpiffeBundle.parse(ctx.td, state.bundle), federated);
  }
  if (identity) ctx.log.info({ agent: identity.spiffeId.toString(), notAfter: identity.notAfter }, 'agent: restored its identity');
  return identity;
}

/** The state to write: the identity and the bundles. */
export function stateOf(td: TrustDomain, identity: AgentIdentity | undefined, cache: WorkloadCache): AgentState {
  const id = identity;
  return {
    version: 2,
    trustDomain: td.name,
    agent: id && {
      spiffeId: id.spiffeId.toString(),
      keyPkcs8: b64(id.keyPkcs8),
      chain: id.chain.map(b64),
      notBefore: id.notBefore,
      notAfter: id.notAfter,
    },
    bundle: cache.bundle(td.name)?.marshal(),
    federated: cache.federatedDocuments(),
  };
}
