import { afterAll, beforeAll } from 'vitest';
import { dataStoreContract } from '../../../test/contract/datastore.js';
import { auditStoreContract } from '../../../test/contract/datastore-audit.js';
import { lacks } from '../../../test/helpers/needs.js';
import { POSTGRES_NEEDS, type PostgresCluster, havePostgres, startPostgres } from '../../../test/helpers/postgres.js';
import { PostgresDataStore, parseConnectionString } from './index.js';

// One cluster for the file (started in a hook, under the hook timeout), a
// fresh database per test.
if (!lacks(!havePostgres, POSTGRES_NEEDS)) {
  let cluster: PostgresCluster | undefined;
  beforeAll(async () => {
    cluster = await startPostgres();
  });
  afterAll(() => cluster?.destroy());

  const open = async () => {
    const c = cluster!;
    const store = await PostgresDataStore.open({
      target: parseConnectionString(c.url(await c.createDatabase())),
      password: c.password,
      maxConnections: 10,
      connectTimeout: 10,
      statementTimeout: 30,
    });
    return { store, close: () => store.close() };
  };
  dataStoreContract('postgres', open);
  auditStoreContract('postgres', open);
}
