import { describe, expect, it } from 'vitest';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger } from '../../common/log.js';
import { ChangeFeed } from '../changes.js';
import type { ChangeListener } from '../datastore/postgres/cluster.js';
import { ClusterBridge, type ChangeChannel } from './bridge.js';
import { type Change, decodeChange, encodeChange } from './payload.js';

// The payload and the bridge's own logic, without a database (a fake
// channel). What needs PostgreSQL is in cluster.test.ts.

describe('change payloads', () => {
  it('round-trips each kind with its origin and sequence', () => {
    const changes: Change[] = [
      { kind: 'entries', ids: ['a', 'b'] },
      { kind: 'evicted', id: 'spiffe://td/anchorage/agent/join_token/x' },
      { kind: 'bundles' },
      { kind: 'all' },
    ];
    for (const change of changes) {
      const { payload, widened } = encodeChange('srv-1', 7, change, 7999);
      expect(widened).toBe(false);
      expect(decodeChange(payload)).toEqual({ origin: 'srv-1', sequence: 7, change });
    }
  });

  it('sends a change whose IDs do not fit in the byte limit as "all", and says so', () => {
    const ids = Array.from({ length: 300 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    const { payload, widened } = encodeChange('srv-1', 3, { kind: 'entries', ids }, 7999);
    expect(widened).toBe(true);
    expect(decodeChange(payload)).toEqual({ origin: 'srv-1', sequence: 3, change: { kind: 'all' } });
    // The limit is in bytes, not characters: 2,700 three-byte characters are 8,100 bytes.
    const wide = encodeChange('srv-1', 4, { kind: 'entries', ids: ['€'.repeat(2700)] }, 7999);
    expect(wide.widened).toBe(true);
    // Just under the limit still goes as it is.
    const fits = encodeChange('srv-1', 5, { kind: 'entries', ids: ['x'.repeat(7900)] }, 7999);
    expect(fits.widened).toBe(false);
    expect(Buffer.byteLength(fits.payload)).toBeLessThanOrEqual(7999);
  });

  it.each<[string, string, string]>([
    ['not JSON', 'hello', 'payload is not JSON'],
    ['an array', '[1]', 'payload is not a JSON object'],
    ['null', 'null', 'payload is not a JSON object'],
    ['another version', '{"v":2,"o":"a","s":1,"k":"all"}', 'payload version 2 is not 1'],
    ['no origin', '{"v":1,"s":1,"k":"all"}', 'payload origin must be a non-empty string'],
    ['a sequence of 0', '{"v":1,"o":"a","s":0,"k":"all"}', 'payload sequence must be a positive whole number'],
    ['a fractional sequence', '{"v":1,"o":"a","s":1.5,"k":"all"}', 'payload sequence must be a positive whole number'],
    ['an unknown kind', '{"v":1,"o":"a","s":1,"k":"roots"}', 'payload kind "roots" is not known'],
    ['entries without IDs', '{"v":1,"o":"a","s":1,"k":"entries","ids":[]}', 'payload ids must be 1 to 1000 non-empty strings'],
    ['an ID that is not a string', '{"v":1,"o":"a","s":1,"k":"entries","ids":[5]}', 'payload ids must be 1 to 1000 non-empty strings'],
    ['an eviction without an ID', '{"v":1,"o":"a","s":1,"k":"evicted"}', 'payload id must be a non-empty string'],
  ])('refuses %s with a message saying what is wrong', (_name, payload, message) => {
    expect(() => decodeChange(payload)).toThrow(new Error(message));
  });
});

/** A channel in memory: what was published, a listener the test drives, and failures on demand. */
function fakeChannel() {
  const published: string[] = [];
  let sequence = 0;
  let failNext = 0;
  let deliver: ((payload: string) => void) | undefined;
  const channel: ChangeChannel = {
    async publish(payloadFor) {
      if (failNext > 0) {
        failNext--;
        throw new AnchorageError('unavailable', 'datastore: publish change: write failed, nothing was saved: connection refused');
      }
      const payload = payloadFor(++sequence);
      published.push(payload);
      deliver?.(payload);
      return sequence;
    },
    sequence: async () => sequence,
    async listen(onPayload): Promise<ChangeListener> {
      deliver = onPayload;
      return { pid: 1, ping: async () => {}, close: async () => {} };
    },
  };
  return {
    channel,
    published,
    failNext: (n: number) => (failNext = n),
    /** What another server would send. */
    fromOther: (p: string) => deliver?.(p),
    bumpBehindItsBack: () => sequence++,
  };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('ClusterBridge', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['a reconcile interval under a second', { reconcileIntervalMs: 999 }, 'cluster: reconcileIntervalMs must be a whole number of milliseconds from 1000 to 3600000'],
    ['a reconcile interval over an hour', { reconcileIntervalMs: 3_600_001 }, 'cluster: reconcileIntervalMs must be a whole number of milliseconds from 1000 to 3600000'],
    ['a fractional reconcile interval', { reconcileIntervalMs: 1500.5 }, 'cluster: reconcileIntervalMs must be a whole number of milliseconds from 1000 to 3600000'],
    ['an empty origin', { origin: '' }, 'cluster: origin must be 1 to 64 characters of A-Z a-z 0-9 . _ : -'],
    ['an origin with a quote', { origin: 'a"b' }, 'cluster: origin must be 1 to 64 characters of A-Z a-z 0-9 . _ : -'],
    ['a payload limit over PostgreSQL\'s', { maxPayloadBytes: 8000 }, 'cluster: maxPayloadBytes must be a whole number from 200 to 7999'],
  ])('refuses %s with invalid_argument', (_name, over, message) => {
    let caught: unknown;
    try {
      new ClusterBridge({ feed: new ChangeFeed(), channel: fakeChannel().channel, logger: silentLogger(), ...over });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AnchorageError);
    expect((caught as AnchorageError).code).toBe('invalid_argument');
    expect((caught as AnchorageError).message).toBe(message);
  });

  it('publishes local changes, relays other servers\' without publishing them again, and ignores its own', async () => {
    const fake = fakeChannel();
    const feed = new ChangeFeed();
    const heard: unknown[] = [];
    feed.on('entries', (ids) => heard.push(['entries', ids]));
    feed.on('everything', () => heard.push(['everything']));
    const bridge = new ClusterBridge({ feed, channel: fake.channel, logger: silentLogger(), origin: 'me' });
    await bridge.start();
    feed.entriesChanged(['e1']);
    feed.entriesChanged([]); // nothing to say
    await flush();
    expect(fake.published.map((p) => decodeChange(p))).toEqual([{ origin: 'me', sequence: 1, change: { kind: 'entries', ids: ['e1'] } }]);
    fake.fromOther(encodeChange('other', 2, { kind: 'entries', ids: ['e2'] }, 7999).payload);
    await flush();
    expect(heard).toEqual([['entries', ['e1']], ['entries', []], ['entries', ['e2']]]);
    expect(fake.published).toHaveLength(1);
    expect(bridge.stats).toMatchObject({ published: 1, relayed: 1 });
    // Nothing missed: the reconcile stays quiet.
    expect(await bridge.reconcile()).toBe(false);
    await bridge.close();
  });

  it('after a failed publish, the next one says "all changed"', async () => {
    const fake = fakeChannel();
    const feed = new ChangeFeed();
    const bridge = new ClusterBridge({ feed, channel: fake.channel, logger: silentLogger(), origin: 'me' });
    await bridge.start();
    fake.failNext(1);
    feed.entriesChanged(['lost']);
    await flush();
    expect(fake.published).toEqual([]);
    feed.bundlesChanged();
    await flush();
    expect(fake.published.map((p) => decodeChange(p).change)).toEqual([{ kind: 'all' }]);
    await bridge.close();
  });

  it('the reconcile publishes "all changed" still owed, and emits "everything" when the counter is ahead', async () => {
    const fake = fakeChannel();
    const feed = new ChangeFeed();
    let everything = 0;
    feed.on('everything', () => everything++);
    const bridge = new ClusterBridge({ feed, channel: fake.channel, logger: silentLogger(), origin: 'me' });
    await bridge.start();
    fake.failNext(1);
    feed.entriesChanged(['lost']);
    await flush();
    expect(await bridge.reconcile()).toBe(false);
    expect(fake.published.map((p) => decodeChange(p).change)).toEqual([{ kind: 'all' }]);
    fake.bumpBehindItsBack();
    expect(await bridge.reconcile()).toBe(true);
    expect(everything).toBe(1);
    expect(bridge.stats.reconciled).toBe(1);
    expect(await bridge.reconcile()).toBe(false);
    await bridge.close();
  });

  it('re-emits an unreadable notification as "everything changed"', async () => {
    const fake = fakeChannel();
    const feed = new ChangeFeed();
    let everything = 0;
    feed.on('everything', () => everything++);
    const bridge = new ClusterBridge({ feed, channel: fake.channel, logger: silentLogger(), origin: 'me' });
    await bridge.start();
    fake.fromOther('{"v":9}');
    expect(everything).toBe(1);
    expect(bridge.stats.malformed).toBe(1);
    expect(fake.published).toEqual([]);
    await bridge.close();
  });

  it('fails to start with unavailable when it cannot listen, and refuses a second start', async () => {
    const fake = fakeChannel();
    fake.channel.listen = () => Promise.reject(new Error('cannot listen on anchorage_changes: connection refused'));
    const bridge = new ClusterBridge({ feed: new ChangeFeed(), channel: fake.channel, logger: silentLogger() });
    await expect(bridge.start()).rejects.toMatchObject({ code: 'unavailable', message: 'cluster: cannot listen on anchorage_changes: connection refused' });
    await expect(bridge.start()).rejects.toMatchObject({ code: 'failed_precondition', message: 'cluster: the bridge was already started' });
  });
});
