import { connect, createServer, type Server, type Socket } from 'node:net';
import { Counter, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureLogger } from '../test/helpers/log.js';
import { AnchorageError } from '@anchorage/client/errors';
import { silentLogger } from './log.js';
import { cachedCheck, METRICS_HTTP_LIMITS, metricsConfig, startMetricsHttp, type HealthReport, type MetricsHttp } from './metrics-http.js';

// The monitoring listener against hostile peers, over real TCP on loopback:
// only GET of three paths, bodies refused, headers bounded in size and time,
// connections capped per address. No timing is asserted: each test waits for
// the server to act (close, answer) and checks what it did.

let http: MetricsHttp;
let ready: HealthReport = { ok: true, lines: ['ok: everything'] };
const registry = new Registry();
new Counter({ name: 'anchorage_test_total', help: 'a test counter', registers: [registry] }).inc(3);

beforeAll(async () => {
  http = await startMetricsHttp({ address: '127.0.0.1:0', registry, ready: async () => ready, logger: silentLogger() });
});
afterAll(async () => {
  await http?.close();
});

/** Sends raw bytes and resolves with everything the server sent once it closed the connection. */
function raw(send: string | Buffer, opts: { end?: boolean } = {}): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(http.port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d));
    // A reset (a connection refused at accept) ends it like a close: what was received is the answer.
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
    s.write(send);
    if (opts.end) s.end();
  });
}

