// The audit log against a real server on SoftHSM2 (the checkpoint key in the
// token): what is recorded, `audit list` and its export, and `audit verify`
// catching an edited, a deleted, a reordered and a truncated record, made by
// editing the SQLite file while the server runs.
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, BIN, cli } from '../helpers/process.js';
import { startServerFixture, type ServerFixture } from '../helpers/server-fixture.js';

interface Rec {
  seq: number;
  time: number;
  type: string;
  actor?: { uid: number; gid: number; pid: number };
  spiffeId?: string;
  serial?: string;
  jti?: string;
  expiresAt?: number;
  authority?: string;
  outcome?: string;
  details?: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

describe('audit log (real server, SoftHSM2)', () => {
  assertBuilt();
  const TD = 'audit.test';
  let f: ServerFixture;
  let db: Database.Database;
  const sock = () => ['--socket', f.adminSocket];
  const run = (args: string[]) => cli([...args, ...sock()], f.env);
  const list = (extra: string[] = []): Rec[] => {
    const r = run(['audit', 'list', '--output', 'json', ...extra]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Rec);
  };
  const verify = () => run(['audit', 'verify']);

  beforeAll(async () => {
    f = await startServerFixture(TD, 'anchorage-audit-');
    db = new Database(join(f.dir, 'server', 'datastore.sqlite3'));
    db.pragma('busy_timeout = 5000');
  }, 60_000);
  afterAll(async () => {
    db?.close();
    await f?.close();
  });

  it('records admin calls with the caller, and SVIDs with serial or jti, SPIFFE ID, expiry and authority', () => {
    const entry = run(['entry', 'create', '--spiffe-id', `spiffe://${TD}/web`, '--parent-id', `spiffe://${TD}/anchorage/agent/join_token/x`, '--selector', 'unix:uid:1000', '--json']);
    expect(entry.code, entry.stderr).toBe(0);
    const outDir = join(f.dir, 'svid');
    const x509 = run(['x509', 'mint', '--spiffe-id', `spiffe://${TD}/db`, '--out-dir', outDir]);
    expect(x509.code, x509.stderr).toBe(0);
    const cert = new X509Certificate(readFileSync(join(outDir, 'svid.pem')));
    const serial = cert.serialNumber.toLowerCase();
    const jwt = run(['jwt', 'mint', '--spiffe-id', `spiffe://${TD}/db`, '--audience', 'https://a.example', '--json']);
    expect(jwt.code, jwt.stderr).toBe(0);
    const token = (JSON.parse(jwt.stdout) as { token: string }).token;
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string; exp: number };
    expect(claims.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);

    const recs = list();
    expect(recs[0]).toMatchObject({ seq: 1, type: 'audit.started', details: { head_seq: 0 } });
    expect(recs[1]).toMatchObject({ seq: 2, type: 'audit.checkpoint', details: { seq: 1, key: `anchorage-audit-${TD}` } });
    expect(recs.map((r) => r.seq)).toEqual(recs.map((_, i) => i + 1));
    const created = recs.find((r) => r.type === 'admin.CreateEntry')!;
    expect(created).toMatchObject({ outcome: 'ok', spiffeId: `spiffe://${TD}/web`, actor: { uid: process.getuid!(), gid: process.getgid!() } });
    expect(created.actor!.pid).toBeGreaterThan(0);
    const ca = (JSON.parse(run(['ca', 'show', '--json']).stdout) as { keys: Array<{ id: string; kind: string; status: string }> }).keys;
    const x509Ca = ca.find((k) => k.kind === 'x509' && k.status === 'active')!.id;
    const jwtKey = ca.find((k) => k.kind === 'jwt' && k.status === 'active')!.id;
    const issued = recs.find((r) => r.type === 'x509_svid.issued' && r.spiffeId === `spiffe://${TD}/db`)!;
    // The SVID's own record names the caller: it is the one committed before the SVID goes out.
    const me = { uid: process.getuid!(), gid: process.getgid!() };
    expect(issued).toMatchObject({ serial, authority: x509Ca, expiresAt: Math.floor(new Date(cert.validTo).getTime() / 1000), actor: me });
    expect(recs.find((r) => r.type === 'jwt_svid.issued')).toMatchObject({ jti: claims.jti, spiffeId: `spiffe://${TD}/db`, expiresAt: claims.exp, authority: jwtKey, actor: me });
    // The call's record is there too (the listing flushes what is held).
    expect(recs.find((r) => r.type === 'admin.MintX509SVID')).toMatchObject({ outcome: 'ok', spiffeId: `spiffe://${TD}/db`, actor: me });
    expect(recs.find((r) => r.type === 'admin.MintJWTSVID')).toMatchObject({ outcome: 'ok', spiffeId: `spiffe://${TD}/db`, actor: me });

    // A refused call is recorded with its status.
    expect(run(['entry', 'show', '--id', 'nope']).code).toBe(1);
    expect(list().find((r) => r.type === 'admin.GetEntry')).toMatchObject({ outcome: 'NOT_FOUND', details: { id: 'nope' } });

    // Filters.
    expect(list(['--serial', cert.serialNumber.match(/../g)!.join(':')]).map((r) => r.type)).toEqual(['x509_svid.issued']);
    expect(list(['--serial', claims.jti]).map((r) => r.type)).toEqual(['jwt_svid.issued']);
    expect(new Set(list(['--spiffe-id', `spiffe://${TD}/db`]).map((r) => r.type))).toEqual(
      // The listing itself is recorded first, with its filter.
      new Set(['x509_svid.issued', 'admin.MintX509SVID', 'jwt_svid.issued', 'admin.MintJWTSVID', 'admin.ListAuditRecords']),
    );
    expect(list(['--limit', '2']).map((r) => r.seq)).toEqual([1, 2]);
    expect(list(['--since', '1h']).length).toBeGreaterThan(5);
    expect(list(['--since', new Date(Date.now() + 3_600_000).toISOString()])).toEqual([]);
    const text = run(['audit', 'list', '--spiffe-id', `spiffe://${TD}/web`]);
    expect(text.stdout).toMatch(new RegExp(`^ +\\d+ \\S+Z admin\\.CreateEntry uid=${process.getuid!()} gid=${process.getgid!()} pid=\\d+ outcome=ok spiffeId=spiffe://${TD}/web\\n`));
  });

  it('follows new records', async () => {
    const child = spawn(process.execPath, [BIN, 'audit', 'list', '--follow', '--output', 'json', '--since', '1s', ...sock()], { env: f.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let got = '';
    const seen = new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.includes(`"spiffeId":"spiffe://${TD}/followed"`)) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      // The follower is in once its own call is in the log.
      for (let i = 0; i < 400 && !list(['--since', '1m']).some((r) => r.type === 'admin.ListAuditRecords' && r.details?.follow === true); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(run(['entry', 'create', '--spiffe-id', `spiffe://${TD}/followed`, '--parent-id', `spiffe://${TD}/anchorage/agent/join_token/x`, '--selector', 'unix:uid:7']).code).toBe(0);
      // Resolves once the new record arrives on the open stream; a follower that exited instead fails here.
      const first = await Promise.race([seen.then(() => 'seen'), exited.then((c) => `exited ${c}`)]);
      expect(first).toBe('seen');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  describe('verify', () => {
    const bad = (seq: number, reason: RegExp) => {
      const r = verify();
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`^Audit log BAD: first bad record ${seq}: `));
      expect(r.stdout).toMatch(reason);
    };
    const good = () => {
      const r = verify();
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Audit log OK: \d+ records, \d+ signed checkpoints, head at record \d+\n$/);
    };
    const row = (seq: number) => db.prepare('SELECT * FROM audit_log WHERE seq = ?').get(seq) as Record<string, unknown>;
    const put = (r: Record<string, unknown>) =>
      db.prepare('INSERT INTO audit_log (seq, time_ms, type, spiffe_id, serial, jti, body, prev_hash, hash) VALUES (@seq, @time_ms, @type, @spiffe_id, @serial, @jti, @body, @prev_hash, @hash)').run(r);

    it('passes on the untouched log, with JSON output', () => {
      good();
      const r = run(['audit', 'verify', '--json']);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, first_bad_seq: 0, reason: '' });
    });

    it('catches an edited record, and passes again once it is restored', () => {
      const orig = row(4);
      db.prepare("UPDATE audit_log SET body = json_set(body, '$.outcome', 'forged') WHERE seq = 4").run();
      bad(4, /the record was edited/);
      db.prepare('UPDATE audit_log SET body = ? WHERE seq = 4').run(orig.body);
      good();
    });

    it('catches a deleted record', () => {
      const orig = row(5);
      db.prepare('DELETE FROM audit_log WHERE seq = 5').run();
      bad(5, /record 5 is missing/);
      put(orig);
      good();
    });

    it('catches reordered records', () => {
      db.transaction(() => {
        db.prepare('UPDATE audit_log SET seq = -6 WHERE seq = 6').run();
        db.prepare('UPDATE audit_log SET seq = 6 WHERE seq = 7').run();
        db.prepare('UPDATE audit_log SET seq = 7 WHERE seq = -6').run();
      })();
      bad(6, /./);
      const jr = run(['audit', 'verify', '--json']);
      expect(jr.code).toBe(1);
      expect(JSON.parse(jr.stdout)).toMatchObject({ ok: false, first_bad_seq: 6 });
      db.transaction(() => {
        db.prepare('UPDATE audit_log SET seq = -7 WHERE seq = 7').run();
        db.prepare('UPDATE audit_log SET seq = 7 WHERE seq = 6').run();
        db.prepare('UPDATE audit_log SET seq = 6 WHERE seq = -7').run();
      })();
      good();
    });

    it('catches a truncated tail, and refuses to append over the cut', () => {
      const head = (db.prepare('SELECT max(seq) AS m FROM audit_log').get() as { m: number }).m;
      const removed = db.prepare('SELECT * FROM audit_log WHERE seq > ? ORDER BY seq').all(head - 3) as Array<Record<string, unknown>>;
      db.prepare('DELETE FROM audit_log WHERE seq > ?').run(head - 3);
      const r = verify();
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`^Audit log BAD: first bad record ${head - 2}: the log ends at record ${head - 3} but this server .* truncated`));
      // A change the log cannot hold is refused rather than done unrecorded.
      const refused = run(['entry', 'create', '--spiffe-id', `spiffe://${TD}/after-cut`, '--parent-id', `spiffe://${TD}/anchorage/agent/join_token/x`, '--selector', 'unix:uid:9']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/CreateEntry was carried out, but its audit record could not be written/);
      for (const x of removed) put(x);
      verify();
      good();
    });
  });
});

