// State persistence glue: turns the agent's identity and WorkloadCache into
// the state file's records (../state.ts does the file itself) and back at
// start, so the agent serves cached SVIDs while the server is down.
import { createPrivateKey } from 'node:crypto';
import { errorMessage } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import type { WorkloadCache } from '../cache.js';
import type { AgentState, AgentStateSource } from '../state.js';
import { halfLife, type AgentIdentity } from './identity.js';

/** Workload SVID changes are written at most this often; the agent identity at once. */
export const SAVE_DELAY_MS = 250;

/** Base64 of bytes, as the state file stores keys and certificates. */
export function b64(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64');
}

export function unb64(s: string): Buffer {
  return Buffer.from(s, 'base64');
}

/** What {@link restoreState} and {@link stateSource} work on. */
export interface PersistContext {
  td: TrustDomain;
  cache: WorkloadCache;
  log: Logger;
  /** Unix seconds. */
  now: () => number;
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
  ctx.cache.setEntries(state.entries);
  const now = ctx.now();
  ctx.cache.putSvids(
    Object.values(state.svids)
      .filter((s) => s.notAfter > now)
      .map((s) => ({
        entryId: s.entryId,
        revision: s.revision,
        key: unb64(s.keyPkcs8),
        chain: s.chain.map(unb64),
        notBefore: s.notBefore,
        notAfter: s.notAfter,
        rotateAt: s.rotateAt,
      })),
  );
  const served = ctx.cache.svids().length;
  if (served > 0 || identity) {
    ctx.log.info(
      { agent: identity?.spiffeId.toString(), entries: state.entries.length, svids: served },
      'agent: restored cached state',
    );
  }
  return identity;
}

/** The state to write; entries and SVIDs are produced one at a time as the file is written. */
export function stateSource(td: TrustDomain, identity: AgentIdentity | undefined, cache: WorkloadCache): AgentStateSource {
  const id = identity;
  const own = cache.bundle(td.name);
  return {
    version: 1,
    trustDomain: td.name,
    agent: id && {
      spiffeId: id.spiffeId.toString(),
      keyPkcs8: b64(id.keyPkcs8),
      chain: id.chain.map(b64),
      notBefore: id.notBefore,
      notAfter: id.notAfter,
    },
    bundle: own?.marshal(),
    federated: cache.federatedDocuments(),
    entries: cache.entries(),
    svids: (function* () {
      for (const s of cache.svids()) {
        yield {
          entryId: s.entryId,
          revision: s.revision,
          keyPkcs8: b64(s.key),
          chain: s.chain.map(b64),
          notBefore: s.notBefore,
          notAfter: s.notAfter,
          rotateAt: s.rotateAt,
        };
      }
    })(),
  };
}
