import { invalid } from '@anchorage/client/errors';
import { unaryHandler } from '../../common/grpc.js';
import type { AuditSink } from '../audit/event.js';
import type { Logger } from '../../common/log.js';
import { SpiffeBundle } from '@anchorage/client/spiffe/bundle';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import type { AdminHandlers } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { FederationRelationship as RelationshipProto } from '../../proto/gen/anchorage/admin/v1/FederationRelationship.js';
import type { ChangeFeed } from '../changes.js';
import type { DataStore, FederationRelationship, NewRelationship } from '../datastore/DataStore.js';
import type { FederationClient } from '../federation/client.js';
import { checkRelationship, relationshipNotFound, toRelationshipProto } from '../federation/relationships.js';
import { checkAuthorities, federatedTrustDomain, listFederatedBundles, setFederatedBundle, toFederatedBundle } from '../federation/static.js';

export interface FederationAdminDeps {
  datastore: DataStore;
  feed: ChangeFeed;
  federation: FederationClient;
  trustDomain: TrustDomain;
  now: () => number;
  logger: Logger;
  /** Relationship changes are recorded here (ca/audit/). */
  audit?: AuditSink;
}

type FederationHandlers = Pick<
  AdminHandlers,
  | 'CreateFederationRelationship'
  | 'GetFederationRelationship'
  | 'ListFederationRelationships'
  | 'UpdateFederationRelationship'
  | 'DeleteFederationRelationship'
  | 'RefreshFederationRelationship'
  | 'ListFederatedBundles'
>;

/**
 * The admin RPCs of federation relationships (and the bundle listing, which
 * shows how each relationship's last fetch went). Create and update wait for
 * the first fetch, so the operator sees at once whether the endpoint works.
 */
