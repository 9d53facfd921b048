import { AnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../../common/log.js';
import { resolveSecret, type ServerConfig } from '../config.js';
import type { DataStore } from './DataStore.js';
import { PostgresDataStore, parseConnectionString } from './postgres/index.js';
import { SqliteDataStore } from './sqlite/index.js';

/** The validated `datastore` section of server.yaml (paths absolute, defaults applied). */
export type DataStoreConfig = ServerConfig['datastore'];

/** The `type` values `datastore.type` may name. */
export type DataStoreType = DataStoreConfig['type'];

/** What an opener is given besides its config section. */
export interface DataStoreOpenContext {
  logger: Logger;
}

/** Opens one kind of datastore from its validated config section. */
export type DataStoreOpener<T extends DataStoreType> = (
  cfg: Extract<DataStoreConfig, { type: T }>,
  ctx: DataStoreOpenContext,
) => Promise<DataStore>;

// The one place that knows every DataStore implementation: a new one is a
// schema in ca/config.ts plus one line here (the mapped type makes the
// compiler refuse a config type without an opener), and a contract run
// (test/contract/datastore.ts) beside the implementation.
const OPENERS: { readonly [T in DataStoreType]: DataStoreOpener<T> } = {
  sqlite: async (cfg) => SqliteDataStore.open(cfg.path),
  // The password is read here, at open, and goes only to the driver: it is
  // never part of the config object that might be printed.
  postgres: async (cfg, ctx) =>
    PostgresDataStore.open({
      target: parseConnectionString(cfg.connection_string),
      password: resolveSecret({ env: cfg.password_env, file: cfg.password_file }, 'datastore.password'),
      maxConnections: cfg.max_connections,
      connectTimeout: cfg.connect_timeout,
      statementTimeout: cfg.statement_timeout,
      logger: ctx.logger,
    }),
};

/** Every registered datastore type, in registration order. */
export const DATASTORE_TYPES: readonly DataStoreType[] = Object.keys(OPENERS) as DataStoreType[];

/**
 * Opens the datastore the `datastore` section names; the server opens its
 * datastore only through this.
 *
 * The config layer already refuses an unknown `type` with its own message;
 * for a programmatic caller that bypassed it this fails with
 * `invalid_argument`, listing the known types.
 */
export async function openDataStore(cfg: DataStoreConfig, ctx: DataStoreOpenContext): Promise<DataStore> {
  const type: unknown = (cfg as { type?: unknown }).type;
  if (typeof type !== 'string' || !Object.hasOwn(OPENERS, type)) {
    throw new AnchorageError(
      'invalid_argument',
      `datastore: datastore.type: unknown datastore type ${JSON.stringify(type)}; known types: ${DATASTORE_TYPES.join(', ')}`,
    );
  }
  const open = OPENERS[type as DataStoreType] as DataStoreOpener<DataStoreType>;
  return open(cfg, ctx);
}
