// The PostgreSQL datastore's public surface: what the registry, the bench and
// the tests import. Everything else in this folder is internal to it.
export { PostgresDataStore, type PostgresDataStoreOptions } from './store.js';
export { MIGRATIONS, SCHEMA_VERSION } from './schema.js';
export { parseConnectionString, type PgTarget } from './connection.js';
export { CHANGE_CHANNEL, CHANGE_SEQUENCE_KEY, MAX_PAYLOAD_BYTES, PgCluster, type ChangeListener, type RefreshClaim } from './cluster.js';
