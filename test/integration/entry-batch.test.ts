import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { BIN, cli, writeFile } from '../helpers/process.js';
import { startServerFixture, type ServerFixture } from '../helpers/server-fixture.js';

/**
 * Batch registration: BatchCreateEntry on the admin API (one transaction,
 * one result per entry) and `anchorage entry create --data FILE|-` in
 * SPIRE's JSON shape, against a real server.
 */

const TD = 'batch.test';
const PARENT = `spiffe://${TD}/anchorage/agent/join_token/batch`;
let f: ServerFixture;

const entry = (path: string, uid = 1000) => ({ spiffe_id: `spiffe://${TD}${path}`, parent_id: PARENT, selectors: [{ type: 'unix', value: `uid:${uid}` }] });
const data = (name: string, doc: unknown) => writeFile(join(f.dir, name), typeof doc === 'string' ? doc : JSON.stringify(doc));
const create = (file: string) => cli(['entry', 'create', '--data', file, '--socket', f.adminSocket], f.env);

beforeAll(async () => {
  f = await startServerFixture(TD, 'anchorage-entry-batch-');
}, 60_000);
afterAll(async () => {
  await f?.close();
});

describe('BatchCreateEntry', () => {
  it('creates what it can in one call and answers every entry on its own, in order', async () => {
    await f.admin((a) => a.call('CreateEntry', { entry: entry('/existing') }));
    const res = await f.admin((a) =>
      a.call('BatchCreateEntry', {
        entries: [entry('/a'), entry('/existing'), entry('/anchorage/server'), { ...entry('/b'), selectors: [{ type: 'Unix', value: 'uid:1' }] }, entry('/a'), entry('/c', 7)],
      }),
    );
    expect(res.results.map((r) => [r.code, r.message, r.entry?.spiffe_id ?? null])).toEqual([
      [grpc.status.OK, '', `spiffe://${TD}/a`],
      [grpc.status.ALREADY_EXISTS, `datastore: an entry for spiffe://${TD}/existing with parent ${PARENT} and the same selectors already exists`, null],
      [grpc.status.INVALID_ARGUMENT, `entry: spiffe id spiffe://${TD}/anchorage/server is in the namespace reserved for anchorage itself (/anchorage/...)`, null],
      [grpc.status.INVALID_ARGUMENT, 'entry: selector type "Unix" must be 1-64 characters of a-z, 0-9, _ or -', null],
      [grpc.status.ALREADY_EXISTS, `datastore: an entry for spiffe://${TD}/a with parent ${PARENT} and the same selectors already exists`, null],
      [grpc.status.OK, '', `spiffe://${TD}/c`],
    ]);
    const created = res.results.flatMap((r) => (r.entry ? [r.entry] : []));
    for (const e of created) expect(await f.admin((a) => a.call('GetEntry', { id: e.id }))).toEqual(e);
  });

  it('refuses an empty call and one of more than 10,000 entries, creating nothing', async () => {
    const refused = (entries: ReturnType<typeof entry>[]) => f.admin((a) => a.call('BatchCreateEntry', { entries })).catch((e: unknown) => e);
    const empty = await refused([]);
    expect([(empty as AnchorageError).code, (empty as AnchorageError).message]).toEqual(['invalid_argument', 'admin: entries must not be empty']);
    const many = await refused(Array.from({ length: 10_001 }, (_, i) => entry(`/many/${i}`)));
    expect([(many as AnchorageError).code, (many as AnchorageError).message]).toEqual(['invalid_argument', 'admin: at most 10000 entries per call (got 10001)']);
    expect((await f.admin((a) => a.call('ListEntries', { parent_id: '', spiffe_id: `spiffe://${TD}/many/0` }))).entries).toEqual([]);
  });
});

