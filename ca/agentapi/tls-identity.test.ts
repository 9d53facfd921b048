import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { captureLogger } from '../../test/helpers/log.js';
import { TrustDomain } from '@anchorage/client/spiffe/id';
import type { CaManager } from '../manager.js';
import type { Minter, MintedX509Svid } from '../minter.js';
import { ServerTlsIdentity } from './tls-identity.js';

/** A CA stand-in: only what the TLS identity reads (trust domain, bundle events). */
function fakeCa(): CaManager {
  const ca = new EventEmitter() as EventEmitter & { trustDomain: TrustDomain };
  ca.trustDomain = TrustDomain.parse('example.test');
  return ca as unknown as CaManager;
}

/** A minter that fails while `failing` is set, like one whose token is away. */
function flakyMinter(): { minter: Minter; calls: () => number; setFailing(f: boolean): void } {
  let failing = false;
  let calls = 0;
  const minter = {
    async mintX509(): Promise<MintedX509Svid> {
      calls++;
      if (failing) throw new Error('pkcs11: token "t" is unavailable: CKR_DEVICE_REMOVED; retrying');
      return { chain: [Buffer.from([calls])], notAfter: Math.floor(Date.now() / 1000) + 100 } as unknown as MintedX509Svid;
    },
  };
  return { minter: minter as unknown as Minter, calls: () => calls, setFailing: (f) => (failing = f) };
}

describe('ServerTlsIdentity renewal', () => {
  afterEach(() => vi.useRealTimers());

  it('keeps retrying a failed renewal with backoff (5 s doubling to 60 s) until it succeeds', async () => {
    vi.useFakeTimers({ now: 1_000_000_000_000 });
    const { logger, records } = captureLogger();
    const m = flakyMinter();
    const id = new ServerTlsIdentity({ ca: fakeCa(), minter: m.minter, logger });
    await id.start();
    expect(m.calls()).toBe(1);

    m.setFailing(true);
    await vi.advanceTimersByTimeAsync(50_000); // half of the 100 s lifetime
    expect(m.calls()).toBe(2);
    // An outage outlasting many tries: each retry waits twice as long, capped at 60 s.
    const waits = [5_000, 10_000, 20_000, 40_000, 60_000, 60_000];
    for (const w of waits) {
      await vi.advanceTimersByTimeAsync(w - 1);
      const before = m.calls();
      await vi.advanceTimersByTimeAsync(1);
      expect(m.calls(), `retry after ${w} ms`).toBe(before + 1);
    }
    const failures = records.filter((r) => r.msg === 'agent api: renewing the server TLS certificate failed; retrying');
    expect(failures.map((r) => r.retryInMs)).toEqual([...waits, 60_000]);

    // The token comes back: the next retry renews, and the schedule returns to half-life.
    m.setFailing(false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(m.calls()).toBe(2 + waits.length + 1);
    await vi.advanceTimersByTimeAsync(49_999);
    expect(m.calls()).toBe(2 + waits.length + 1);
    await vi.advanceTimersByTimeAsync(1);
    expect(m.calls()).toBe(2 + waits.length + 2);
    id.close();
  });

  it('stops retrying once closed', async () => {
    vi.useFakeTimers({ now: 1_000_000_000_000 });
    const m = flakyMinter();
    const id = new ServerTlsIdentity({ ca: fakeCa(), minter: m.minter, logger: captureLogger().logger });
    await id.start();
    m.setFailing(true);
    await vi.advanceTimersByTimeAsync(50_000);
    expect(m.calls()).toBe(2);
    id.close();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(m.calls()).toBe(2);
  });
});
