import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../common/log.js';
import { startTestCa, type TestCa } from '../test/helpers/test-ca.js';
import { READY_CACHE_MS, ServerMetrics } from './metrics.js';

// The server's readiness through a real CA (memory keys, SQLite): every CA
// key signs and verifies, the datastore takes a write, the active
// authorities are unexpired; a verdict is reused for READY_CACHE_MS. Each
// way of failing names what failed.

const TD = 'ready.test';
let dir: string;
let tca: TestCa;
let t = Date.now();
const iso = (s: number) => new Date(s * 1000).toISOString();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-ready-'));
  tca = await startTestCa(TD, join(dir, 'ca'));
});

afterAll(async () => {
  await tca?.close().catch(() => undefined); // its datastore was closed by the last test
  rmSync(dir, { recursive: true, force: true });
});

describe('server readiness', () => {
  const metrics = new ServerMetrics();

  it('is not ready while the server is starting', async () => {
    expect(await metrics.ready()).toEqual({ ok: false, lines: ['server: still starting'] });
  });

  it('is ready with every CA key signing, the datastore writable and the authorities current', async () => {
    metrics.attach({ ca: tca.ca, datastore: tca.datastore, keyManagers: [tca.keyManager], trustDomain: tca.trustDomain, now: () => t, logger: silentLogger() });
    const { ca } = tca;
    expect(await metrics.ready()).toEqual({
      ok: true,
      lines: [
        `ok: root key "${ca.rootOfTrust().key.id}" signs`,
        `ok: intermediate key "${ca.activeX509().key.id}" signs`,
        `ok: JWT key "${ca.activeJwt().key.id}" signs`,
        'ok: datastore is writable',
        `ok: active root valid until ${iso(ca.rootOfTrust().notAfter)}`,
        `ok: active intermediate valid until ${iso(ca.activeX509().notAfter)}`,
        `ok: active JWT key valid until ${iso(ca.activeJwt().notAfter)}`,
      ],
    });
    expect(await tca.datastore.getMeta('readiness_probe')).toBe(String(t));
    expect(await metrics.registry.getSingleMetricAsString('anchorage_ca_keys_usable')).toContain('anchorage_ca_keys_usable{key_manager="memory"} 1');
  });

  it('reuses its verdict for 5 s, then finds a key that no longer signs', async () => {
    const id = tca.ca.activeX509().key.id;
    await tca.keyManager.deleteKey(id);
    t += READY_CACHE_MS - 1;
    expect((await metrics.ready()).ok).toBe(true);
    t += 1;
    const report = await metrics.ready();
    expect(report.ok).toBe(false);
    expect(report.lines[1]).toBe(`FAIL: intermediate key: keymanager: key "${id}" was deleted`);
    expect(report.lines.filter((l) => l.startsWith('FAIL'))).toHaveLength(1);
    expect(await metrics.registry.getSingleMetricAsString('anchorage_ca_keys_usable')).toContain('anchorage_ca_keys_usable{key_manager="memory"} 0');
  });

  it('names an expired intermediate and JWT key', async () => {
    const na = tca.ca.activeX509().notAfter;
    t = (na + 1) * 1000;
    const report = await metrics.ready();
    expect(report.ok).toBe(false);
    expect(report.lines).toContain(`FAIL: active intermediate expired at ${iso(na)}`);
    expect(report.lines).toContain(`FAIL: active JWT key expired at ${iso(tca.ca.activeJwt().notAfter)}`);
  });

  it('names a datastore that takes no write', async () => {
    await tca.datastore.close();
    t += READY_CACHE_MS;
    const report = await metrics.ready();
    expect(report.ok).toBe(false);
    expect(report.lines.find((l) => l.startsWith('FAIL: datastore: '))).toBeDefined();
  });
});

describe('authority gauges after an operator taints and revokes', () => {
  it('lists roots from the journal, tainted authorities until revoked, and no revoked one', async () => {
    const own = await startTestCa('gauges.test', join(dir, 'gauges'));
    try {
      const metrics = new ServerMetrics();
      metrics.attach({ ca: own.ca, datastore: own.datastore, keyManagers: [own.keyManager], trustDomain: own.trustDomain, now: () => Date.now(), logger: silentLogger() });
      const gauge = (name: string) => metrics.registry.getSingleMetricAsString(name);
      const jwt = await own.ca.taintAuthority('jwt', undefined);
      const x509 = await own.ca.taintAuthority('x509', undefined);
      const fp = (await import('./manager.js')).certFingerprint(x509.row.certDer!);
      const tainted = await gauge('anchorage_ca_authority_tainted_timestamp_seconds');
      expect(tainted).toContain(`anchorage_ca_authority_tainted_timestamp_seconds{kind="intermediate",id="${fp}"} ${x509.row.taintedAt}`);
      expect(tainted).toContain(`anchorage_ca_authority_tainted_timestamp_seconds{kind="jwt",id="${jwt.row.kid}"} ${jwt.row.taintedAt}`);
      const rootFp = (await import('./manager.js')).certFingerprint(own.ca.rootOfTrust().cert);
      expect(await gauge('anchorage_ca_authority_not_after_timestamp_seconds')).toContain(`{kind="root",status="active",id="${rootFp}"}`);
      await own.ca.revokeAuthority('jwt', jwt.row.id);
      const after = await gauge('anchorage_ca_authority_tainted_timestamp_seconds');
      expect(after).not.toContain(jwt.row.kid!);
      expect(after).toContain(fp);
      expect(await gauge('anchorage_ca_authority_not_after_timestamp_seconds')).not.toContain(jwt.row.kid!);
    } finally {
      await own.close();
    }
  });
});