describe('entry create --data', () => {
  it('creates 5,000 entries from one file in SPIRE\'s shape, one line each', () => {
    const entries = Array.from({ length: 5000 }, (_, i) => ({ ...entry(`/bulk/${i}`, 100_000 + Math.floor(i / 100)), x509_svid_ttl: 600, jwt_svid_ttl: 60, hint: `h${i}` }));
    const r = create(data('bulk.json', { entries }));
    expect([r.code, r.stderr]).toEqual([0, '']);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(5001);
    expect(lines[4999]).toMatch(new RegExp(`^created entries\\[4999\\] [0-9a-f-]{36} spiffe://${TD}/bulk/4999$`));
    expect(lines[5000]).toBe('5000 of 5000 entries created');
    const listed = cli(['entry', 'list', '--spiffe-id', `spiffe://${TD}/bulk/1234`, '--json', '--socket', f.adminSocket], f.env);
    expect(JSON.parse(listed.stdout).map((e: { hint: string; x509_svid_ttl: number; selectors: string[] }) => [e.hint, e.x509_svid_ttl, e.selectors])).toEqual([
      ['h1234', 600, ['unix:uid:100012']],
    ]);
  }, 120_000);

  it('reads standard input for "-", takes SPIRE\'s spiffe:// form in federates_with, and reports partial failures per entry with exit 1', () => {
    const doc = JSON.stringify({ entries: [entry('/stdin/ok'), entry('/anchorage/agent/x'), entry('/stdin/ok'), { ...entry('/stdin/fed'), federates_with: ['spiffe://nowhere.test'] }] });
    const r = spawnSync(process.execPath, [BIN, 'entry', 'create', '--data', '-', '--socket', f.adminSocket], { env: f.env, input: doc, encoding: 'utf8' });
    expect(r.status).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^created entries\\[0\\] [0-9a-f-]{36} spiffe://${TD}/stdin/ok$`));
    expect(lines.slice(1)).toEqual([
      `FAILED  entries[1] spiffe://${TD}/anchorage/agent/x: entry: spiffe id spiffe://${TD}/anchorage/agent/x is in the namespace reserved for anchorage itself (/anchorage/...)`,
      `FAILED  entries[2] spiffe://${TD}/stdin/ok: datastore: an entry for spiffe://${TD}/stdin/ok with parent ${PARENT} and the same selectors already exists`,
      `FAILED  entries[3] spiffe://${TD}/stdin/fed: entry: cannot federate with nowhere.test: this server holds no bundle of it and no federation relationship with it (add one first: anchorage bundle set, or anchorage federation create)`,
      '1 of 4 entries created',
    ]);
    expect(r.stderr).toBe('anchorage: cli: 3 of 4 entries were not created\n');
  });

  it.each<[string, string, string]>([
    ['not JSON', '{"entries": [', ' is not JSON: '],
    ['no entries key', '{"entry": []}', ': entries: expected array, received undefined'],
    ['an empty list', '{"entries": []}', ': entries: too small: expected array to have >=1 items'],
    ['selectors missing', JSON.stringify({ entries: [{ spiffe_id: `spiffe://${TD}/x`, parent_id: PARENT }] }), ': entries[0].selectors: expected array, received undefined'],
    ['a selector as a string', JSON.stringify({ entries: [{ ...entry('/x'), selectors: ['unix:uid:1'] }] }), ': entries[0].selectors[0]: expected object, received string'],
    ['a TTL as a string', JSON.stringify({ entries: [{ ...entry('/x'), x509_svid_ttl: '1h' }] }), ': entries[0].x509_svid_ttl: expected number, received string'],
    ['a negative TTL', JSON.stringify({ entries: [{ ...entry('/x'), jwt_svid_ttl: -1 }] }), ': entries[0].jwt_svid_ttl: too small: expected number to be >=0'],
    ['a SPIRE key Anchorage lacks', JSON.stringify({ entries: [{ ...entry('/x'), store_svid: true }] }), ': entries[0]: unknown key "store_svid"'],
  ])('refuses %s with exit 1 and one line naming the place, creating nothing', (name, text, problem) => {
    const file = data(`bad-${name.replace(/\W+/g, '-')}.json`, text);
    const r = create(file);
    expect([r.code, r.stdout]).toEqual([1, '']);
    expect(r.stderr.startsWith(`anchorage: cli: ${file}${problem}`)).toBe(true);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect((cli(['entry', 'list', '--spiffe-id', `spiffe://${TD}/x`, '--json', '--socket', f.adminSocket], f.env)).stdout.trim()).toBe('[]');
  });

  it('refuses a file of more than 100,000 entries, a missing file, and --data next to single-entry flags', () => {
    const many = data('many.json', JSON.stringify({ entries: Array.from({ length: 100_001 }, () => ({ spiffe_id: 'a', parent_id: 'b', selectors: [{ type: 't', value: 'v' }] })) }));
    expect(create(many).stderr).toBe(`anchorage: cli: ${many}: entries: too big: expected array to have <=100000 items\n`);
    const missing = join(f.dir, 'missing.json');
    expect(create(missing)).toEqual({ code: 1, stdout: '', stderr: `anchorage: cli: cannot read ${missing}: ENOENT\n` });
    const mixed = cli(['entry', 'create', '--data', missing, '--spiffe-id', `spiffe://${TD}/x`, '--socket', f.adminSocket], f.env);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr.split('\n')[0]).toBe('anchorage: --data cannot be combined with --spiffe-id: the file gives every field');
  }, 60_000);
});
