// Several servers on one PostgreSQL database write one audit chain
// (AuditLog sharedWriters): two logs, each on its own pool, append at once;
// the chain stays contiguous and verifies from either side.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/log.js';
import { lacks } from '../../test/helpers/needs.js';
import { POSTGRES_NEEDS, type PostgresCluster, havePostgres, startPostgres } from '../../test/helpers/postgres.js';
import { PostgresDataStore, parseConnectionString } from '../datastore/postgres/index.js';
import { MemoryKeyManager } from '../keymanager/memory.js';
import { AuditLog } from './log.js';

if (!lacks(!havePostgres, POSTGRES_NEEDS)) {
  describe('audit log: two servers on one PostgreSQL', () => {
    let cluster: PostgresCluster | undefined;
    beforeAll(async () => {
      cluster = await startPostgres();
    }, 60_000);
    afterAll(() => cluster?.destroy());

    it('interleaves both servers records in one chain that verifies', async () => {
      const db = await cluster!.createDatabase();
      const open = () =>
        PostgresDataStore.open({ target: parseConnectionString(cluster!.url(db)), password: cluster!.password, maxConnections: 4, connectTimeout: 10, statementTimeout: 30 });
      const [dsA, dsB] = [await open(), await open()];
      // One token shared by both (as the servers of a cluster share the HSM).
      const km = new MemoryKeyManager();
      const opts = { keyManager: km, trustDomain: 'example.org', logger: silentLogger(), sharedWriters: true, checkpointEvery: 50 };
      const a = await AuditLog.open({ ...opts, datastore: dsA });
      const b = await AuditLog.open({ ...opts, datastore: dsB });
      try {
        await Promise.all(
          Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? a : b).record({ type: 'x509_svid.issued', serial: i.toString(16) })),
        );
        await Promise.all([a.flush(), b.flush()]);
        const all = await dsA.listAuditRecords({ limit: 10_000 });
        expect(all.map((r) => r.seq)).toEqual(all.map((_, i) => i + 1));
        expect(all.filter((r) => r.type === 'x509_svid.issued').map((r) => r.serial).sort()).toEqual(
          Array.from({ length: 300 }, (_, i) => i.toString(16)).sort(),
        );
        expect(await a.verify()).toMatchObject({ ok: true, headSeq: all.length });
        expect(await b.verify()).toMatchObject({ ok: true, headSeq: all.length });
      } finally {
        await a.close();
        await b.close();
        await dsA.close();
        await dsB.close();
      }
    });
  });
}
