import { afterAll } from 'vitest';
import { dataStoreContract } from '../../../test/contract/datastore.js';
import { lacks } from '../../../test/helpers/needs.js';
import { POSTGRES_NEEDS, type PostgresCluster, havePostgres, startPostgres } from '../../../test/helpers/postgres.js';
import { PostgresDataStore, parseConnectionString } from './index.js';

// One cluster for the file, a fresh database per test.
let cluster: Promise<PostgresCluster> | undefined;
afterAll(async () => (await cluster)?.destroy());

if (!lacks(!havePostgres, POSTGRES_NEEDS)) {
  dataStoreContract('postgres', async () => {
    cluster ??= startPostgres();
    const c = await cluster;
    const store = await PostgresDataStore.open({
      target: parseConnectionString(c.url(await c.createDatabase())),
      password: c.password,
      maxConnections: 10,
      connectTimeout: 10,
      statementTimeout: 30,
    });
    return { store, close: () => store.close() };
  });
}
