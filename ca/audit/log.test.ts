import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import { SqliteDataStore } from '../datastore/sqlite/index.js';
import { MemoryKeyManager } from '../keymanager/memory.js';
import type { AuditQuery } from '../datastore/DataStore.js';
import {
  CHECKPOINT_TYPE,
  ChainVerifier,
  GENESIS_HASH,
  MAX_UNCHECKPOINTED,
  STARTED_TYPE,
  auditKeyLabel,
  canonicalEncoding,
  chainEvents,
  chainRecord,
  recordHash,
  type AuditRecord,
  type ChainHead,
  type TimedEvent,
} from './chain.js';
import { AuditLog } from './log.js';

const TD = 'example.org';

/** An in-memory audit store, with knobs to fail writes. */
class FakeStore {
  rows: AuditRecord[] = [];
  appends = 0;
  failNext: Error | undefined;
  async appendAuditRecords(records: AuditRecord[]): Promise<void> {
    this.appends++;
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = undefined;
      throw e;
    }
    const head = this.rows.length ? this.rows[this.rows.length - 1]!.seq : 0;
    records.forEach((r, i) => {
      if (r.seq !== head + 1 + i) throw new AnchorageError('failed_precondition', 'gap');
    });
    this.rows.push(...records.map((r) => structuredClone(r)));
  }
  async appendAuditEvents(prev: ChainHead, events: TimedEvent[]): Promise<string> {
    const records = chainEvents(prev, events);
    await this.appendAuditRecords(records);
    return records.at(-1)?.hash ?? prev.hash;
  }
  async listAuditRecords(q: AuditQuery): Promise<AuditRecord[]> {
    return this.rows
      .filter((r) => (q.afterSeq === undefined || r.seq > q.afterSeq) && (q.spiffeId === undefined || r.spiffeId === q.spiffeId))
      .sort((a, b) => a.seq - b.seq)
      .slice(0, q.limit)
      .map((r) => structuredClone(r));
  }
  async lastAuditRecord(): Promise<AuditRecord | undefined> {
    return this.rows.length ? structuredClone(this.rows[this.rows.length - 1]) : undefined;
  }
}

const dirs: string[] = [];
const logs: AuditLog[] = [];
afterEach(async () => {
  for (const l of logs.splice(0)) await l.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'anchorage-audit-'));
  dirs.push(d);
  return d;
}

async function open(store = new FakeStore(), km = new MemoryKeyManager(), extra: Partial<Parameters<typeof AuditLog.open>[0]> = {}) {
  const audit = await AuditLog.open({ datastore: store, keyManager: km, trustDomain: TD, logger: silentLogger(), ...extra });
  logs.push(audit);
  return { audit, store, km };
}

