import * as grpc from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../common/log.js';
import type { AdminHandlers } from '../../proto/gen/anchorage/admin/v1/Admin.js';
import type { AuditEvent, AuditSink, RecordOptions } from '../audit/event.js';
import { withAuditRecords } from './audit.js';

/** A sink whose records stay pending until the test settles them. */
function heldSink() {
  const held: Array<{ event: AuditEvent; opts?: RecordOptions; resolve: () => void; reject: (e: Error) => void }> = [];
  const sink: AuditSink = {
    record: (event, opts) => new Promise<void>((resolve, reject) => held.push({ event, ...(opts && { opts }), resolve, reject })),
  };
  return { sink, held };
}

type Unary = (call: unknown, cb: grpc.sendUnaryData<unknown>) => void;
const ACTOR = { uid: 1000, gid: 1000, pid: 4242 };
const tick = () => new Promise((r) => setImmediate(r));

function wrap(handlers: Record<string, Unary>, sink: AuditSink, logger = { error: vi.fn() }) {
  const wrapped = withAuditRecords(handlers as unknown as AdminHandlers, { audit: sink, actorOf: () => ACTOR, logger: logger as unknown as Logger });
  const call = (method: string, request: unknown) =>
    new Promise<{ err: grpc.ServiceError | null; value: unknown }>((resolve) =>
      (wrapped as unknown as Record<string, Unary>)[method]!({ request, getPeer: () => 'peer' }, (err, value) => resolve({ err: err as grpc.ServiceError | null, value })),
    );
  return { call, logger };
}

const ok: Unary = (_call, cb) => cb(null, { ok: true });
const refused: Unary = (_call, cb) => cb({ code: grpc.status.INVALID_ARGUMENT, details: 'no', message: 'no', name: 'Error', metadata: new grpc.Metadata() });

describe('withAuditRecords', () => {
  it('answers a successful mint without waiting for its admin record, which is still written and may share a commit', async () => {
    const { sink, held } = heldSink();
    const { call } = wrap({ MintX509SVID: ok, MintJWTSVID: ok }, sink);
    for (const method of ['MintX509SVID', 'MintJWTSVID']) {
      const answer = await call(method, { spiffe_id: 'spiffe://td.test/db' });
      expect(answer).toEqual({ err: null, value: { ok: true } });
      const rec = held.at(-1)!;
      expect(rec.event).toEqual({ type: `admin.${method}`, outcome: 'ok', spiffeId: 'spiffe://td.test/db', actor: ACTOR });
      expect(rec.opts).toEqual({ withinMs: 20 });
    }
    expect(held).toHaveLength(2);
  });

  it('logs a successful mint whose admin record fails, and the answer stands', async () => {
    const { sink, held } = heldSink();
    const { call, logger } = wrap({ MintX509SVID: ok }, sink);
    expect((await call('MintX509SVID', { spiffe_id: 'spiffe://td.test/db' })).err).toBeNull();
    held[0]!.reject(new Error('disk full'));
    await tick();
    expect(logger.error).toHaveBeenCalledWith({ method: 'MintX509SVID', err: 'disk full' }, 'admin: the audit record of a call could not be written');
  });

  it('holds a refused mint and every other call until its record is committed', async () => {
    const { sink, held } = heldSink();
    const { call } = wrap({ MintX509SVID: refused, CreateEntry: ok }, sink);
    for (const [method, outcome] of [['MintX509SVID', 'INVALID_ARGUMENT'], ['CreateEntry', 'ok']] as const) {
      let answered = false;
      const answer = call(method, { spiffe_id: 'spiffe://td.test/db' }).then((a) => ((answered = true), a));
      await tick();
      expect(answered).toBe(false);
      const rec = held.at(-1)!;
      expect(rec.event).toMatchObject({ type: `admin.${method}`, outcome, actor: ACTOR });
      // Committed at the next opportunity: no hold offered.
      expect(rec.opts).toBeUndefined();
      rec.resolve();
      const a = await answer;
      expect(a.err?.code ?? grpc.status.OK).toBe(outcome === 'ok' ? grpc.status.OK : grpc.status.INVALID_ARGUMENT);
    }
  });

  it('answers UNAVAILABLE for a change whose record failed, naming what was done', async () => {
    const { sink, held } = heldSink();
    const { call } = wrap({ CreateEntry: ok }, sink);
    const answer = call('CreateEntry', { entry: { spiffe_id: 'spiffe://td.test/web' } });
    await tick();
    held[0]!.reject(new Error('disk full'));
    const { err } = await answer;
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(err?.details).toMatch(/CreateEntry was carried out, but its audit record could not be written: disk full/);
  });
});
