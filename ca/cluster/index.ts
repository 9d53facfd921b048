// Several servers on one PostgreSQL database: the cross-server change feed
// (bridge.ts) and the federation fetch lease. With SQLite there is one
// server and nothing to bridge.
import type { Logger } from '../../common/log.js';
import type { ChangeFeed } from '../changes.js';
import type { DataStore } from '../datastore/DataStore.js';
import { PostgresDataStore } from '../datastore/postgres/index.js';
import type { RefreshLease } from '../federation/client.js';
import { ClusterBridge } from './bridge.js';

export { ClusterBridge, type ClusterBridgeOptions, type ChangeChannel, type BridgeStats, DEFAULT_RECONCILE_INTERVAL_MS } from './bridge.js';
export { decodeChange, encodeChange, type Change, type ChangeMessage } from './payload.js';

export interface Cluster {
  bridge: ClusterBridge;
  /** For the FederationClient: timed fetches once per relationship across the servers. */
  lease: RefreshLease;
  close(): Promise<void>;
}

/**
 * Starts the bridge if `datastore` is PostgreSQL (undefined for SQLite: one
 * server, nothing to bridge). Fails with `unavailable` if it cannot LISTEN.
 */
export async function startCluster(
  datastore: DataStore,
  feed: ChangeFeed,
  opts: { logger: Logger; reconcileIntervalMs?: number },
): Promise<Cluster | undefined> {
  if (!(datastore instanceof PostgresDataStore)) return undefined;
  const bridge = new ClusterBridge({ feed, channel: datastore.cluster, logger: opts.logger, reconcileIntervalMs: opts.reconcileIntervalMs });
  await bridge.start();
  return { bridge, lease: datastore.cluster, close: () => bridge.close() };
}