describe('anchorage audit: bad input (exit 2, before any call)', () => {
  assertBuilt();
  const usage = (args: string[], message: RegExp) => {
    const r = cli(['audit', ...args, '--socket', '/nonexistent/admin.sock']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
  };

  it('refuses bad --since, --spiffe-id, --serial, --limit, --output and stray arguments', () => {
    usage(['list', '--since', 'yesterday'], /--since.*RFC 3339/);
    usage(['list', '--since', '2026-13-01T00:00:00Z'], /--since: "2026-13-01T00:00:00Z" is not a valid time/);
    usage(['list', '--since', '2026-12-01T00:00:00'], /--since.*RFC 3339/);
    usage(['list', '--since', '0s'], /--since: "0s" must be greater than zero/);
    usage(['list', '--spiffe-id', 'http://x/y'], /--spiffe-id: /);
    usage(['list', '--serial', 'zz:zz'], /--serial: "zz:zz" is not a hex serial number/);
    usage(['list', '--serial', 'a b'], /--serial: "a b" is neither a hex serial number nor a JWT jti/);
    usage(['list', '--limit', '0'], /--limit must be a whole number from 1, not "0"/);
    usage(['list', '--limit', 'ten'], /--limit must be a whole number from 1, not "ten"/);
    usage(['list', '--output', 'xml'], /--output must be text or json, not "xml"/);
    usage(['list', '--follow=yes'], /follow/);
    usage(['verify', 'extra'], /unexpected|argument/i);
    usage(['nope'], /unknown subcommand "nope" \(list, verify\)/);
  });

  it('documents the --since forms in help', () => {
    const r = cli(['audit', 'list', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: anchorage audit list \[--since T\] \[--spiffe-id ID\] \[--serial S\] \[--limit N\] \[--follow\] \[--output text\|json\]\n/);
    expect(r.stdout).toContain('RFC 3339 with offset (2026-12-05T20:00:00Z) or a duration ago (10m, 2h, 7d)');
  });
});
