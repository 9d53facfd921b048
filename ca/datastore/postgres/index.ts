// The PostgreSQL datastore's public surface: what the registry, the bench and
// the tests import. Everything else in this folder is internal to it.
export { PostgresDataStore, type PostgresDataStoreOptions } from './store.js';
export { MIGRATIONS, SCHEMA_VERSION } from './schema.js';
export { parseConnectionString, type PgTarget } from './connection.js';