function opened(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(http.port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

describe('metrics listener: what it serves', () => {
  it('GET /metrics: the registry in the Prometheus text format', async () => {
    const res = await fetch(`http://127.0.0.1:${http.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(registry.contentType);
    expect(await res.text()).toBe('# HELP anchorage_test_total a test counter\n# TYPE anchorage_test_total counter\nanchorage_test_total 3\n');
  });

  it('GET /live: 200 "live"; GET /ready: 200 or 503 with the reasons', async () => {
    const live = await fetch(`http://127.0.0.1:${http.port}/live`);
    expect([live.status, await live.text()]).toEqual([200, 'live\n']);
    ready = { ok: true, lines: ['ok: a', 'ok: b'] };
    const good = await fetch(`http://127.0.0.1:${http.port}/ready`);
    expect([good.status, await good.text()]).toEqual([200, 'ready\nok: a\nok: b\n']);
    ready = { ok: false, lines: ['ok: a', 'FAIL: b is down'] };
    const bad = await fetch(`http://127.0.0.1:${http.port}/ready`);
    expect([bad.status, bad.headers.get('content-type'), await bad.text()]).toEqual([503, 'text/plain; charset=utf-8', 'not ready\nok: a\nFAIL: b is down\n']);
  });

  it('a query string is ignored; other paths are 404; other methods on our paths 405 with Allow: GET', async () => {
    expect((await fetch(`http://127.0.0.1:${http.port}/metrics?x=1`)).status).toBe(200);
    for (const path of ['/', '/metricsx', '/debug/pprof']) {
      expect((await fetch(`http://127.0.0.1:${http.port}${path}`)).status, path).toBe(404);
    }
    // Sent as is (fetch would normalize it): no path tricks reach a handler.
    expect(await raw('GET /../metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 404 /);
    for (const method of ['POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS']) {
      const res = await fetch(`http://127.0.0.1:${http.port}/metrics`, { method, ...(method === 'POST' || method === 'PUT' ? { body: 'x' } : {}) });
      expect([method, res.status, res.headers.get('allow')]).toEqual([method, 405, 'GET']);
    }
  });
});

describe('metrics listener: hostile requests', () => {
  it('refuses a GET with a body (413) without reading it, and closes the connection', async () => {
    const got = await raw('GET /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\nxxxx');
    expect(got).toMatch(/^HTTP\/1\.1 413 /);
    expect(got).toContain('a request body is not accepted');
    const chunked = await raw('GET /ready HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nxxxxx\r\n');
    expect(chunked).toMatch(/^HTTP\/1\.1 413 /);
  });

  it(`answers 431 to headers over ${METRICS_HTTP_LIMITS.maxHeaderBytes} bytes and closes the connection`, async () => {
    const got = await raw(`GET /metrics HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    expect(got).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('answers 400 to garbage and closes the connection', async () => {
    expect(await raw('\u0000\u0001 not http at all\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('closes a connection that trickles its headers (slowloris) once the headers timeout passes', async () => {
    const s = await opened();
    let got = '';
    s.on('data', (d) => (got += d));
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    s.write('GET /metrics HTTP/1.1\r\nhost: x\r\n');
    // One header byte every 500 ms: never idle, never done.
    const drip = setInterval(() => s.writable && s.write('x'), 500);
    await closed;
    clearInterval(drip);
    expect(got === '' || /^HTTP\/1\.1 408 /.test(got), got).toBe(true);
  }, 30_000);

  it('closes a connection that sends nothing', async () => {
    const s = await opened();
    await new Promise<void>((resolve) => s.on('close', () => resolve()));
    expect(s.bytesRead).toBe(0);
  }, 30_000);

  it(`holds at most ${METRICS_HTTP_LIMITS.maxConnectionsPerIp} connections from one address: the next is closed at once, unanswered`, async () => {
    const held = await Promise.all(Array.from({ length: METRICS_HTTP_LIMITS.maxConnectionsPerIp }, () => opened()));
    try {
      const got = await raw('GET /live HTTP/1.1\r\nhost: x\r\n\r\n');
      expect(got).toBe('');
      // A held one still works.
      const answered = new Promise<string>((resolve) => {
        let text = '';
        held[0]!.on('data', (d) => {
          text += d;
          if (text.includes('live\n')) resolve(text);
        });
      });
      held[0]!.write('GET /live HTTP/1.1\r\nhost: x\r\n\r\n');
      expect(await answered).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      for (const s of held) s.destroy();
    }
    // Once they are gone, new connections are served again.
    await new Promise((r) => setTimeout(r, 50));
    expect((await fetch(`http://127.0.0.1:${http.port}/live`)).status).toBe(200);
  });
});

describe('metrics listener: bad addresses', () => {
  let occupied: Server;
  let port: number;
  beforeAll(async () => {
    occupied = createServer();
    await new Promise<void>((resolve) => occupied.listen(0, '127.0.0.1', resolve));
    port = (occupied.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => occupied.close(() => resolve())));

  it('an occupied port fails with one line naming metrics.address', async () => {
    const { logger, records } = captureLogger();
    const err = await startMetricsHttp({ address: `127.0.0.1:${port}`, registry, ready: async () => ready, logger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnchorageError);
    expect((err as AnchorageError).message).toBe(`metrics: cannot listen on metrics.address 127.0.0.1:${port}: the port is already in use`);
    expect(records.filter((r) => r.msg === 'metrics: listening')).toEqual([]);
  });

  it('an address this host does not have fails likewise', async () => {
    const err = await startMetricsHttp({ address: '192.0.2.1:0', registry, ready: async () => ready, logger: silentLogger() }).catch((e: unknown) => e);
    expect((err as AnchorageError).message).toBe('metrics: cannot listen on metrics.address 192.0.2.1:0: this host has no such address');
  });

  it.each([
    [{ address: 'localhost' }, 'must be host:port'],
    [{ address: '127.0.0.1:65536' }, 'port must be between 0 (any free port) and 65535'],
    [{ address: 'http://127.0.0.1:9090' }, 'must be host:port'],
    [{ address: '127.0.0.1:9090', path: '/m' }, 'Unrecognized key: "path"'],
    [{}, 'Invalid input: expected string, received undefined'],
  ])('the metrics block %j is refused: %s', (block, message) => {
    const r = metricsConfig.safeParse(block);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.message)).toEqual([message]);
  });
});

describe('cachedCheck', () => {
  it('runs the check at most once per ttl, shares a run among concurrent callers, and reports a throw as not ready', async () => {
    let t = 1000;
    let runs = 0;
    let release: () => void = () => {};
    const check = cachedCheck(
      () => {
        runs++;
        return new Promise<HealthReport>((resolve) => (release = () => resolve({ ok: true, lines: [`run ${runs}`] })));
      },
      5000,
      () => t,
    );
    const a = check();
    const b = check();
    release();
    expect(await a).toEqual({ ok: true, lines: ['run 1'] });
    expect(await b).toEqual({ ok: true, lines: ['run 1'] });
    t += 4999;
    expect(await check()).toEqual({ ok: true, lines: ['run 1'] });
    t += 1;
    const c = check();
    release();
    expect(await c).toEqual({ ok: true, lines: ['run 2'] });
    expect(runs).toBe(2);

    const failing = cachedCheck(() => Promise.reject(new Error('token gone')), 5000, () => t);
    expect(await failing()).toEqual({ ok: false, lines: ['check failed: token gone'] });
  });
});