describe('canonical encoding and hash', () => {
  it('is the documented JSON array, field by field in fixed order', () => {
    const enc = canonicalEncoding({
      seq: 7,
      time: 1_700_000_000_123,
      type: 'x509_svid.issued',
      actor: { uid: 1, gid: 2, pid: 3 },
      agent: 'spiffe://example.org/anchorage/agent/join_token/t',
      spiffeId: 'spiffe://example.org/web',
      serial: '4a',
      expiresAt: 1_700_003_600,
      authority: 'x509-1',
      details: { z: 1, a: 'b' },
    });
    expect(enc).toBe(
      '["anchorage.audit.v1",7,1700000000123,"x509_svid.issued",[1,2,3],"spiffe://example.org/anchorage/agent/join_token/t",' +
        '"spiffe://example.org/web","4a",null,1700003600,"x509-1",null,[["a","b"],["z",1]]]',
    );
  });

  it('chains: hash = SHA-256(prev_hash hex || encoding), the first prev_hash is zeros', () => {
    const r1 = chainRecord({ type: 'a' }, 1, 10, GENESIS_HASH);
    const r2 = chainRecord({ type: 'b', details: { k: 'v' } }, 2, 11, r1.hash);
    expect(r1.prevHash).toBe(GENESIS_HASH);
    expect(r2.prevHash).toBe(r1.hash);
    expect(r1.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(recordHash(r1.hash, { type: 'b', details: { k: 'v' }, seq: 2, time: 11 })).toBe(r2.hash);
    expect(r2.hash).toBe(createHash('sha256').update(r1.hash + canonicalEncoding({ type: 'b', details: { k: 'v' }, seq: 2, time: 11 })).digest('hex'));
    // Absent and empty are different values.
    expect(chainRecord({ type: 'a', agent: '' }, 1, 10, GENESIS_HASH).hash).not.toBe(r1.hash);
  });
});

describe('AuditLog', () => {
  it('writes audit.started and a signed checkpoint at open, and verifies', async () => {
    const { audit, store, km } = await open();
    expect(store.rows.map((r) => r.type)).toEqual([STARTED_TYPE, CHECKPOINT_TYPE]);
    expect(store.rows[0]!.details).toEqual({ head_seq: 0, head_hash: GENESIS_HASH });
    const cp = store.rows[1]!;
    expect(cp.details).toMatchObject({ seq: 1, hash: store.rows[0]!.hash, time: store.rows[0]!.time, key: auditKeyLabel(TD) });
    expect((await km.getKey(auditKeyLabel(TD)))?.type).toBe('ec-p256');
    expect(await audit.verify()).toEqual({ ok: true, recordsChecked: 2, checkpointsChecked: 1, headSeq: 2, firstBadSeq: 0, reason: '' });
  });

  it('group-commits concurrent records in one append, in call order, resolving after the write', async () => {
    const { audit, store } = await open();
    const before = store.appends;
    await Promise.all(Array.from({ length: 100 }, (_, i) => audit.record({ type: 'x509_svid.issued', serial: i.toString(16) })));
    expect(store.appends - before).toBe(1);
    expect(store.rows.slice(2).map((r) => r.serial)).toEqual(Array.from({ length: 100 }, (_, i) => i.toString(16)));
    expect(store.rows.map((r) => r.seq)).toEqual(Array.from({ length: 102 }, (_, i) => i + 1));
  });

  it('holds a record for its withinMs so that later records share its commit; a record without one ends the hold', async () => {
    const { audit, store } = await open(undefined, undefined, { minCommitIntervalMs: 0, maxHoldMs: 600_000 });
    const before = store.appends;
    let held = false;
    const a = audit.record({ type: 'held' }, { withinMs: 600_000 }).then(() => (held = true));
    // Many turns of the event loop and some real time: a hold of 10 minutes must still be on.
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
    expect(held).toBe(false);
    expect(store.appends).toBe(before);
    await audit.record({ type: 'urgent' });
    await a;
    expect(store.appends - before).toBe(1);
    expect(store.rows.slice(2).map((r) => r.type)).toEqual(['held', 'urgent']);
  });

  it('a full batch, flush() and close() end a hold', async () => {
    const { audit, store } = await open(undefined, undefined, { minCommitIntervalMs: 0, maxHoldMs: 600_000, batchSize: 3 });
    const before = store.appends;
    await Promise.all([1, 2, 3].map((i) => audit.record({ type: `b${i}` }, { withinMs: 600_000 })));
    expect(store.appends - before).toBe(1);
    const f = audit.record({ type: 'flushed' }, { withinMs: 600_000 });
    await audit.flush();
    await f;
    expect(store.rows.at(-1)!.type).toBe('flushed');
    const c = audit.record({ type: 'closed' }, { withinMs: 600_000 });
    await audit.close();
    await c;
    expect(store.rows.map((r) => r.type)).toContain('closed');
  });

  it('caps a hold at maxHoldMs', async () => {
    const { audit, store } = await open(undefined, undefined, { maxHoldMs: 5 });
    // Uncapped this would wait an hour and time the test out.
    await audit.record({ type: 'capped' }, { withinMs: 3_600_000 });
    expect(store.rows.at(-1)!.type).toBe('capped');
  });

  it('counts its commits', async () => {
    const { audit } = await open();
    const before = audit.commits;
    await Promise.all([audit.record({ type: 'a' }), audit.record({ type: 'b' })]);
    expect(audit.commits - before).toBe(1);
  });

  it('splits at the batch size', async () => {
    const { audit, store } = await open(undefined, undefined, { batchSize: 10 });
    const before = store.appends;
    await Promise.all(Array.from({ length: 25 }, () => audit.record({ type: 't' })));
    expect(store.appends - before).toBe(3);
  });

  it('rejects every caller of a failed batch with UNAVAILABLE and goes on from the stored head', async () => {
    const { audit, store } = await open();
    store.failNext = new Error('disk full');
    const results = await Promise.allSettled([audit.record({ type: 'a' }), audit.record({ type: 'b' })]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const err = (results[0] as PromiseRejectedResult).reason as AnchorageError;
    expect(err).toBeInstanceOf(AnchorageError);
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain('disk full');
    await audit.record({ type: 'c' });
    expect(store.rows.map((r) => r.type)).toEqual([STARTED_TYPE, CHECKPOINT_TYPE, 'c']);
    expect((await audit.verify()).ok).toBe(true);
  });

  it('refuses records past the pending bound with UNAVAILABLE', async () => {
    const { audit } = await open(undefined, undefined, { maxPending: 3 });
    const ps = Array.from({ length: 3 }, () => audit.record({ type: 'ok' }));
    await expect(audit.record({ type: 'over' })).rejects.toMatchObject({ code: 'unavailable' });
    await Promise.all(ps);
  });

  it('puts a checkpoint after every checkpointEvery records', async () => {
    const { audit, store } = await open(undefined, undefined, { checkpointEvery: 10, batchSize: 5 });
    for (let i = 0; i < 30; i++) await audit.record({ type: 't' });
    await audit.flush();
    const cps = store.rows.filter((r) => r.type === CHECKPOINT_TYPE).map((r) => r.seq);
    expect(cps).toEqual([2, 13, 24, 35]);
    expect(await audit.verify()).toMatchObject({ ok: true, checkpointsChecked: 4 });
  });

  it('refuses record() after close, and close writes a final checkpoint', async () => {
    const { audit, store } = await open();
    await audit.record({ type: 't' });
    await audit.close();
    expect(store.rows[store.rows.length - 1]!.type).toBe(CHECKPOINT_TYPE);
    await expect(audit.record({ type: 'late' })).rejects.toMatchObject({ code: 'failed_precondition' });
  });

  it('several servers on one store (sharedWriters) write one chain that verifies', async () => {
    const store = new FakeStore();
    const km = new MemoryKeyManager();
    const { audit: a } = await open(store, km, { sharedWriters: true, checkpointEvery: 7 });
    const { audit: b } = await open(store, km, { sharedWriters: true, checkpointEvery: 7 });
    for (let i = 0; i < 20; i++) await Promise.all([a.record({ type: 'a', serial: `${i}` }), b.record({ type: 'b', serial: `${i}` })]);
    await Promise.all([a.flush(), b.flush()]);
    expect(store.rows.filter((r) => r.type === 'a').length).toBe(20);
    expect(store.rows.filter((r) => r.type === 'b').length).toBe(20);
    expect(await a.verify()).toMatchObject({ ok: true, headSeq: store.rows.length });
    expect(await b.verify()).toMatchObject({ ok: true, headSeq: store.rows.length });
  });

  it('without sharedWriters, refuses to go on after records it did not write', async () => {
    const { audit, store } = await open();
    const last = store.rows[store.rows.length - 1]!;
    store.rows.push(chainRecord({ type: 'planted' }, last.seq + 1, 1, last.hash));
    await expect(audit.record({ type: 'mine' })).rejects.toMatchObject({ code: 'unavailable' });
    await expect(audit.record({ type: 'mine' })).rejects.toThrow(/records this server did not write after record 2 \(up to 3\)/);
  });

  it('after a write with an unknown outcome that did store the batch, goes on from it', async () => {
    const { audit, store } = await open();
    const real = store.appendAuditRecords.bind(store);
    store.appendAuditRecords = async (records) => {
      await real(records);
      store.appendAuditRecords = real;
      throw new AnchorageError('unavailable', 'datastore: write failed, it may not have been saved');
    };
    await expect(audit.record({ type: 'landed' })).rejects.toMatchObject({ code: 'unavailable' });
    await audit.record({ type: 'next' });
    expect(store.rows.map((r) => r.type)).toEqual([STARTED_TYPE, CHECKPOINT_TYPE, 'landed', 'next']);
    expect((await audit.verify()).ok).toBe(true);
  });

  describe('verify catches', () => {
    async function filled() {
      const o = await open(undefined, undefined, { checkpointEvery: 5 });
      for (let i = 0; i < 12; i++) await o.audit.record({ type: 'x509_svid.issued', spiffeId: `spiffe://example.org/w${i}`, serial: `0${i}` });
      await o.audit.flush();
      return o;
    }

    it('an edited record', async () => {
      const { audit, store } = await filled();
      store.rows[4]!.spiffeId = 'spiffe://example.org/evil';
      expect(await audit.verify()).toMatchObject({ ok: false, firstBadSeq: 5, reason: 'its hash does not match its contents (the record was edited)' });
    });

    it('an edited record whose hash was recomputed (the next prev_hash breaks)', async () => {
      const { audit, store } = await filled();
      const r = store.rows[4]!;
      r.spiffeId = 'spiffe://example.org/evil';
      const { hash: _h, prevHash, ...body } = r;
      r.hash = recordHash(prevHash, body);
      expect(await audit.verify()).toMatchObject({ ok: false, firstBadSeq: 6 });
    });

    it('a deleted record', async () => {
      const { audit, store } = await filled();
      store.rows.splice(6, 1);
      expect(await audit.verify()).toMatchObject({ ok: false, firstBadSeq: 7, reason: 'record 7 is missing (the next stored record is 8)' });
    });

    it('reordered records', async () => {
      const { audit, store } = await filled();
      const a = store.rows[5]!;
      const b = store.rows[6]!;
      [a.seq, b.seq] = [b.seq, a.seq];
      expect(await audit.verify()).toMatchObject({ ok: false, firstBadSeq: 6 });
    });

    it('a truncated tail (the server remembers its head)', async () => {
      const { audit, store } = await filled();
      const head = store.rows.length;
      store.rows.splice(head - 3);
      const res = await audit.verify();
      expect(res).toMatchObject({ ok: false, firstBadSeq: head - 2 });
      expect(res.reason).toContain('truncated');
    });

    it('a forged checkpoint signature', async () => {
      const { audit, store } = await filled();
      const cp = store.rows.find((r) => r.type === CHECKPOINT_TYPE && r.seq > 2)!;
      cp.details!.sig = Buffer.alloc(64, 1).toString('base64url');
      const { hash: _h, prevHash, ...body } = cp;
      cp.hash = recordHash(prevHash, body);
      expect(await audit.verify()).toMatchObject({ ok: false, firstBadSeq: cp.seq, reason: 'the checkpoint signature does not verify with the audit key in the key manager' });
    });

    it('a chain rewritten without its checkpoints', () => {
      let prev = GENESIS_HASH;
      const v = new ChainVerifier(TD, undefined);
      let ok = true;
      for (let seq = 1; seq <= MAX_UNCHECKPOINTED + 1 && ok; seq++) {
        const r = chainRecord({ type: 't' }, seq, seq, prev);
        prev = r.hash;
        ok = v.feed(r);
      }
      expect(v.result(undefined, MAX_UNCHECKPOINTED + 1)).toMatchObject({ ok: false, firstBadSeq: MAX_UNCHECKPOINTED + 1 });
    });

    it('a checkpoint checked against a key the log does not name', async () => {
      const { audit, store, km } = await filled();
      await km.deleteKey(auditKeyLabel(TD));
      await km.generateKey(auditKeyLabel(TD), 'ec-p256');
      expect(await audit.verify()).toMatchObject({ ok: false, firstBadSeq: 2 });
      expect(store.rows.length).toBeGreaterThan(2);
    });
  });

  describe('across restarts, on SQLite with the head file', () => {
    async function sqliteLog(dir: string, km: MemoryKeyManager) {
      const ds = SqliteDataStore.open(join(dir, 'db', 'anchorage.db'));
      const audit = await AuditLog.open({ datastore: ds, keyManager: km, trustDomain: TD, logger: silentLogger(), headFile: join(dir, 'audit-head.json') });
      return { ds, audit };
    }

    it('names the head it found, keeps the chain, and keeps the key', async () => {
      const dir = tmp();
      const km = new MemoryKeyManager();
      let { ds, audit } = await sqliteLog(dir, km);
      for (let i = 0; i < 5; i++) await audit.record({ type: 't', serial: `${i}` });
      await audit.close();
      const head = await ds.lastAuditRecord();
      await ds.close();
      expect(JSON.parse(readFileSync(join(dir, 'audit-head.json'), 'utf8'))).toEqual({ seq: head!.seq, hash: head!.hash });
      ({ ds, audit } = await sqliteLog(dir, km));
      const started = (await ds.listAuditRecords({ afterSeq: head!.seq, limit: 1 }))[0]!;
      expect(started).toMatchObject({ type: STARTED_TYPE, details: { head_seq: head!.seq, head_hash: head!.hash, anchor_seq: head!.seq, anchor_ok: true } });
      expect(await audit.verify()).toMatchObject({ ok: true, headSeq: head!.seq + 2 });
      expect((await ds.listAuditRecords({ serial: '3', limit: 10 })).map((r) => r.seq)).toEqual([6]);
      await audit.close();
      await ds.close();
    });

    it('catches a tail cut while the server was stopped, for good', async () => {
      const dir = tmp();
      const km = new MemoryKeyManager();
      let { ds, audit } = await sqliteLog(dir, km);
      for (let i = 0; i < 5; i++) await audit.record({ type: 't' });
      await audit.close();
      await ds.close();
      const db = new Database(join(dir, 'db', 'anchorage.db'));
      db.prepare('DELETE FROM audit_log WHERE seq > 4').run();
      db.close();
      ({ ds, audit } = await sqliteLog(dir, km));
      const res = await audit.verify();
      expect(res).toMatchObject({ ok: false, firstBadSeq: 5 });
      await audit.close();
      await ds.close();
    });

    it('refuses a damaged head file with a clear error', async () => {
      const dir = tmp();
      writeFileSync(join(dir, 'audit-head.json'), 'garbage');
      const ds = SqliteDataStore.open(join(dir, 'db', 'anchorage.db'));
      await expect(
        AuditLog.open({ datastore: ds, keyManager: new MemoryKeyManager(), trustDomain: TD, logger: silentLogger(), headFile: join(dir, 'audit-head.json') }),
      ).rejects.toThrow(/is not an audit head file/);
      await ds.close();
    });
  });
});
