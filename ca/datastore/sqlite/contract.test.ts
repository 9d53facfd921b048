import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataStoreContract } from '../../../test/contract/datastore.js';
import { auditStoreContract } from '../../../test/contract/datastore-audit.js';
import { SqliteDataStore } from './index.js';

// A fresh database file per test, in a private temporary directory.
const open = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'anchorage-ds-contract-'));
  const store = SqliteDataStore.open(join(dir, 'state', 'anchorage.db'));
  return {
    store,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};
dataStoreContract('sqlite', open);
auditStoreContract('sqlite', open);
