// The SQLite datastore's public surface: what the server, the CLI, the bench
// and the tests import. Everything else in this folder is internal to it.
export { SqliteDataStore, type SqliteDataStoreOptions } from './store.js';
export { MIGRATIONS, SCHEMA_VERSION, SQLITE_PRAGMAS } from './schema.js';