export function federationHandlers(deps: FederationAdminDeps): FederationHandlers {
  const { datastore: ds, feed, federation, trustDomain: td, now, logger: log } = deps;

  /** A bootstrap bundle must be a bundle document of the relationship's trust domain. */
  const checkBootstrap = (r: NewRelationship, document: string): void => {
    let b: SpiffeBundle;
    try {
      b = SpiffeBundle.parse(TrustDomain.parse(r.trustDomain), document);
      if (b.x509.size === 0) throw new Error('it holds no X.509 authorities');
    } catch (err) {
      throw invalid(`federation: bootstrap_bundle for ${r.trustDomain}: ${(err as Error).message}`, err);
    }
    // Before anything is written: an update stores the relationship and drops the held bundle first.
    checkAuthorities(b, now());
  };

  const withBundle = async (r: FederationRelationship): Promise<RelationshipProto> => {
    const b = await ds.getBundle(r.trustDomain);
    return toRelationshipProto(r, b && toFederatedBundle(b, r));
  };

  const lookup = async (name: string): Promise<FederationRelationship> => {
    const t = federatedTrustDomain(name, td);
    const r = await ds.getRelationship(t.name);
    if (!r) throw relationshipNotFound(t.name);
    return r;
  };

  return {
    CreateFederationRelationship: unaryHandler(log, 'CreateFederationRelationship', async (req) => {
      if (!req.relationship) throw invalid('federation: relationship is required');
      const r = checkRelationship(req.relationship, td);
      if (req.bootstrap_bundle) checkBootstrap(r, req.bootstrap_bundle);
      else if (r.profile === 'https_spiffe' && !(await ds.getBundle(r.trustDomain))) {
        throw invalid(`federation: bootstrap_bundle is required for profile https_spiffe: no bundle of ${r.trustDomain} is held to authenticate the endpoint with`);
      }
      await ds.createRelationship(r, now());
      if (req.bootstrap_bundle) {
        try {
          // Given explicitly, it replaces a bundle held before (e.g. set by hand), whatever its sequence.
          await ds.deleteBundle(r.trustDomain);
          await setFederatedBundle(ds, td, r.trustDomain, req.bootstrap_bundle, now());
        } catch (err) {
          await ds.deleteRelationship(r.trustDomain);
          throw err;
        }
        feed.bundlesChanged();
      }
      await deps.audit?.record({ type: 'federation.relationship_created', outcome: 'ok', details: relationshipDetails(r, Boolean(req.bootstrap_bundle)) });
      log.info({ trustDomain: r.trustDomain, url: r.bundleEndpointUrl, profile: r.profile, endpointId: r.endpointSpiffeId || undefined }, 'admin: federation relationship created');
      return withBundle(await federation.changed(r.trustDomain));
    }),
    GetFederationRelationship: unaryHandler(log, 'GetFederationRelationship', async (req) => withBundle(await lookup(req.trust_domain))),
    ListFederationRelationships: unaryHandler(log, 'ListFederationRelationships', async () => ({
      relationships: await Promise.all((await ds.listRelationships()).map(withBundle)),
    })),
    UpdateFederationRelationship: unaryHandler(log, 'UpdateFederationRelationship', async (req) => {
      if (!req.relationship) throw invalid('federation: relationship is required');
      const r = checkRelationship(req.relationship, td);
      await lookup(r.trustDomain);
      if (req.bootstrap_bundle) checkBootstrap(r, req.bootstrap_bundle);
      else if (r.profile === 'https_spiffe' && !(await ds.getBundle(r.trustDomain))) {
        throw invalid(`federation: bootstrap_bundle is required for profile https_spiffe: no bundle of ${r.trustDomain} is held to authenticate the endpoint with`);
      }
      await ds.updateRelationship(r, now());
      if (req.bootstrap_bundle) {
        // The operator replaces what authenticates the endpoint: whatever is held goes, sequence and all.
        await ds.deleteBundle(r.trustDomain);
        await setFederatedBundle(ds, td, r.trustDomain, req.bootstrap_bundle, now());
        feed.bundlesChanged();
      }
      await deps.audit?.record({ type: 'federation.relationship_updated', outcome: 'ok', details: relationshipDetails(r, Boolean(req.bootstrap_bundle)) });
      log.info({ trustDomain: r.trustDomain, url: r.bundleEndpointUrl, profile: r.profile, bootstrap: Boolean(req.bootstrap_bundle) }, 'admin: federation relationship updated');
      return withBundle(await federation.changed(r.trustDomain));
    }),
    DeleteFederationRelationship: unaryHandler(log, 'DeleteFederationRelationship', async (req) => {
      const r = await lookup(req.trust_domain);
      const proto = await withBundle(r);
      await ds.deleteRelationship(r.trustDomain);
      federation.forget(r.trustDomain);
      // Without the relationship its bundle is trusted no longer: agents drop it at once.
      if (await ds.getBundle(r.trustDomain)) {
        await ds.deleteBundle(r.trustDomain);
        feed.bundlesChanged();
      }
      await deps.audit?.record({ type: 'federation.relationship_deleted', outcome: 'ok', details: { trust_domain: r.trustDomain } });
      log.info({ trustDomain: r.trustDomain }, 'admin: federation relationship deleted, with its bundle');
      return proto;
    }),
    RefreshFederationRelationship: unaryHandler(log, 'RefreshFederationRelationship', async (req) => {
      const r = await lookup(req.trust_domain);
      return withBundle(await federation.refresh(r.trustDomain));
    }),
    ListFederatedBundles: unaryHandler(log, 'ListFederatedBundles', async () => {
      const rels = new Map((await ds.listRelationships()).map((r) => [r.trustDomain, r]));
      return { bundles: (await listFederatedBundles(ds, td)).map((b) => toFederatedBundle(b, rels.get(b.trustDomain))) };
    }),
  };
}

/** What the audit record of a relationship change keeps. */
function relationshipDetails(
  r: { trustDomain: string; bundleEndpointUrl: string; profile: string; endpointSpiffeId: string },
  bootstrap: boolean,
): Record<string, string | boolean> {
  return { trust_domain: r.trustDomain, url: r.bundleEndpointUrl, profile: r.profile, endpoint_spiffe_id: r.endpointSpiffeId, bootstrap };
}
