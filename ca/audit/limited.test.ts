import { describe, expect, it } from 'vitest';
import { captureLogger } from '../../test/helpers/log.js';
import type { AuditEvent } from './event.js';
import { BudgetedRecorder } from './limited.js';

function setup(opts: { burst: number; perSecond: number; summaryDelayMs?: number; fail?: boolean }) {
  let clock = 1_000_000;
  const recorded: AuditEvent[] = [];
  const logs = captureLogger();
  const r = new BudgetedRecorder(
    { record: async (e) => (opts.fail ? Promise.reject(new Error('audit queue full')) : void recorded.push(e)) },
    { burst: opts.burst, perSecond: opts.perSecond, suppressedType: 'x.suppressed', summaryDelayMs: opts.summaryDelayMs ?? 60_000, logger: logs.logger, now: () => clock },
  );
  return { r, recorded, logs, tick: (ms: number) => (clock += ms), now: () => clock };
}

describe('BudgetedRecorder', () => {
  it('records a burst, counts what is over it, and records the count once', async () => {
    const { r, recorded, tick } = setup({ burst: 3, perSecond: 1 });
    for (let i = 0; i < 5; i++) r.record({ type: 'x', details: { i } });
    await Promise.resolve();
    expect(recorded.map((e) => e.details!.i)).toEqual([0, 1, 2]);
    expect(r.pendingSuppressed).toBe(2);
    // Two seconds refill two records, no more.
    tick(2000);
    for (let i = 5; i < 8; i++) r.record({ type: 'x', details: { i } });
    r.summarize();
    await Promise.resolve();
    expect(recorded.map((e) => e.type)).toEqual(['x', 'x', 'x', 'x', 'x', 'x.suppressed']);
    expect(recorded.at(-1)!.details).toEqual({ count: 3, first_ms: 1_000_000, last_ms: 1_002_000 });
    expect(r.pendingSuppressed).toBe(0);
    r.summarize();
    await Promise.resolve();
    expect(recorded).toHaveLength(6);
  });

  it('records the count by itself after summaryDelayMs', async () => {
    const { r, recorded } = setup({ burst: 1, perSecond: 0.001, summaryDelayMs: 20 });
    r.record({ type: 'x' });
    r.record({ type: 'x' });
    r.record({ type: 'x' });
    await new Promise((res) => setTimeout(res, 60));
    expect(recorded.map((e) => [e.type, e.details?.count])).toEqual([['x', undefined], ['x.suppressed', 2]]);
  });

  it('never throws nor rejects when the log refuses; it says so in the log', async () => {
    const { r, logs } = setup({ burst: 1, perSecond: 1, fail: true });
    expect(() => r.record({ type: 'x' })).not.toThrow();
    await new Promise((res) => setImmediate(res));
    expect(logs.records.some((l) => l.msg === 'audit: recording failed' && l.err === 'audit queue full')).toBe(true);
  });
});
