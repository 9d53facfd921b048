import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../common/log.js';
import { SpiffeId, TrustDomain } from '@anchorage/client/spiffe/id';
import type { AuditEvent, RecordOptions } from './audit/event.js';
import { SqliteDataStore } from './datastore/sqlite/index.js';
import type { KeyHandle, KeyType } from './keymanager/KeyManager.js';
import { ForwardingKeyManager } from '../test/helpers/key-manager.js';
import { MemoryKeyManager } from './keymanager/memory.js';
import { CaManager } from './manager.js';
import { Minter } from './minter.js';
import { loadRootOfTrust } from './root.js';

const td = TrustDomain.parse('minter.test');
const SIGN_MS = 20;

/** A key manager whose signatures take at least SIGN_MS, like a busy HSM; it keeps the longest it saw. */
class SlowKeyManager extends ForwardingKeyManager {
  longestMs = 0;
  private slow(h: KeyHandle): KeyHandle {
    return {
      ...h,
      sign: async (data) => {
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, SIGN_MS));
        const sig = await h.sign(data);
        this.longestMs = Math.max(this.longestMs, performance.now() - t0);
        return sig;
      },
    };
  }
  override async generateKey(id: string, type: KeyType) {
    return this.slow(await super.generateKey(id, type));
  }
  override async getKey(id: string) {
    const h = await super.getKey(id);
    return h && this.slow(h);
  }
}

let dir: string;
let ds: SqliteDataStore;
let km: SlowKeyManager;
let ca: CaManager;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'anchorage-minter-'));
  ds = SqliteDataStore.open(join(dir, 'ds.sqlite3'));
  km = new SlowKeyManager(new MemoryKeyManager());
  const root = await loadRootOfTrust(
    { type: 'self-signed', ttl: 86400 },
    { trustDomain: td, datastore: ds, keyManager: km, now: Date.now, logger: silentLogger(), defaultKeyType: 'ec-p256' },
  );
  ca = new CaManager({ trustDomain: td, keyManager: km, root, datastore: ds, caTtl: 3600, keyType: 'ec-p256', bundleRefreshHint: 300, logger: silentLogger() });
  await ca.start();
});

afterAll(async () => {
  await ca?.close();
  await ds?.close();
  await km?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the audit record of a mint', () => {
  it('names the SVID and carries the hold the signature allows: none at first, then at most half the signature time', async () => {
    const seen: Array<{ event: AuditEvent; opts: RecordOptions | undefined }> = [];
    const minter = new Minter({
      ca,
      x509SvidTtl: 600,
      jwtSvidTtl: 300,
      audit: {
        record: async (event, opts) => {
          seen.push({ event, opts });
        },
      },
    });
    const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const id = SpiffeId.parse('spiffe://minter.test/web');
    for (let i = 0; i < 16; i++) {
      const x = await minter.mintX509({ spiffeId: id, spki, agent: 'spiffe://minter.test/agent/a' });
      expect(seen.at(-1)!.event).toMatchObject({ type: 'x509_svid.issued', serial: x.serial, spiffeId: id.toString(), expiresAt: x.notAfter });
    }
    const j = await minter.mintJwt({ spiffeId: id, audience: ['svc'] });
    expect(seen.at(-1)!.event).toMatchObject({ type: 'jwt_svid.issued', jti: j.jti });
    const holds = seen.map((s) => s.opts?.withinMs ?? 0);
    // No signature measured yet: nothing to hide a commit behind.
    expect(holds[0]).toBe(0);
    // After 16 signatures of at least 20 ms, the smoothed time is well above 2 × 2 ms...
    expect(holds.at(-1)!).toBeGreaterThan(4);
    // ... and a hold never exceeds half of the longest signature.
    for (const h of holds) expect(h).toBeLessThanOrEqual(km.longestMs / 2);
  });

  it('mints without an audit log', async () => {
    const minter = new Minter({ ca, x509SvidTtl: 600, jwtSvidTtl: 300 });
    const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const x = await minter.mintX509({ spiffeId: SpiffeId.parse('spiffe://minter.test/db'), spki });
    expect(x.chain.length).toBeGreaterThanOrEqual(1);
  });
});
