// The audit-log part of the DataStore contract (ca/datastore/DataStore.ts,
// appendAuditRecords / listAuditRecords / lastAuditRecord), run by every
// implementation beside dataStoreContract (see ./datastore.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { GENESIS_HASH, chainEvents, type AuditRecord, type TimedEvent } from '../../ca/audit/chain.js';
import type { AuditEvent } from '../../ca/audit/event.js';
import { rejection, type OpenedDataStore } from './datastore.js';

/** A chain of records built from events, starting after `after`, one ms apart from `time`. */
export function auditChain(events: AuditEvent[], after?: AuditRecord, time = 1_700_000_000_000): AuditRecord[] {
  return chainEvents({ seq: after?.seq ?? 0, hash: after?.hash ?? GENESIS_HASH }, events.map((event, i) => ({ event, time: time + i })));
}

export function auditStoreContract(name: string, open: () => Promise<OpenedDataStore>): void {
  describe(`DataStore contract (audit log): ${name}`, () => {
    let opened: OpenedDataStore | undefined;
    afterEach(async () => {
      await opened?.close();
      opened = undefined;
    });
    const fresh = async () => {
      opened = await open();
      return opened.store;
    };

    it('stores every field exactly and reads it back in seq order', async () => {
      const ds = await fresh();
      expect(await ds.lastAuditRecord()).toBeUndefined();
      const records = auditChain([
        { type: 'admin.CreateEntry', actor: { uid: 1000, gid: 1001, pid: 4242 }, outcome: 'ok', spiffeId: 'spiffe://example.org/web' },
        {
          type: 'x509_svid.issued',
          agent: 'spiffe://example.org/anchorage/agent/join_token/t',
          spiffeId: 'spiffe://example.org/web',
          serial: '4a0b',
          expiresAt: 1_700_003_600,
          authority: 'x509-1',
          details: { n: 3, b: true, s: 'x' },
        },
        { type: 'jwt_svid.issued', jti: 'abc_-', spiffeId: 'spiffe://example.org/db', expiresAt: 1_700_000_300 },
      ]);
      await ds.appendAuditRecords(records);
      expect(await ds.listAuditRecords({ limit: 100 })).toEqual(records);
      expect(await ds.lastAuditRecord()).toEqual(records[2]);
    });

    it('appends contiguously only: a gap or a taken seq stores nothing (failed_precondition)', async () => {
      const ds = await fresh();
      const [a, b, c] = auditChain([{ type: 'a' }, { type: 'b' }, { type: 'c' }]);
      await ds.appendAuditRecords([a!]);
      await rejection(ds.appendAuditRecords([c!]), 'failed_precondition');
      await rejection(ds.appendAuditRecords([a!, b!]), 'failed_precondition');
      await rejection(ds.appendAuditRecords([b!, c!, { ...c!, seq: 5 }]), 'failed_precondition');
      expect((await ds.listAuditRecords({ limit: 10 })).map((r) => r.seq)).toEqual([1]);
      await ds.appendAuditRecords([b!, c!]);
      expect((await ds.listAuditRecords({ limit: 10 })).map((r) => r.seq)).toEqual([1, 2, 3]);
      await ds.appendAuditRecords([]);
    });

    it('appendAuditEvents stores exactly the records chainEvents makes, answers the last hash, and refuses a head that is not the stored one', async () => {
      const ds = await fresh();
      const events: TimedEvent[] = [
        { time: 1_700_000_000_001, event: { type: 'x509_svid.issued', spiffeId: 'spiffe://example.org/web', serial: '0a', expiresAt: 1_700_003_600, agent: 'spiffe://example.org/anchorage/agent/x', authority: 'x509-1' } },
        { time: 1_700_000_000_002, event: { type: 'admin.CreateEntry', actor: { uid: 0, gid: 0, pid: 7 }, outcome: 'ok', details: { z: 1, a: 'b', gone: undefined as unknown as string } } },
      ];
      const expected = chainEvents({ seq: 0, hash: GENESIS_HASH }, events);
      expect(await ds.appendAuditEvents({ seq: 0, hash: GENESIS_HASH }, events)).toBe(expected[1]!.hash);
      expect(await ds.listAuditRecords({ limit: 10 })).toEqual(expected);
      // A head behind or ahead of the stored one: nothing stored.
      await rejection(ds.appendAuditEvents({ seq: 1, hash: expected[0]!.hash }, events), 'failed_precondition');
      await rejection(ds.appendAuditEvents({ seq: 5, hash: expected[1]!.hash }, events), 'failed_precondition');
      expect((await ds.listAuditRecords({ limit: 10 })).map((r) => r.seq)).toEqual([1, 2]);
      expect(await ds.appendAuditEvents({ seq: 2, hash: expected[1]!.hash }, [])).toBe(expected[1]!.hash);
      const next = chainEvents({ seq: 2, hash: expected[1]!.hash }, [{ time: 3, event: { type: 'c' } }]);
      expect(await ds.appendAuditEvents({ seq: 2, hash: expected[1]!.hash }, [{ time: 3, event: { type: 'c' } }])).toBe(next[0]!.hash);
      expect(await ds.lastAuditRecord()).toEqual(next[0]);
    });

    it('filters by afterSeq, sinceMs, spiffeId, serial or jti, with a limit', async () => {
      const ds = await fresh();
      const recs = auditChain([
        { type: 'x', spiffeId: 'spiffe://example.org/a', serial: '01' },
        { type: 'x', spiffeId: 'spiffe://example.org/b', serial: '02' },
        { type: 'j', spiffeId: 'spiffe://example.org/a', jti: '02' },
        { type: 'x', spiffeId: 'spiffe://example.org/a', serial: '03' },
      ]);
      await ds.appendAuditRecords(recs);
      const seqs = async (q: Parameters<typeof ds.listAuditRecords>[0]) => (await ds.listAuditRecords(q)).map((r) => r.seq);
      expect(await seqs({ afterSeq: 2, limit: 10 })).toEqual([3, 4]);
      expect(await seqs({ sinceMs: recs[1]!.time, limit: 10 })).toEqual([2, 3, 4]);
      expect(await seqs({ spiffeId: 'spiffe://example.org/a', limit: 10 })).toEqual([1, 3, 4]);
      expect(await seqs({ serial: '02', limit: 10 })).toEqual([2, 3]);
      expect(await seqs({ spiffeId: 'spiffe://example.org/a', afterSeq: 1, limit: 1 })).toEqual([3]);
      expect(await seqs({ spiffeId: 'spiffe://example.org/none', limit: 10 })).toEqual([]);
    });

    it('appends 1,000 records in one call', async () => {
      const ds = await fresh();
      const recs = auditChain(Array.from({ length: 1000 }, (_, i) => ({ type: 'x509_svid.issued', serial: i.toString(16) })));
      await ds.appendAuditRecords(recs.slice(0, 1));
      await ds.appendAuditRecords(recs.slice(1));
      expect((await ds.lastAuditRecord())?.seq).toBe(1000);
      expect(await ds.listAuditRecords({ afterSeq: 998, limit: 10 })).toEqual(recs.slice(998));
    });
  });
}
